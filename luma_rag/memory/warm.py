"""Warm tier: exact (flat) while small, FAISS IVF-PQ once it has enough data to train.

Sizing and training of one index generation live in :mod:`luma_rag.memory.ivfpq`. The index
retrains when the tier has grown by ``retrain_growth`` or its quantization error has drifted,
in a background thread; the new index is swapped in atomically under the engine's write lock
after the changes made meanwhile are replayed onto it. Training is never attempted with fewer
points than it needs, so FAISS's "nx >= k" error cannot happen.

Per item it keeps ζ_i = ||x_i − x̂_i|| (the real PQ reconstruction error), and per inverted list
the largest residual norm R_l, which gives a sound bound on anything the search did not return
(see :meth:`WarmTier.search`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from luma_rag.memory.base import TierHits, bitmap_from_mask, empty_hits
from luma_rag.memory.ivf_search import FloorRaiser, RaiseGain, probe
from luma_rag.memory.ivfpq import (
    IndexState,
    Prepared,
    WarmTierConfig,
    centroids_of,
    encode_into,
    fit_state,
    flat_state,
    list_radii,
    prepare,
    probe_count,
    replay,
)

__all__ = ["WarmTier", "WarmTierConfig"]

logger = logging.getLogger(__name__)

_NEG = float("-inf")


class WarmTier:
    """The warm tier. Mutations happen under the engine's write lock."""

    name = "warm"

    def __init__(
        self,
        dim: int,
        config: WarmTierConfig | None = None,
        *,
        fetch: Callable[[np.ndarray], np.ndarray],
        write_lock: Callable[[], AbstractContextManager[None]],
        read_lock: Callable[[], AbstractContextManager[None]],
    ) -> None:
        """Args: dim: vector dimension. config: tier settings. fetch: keys (m,) int64 -> raw
        vectors (m, d) float32, used to (re)train. write_lock / read_lock: the engine's lock,
        taken by the background retrainer."""
        self.dim = dim
        self.config = config or WarmTierConfig()
        self._fetch = fetch
        self._write_lock = write_lock
        self._read_lock = read_lock
        self._state = flat_state(self.dim)
        self._present = np.zeros(0, dtype=bool)  # key -> in this tier
        self._zeta = np.zeros(0, dtype=np.float32)  # key -> quantization error
        self._zeta_hi = 0.0  # >= every live ζ (see zeta_max)
        self._count, self._added_since_train, self._zeta_since_train = 0, 0, 0.0
        self._log: list[tuple[str, np.ndarray]] | None = None  # changes during a retrain
        self._thread: threading.Thread | None = None
        self._retrain_error: BaseException | None = None
        self._raise = RaiseGain()  # whether raising the probe's floor has been paying off

    # -- bookkeeping ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def keys(self) -> np.ndarray:
        """int64 keys currently in the tier."""
        return np.flatnonzero(self._present).astype(np.int64)

    @property
    def train_keys(self) -> np.ndarray | None:
        """int64 keys the current index was trained from (None while flat)."""
        return self._state.train_keys

    @property
    def trained(self) -> bool:
        """Whether the tier is an IVF-PQ index (False: exact flat storage)."""
        return self._state.trained

    @property
    def code_bytes(self) -> int:
        """Bytes of one PQ code (4 * d when flat)."""
        idx = self._state.index
        return int(idx.code_size) if self._state.trained else 4 * self.dim

    def zeta_of(self, keys: np.ndarray) -> np.ndarray:
        """Quantization error of ``keys`` (0 for items stored exactly)."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.zeros(len(keys), dtype=np.float32)
        ok = keys < len(self._zeta)
        out[ok] = self._zeta[keys[ok]]
        return out

    def zeta_max(self) -> float:
        """An upper bound on ζ of every item in the tier (0 when exact).

        Kept up to date on add (O(1) per query); removals leave it (sound, possibly loose)
        until the next retrain, rebuild, restore or :meth:`tighten_radii` recomputes it.
        """
        if not self._state.trained or self._count == 0:
            return 0.0
        return self._zeta_hi

    def _refresh_zeta_hi(self) -> None:
        self._zeta_hi = float(self._zeta.max(initial=0.0))  # removed keys hold ζ = 0

    def _grow(self, hi: int) -> None:
        if hi > len(self._present):
            cap = max(hi, 2 * len(self._present), 1024)
            self._present = np.pad(self._present, (0, cap - len(self._present)))  # False
            self._zeta = np.pad(self._zeta, (0, cap - len(self._zeta)))  # 0.0

    # -- mutation --------------------------------------------------------------------------------
    def prepare(self, vectors: np.ndarray) -> Prepared | None:
        """:meth:`add`'s per-vector work on float32 (n, d) ``vectors``, ahead (no lock needed)."""
        return prepare(self._state, np.ascontiguousarray(vectors, dtype=np.float32))

    def add(self, keys: np.ndarray, vectors: np.ndarray, ready: Prepared | None = None) -> None:
        """Add (n,) new int64 keys with (n, d) float32 unit vectors (``ready``: :meth:`prepare`)."""
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        zeta = encode_into(self._state, keys, vectors, ready)
        self._grow(int(keys.max()) + 1)
        self._present[keys] = True
        self._zeta[keys] = zeta
        self._zeta_hi = max(self._zeta_hi, float(zeta.max(initial=0.0)))
        self._count += len(keys)
        self._added_since_train += len(keys)
        self._zeta_since_train += float(zeta.sum())
        if self._log is not None:
            self._log.append(("add", keys.copy()))
        self.train()

    def remove(self, keys: np.ndarray) -> None:
        """Remove keys (unknown keys are ignored)."""
        import faiss

        keys = np.unique(np.asarray(keys, dtype=np.int64))  # a repeated key counts once
        keys = keys[(keys < len(self._present))]
        keys = keys[self._present[keys]]
        if keys.size == 0:
            return
        self._state.index.remove_ids(faiss.IDSelectorBatch(keys))
        self._present[keys] = False
        self._zeta[keys] = 0.0
        self._count -= len(keys)
        if self._log is not None:
            self._log.append(("remove", keys.copy()))

    # -- training --------------------------------------------------------------------------------
    def _needs_training(self) -> bool:
        s, c = self._state, self.config
        if self._count < c.min_train:
            return False
        if not s.trained:
            return True
        if self._count >= c.retrain_growth * s.n_trained:
            return True
        if self._added_since_train >= max(256, s.n_trained // 4) and s.zeta_train_mean > 0:
            recent = self._zeta_since_train / self._added_since_train
            return recent > c.retrain_drift * s.zeta_train_mean
        return False

    def train(self, force: bool = False) -> bool:
        """Start a (re)training if the data calls for it (or ``force`` and the tier has enough
        points). Call under the write lock. Returns True when one started."""
        if self._thread is not None:
            return False
        if not (self._needs_training() or (force and self._count >= self.config.min_train)):
            return False
        if not self.config.background:
            self._retrain(self.keys())
            return True
        keys = self.keys()
        self._log = []
        self._thread = threading.Thread(
            target=self._retrain_bg, args=(keys,), daemon=True, name="luma-warm-retrain"
        )
        self._thread.start()
        return True

    def _retrain_bg(self, keys: np.ndarray) -> None:
        import faiss

        faiss.omp_set_num_threads(1)  # this thread only: leave the cores to the queries
        try:
            self._retrain(keys)
        except BaseException as e:  # reported by wait(); the old index keeps serving
            logger.exception("warm tier: background retrain failed; keeping the previous index")
            self._retrain_error = e
            with self._write_lock():
                self._log = None
        finally:
            self._thread = None

    def rebuild(self, keys: np.ndarray, train_keys: np.ndarray) -> None:
        """Deterministically rebuild the trained tier holding ``keys`` (under the write lock).

        Same training keys -> same quantizers -> same codes, ζ and lists as the index that was
        lost, so searches give the same results.
        """
        keys = np.unique(np.asarray(keys, dtype=np.int64))
        state = fit_state(
            self.dim, self.config, self._fetch, np.asarray(train_keys, dtype=np.int64)
        )
        self._present = np.zeros(0, dtype=bool)
        self._zeta = np.zeros(0, dtype=np.float32)
        self._grow(int(keys.max()) + 1 if keys.size else 0)
        for start in range(0, len(keys), 8192):
            chunk = keys[start : start + 8192]
            self._zeta[chunk] = encode_into(state, chunk, self._fetch(chunk))
        self._present[keys] = True
        self._state, self._count = state, len(keys)
        self._added_since_train, self._zeta_since_train = 0, 0.0
        self._refresh_zeta_hi()

    def tighten_radii(self) -> None:
        """Recompute each list's radius over its current members (removals only loosen it)."""
        s = self._state
        if s.trained:
            keys = self.keys()
            s.list_radius = list_radii(s, self._fetch(keys)) if keys.size else s.list_radius
        self._refresh_zeta_hi()

    def _retrain(self, keys: np.ndarray) -> None:
        """Train a new index on the raw vectors of ``keys``, replay changes, swap it in.

        Only the swap (and the changes made in the last moments) happen under the write lock:
        training, encoding and replaying the changes logged meanwhile run outside it.
        """
        state = fit_state(self.dim, self.config, self._fetch, keys)
        present = np.zeros(len(self._present), dtype=bool)
        new_zeta = np.zeros(len(self._zeta), dtype=np.float32)
        present[keys] = True
        new_zeta[keys] = encode_into(state, keys, self._fetch(keys))
        done = 0
        while True:  # replay outside the lock until the log is (almost) drained
            log = self._log or []
            pending = log[done:]
            if len(pending) <= 1:
                break
            present, new_zeta = replay(state, self._fetch, pending, present, new_zeta)
            done += len(pending)
        with self._write_lock():
            present, new_zeta = replay(
                state, self._fetch, (self._log or [])[done:], present, new_zeta
            )
            if len(present) < len(self._present):
                grow = len(self._present) - len(present)
                present = np.concatenate([present, np.zeros(grow, bool)])
                new_zeta = np.concatenate([new_zeta, np.zeros(grow, np.float32)])
            if not np.array_equal(present[: len(self._present)], self._present):
                raise RuntimeError("warm tier: replayed key set disagrees with the live tier")
            self._state, self._zeta, self._log = state, new_zeta, None
            self._added_since_train, self._zeta_since_train = 0, 0.0
            self._refresh_zeta_hi()

    def wait(self, timeout: float | None = None) -> None:
        """Block until a background retrain (if any) has finished."""
        t = self._thread
        if t is not None:
            t.join(timeout)

    @property
    def retraining(self) -> bool:
        """Whether a background retrain is running."""
        return self._thread is not None

    # -- search ------------------------------------------------------------------------------
    def depth(self, k: int) -> int:
        """Candidates to fetch for ``k`` exact hits: ``max(k, refine_depth)`` once trained."""
        return max(k, self.config.refine_depth) if self._state.trained else k

    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed: np.ndarray | None,
        floor: float = _NEG,
        raise_floor: FloorRaiser | None = None,
    ) -> TierHits:
        """Top ``k`` for a (d,) unit query, with a sound bound on what was not returned. Flat:
        exact, the best score left out bounds the rest. IVF-PQ: :func:`ivf_search.probe` (bound
        of every prefix: ``outside_after``; lists below ``floor`` — or the floor
        ``raise_floor`` sets — are not scanned)."""
        import faiss

        s = self._state
        if self._count == 0:
            return empty_hits()
        sel = None
        if allowed is not None:
            mask = np.zeros(len(self._present), dtype=bool)
            n = min(len(allowed), len(mask))
            mask[:n] = allowed[:n] & self._present[:n]
            if not mask.any():
                return empty_hits()
            bitmap = bitmap_from_mask(mask)
            sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
        kk = min(k, self._count)
        if not s.trained:
            params = faiss.SearchParameters(sel=sel) if sel is not None else None
            scores, keys = s.index.search(query[None, :], kk, params=params)
            ok = keys[0] >= 0
            keys_, scores_ = keys[0][ok], scores[0][ok].astype(np.float32)
            outside = float(scores_[-1]) if len(keys_) == kk and self._count > kk else _NEG
            return TierHits(keys_, scores_, np.zeros(len(keys_), np.float32), outside)
        gain = self._raise  # raise the floor only while it pays off (RaiseGain)
        up = raise_floor if gain.due() else None
        keys_, scores_, after = probe(s, query, kk, sel, self.zeta_max(), floor, up, gain)
        return TierHits(keys_, scores_, self._zeta[keys_], float(after[-1]), None, after)

    # -- persistence -----------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Serialized index, ζ of every key, list radii and centroids."""
        import faiss

        s = self._state
        keys = self.keys()
        arrays = {
            "index": faiss.serialize_index(s.index),
            "keys": keys,
            "zeta": self._zeta[keys],
            "centroids": s.centroids,
            "list_radius": s.list_radius,
            "train_keys": s.train_keys if s.train_keys is not None else np.zeros(0, np.int64),
        }
        header = {
            "kind": "ivfpq" if s.trained else "flat",
            "dim": self.dim,
            "n_trained": s.n_trained,
            "zeta_train_mean": s.zeta_train_mean,
            "nprobe": s.nprobe,
        }
        return arrays, header

    def restore(self, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
        """Load a verified snapshot (a trained index's centroids stay its own: no second copy)."""
        import faiss

        index = faiss.deserialize_index(arrays["index"])
        keys = arrays["keys"].astype(np.int64)
        if index.d != self.dim or index.ntotal != len(keys):
            raise ValueError("warm snapshot does not match its key list")
        trained = header["kind"] == "ivfpq"
        centroids = centroids_of(index) if trained else arrays["centroids"].astype(np.float32)
        if not np.array_equal(centroids, arrays["centroids"]):  # shapes included
            raise ValueError("warm snapshot centroids do not match its index")
        nprobe = int(header["nprobe"])
        if trained:  # the probe count follows this session's config (it changes no code)
            ivf = faiss.extract_index_ivf(index)
            ivf.nprobe = nprobe = probe_count(self.config, int(ivf.nlist))
        self._state = IndexState(
            index,
            trained,
            centroids,
            arrays["list_radius"].astype(np.float32),
            int(header["n_trained"]),
            float(header["zeta_train_mean"]),
            nprobe,
            arrays["train_keys"].astype(np.int64) if trained and "train_keys" in arrays else None,
        )
        self._present = np.zeros(0, dtype=bool)
        self._zeta = np.zeros(0, dtype=np.float32)
        self._grow(int(keys.max()) + 1 if keys.size else 0)
        self._present[keys] = True
        self._zeta[keys] = arrays["zeta"].astype(np.float32)
        self._count = len(keys)
        self._added_since_train, self._zeta_since_train = 0, 0.0
        self._refresh_zeta_hi()

    def nbytes(self) -> int:
        """Codes + ids (+ per-key ζ and presence) in RAM."""
        s = self._state
        per_item = self.code_bytes + 8
        fixed = s.centroids.nbytes + s.list_radius.nbytes
        if s.trained:  # PQ codebooks: m * 2**nbits centroids of d/m floats
            fixed += 4 * (1 << s.nbits()) * self.dim
        return self._count * per_item + fixed + self._present.nbytes + self._zeta.nbytes
