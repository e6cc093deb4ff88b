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
