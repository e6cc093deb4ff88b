"""Text found inside media, made searchable: speech transcripts (Whisper) and OCR (RapidOCR).

:mod:`.transcribe` and :mod:`.ocr` turn a file into text; :mod:`.linked` stores that text as a
*linked item* of the media item (embedded by the CLIP text tower, ``metadata["linked_to"]`` =
the media item's id) and fuses the routes at query time. Both extractors are optional extras
(``luma-rag[transcribe]``, ``luma-rag[ocr]``); without them everything works as before.
Nothing here imports a model until it is first used.
"""

from __future__ import annotations

from luma_rag.enrich.linked import (
    LINK_KEY,
    FusedHit,
    FusedResult,
    TextExtractor,
    ingest_with_text,
    parent_id,
    query_fused,
)
from luma_rag.enrich.ocr import OcrConfig, RapidOcrReader
from luma_rag.enrich.transcribe import TranscribeConfig, WhisperTranscriber

__all__ = [
    "LINK_KEY",
    "FusedHit",
    "FusedResult",
    "OcrConfig",
    "RapidOcrReader",
    "TextExtractor",
    "TranscribeConfig",
    "WhisperTranscriber",
    "ingest_with_text",
    "parent_id",
    "query_fused",
]
