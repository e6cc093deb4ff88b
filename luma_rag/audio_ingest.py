"""Batched audio ingest: one CLAP pass for many clips, projected into CLIP space by the bridge.

:meth:`Luma.ingest_audio <luma_rag.Luma.ingest_audio>` is to audio what ``ingest_images`` is to
images (:mod:`luma_rag.encoding`): ``ingest(audio=p, caption=c)`` runs three encoder passes per
clip (CLAP audio, CLAP text, CLIP text); a batch runs each once for all its clips, which on a
CPU is several times faster per clip (the demo's spoken captions went from ~1 to ~10 clips/s).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

import luma_rag._checks as checks
from luma_rag.errors import InvalidInputError

if TYPE_CHECKING:
    from luma_rag.engine import Luma

__all__ = ["ingest_audio"]

logger = logging.getLogger(__name__)


def ingest_audio(
    luma: Luma,
    paths: Sequence[str | os.PathLike[str]],
    captions: Sequence[str | None] | None = None,
    metadatas: Sequence[Mapping[str, Any]] | None = None,
    ids: Sequence[str] | None = None,
) -> list[str]:
    """Embed and store a batch of audio clips (one pass per encoder; captions optional).

    Each captioned clip feeds the bridge its (CLAP-text, CLIP-text) and (CLAP-audio,
    CLIP-text) pairs, as ``ingest(audio=..., caption=...)`` does, before the batch is
    projected into the store's space.

    Args:
        paths: n audio files (WAV; other formats with ``soundfile``).
        captions: n captions (or None), returned as ``Hit.text``.
        metadatas: n metadata dicts.
        ids: n unique ids (None: new uuids).

    Returns:
        The n ids, in order.

    Raises:
        ConfigError: the store has no audio encoder or no bridge.
        InvalidInputError / UnsupportedMediaError: a bad argument or clip; nothing is stored.
    """
    luma._store.check_open()
    if isinstance(paths, (str, os.PathLike)) or not paths:
        raise InvalidInputError("paths must be a non-empty list of audio files")
    n = len(paths)
    caps = checks.check_optional_strings(captions, n, "captions")
    metas = checks.check_metadata(metadatas, n)
    ids_ = checks.check_ids(ids, n)
    embedder = luma._need_embedder()
    clap = embedder._need_audio()
    luma._need_bridge()
    vecs = clap.encode_audio(list(paths))  # (n, clap_dim) float32, unit rows
    captioned = [i for i, c in enumerate(caps) if c is not None]
    if captioned:
        texts = [checks.encoder_prefix(str(caps[i]))[0] for i in captioned]
        clap_text, clip_text = clap.encode_text(texts), embedder.encoder.encode_text(texts)
        luma.add_bridge_pairs(
            np.vstack([clap_text, vecs[captioned]]), np.vstack([clip_text, clip_text])
        )
    stored = luma.add_vectors(
        vecs,
        metas,
        ids_,
        modality="audio",
        bridged=True,
        texts=caps,
        sources=[os.fspath(p) for p in paths],
    )
    extractor = luma.enrichers.get("audio")
    if extractor is not None:
        from luma_rag.enrich.linked import add_linked_text

        for item, path, meta in zip(stored, paths, metas, strict=True):
            add_linked_text(luma, item, path, "audio", extractor, meta)
    logger.debug("ingested %d audio clips (%d captioned)", n, len(captioned))
    return stored
