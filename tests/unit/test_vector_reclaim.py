"""Deleted rows of ``vectors.f32`` give their disk blocks back without moving live rows."""

from __future__ import annotations

import os

import numpy as np

from luma_rag.store.vectors import VectorFile
from tests.conftest import clustered_unit_vectors


def _blocks(path) -> int:
    return os.stat(path).st_blocks


def test_reclaim_frees_whole_blocks_of_deleted_runs_and_keeps_live_rows(tmp_path):
    x = clustered_unit_vectors(400, 512, seed=1)  # 2 KiB rows: two per 4 KiB block
    vf = VectorFile(tmp_path / "v.f32", 512)
    vf.append(x, 0)
    before = _blocks(vf.path)
    deleted = np.r_[10:200, 201, 203]  # one long run and two isolated rows
    freed = vf.reclaim(np.r_[deleted, deleted[:5], 10_000, -1])  # repeats, out of range ignored
    live = np.setdiff1d(np.arange(400), deleted)
    assert np.array_equal(vf.get(live), x[live])  # every live row byte-identical
    assert vf.rows == 400 and os.path.getsize(vf.path) == 16 + 400 * 2048  # offsets kept
    # Only whole blocks inside the run go: rows 10..199 span bytes 16+10*2048 .. 16+200*2048.
    assert freed <= 190 * 2048 and freed % 4096 == 0
    if freed:  # the file system punches holes: the blocks are really gone
        assert _blocks(vf.path) < before
        assert freed >= 180 * 2048
    assert vf.reclaim(np.array([205])) == 0  # a single 2 KiB row never covers a whole block
    assert np.array_equal(vf.get(live), x[live])
    vf.close()
    reopened = VectorFile(tmp_path / "v.f32", 512)
    assert np.array_equal(reopened.get(live), x[live])
    reopened.close()
