"""luma_rag.eval.own_data: evaluating a folder of the user's own images and texts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag.errors import InvalidInputError
from luma_rag.eval.own_data import LabeledQuery, evaluate_folder, load_queries, wilson_interval

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
DIM = 8


class ColorEncoder:
    """Images by their mean colour, texts by the colour words they name (8-d, deterministic)."""

    name, dim, modalities = "color-8", DIM, frozenset({"text", "image"})

    def _unit(self, v: np.ndarray) -> np.ndarray:
        v = v + 1e-3 * np.arange(1, DIM + 1)  # never zero
        return (v / np.linalg.norm(v)).astype(np.float32)

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        rows = []
        for t in texts:
            v = np.zeros(DIM)
            for i, c in enumerate(COLORS):
                v[i] += t.lower().count(c)
            rows.append(self._unit(v))
        return np.stack(rows)

    def encode_image(self, images: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
        from luma_rag.media import load_image

        rows = []
        for p in images:
            rgb = np.asarray(load_image(p), dtype=np.float64).reshape(-1, 3).mean(axis=0)
            v = np.zeros(DIM)
            v[int(np.argmax(rgb))] = 1.0
            rows.append(self._unit(v))
        return np.stack(rows)

    def encode_audio(self, clips: Sequence[Any], *, batch_size: int = 16) -> np.ndarray:
        raise NotImplementedError


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    from PIL import Image

    root = tmp_path / "mine"
    (root / "photos").mkdir(parents=True)
    for color, rgb in COLORS.items():
        Image.new("RGB", (16, 16), rgb).save(root / "photos" / f"{color}.png")
    (root / "notes.txt").write_text("a note about blue things and blue skies")
    return root


def test_evaluate_folder_reports_ranking_certificates_and_gate(
    folder: Path, tmp_path: Path
) -> None:
    queries = [
        LabeledQuery("red", frozenset({"photos/red.png"})),
        LabeledQuery("green", frozenset({"photos/green.png"})),
        LabeledQuery("blue", frozenset({"photos/blue.png", "notes.txt"})),
    ]
    report = evaluate_folder(folder, queries, tmp_path / "store", encoder=ColorEncoder(), k=3)
    assert report["n_items"] == 4 and report["n_queries"] == 3
    assert report["ranking"]["recall@1"]["value"] == 1.0
    assert report["ranking"]["recall@1"]["n"] == 3
    low, high = report["ranking"]["recall@1"]["ci95"]
    assert 0.0 < low < 1.0 and high == pytest.approx(1.0)
    assert 0.0 <= report["ranking"]["mrr@3"] <= 1.0 and report["ranking"]["ndcg@3"] > 0.5
    assert set(report["rho"]) >= {"text"}
    assert 0.0 <= report["safe1"]["coverage"]["value"] <= 1.0
    assert report["gate"]["coverage"]["n"] == 3
    assert sum(report["gate"]["shares"].values()) == pytest.approx(1.0)
    assert [p["top1"] for p in report["per_query"][:2]] == ["photos/red.png", "photos/green.png"]


def test_bad_input(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not in"):
        evaluate_folder(
            folder, [LabeledQuery("red", frozenset({"nope.png"}))], tmp_path / "s", encoder=None
        )
    with pytest.raises(InvalidInputError, match="no queries"):
        evaluate_folder(folder, [], tmp_path / "s", encoder=ColorEncoder())
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"query": "red"}\n')
    with pytest.raises(InvalidInputError, match="relevant"):
        load_queries(bad)
    good = tmp_path / "g.jsonl"
    good.write_text(json.dumps({"query": "red", "relevant": ["photos/red.png"]}) + "\n\n")
    assert load_queries(good) == [LabeledQuery("red", frozenset({"photos/red.png"}))]


def test_wilson_interval() -> None:
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert all(np.isnan(wilson_interval(0, 0)))
