"""ItemVersions: the cached oldest bridge version matches a scan of every key."""

from __future__ import annotations

import numpy as np

from luma_rag.store.drift import ItemVersions


class _Bridge:
    """drift_since(v) = 1 / (v + 1): older versions drifted further, like a real bridge."""

    def drift_since(self, version: int) -> float:
        return 1.0 / (version + 1)


def _scan(v: np.ndarray) -> float:
    bridged = v[v >= 0]
    return 1.0 / (int(bridged.min()) + 1) if bridged.size else 0.0


def test_worst_matches_a_scan_after_every_set_including_overwrites() -> None:
    rng = np.random.default_rng(3)
    versions = ItemVersions(np.full(8, -1, np.int32))
    bridge = _Bridge()
    shadow = np.full(8, -1, np.int32)
    assert versions.worst(bridge) == 0.0
    for _ in range(300):
        keys = np.unique(rng.integers(0, 64, size=int(rng.integers(0, 5))))
        version = int(rng.integers(-1, 6))
        versions.set(keys, version)
        if keys.size and int(keys.max()) >= len(shadow):
            shadow = np.concatenate([shadow, np.full(int(keys.max()) + 1 - len(shadow), -1)])
        shadow[keys] = version
        assert versions.worst(bridge) == _scan(shadow)
    assert versions.worst(None) == 0.0


def test_worst_reads_versions_given_at_open() -> None:
    versions = ItemVersions(np.array([-1, 4, 2, -1], np.int32))
    assert versions.worst(_Bridge()) == 1.0 / 3
    versions.set(np.array([2]), 5)  # the oldest item re-projected: 4 is now the oldest
    assert versions.worst(_Bridge()) == 1.0 / 5
