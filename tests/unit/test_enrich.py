"""Transcripts (faster-whisper, bundled tiny.en) and OCR (RapidOCR) as linked, fused items."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from luma_rag import Luma
from luma_rag.enrich import (
    LINK_KEY,
    RapidOcrReader,
    WhisperTranscriber,
    ingest_with_text,
    parent_id,
    query_fused,
)
from luma_rag.errors import InvalidInputError, MissingDependencyError, UnsupportedMediaError


class FixedWords:
    """A stand-in extractor: the same words for every file."""

    name = "fixed"

    def __init__(self, words: str) -> None:
        self.words = words
        self.calls: list[str] = []

    def extract(self, path: Any) -> str:
        self.calls.append(str(path))
        return self.words


@pytest.fixture(scope="module")
def worded(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    from luma_rag.datasets.worded import worded_images

    return worded_images(tmp_path_factory.mktemp("worded"), n=8, seed=12, p_word=0.6)


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    from luma_rag.datasets import generate, load_manifest

    root = tmp_path_factory.mktemp("spoken")
    return load_manifest(generate(root, n=3, seed=14, size=64, audio=True, workers=1))


@pytest.fixture(scope="module")
def whisper() -> WhisperTranscriber:
    return WhisperTranscriber()


def test_worded_images_carry_distinct_words(worded: list[Any]) -> None:
    words = [it.word for it in worded if it.word]
    assert 0 < len(words) < len(worded) and len(set(words)) == len(words)


def test_ocr_reads_the_written_words_offline(worded: list[Any]) -> None:
    reader = RapidOcrReader()
    for it in worded[:4]:
        assert reader.read(it.image).lower() == (it.word or "")
    with pytest.raises(UnsupportedMediaError):
        reader.read(worded[0].image.parent / "missing.png")


def test_whisper_transcribes_espeak_speech_offline(
    spoken: list[Any], whisper: WhisperTranscriber
) -> None:
    text = whisper.transcribe(spoken[0].audio_path).lower()
    said = spoken[0].caption.lower()
    shared = set(text.split()) & set(said.split())
    assert len(shared) >= 2, (said, text)  # tiny.en on espeak: some words survive
    with pytest.raises(UnsupportedMediaError):
        whisper.transcribe(spoken[0].audio_path.parent / "missing.wav")


def test_missing_extras_name_the_extra(monkeypatch: pytest.MonkeyPatch, worded: list[Any]) -> None:
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"luma-rag\[transcribe\]"):
        WhisperTranscriber().transcribe(worded[0].image)  # any existing file
    with pytest.raises(MissingDependencyError, match=r"luma-rag\[ocr\]"):
        RapidOcrReader().read(worded[0].image)


def test_ocr_at_ingest_makes_written_words_searchable(worded: list[Any], tmp_path: Path) -> None:
    with Luma.open(tmp_path / "plain", encoder="luma-tiny") as plain:
        plain.ingest_images([it.image for it in worded], ids=[it.id for it in worded])
        assert len(plain) == len(worded)  # no extractor: as before
    with Luma.open(tmp_path / "ocr", encoder="luma-tiny") as luma:
        luma.enrichers["image"] = RapidOcrReader()
        luma.ingest_images([it.image for it in worded], ids=[it.id for it in worded])
        with_words = [it for it in worded if it.word]
        assert len(luma) == len(worded) + len(with_words)
        for it in with_words:
            linked = luma.get([f"{it.id}#ocr"])[0]
            assert linked["modality"] == "ocr" and linked["text"].lower() == it.word
            assert linked["metadata"][LINK_KEY] == it.id
            res = luma.query_fused(it.word, k=3)
            assert res.ids[0] == it.id  # the linked text stands for its image
            assert parent_id(res.routes["media"].hits[0]) == it.id


def test_transcripts_at_ingest_and_fused_audio_queries(
    spoken: list[Any], whisper: WhisperTranscriber, tmp_path: Path
) -> None:
    with Luma.open(tmp_path / "s", encoder="luma-tiny", audio_encoder="luma-tiny-clap") as luma:
        luma.enrichers["audio"] = whisper
        for it in spoken:
            luma.ingest(audio=it.audio_path, caption=it.caption, id=it.id)
        linked = luma.get([f"{spoken[0].id}#transcript"])[0]
        assert linked["modality"] == "transcript" and linked["text"]
        assert linked["metadata"][LINK_KEY] == spoken[0].id
        res = luma.query_fused(audio=spoken[0].audio_path, k=3)
        assert set(res.routes) == {"media", "transcript"} and res.transcript
        assert set(res.ids) <= {it.id for it in spoken}  # linked items map to their clips
        assert len(res.ids) == len(set(res.ids))
        for hit in res.hits:
            assert hit.score == pytest.approx(sum(1 / (60 + r) for r in hit.routes.values()))


def test_explicit_extractor_and_bad_input(worded: list[Any], tmp_path: Path) -> None:
    fixed = FixedWords("lighthouse")
    with Luma.open(tmp_path / "s", encoder="luma-tiny") as luma:
        media, linked = ingest_with_text(luma, fixed, image=worded[0].image, id="a")
        assert (media, linked) == ("a", "a#ocr") and len(fixed.calls) == 1
        assert ingest_with_text(luma, FixedWords("  "), image=worded[1].image, id="b") == (
            "b",
            None,
        )
        assert query_fused(luma, "lighthouse", k=1).ids == ["a"]
        with pytest.raises(InvalidInputError):
            ingest_with_text(luma, fixed, image=worded[0].image, audio=worded[0].image)
        with pytest.raises(InvalidInputError, match="depth"):
            query_fused(luma, "x", k=5, depth=2)
