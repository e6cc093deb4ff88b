"""Transcripts and OCR on held-out LUMA-Shapes: Recall@10 with and without the words.

* **audio → image**: spoken captions (espeak-ng) query an image gallery; without transcripts
  the clip crosses the CLAP→CLIP bridge alone; with them its Whisper transcript is a second,
  text route, fused by RRF (:func:`luma_rag.enrich.query_fused`). Group-aware relevance (an
  image is relevant when it has every attribute the spoken caption names).
* **text → audio**: a paraphrase of each clip's caption queries a gallery of the clips; with
  transcripts every clip has a linked transcript item (CLIP text), without it has only its
  bridged CLAP vector. Relevance: the clip whose caption was paraphrased, or any clip with
  every attribute the paraphrase names.
* **text → image on worded images**: a word ("harbor") queries images, half of which carry a
  written word; relevant: the image with that word. With OCR each worded image has a linked
  OCR item; without, only its CLIP image vector.

``python -m luma_rag.eval.enrich --n 300 --queries 100 --seed 5505 --ocr-seed 5606``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.datasets import generate, load_manifest, parse_query_attributes, relevant
from luma_rag.datasets.worded import worded_images
from luma_rag.engine import Luma
from luma_rag.enrich import RapidOcrReader, WhisperTranscriber, ingest_with_text, query_fused
from luma_rag.eval.composite import wilson_interval
from luma_rag.eval.metrics import mrr, recall_at_k

__all__ = ["CachedExtractor", "evaluate_enrich", "main"]

logger = logging.getLogger(__name__)


class CachedExtractor:
    """Wraps an extractor so each file is read once (queries and gallery share clips)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.cache: dict[str, str] = {}

    def extract(self, path: str | os.PathLike[str]) -> str:
        key = os.fspath(path)
        if key not in self.cache:
            self.cache[key] = self.inner.extract(path)
        return self.cache[key]


def _summary(ranked: list[np.ndarray]) -> dict[str, Any]:
    n = len(ranked)
    hits = sum(bool(r[:10].any()) for r in ranked)
    lo, hi = wilson_interval(hits, n)
    return {
        "n": n,
        "recall_at_10": hits / n,
        "recall_at_10_ci95": [lo, hi],
        "mrr": mrr(ranked),
        "top1": recall_at_k(ranked, 1),
    }


def _ranked(ids: Sequence[str], is_relevant: Callable[[str], bool]) -> np.ndarray:
    return np.array([is_relevant(i) for i in ids], dtype=bool)


def _by_attributes(
    named: dict[str, Any], attrs: dict[str, Any], own: str | None = None
) -> Callable[[str], bool]:
    """Relevant: ``own`` itself, or any item with every attribute ``named``."""

    def check(item_id: str) -> bool:
        return item_id == own or relevant(named, attrs[item_id])

    return check


def _is(own: str) -> Callable[[str], bool]:
    return lambda item_id: item_id == own


def _audio(root: Path, n: int, queries: int, seed: int, whisper: CachedExtractor) -> dict[str, Any]:
    items = load_manifest(generate(root / "corpus", n=n, seed=seed, size=64, audio=True, workers=1))
    attrs = {it.id: it.attributes for it in items}
    asked = items[:queries]
    out: dict[str, Any] = {}
    with Luma.open(root / "images", encoder="luma-tiny", audio_encoder="luma-tiny-clap") as luma:
        luma.ingest_images(
            [it.image_path for it in items],
            ids=[it.id for it in items],
            metadatas=[it.attributes.as_dict() for it in items],
        )
        plain, fused = [], []
        for it in asked:
            named = parse_query_attributes(it.caption)
            rel = _by_attributes(named, attrs)
            plain.append(_ranked(luma.query(audio=it.audio_path, k=10).ids, rel))
            res = query_fused(luma, audio=it.audio_path, transcriber=whisper, k=10, depth=10)
            fused.append(_ranked(res.ids, rel))
        out["audio_to_image"] = {"bridge": _summary(plain), "bridge+transcript": _summary(fused)}
    said = [whisper.extract(str(it.audio_path)) for it in asked]
    exact = [_words(s) == _words(it.caption) for s, it in zip(said, asked, strict=True)]
    out["transcripts"] = {
        "n": len(asked),
        "exact_match": float(np.mean(exact)),
        "examples": [[it.caption, s] for it, s in zip(asked[:5], said, strict=False)],
    }
    for name, extractor in (("bridge", None), ("bridge+transcript", whisper)):
        store = root / f"audio-{name}"
        with Luma.open(store, encoder="luma-tiny", audio_encoder="luma-tiny-clap") as luma:
            for it in asked:
                ingest_with_text(
                    luma, extractor, audio=it.audio_path, id=it.id, metadata=it.attributes.as_dict()
                )
            ranked = []
            for it in asked:
                phrase = it.captions[1] if len(it.captions) > 1 else it.caption
                named = parse_query_attributes(phrase)
                rel = _by_attributes(named, attrs, it.id)
                ranked.append(_ranked(query_fused(luma, phrase, k=10, depth=10).ids, rel))
            out.setdefault("text_to_audio", {})[name] = _summary(ranked)
    return out


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() else " " for c in text.lower()).split()


def _ocr(root: Path, n: int, seed: int) -> dict[str, Any]:
    items = worded_images(root / "worded", n=n, seed=seed)
    reader = CachedExtractor(RapidOcrReader())
    worded = [it for it in items if it.word]
    out: dict[str, Any] = {"images": n, "worded": len(worded)}
    for name, extractor in (("clip", None), ("clip+ocr", reader)):
        with Luma.open(root / f"ocr-{name}", encoder="luma-tiny") as luma:
            for it in items:
                ingest_with_text(luma, extractor, image=it.image, id=it.id)
            ranked = [
                _ranked(
                    query_fused(luma, it.word or "", k=10, depth=10).ids,
                    _is(it.id),
                )
                for it in worded
            ]
            out[name] = _summary(ranked)
    read = [reader.extract(it.image) for it in worded]
    out["ocr_word_accuracy"] = float(
        np.mean([r.strip().lower() == it.word for r, it in zip(read, worded, strict=True)])
    )
    out["ocr_false_text"] = float(
        np.mean([bool(reader.extract(it.image)) for it in items if not it.word])
    )
    return out


def evaluate_enrich(
    n: int = 300, queries: int = 100, seed: int = 5505, ocr_seed: int = 5606, ocr_n: int = 120
) -> dict[str, Any]:
    """Run the three measurements (see the module docstring) and return their figures."""
    whisper = CachedExtractor(WhisperTranscriber())
    with tempfile.TemporaryDirectory() as tmp:
        res = {
            "config": {
                "n": n,
                "queries": queries,
                "seed": seed,
                "ocr_seed": ocr_seed,
                "ocr_n": ocr_n,
            }
        }
        res.update(_audio(Path(tmp) / "audio", n, queries, seed, whisper))
        res["ocr"] = _ocr(Path(tmp) / "ocr", ocr_n, ocr_seed)
    return res


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures (and write enrich.json with ``--out``)."""
    p = argparse.ArgumentParser(prog="python -m luma_rag.eval.enrich", description=__doc__)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--seed", type=int, default=5505)
    p.add_argument("--ocr-seed", type=int, default=5606)
    p.add_argument("--ocr-n", type=int, default=120)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    res = evaluate_enrich(a.n, a.queries, a.seed, a.ocr_seed, a.ocr_n)
    print(json.dumps(res, indent=2))
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "enrich.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
