"""#11.2-4: derived files bound to their store; recovery never deletes; damage is typed."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from luma_rag import Luma
from luma_rag.errors import LumaError, StoreCorruptedError
from luma_rag.store import check_store, repair_store
from tests.reliability.conftest import DIM, answers, copy_store


@pytest.mark.parametrize("name", ["hot.snapshot", "warm.snapshot"])
@pytest.mark.parametrize("damage", ["swapped", "deleted", "stale"])
def test_a_foreign_missing_or_stale_snapshot_is_rebuilt_with_identical_results(
    pristine, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, damage: str
) -> None:
    a, b, queries, want = pristine
    store = copy_store(a, tmp_path / "s")
    if damage == "swapped":
        shutil.copyfile(b / name, store / name)
    elif damage == "deleted":
        (store / name).unlink()
    else:  # an older snapshot of this very store: write, close, put the old one back
        old = (store / name).read_bytes()
        with Luma.open(store) as luma:
            ids = luma.add_vectors(np.ones((1, DIM), np.float32))
            luma.delete(ids)
        (store / name).write_bytes(old)
    with caplog.at_level(logging.WARNING), Luma.open(store) as luma:
        got = answers(luma, queries)
        assert luma.memory.warm.trained
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    assert got == want
    assert check_store(store).ok  # the next close wrote bound, current snapshots


@pytest.mark.parametrize("damage", ["swapped", "deleted"])
def test_a_foreign_or_lost_bridge_file_is_reported_as_corruption(
    pristine, tmp_path: Path, damage: str
) -> None:
    a, b, _, _ = pristine
    store = copy_store(a, tmp_path / "s")
    if damage == "swapped":
        shutil.copyfile(b / "bridge.safetensors", store / "bridge.safetensors")
    else:
        (store / "bridge.safetensors").unlink()
    with pytest.raises(StoreCorruptedError, match="bridge"):
        Luma.open(store)
    assert any("bridge" in e for e in check_store(store).errors)


def test_restoring_an_older_records_file_loses_no_vector(pristine, tmp_path: Path) -> None:
    a, _, queries, want = pristine
    store = copy_store(a, tmp_path / "s")
    old_records = (store / "records.sqlite").read_bytes()
    new = np.random.default_rng(3).standard_normal((40, DIM)).astype(np.float32)
    with Luma.open(store) as luma:
        n = len(luma)
        luma.add_vectors(new, ids=[f"new-{i}" for i in range(40)])
        after = answers(luma, new[:5])
    current_records = (store / "records.sqlite").read_bytes()
    (store / "records.sqlite").write_bytes(old_records)  # a backup put back
    with Luma.open(store) as luma:
        assert len(luma) == n and "new-0" not in luma  # the old item set ...
        assert answers(luma, queries) == want
    assert list(store.glob("vectors.aside-*.f32"))  # ... and the newer rows kept aside
    assert any("aside" in line for line in check_store(store).info)
    (store / "records.sqlite").write_bytes(current_records)  # the current one put back
    with Luma.open(store) as luma:
        assert len(luma) == n + 40
        assert answers(luma, new[:5]) == after


def _damage_sql(store: Path, sql: str) -> None:
    db = sqlite3.connect(store / "records.sqlite")
    db.execute(sql)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE items SET id = CAST(x'ff00fe' AS TEXT) WHERE key = 3",
        "UPDATE items SET metadata = '{not json' WHERE key = 3",
        "UPDATE items SET metadata = '[1, 2]' WHERE key = 3",
        "UPDATE items SET text = 'changed' WHERE key = 3",
        "UPDATE kv SET value = '0' WHERE name = 'next_key'",
        "UPDATE kv SET value = 'x' || value WHERE name = 'generation'",
    ],
)
def test_damaged_sqlite_content_is_a_typed_error(pristine, tmp_path: Path, sql: str) -> None:
    store = copy_store(pristine[0], tmp_path / "s")
    _damage_sql(store, sql)
    try:
        with Luma.open(store) as luma:
            for q in pristine[2][:3]:
                luma.search(q, k=5)
                luma.search(q, k=5, filters={"even": True})
    except StoreCorruptedError as e:
        assert "records.sqlite" in str(e) or "record" in str(e)
    else:
        pytest.fail(f"{sql!r} went unnoticed")
    assert not check_store(store).ok


def test_repair_rebuilds_derived_files(pristine, tmp_path: Path) -> None:
    store = copy_store(pristine[0], tmp_path / "s")
    (store / "warm.snapshot").write_bytes(b"garbage")
    (store / "hot.snapshot").unlink()
    report = check_store(store)
    assert not report.errors and len(report.rebuild) == 2
    assert repair_store(store).ok
    with Luma.open(store) as luma:
        assert answers(luma, pristine[2]) == pristine[3]


def test_damage_never_escapes_as_a_foreign_exception(pristine, tmp_path: Path) -> None:
    store = copy_store(pristine[0], tmp_path / "s")
    (store / "config.json").write_text('{"dim": 16, "hot_budget": "many"}')
    with pytest.raises(LumaError):
        Luma.open(store)
