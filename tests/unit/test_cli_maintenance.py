"""``luma check`` / ``luma repair`` on a real store: sound, damaged snapshot, repaired."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from luma_rag import Luma, LumaConfig
from luma_rag.cli import main


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    vecs = np.random.default_rng(3).standard_normal((300, 16)).astype("float32")
    with Luma.open(path, LumaConfig(dim=16, hot_budget=100)) as luma:
        luma.add_vectors(vecs)
        luma.wait_idle()
    return path


def test_check_reports_a_sound_store(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(store), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["errors"] == [] and report["rebuild"] == []


def test_check_flags_a_damaged_snapshot_and_repair_rebuilds_it(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = store / "hot.snapshot"
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF
    snapshot.write_bytes(bytes(data))
    assert main(["check", str(store)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEMS FOUND" in out and "hot.snapshot" in out
    assert main(["repair", str(store)]) == 0
    capsys.readouterr()
    assert main(["check", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_check_of_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    assert main(["check", str(tmp_path / "nope")]) != 0
