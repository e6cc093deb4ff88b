"""Probing one trained IVF-PQ generation for a query, and bounding what the probe did not return.

The lists to scan are chosen here from one product of the query with the centroids, and FAISS
scans exactly those (``search_preassigned``); the same product gives every list's bound
⟨q, c_l⟩ + R_l (R_l: the largest residual norm in list l), so the probed set and the bound
cannot disagree and the coarse quantizer runs once per query, not twice.

Bounds (every allowed item of the tier that the caller does not rerank stays below them):
- a list that was not probed: ⟨q, c_l⟩ + R_l;
- a probed list, 8-bit codes (exact float ADC): an item's true score is at most its ADC score
  + ζ_i, so below position c of the ADC-sorted result, ADC_c + ζ_max bounds everything;
- a probed list, 4-bit fast-scan (quantized lookup tables, not exact ADC): ⟨q, c_l⟩ + R_l too.

A caller that already knows a floor under the k-th best score (e.g. the hot tier's k-th score
minus its slack) passes it: a list whose bound ⟨q, c_l⟩ + R_l (+ a float32 rounding allowance)
is below the floor cannot hold a top-k item and is not scanned. Its bound joins the unprobed
ones, so the bounds above stay sound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from luma_rag.memory.ivfpq import IndexState

__all__ = ["RAISE_FROM_LISTS", "RAISE_ITEMS", "FloorRaiser", "RaiseGain", "prefix_bounds", "probe"]

_NEG = float("-inf")
RAISE_FROM_LISTS = 8  # raise the floor (see probe) only when more lists than this reach it
RAISE_ITEMS = 32  # items of the best list handed to the floor raiser
RAISE_MIN_GAIN, RAISE_RETRY = 0.1, 16  # see RaiseGain
FloorRaiser = Callable[[np.ndarray], float]  # keys (m,) -> a floor for the lists to scan


class RaiseGain:
    """Whether raising the floor (:func:`probe`'s ``raise_floor``) has been paying off: a
    moving average of the share of lists it skipped. Below :data:`RAISE_MIN_GAIN` the raise is
    tried on one query in :data:`RAISE_RETRY` only (it costs ~32 exact rows). A speed choice
    only: lists are skipped, or not, with the same sound bounds. Shared by concurrent queries
    without a lock (a lost update only delays the average)."""

    def __init__(self) -> None:
        self.share = 1.0
        self.calls = 0

    def due(self) -> bool:
        """Whether the next query should try to raise its floor."""
        self.calls += 1
        return self.share >= RAISE_MIN_GAIN or self.calls % RAISE_RETRY == 0

    def record(self, skipped: int, of: int) -> None:
        """A raise skipped ``skipped`` of the ``of`` lists that reached the previous floor."""
        self.share = 0.9 * self.share + 0.1 * (skipped / max(of, 1))


def probe(
    state: IndexState,
    query: np.ndarray,
    k: int,
    sel: Any,
    zeta_max: float,
    floor: float = _NEG,
    raise_floor: FloorRaiser | None = None,
    gain: RaiseGain | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``k`` of a trained generation for a (d,) float32 unit query.

    Args:
        state: the trained generation. k: results wanted (>= 1). sel: a FAISS ID selector or
            None. zeta_max: an upper bound on every item's ζ (for 8-bit codes). floor: a lower
            bound on the exact k-th best score of the caller's whole candidate set: lists
            whose every item scores below it are skipped (``-inf``: probe ``nprobe`` lists).
        raise_floor: without a selector, when more than :data:`RAISE_FROM_LISTS` lists reach
            ``floor``, up to :data:`RAISE_ITEMS` items of the list with the best ⟨q, c_l⟩ are
            handed to it; it returns a new floor (it must keep the items it scored exactly among
            its candidates, so the floor stays a lower bound on the caller's k-th score), and
            the lists below that one are not scanned either. ``gain``: told the share skipped.

    Returns:
        (keys int64 (m,), code scores float32 (m,) descending, bounds float64 (m + 1,)) where
        ``bounds[c]`` bounds the true score of any allowed item not among the first ``c``.
    """
    cq = state.centroids @ query  # (nlist,) ⟨q, c_l⟩: the probe choice and the bound
    nprobe = min(state.nprobe, len(cq))
    if nprobe < len(cq):
        probed = np.argpartition(-cq, nprobe - 1)[:nprobe].astype(np.int64, copy=False)
    else:
        probed = np.arange(len(cq), dtype=np.int64)
    ub = cq + state.list_radius  # -inf for empty lists
    # float32 rounding of ⟨q, c_l⟩, of R_l and of the exact scores: d·2⁻²⁴ each, and more
    allowance = (len(query) + 16) * 2.0**-22
    if floor > _NEG:
        probed = probed[ub[probed] + allowance >= floor]
    if raise_floor is not None and sel is None and len(probed) > RAISE_FROM_LISTS:
        best = int(probed[np.argmax(cq[probed])])
        floor = max(floor, raise_floor(_list_ids(state, best, RAISE_ITEMS)))
        before, probed = len(probed), probed[ub[probed] + allowance >= floor]
        if gain is not None:
            gain.record(before - len(probed), before)
    keys, scores = _scan(state, query, k, sel, cq, probed)
    bounds = prefix_bounds(state.nbits(), ub, probed, scores, len(keys) == k, zeta_max)
    return keys, scores, bounds


def _list_ids(state: IndexState, list_no: int, most: int) -> np.ndarray:
    """int64 copy of the first ``most`` ids stored in inverted list ``list_no``."""
    import faiss

    invlists = state.ivf().invlists
    n = min(int(invlists.list_size(list_no)), most)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ids = faiss.rev_swig_ptr(invlists.get_ids(list_no), n)
    return np.array(ids, dtype=np.int64)


def _scan(
    state: IndexState, query: np.ndarray, k: int, sel: Any, cq: np.ndarray, lists: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` (keys int64, code scores float32, descending) of the int64 ``lists``."""
    import faiss

    if not lists.size:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    dis = np.ascontiguousarray(cq[lists], dtype=np.float32)
    scores = np.empty(k, dtype=np.float32)
    keys = np.empty(k, dtype=np.int64)
    if sel is None:
        params = state.probe_params(len(lists))
    else:
        params = faiss.SearchParametersIVF(sel=sel, nprobe=len(lists))
    # The C++ call: the Python wrapper of search_preassigned refuses search parameters.
    state.ivf().search_preassigned_c(
        1,
        faiss.swig_ptr(np.ascontiguousarray(query, dtype=np.float32)),
        k,
        faiss.swig_ptr(np.ascontiguousarray(lists, dtype=np.int64)),
        faiss.swig_ptr(dis),
        faiss.swig_ptr(scores),
        faiss.swig_ptr(keys),
        False,
        params,
    )
    ok = keys >= 0
    return keys[ok], scores[ok]


def prefix_bounds(
    nbits: int,
    ub: np.ndarray,
    probed: np.ndarray,
    scores: np.ndarray,
    full: bool,
    zeta_max: float,
) -> np.ndarray:
    """float64 (m + 1,): entry c bounds every allowed item not among the first c returned.

    Args:
        nbits: bits per PQ code of the generation. ub: float32 (nlist,) ⟨q, c_l⟩ + R_l.
        probed: int64 lists scanned. scores: float32 (m,) returned ADC scores, descending.
        full: whether the search returned all it was asked for (else every allowed item of
            the probed lists was returned). zeta_max: bound on every item's ζ.
    """
    rest = ub.copy()  # the lists not scanned keep their bound (all -inf: none is left)
    rest[probed] = _NEG
    unprobed = float(rest.max()) if len(rest) else _NEG
    m = len(scores)
    if nbits == 8:  # exact float ADC: true ≤ ADC_i + ζ_i ≤ ADC_c + ζ_max at or after c
        tail = scores.astype(np.float64) + zeta_max
        last = float(tail[-1]) if full and m else _NEG
        return np.maximum(np.append(tail, last), unprobed)
    scanned = float(ub[probed].max()) if probed.size else _NEG
    out = np.full(m + 1, max(unprobed, scanned))
    if not full:
        out[m] = unprobed  # every allowed item of the probed lists was returned
    return out
