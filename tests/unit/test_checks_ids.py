"""Ids made for vectors added without any (``luma_rag._checks.fresh_ids``)."""

from __future__ import annotations

import uuid

from luma_rag._checks import check_ids, fresh_ids


def test_fresh_ids_are_distinct_version_4_uuids_in_uuid4_hex_form() -> None:
    ids = check_ids(None, 5000)
    assert len(ids) == 5000 and len(set(ids)) == 5000
    for i in ids:
        u = uuid.UUID(hex=i)
        assert u.hex == i and u.version == 4 and u.variant == uuid.RFC_4122
    assert fresh_ids(0) == []
    assert set(fresh_ids(100)).isdisjoint(ids)  # each call draws new random bits
