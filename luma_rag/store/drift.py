"""Which bridge version projected each stored item, and the drift ε_i that follows from it.

A bridged item was projected into the target space by the bridge of its time; the bridge
has moved on since by at most ``bridge.drift_since(version)``, and the certificate widens
that item's bound by as much (:mod:`luma_rag.safety.bounds`).
"""

from __future__ import annotations

import numpy as np

from luma_rag.bridge import ProcrustesBridge

_NONE = 2**31 - 1  # cached "no bridged item": above every real version


class ItemVersions:
    """int32 bridge version per key (-1: not bridged), grown as keys are allocated."""

    def __init__(self, versions: np.ndarray) -> None:
        self._v = np.asarray(versions, dtype=np.int32)
        self._oldest: int | None = None  # cached oldest version >= 0; None: recompute

    def set(self, keys: np.ndarray, version: int) -> None:
        """Record that ``keys`` (new) were projected with bridge ``version`` (-1: none)."""
        hi = int(keys.max()) + 1 if keys.size else 0
        if (have := len(self._v)) < hi:
            grow = np.full(max(hi, 2 * have) - have, -1, np.int32)
            self._v = np.concatenate([self._v, grow])
        if self._oldest is not None and keys.size and (self._v[keys] >= 0).any():
            self._oldest = None  # a version was overwritten: the oldest may have gone
        self._v[keys] = version
        if self._oldest is not None and keys.size and 0 <= version < self._oldest:
            self._oldest = version

    def drift(self, bridge: ProcrustesBridge | None, keys: np.ndarray) -> np.ndarray:
        """ε_i per key: bridge drift since the item was projected (0 if it was not)."""
        out = np.zeros(len(keys), dtype=np.float64)
        if bridge is None or keys.size == 0:
            return out
        versions = self._v[keys]
        for v in np.unique(versions[versions >= 0]).tolist():
            out[versions == v] = bridge.drift_since(int(v))
        return out

    def worst(self, bridge: ProcrustesBridge | None) -> float:
        """Drift since the oldest bridge version any stored item was projected with.

        The oldest version is cached (queries ask on every search; a scan of every key cost
        O(n) per query) and recomputed only after :meth:`set` overwrote a bridged key.
        """
        if bridge is None:
            return 0.0
        if self._oldest is None:
            versions = self._v[self._v >= 0]
            self._oldest = int(versions.min()) if versions.size else _NONE
        return 0.0 if self._oldest == _NONE else bridge.drift_since(self._oldest)
