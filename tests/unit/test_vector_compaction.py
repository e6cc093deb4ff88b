"""Compacting ``vectors.f32``: deleted rows' disk blocks come back, live rows and keys stay put,
a crash at any point loses nothing, and a records backup older than the compaction is told
apart from damage (restore both files from one backup)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from luma_rag import Luma, LumaConfig
from luma_rag.errors import StoreCorruptedError
from luma_rag.store.vectors import VectorFile
from tests.conftest import clustered_unit_vectors

DIM = 512  # 2 KiB rows: a run of deleted rows covers whole 4 KiB blocks


def _store(path: Path) -> tuple[np.ndarray, list[str]]:
    x = clustered_unit_vectors(400, DIM, seed=4)
    ids = [f"i{i}" for i in range(400)]
    with Luma.open(path, LumaConfig(dim=DIM, hot_budget=100)) as luma:
        luma.add_vectors(x, ids=ids)
    return x, ids


def _answers(luma: Luma, queries: np.ndarray) -> list[tuple[list[str], list[float]]]:
    return [(r.ids, [h.score for h in r.hits]) for r in (luma.search(q, k=5) for q in queries)]


def _zeroed(path: Path, keys: np.ndarray) -> bool:
    vf = VectorFile(path / "vectors.f32", DIM, read_only=True)
    try:
        return bool((vf.get(keys) == 0).all())
    finally:
        vf.close()


def test_compaction_frees_deleted_rows_and_changes_no_answer(tmp_path: Path) -> None:
    x, ids = _store(tmp_path / "s")
    gone = ids[100:300] + ids[301:305:2]  # one long run and isolated rows
    queries = x[::37]
    with Luma.open(tmp_path / "s") as luma:
        luma.delete(gone)
        want = _answers(luma, queries)
        size = os.path.getsize(tmp_path / "s" / "vectors.f32")
        blocks = os.stat(tmp_path / "s" / "vectors.f32").st_blocks
        luma._store.maintain("compact")
        assert _answers(luma, queries) == want  # live rows untouched while the store is open
        assert os.path.getsize(tmp_path / "s" / "vectors.f32") == size  # no row moved
        freed_blocks = blocks - os.stat(tmp_path / "s" / "vectors.f32").st_blocks
        luma._store.maintain("compact")  # again: nothing more to free, nothing breaks
        luma.add_vectors(x[:3], ids=["n0", "n1", "n2"])  # appends go on after a compaction
        want = _answers(luma, queries)
    if freed_blocks <= 0:
        pytest.skip("this file system cannot punch holes: nothing to reclaim")
    assert freed_blocks * 512 >= 190 * 2048  # st_blocks counts 512-byte units
    assert _zeroed(tmp_path / "s", np.arange(103, 297))
    with Luma.open(tmp_path / "s") as luma:  # reopens clean, same answers
        assert _answers(luma, queries) == want and len(luma) == 400 - len(gone) + 3
        assert not luma._store.notes


def test_a_records_backup_older_than_the_compaction_is_named_not_called_damage(
    tmp_path: Path,
) -> None:
    x, ids = _store(tmp_path / "s")
    store = tmp_path / "s"
    backup = tmp_path / "backup"
    shutil.copytree(store, backup)  # records.sqlite and vectors.f32 of one moment
    with Luma.open(store) as luma:
        luma.delete(ids[:200])
        luma._store.maintain("compact")
    if not _zeroed(store, np.arange(3, 197)):
        pytest.skip("this file system cannot punch holes: nothing was reclaimed")
    current = (store / "records.sqlite").read_bytes()
    shutil.copyfile(backup / "records.sqlite", store / "records.sqlite")  # records alone
    with pytest.raises(StoreCorruptedError, match=r"older than the compaction.*same backup"):
        Luma.open(store)
    shutil.copyfile(backup / "vectors.f32", store / "vectors.f32")  # both from one backup
    with Luma.open(store) as luma:
        assert len(luma) == 400 and luma.search(x[5], k=1).ids == ["i5"]
    restored = tmp_path / "r"
    shutil.copytree(store, restored)
    (restored / "records.sqlite").write_bytes(current)  # the newer records with old vectors
    with Luma.open(restored) as luma:
        assert len(luma) == 200 and luma.search(x[250], k=1).ids == ["i250"]


@pytest.mark.parametrize("stop", ["after_header", "mid_punch"])
def test_a_compaction_cut_short_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    """A crash after the header write or between two punched runs: live rows intact."""
    x, ids = _store(tmp_path / "s")
    with Luma.open(tmp_path / "s") as luma:
        luma.delete(ids[10:100] + ids[200:300])
        want = _answers(luma, x[::41])
    real = VectorFile.reclaim

    def cut(self: VectorFile, keys: np.ndarray) -> int:
        if stop == "mid_punch":
            real(self, keys[keys < 150])  # the first run only
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(VectorFile, "reclaim", cut)
    luma = Luma.open(tmp_path / "s")
    with pytest.raises(KeyboardInterrupt):
        luma._store.maintain("compact")
    luma._store._writer.release()  # what the dead process's exit would do (no close ran)
    monkeypatch.setattr(VectorFile, "reclaim", real)
    with Luma.open(tmp_path / "s") as luma:
        assert _answers(luma, x[::41]) == want
        luma._store.maintain("compact")  # the next compaction finishes the job
        assert _answers(luma, x[::41]) == want
