"""Tests of luma_rag.eval.model_kit's verdicts (the issue #12 targets table); the figures
themselves come from the floors in test_encoders_clip / test_tiny_llava / test_encoders_clap."""

from __future__ import annotations

from pathlib import Path

import pytest

from luma_rag.errors import InvalidInputError
from luma_rag.eval.model_kit import TARGETS, evaluate_kit, verdicts


def test_verdicts_pass_miss_and_not_run() -> None:
    report = {
        "clip": {"t2i_recall@10": 1.0, "t2i_mrr": 0.5, "referent_top1": 0.8},
        "llava": {"n_empty_first_token": 0},
    }
    rows = {r["metric"]: r for r in verdicts(report)}
    assert len(rows) == len(TARGETS)
    assert rows["clip.t2i_recall@10"]["status"] == "PASS"
    assert rows["clip.t2i_mrr"]["status"] == "MISS"
    assert rows["clip.referent_top1"]["status"] == "PASS"  # exactly at the target
    assert rows["llava.n_empty_first_token"]["status"] == "PASS"  # "<= 0"
    assert rows["audio.recall@10"]["status"] == "not run"
    assert rows["audio.recall@10"]["value"] is None


def test_evaluate_kit_needs_a_corpus(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        evaluate_kit(tmp_path / "nothing-here")
