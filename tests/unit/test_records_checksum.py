"""The record checksum's fast spelling must give the bytes ``json.dumps`` gave: stores written
before it keep verifying."""

from __future__ import annotations

import json
import zlib

import pytest

from luma_rag.store.records import _rowsum


def _reference(key, item_id, crc, tier, modality, metadata, bv, text, source):
    data = [int(key), item_id, int(crc), int(tier), modality, metadata, int(bv)]
    return zlib.crc32(json.dumps([*data, text, source]).encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "row",
    [
        (1, "a", 2, 0, "image", "{}", -1, None, None),
        (2**40, 'x"\\y\n\u00e9\ud800', 2**32 - 1, 1, "text", '{"a": "é"}', 3, "t\u2028é", "s3://b"),
        (0, "", 0, 1, "", "", 0, "", ""),
        (5, "id", 7, 0, "audio", "{}", 2, "\x00\x1f\x7f", None),
        (6, 17, 7, 0, "audio", "{}", 2, None, None),  # a non-str id takes the json.dumps path
    ],
)
def test_rowsum_matches_the_json_dumps_bytes(row):
    assert _rowsum(*row) == _reference(*row)


def test_moving_records_between_tiers_rewrites_each_checksum_as_python_computes_it(tmp_path):
    from luma_rag.store.records import NewRecord, RecordStore

    store = RecordStore(tmp_path / "records.sqlite")
    texts = [None, "t\u2028é", 'q"\\', "\x00\x1f"]
    rows = [
        NewRecord(k, f"id-{k}\u00e9", k * 7, 0, "text", {"n": k, "s": "é"}, 1.0, k % 3, 0.5)
        for k in range(2000)
    ]
    rows = [
        NewRecord(r.key, r.id, r.crc, r.tier, r.modality, r.metadata, r.created,
                  r.bridge_version, r.novelty, texts[r.key % 4], None if r.key % 2 else "src")
        for r in rows
    ]  # fmt: skip
    store.commit(rows, [], 2000)
    moved = list(range(0, 2000, 2))  # more than one 900-key chunk
    store.set_tiers(moved, 1)
    store.set_tiers([3, 5], 1)
    store.set_tiers([5], 0)
    table = store.load()  # verifies every checksum (raises on a mismatch)
    warm = set(moved) | {3}
    assert [int(t) for t in table.tiers] == [int(k in warm) for k in range(2000)]
    got = store._db.execute(
        "SELECT key, id, crc, tier, modality, metadata, bridge_version, text, source, rowsum "
        "FROM items ORDER BY key"
    ).fetchall()
    for k, i, c, tier, m, md, bv, t, src, rs in got:
        assert rs == _reference(k, i, c, tier, m, md, bv, t, src)
    assert store.details([4, 5])[4].text == texts[0]
    store.close()


def test_the_memory_mapped_query_connection_sees_every_later_commit(tmp_path):
    from luma_rag.store.records import NewRecord, RecordStore

    store = RecordStore(tmp_path / "records.sqlite")
    assert store._rdb.execute("PRAGMA mmap_size").fetchone()[0] > 0  # the query path maps

    def rows(lo, hi):
        meta = {"pad": "x" * 500}  # grows the file well past what was mapped at first
        return [NewRecord(k, f"i{k}", k, 0, "text", meta, 1.0, 0, 0.5) for k in range(lo, hi)]

    store.commit(rows(0, 10), [], 10)
    assert set(store.details(list(range(10)))) == set(range(10))
    store.commit(rows(10, 5000), [3, 4], 5000)
    got = store.details([0, 3, 4, 4999])
    assert set(got) == {0, 4999} and got[4999].id == "i4999"
    store.set_tiers([0], 1)
    store.close()
    reader = RecordStore(tmp_path / "records.sqlite", read_only=True)
    assert reader.details([4999])[4999].metadata == {"pad": "x" * 500}
    reader.close()
