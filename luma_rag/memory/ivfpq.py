"""One generation of the warm tier's index: its settings, building it, training it, encoding.

Sizing follows the data: ``nlist = min(4·sqrt(n), n / points_per_list)`` and ``m`` sub-quantizers
of about 4 dimensions each with 4-bit fast-scan codes by default (``m = d/4``: PQ128x4fs, 64 bytes
at d=512 — the size of PQ64 with 8 bits, but scanned with SIMD lookup tables and trained with 16
instead of 256 codewords per sub-quantizer, ~20x faster to train). Fast-scan scores are
approximate, so the tier returns a deep candidate list (``refine_depth``) that the memory
reranks exactly from the raw vectors; 8-bit codes remain a setting. Training is
never attempted with fewer points than it needs, so FAISS's "nx >= k" error cannot happen.
:class:`~luma_rag.memory.warm.WarmTier` decides when to (re)train and swaps generations.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from luma_rag._config import ConfigBase, check
from luma_rag.memory.ivf_add import add_codes

__all__ = [
    "PQ_MIN_TRAIN",
    "IndexState",
    "Prepared",
    "WarmTierConfig",
    "centroids_of",
    "encode_into",
    "fit_state",
    "flat_state",
    "ivf_of",
    "list_radii",
    "nlist_for",
    "pq_m",
    "prepare",
    "probe_count",
    "reconstruction_error",
    "replay",
    "resolved_nbits",
    "trained_state",
]

logger = logging.getLogger(__name__)

_NEG = float("-inf")
PQ_MIN_TRAIN = 256  # k-means of 8-bit PQ needs at least 2**8 training points ("nx >= k")


@dataclass(frozen=True)
class WarmTierConfig(ConfigBase):
    """Settings of the warm tier.

    Attributes:
        min_train: below this many items the tier stays exact (flat); PQ with 8 bits needs
            at least 256 training points, so values under 256 are refused.
        points_per_list: training points per IVF list (FAISS wants ~39).
        lists_per_sqrt: ``nlist ≈ lists_per_sqrt · sqrt(n)``.
        dims_per_subquantizer: PQ ``m = d / dims_per_subquantizer`` (rounded to a divisor of d).
        nbits: bits per PQ code (4: fast-scan, approximate scores, only per-list completeness
            bounds; 8: exact float ADC, whose scores also bound the scanned lists). ``None``
            (default): 8 below ``d = 128``, where a 4-bit code is too coarse to keep a
            self-query inside the refine depth and 8-bit training is cheap, else 4
            (:func:`resolved_nbits`).
        nprobe_fraction: share of lists probed per query (at least ``min_nprobe``).
        refine_depth: candidates a trained tier returns per query for the exact rerank (at
            least the k asked for): codes rank coarsely, the raw vectors decide.
        refine_sigmas: the memory reranks the code-ranked candidates in doubling prefixes (from
            the fetch depth up to ``refine_depth``) and stops once the next candidate's code
            score, corrected by the mean code error seen on the reranked ones plus
            ``refine_sigmas`` standard deviations, falls below the k-th exact score so far. A
            recall heuristic, not a bound: what is not reranked stays under the tier's
            completeness bound. ``None``: always rerank all ``refine_depth``.
        retrain_growth: retrain when the tier has grown by this factor since the last training.
        retrain_drift: retrain when the mean ζ of items added since training exceeds the
            training-time mean by this factor.
        background: retrain in a background thread (False: inline, deterministic).
    """

    min_train: int = 2048
    points_per_list: int = 39
    lists_per_sqrt: float = 4.0
    dims_per_subquantizer: int = 4
    nbits: int | None = None
    nprobe_fraction: float = 0.1
    min_nprobe: int = 16
    refine_depth: int = 512
    refine_sigmas: float | None = 3.0
    retrain_growth: float = 2.0
    retrain_drift: float = 1.5
    background: bool = True

    def __post_init__(self) -> None:
        check(
            self.min_train >= 256,
            "WarmTierConfig.min_train must be >= 256 (PQ training needs 256 points)",
        )
        check(self.points_per_list >= 1, "WarmTierConfig.points_per_list must be >= 1")
        check(self.lists_per_sqrt > 0, "WarmTierConfig.lists_per_sqrt must be > 0")
        check(self.dims_per_subquantizer >= 1, "WarmTierConfig.dims_per_subquantizer must be >= 1")
        check(self.nbits in (None, 4, 8), "WarmTierConfig.nbits must be 4 (fast-scan), 8 or None")
        check(0 < self.nprobe_fraction <= 1, "WarmTierConfig.nprobe_fraction must be in (0, 1]")
        check(self.min_nprobe >= 1, "WarmTierConfig.min_nprobe must be >= 1")
        check(self.refine_depth >= 1, "WarmTierConfig.refine_depth must be >= 1")
        check(
            self.refine_sigmas is None
            or (isinstance(self.refine_sigmas, int | float) and 0 <= self.refine_sigmas < 1e6),
            "WarmTierConfig.refine_sigmas must be None or a number in [0, 1e6)",
        )
        check(self.retrain_growth > 1, "WarmTierConfig.retrain_growth must be > 1")
        check(self.retrain_drift > 1, "WarmTierConfig.retrain_drift must be > 1")


FOUR_BIT_FROM_DIM = 128


def resolved_nbits(config: WarmTierConfig, dim: int) -> int:
    """The PQ code width a new index gets: ``config.nbits``, or by ``dim`` when it is None."""
    if config.nbits is not None:
        return config.nbits
    return 4 if dim >= FOUR_BIT_FROM_DIM else 8


def pq_m(dim: int, dims_per_sub: int, nbits: int) -> int:
    """Largest divisor of ``dim`` not above ``dim / dims_per_sub`` (even for fast-scan)."""
    target = max(1, dim // dims_per_sub)
    for m in range(target, 0, -1):
        if dim % m == 0 and (nbits == 8 or m % 2 == 0):
            return m
    return 1 if nbits == 8 else 2


def ivf_of(index: Any) -> Any:
    """The IVF layer of a trained index (for its coarse quantizer)."""
    import faiss

    return faiss.extract_index_ivf(index)


@dataclass
class IndexState:
    """One generation of the warm index; replaced whole on retrain."""

    index: Any
    trained: bool
    centroids: np.ndarray  # (nlist, d) float32; empty when flat
    list_radius: np.ndarray  # (nlist,) float32 max residual norm per list; -inf when empty
    n_trained: int
    zeta_train_mean: float
    nprobe: int
    train_keys: np.ndarray | None = None  # int64 keys it was trained from (None: flat)
    _quantizer: Any = field(default=None, repr=False)
    _ivf: Any = field(default=None, repr=False)
    _nbits: int | None = field(default=None, repr=False)
    _params: Any = field(default=None, repr=False)

    def nbits(self) -> int:
        """Bits per PQ code of the trained index itself (not the config: a snapshot made
        under other settings keeps its own codes, and the bounds must follow the codes)."""
        if self._nbits is None:
            self._nbits = int(self.ivf().pq.nbits)
        return self._nbits

    def ivf(self) -> Any:
        """The trained index's IVF layer, downcast (looked up once, then kept)."""
        if self._ivf is None:
            import faiss

            self._ivf = faiss.downcast_index(ivf_of(self.index))
        return self._ivf

    def probe_params(self, nprobe: int) -> Any:
        """Unfiltered IVF search parameters for ``nprobe`` lists (kept for the generation's own
        ``nprobe``; built per call for another count, so concurrent queries never share one
        whose count another thread changed)."""
        params = self._params
        if params is None or params.nprobe != nprobe:
            import faiss

            params = faiss.SearchParametersIVF(nprobe=nprobe)
            if nprobe == self.nprobe:
                self._params = params
        return params

    def quantizer(self) -> Any:
        """The coarse quantizer of a trained index (looked up once, then kept)."""
        if self._quantizer is None:
            self._quantizer = ivf_of(self.index).quantizer
        return self._quantizer


def flat_state(dim: int) -> IndexState:
    """An exact (flat) inner-product index with ids: the tier before it can train."""
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    return IndexState(
        index, False, np.zeros((0, dim), np.float32), np.zeros(0, np.float32), 0, 0.0, 1
    )


def nlist_for(config: WarmTierConfig, n: int) -> int:
    """IVF list count for ``n`` training points: ``min(c·√n, n / points_per_list)``."""
    c = config
    return max(1, min(int(c.lists_per_sqrt * math.sqrt(n)), n // c.points_per_list))


def probe_count(config: WarmTierConfig, nlist: int) -> int:
    """Lists probed per query: ``nprobe_fraction · nlist``, at least ``min_nprobe``, <= nlist."""
    return min(nlist, max(config.min_nprobe, math.ceil(config.nprobe_fraction * nlist)))


def trained_state(dim: int, config: WarmTierConfig, vectors: np.ndarray) -> IndexState:
    """Train an IVF-PQ index on (n, d) float32 ``vectors`` (empty: nothing added yet)."""
    import faiss

    n = len(vectors)
    nlist = nlist_for(config, n)
    nbits = resolved_nbits(config, dim)
    m = pq_m(dim, config.dims_per_subquantizer, nbits)
    spec = f"IVF{nlist},PQ{m}" + ("x4fs" if nbits == 4 else "")
    index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.cp.min_points_per_centroid = 1  # sizes above already respect points_per_list
    if hasattr(ivf, "do_polysemous_training"):
        ivf.do_polysemous_training = False  # index_factory turns it on; costs ~25x the training
    pq = getattr(ivf, "pq", None)
    if pq is not None:
        pq.cp.min_points_per_centroid = 1  # 256 codewords from >= 256 points: no warning spam
    index.train(vectors)
    centroids = centroids_of(index)
    nprobe = probe_count(config, nlist)
    ivf.nprobe = nprobe
    logger.info("warm tier: trained %s on %d vectors (nprobe=%d)", spec, n, nprobe)
    return IndexState(index, True, centroids, np.full(nlist, _NEG, np.float32), n, 0.0, nprobe)


class _Pinned:
    """FAISS-owned memory exposed to numpy: the array's base, holding the owning index alive."""

    def __init__(self, view: np.ndarray, owner: Any) -> None:
        self.__array_interface__ = view.__array_interface__
        self._owner = owner


def centroids_of(index: Any) -> np.ndarray:
    """(nlist, d) float32 read-only view of a trained index's coarse centroids, in the flat
    quantizer's own storage (not a second copy: 4·d·nlist bytes, ~13 B/item at 300k items and
    d = 512). The view keeps ``index`` alive; nothing adds to a trained quantizer, so its
    storage never moves. A quantizer of another kind gives a copy."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    quantizer = faiss.downcast_index(ivf.quantizer)
    nlist, dim = int(ivf.nlist), int(ivf.d)
    if not isinstance(quantizer, faiss.IndexFlat) or int(quantizer.ntotal) != nlist:
        return np.asarray(quantizer.reconstruct_n(0, nlist), dtype=np.float32)
    view = faiss.rev_swig_ptr(quantizer.get_xb(), nlist * dim).reshape(nlist, dim)
    out = np.asarray(_Pinned(view, index))
    out.flags.writeable = False
    return out


def reconstruction_error(state: IndexState, vectors: np.ndarray) -> np.ndarray:
    """ζ = ‖x − decode(encode(x))‖ per (n, d) float32 vector under a trained ``state``."""
    return _pq_error(state, vectors, state.quantizer().assign(vectors, 1).ravel())[0]


def list_radii(state: IndexState, vectors: np.ndarray) -> np.ndarray:
    """Largest residual norm per IVF list over (n, d) float32 member ``vectors``; -inf if none."""
    out = np.full(len(state.centroids), _NEG, np.float32)
    if len(vectors):
        lists = ivf_of(state.index).quantizer.assign(vectors, 1).ravel()
        resid = np.linalg.norm(vectors - state.centroids[lists], axis=1).astype(np.float32)
        np.maximum.at(out, lists, resid)
    return out


def _pq_error(
    state: IndexState, vectors: np.ndarray, lists: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(ζ = ||x − x̂|| per row, the uint8 PQ codes), decoding with the PQ itself (not
    ``sa_decode``, which crashes on a deserialized fast-scan index): x̂ = c_list + PQ(x − c_list)
    for residual encoding. The codes are the ones ``add_with_ids`` would compute."""
    import faiss

    ivf = faiss.downcast_index(ivf_of(state.index))
    base = state.centroids[lists] if ivf.by_residual else np.zeros_like(vectors)
    resid = np.ascontiguousarray(vectors - base, dtype=np.float32)
    codes = ivf.pq.compute_codes(resid)
    recon = base + ivf.pq.decode(codes)
    return np.linalg.norm(vectors - recon, axis=1).astype(np.float32), codes


@dataclass(frozen=True)
class Prepared:
    """What :func:`encode_into` computes per vector besides the index insert, done ahead of it
    (e.g. outside a write lock) for one generation and one batch (:func:`prepare`)."""

    state: IndexState
    vectors: np.ndarray  # float32 (n, d): the very batch (identity is checked)
    lists: np.ndarray  # int64 (n,) the IVF list of each vector
    zeta: np.ndarray  # float32 (n,) PQ reconstruction error
    resid: np.ndarray  # float32 (n,) residual norm to the list centroid
    codes: np.ndarray  # uint8 (n, code_size) PQ codes, added as they are (no second encoding)


def prepare(state: IndexState, vectors: np.ndarray) -> Prepared | None:
    """List, ζ and residual norm of each (n, d) float32 vector (None while flat). Reads the
    generation only, so it may run beside queries; pass it to :func:`encode_into` with the
    same array."""
    if not state.trained or not len(vectors):
        return None
    # The lists FAISS itself puts them in (same function, same batch), not a numpy argmax
    # that can break near-ties differently and leave an item outside its list's radius.
    lists = state.quantizer().assign(vectors, 1).ravel()
    zeta, codes = _pq_error(state, vectors, lists)
    resid = np.linalg.norm(vectors - state.centroids[lists], axis=1).astype(np.float32)
    return Prepared(state, vectors, lists, zeta, resid, codes)


def encode_into(
    state: IndexState, keys: np.ndarray, vectors: np.ndarray, ready: Prepared | None = None
) -> np.ndarray:
    """Add to ``state``'s index; update list radii; return ζ per vector. ``ready``: the
    :func:`prepare` d values, used when they are for this generation and this very batch (else
    computed here). A trained index gets the prepared codes themselves (:func:`add_codes`, the
    same bytes as ``add_with_ids``), so no vector is assigned or encoded twice."""
    if not state.trained:
        state.index.add_with_ids(vectors, keys)
        return np.zeros(len(keys), dtype=np.float32)
    if ready is None or ready.state is not state or ready.vectors is not vectors:
        ready = prepare(state, vectors)
    if ready is None:
        return np.zeros(len(keys), dtype=np.float32)
    if not add_codes(state.index, keys, ready.lists, ready.codes):
        state.index.add_with_ids(vectors, keys)
    np.maximum.at(state.list_radius, ready.lists, ready.resid)
    return ready.zeta


def fit_state(
    dim: int,
    config: WarmTierConfig,
    fetch: Callable[[np.ndarray], np.ndarray],
    train_keys: np.ndarray,
) -> IndexState:
    """A trained, empty generation: a pure function of the raw vectors of ``train_keys``."""
    vectors = fetch(train_keys)
    # Train on 90% and take the drift baseline from the held-out 10%: ζ of the training
    # points themselves is optimistic, and new items would look "drifted" at once. The
    # held-out share never takes the training set below what PQ needs ("nx >= k").
    rng = np.random.default_rng(len(train_keys))
    n_hold = min(len(train_keys) // 10, len(train_keys) - PQ_MIN_TRAIN)
    holdout = np.zeros(len(train_keys), dtype=bool)
    if n_hold > 0:
        holdout[rng.choice(len(train_keys), n_hold, replace=False)] = True
    state = trained_state(dim, config, vectors[~holdout])
    zeta = reconstruction_error(state, vectors)
    base = zeta[holdout] if holdout.any() else zeta
    state.zeta_train_mean = float(base.mean()) if len(base) else 0.0
    state.train_keys = np.asarray(train_keys, dtype=np.int64).copy()
    return state


def replay(
    state: IndexState,
    fetch: Callable[[np.ndarray], np.ndarray],
    log: list[tuple[str, np.ndarray]],
    present: np.ndarray,
    zeta: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply logged adds / removes to a new generation; returns (present, ζ) grown to fit."""
    for op, ks in log:
        hi = int(ks.max()) + 1 if ks.size else 0
        if hi > len(present):
            cap = max(hi, 2 * len(present))
            present = np.concatenate([present, np.zeros(cap - len(present), bool)])
            zeta = np.concatenate([zeta, np.zeros(cap - len(zeta), np.float32)])
        if op == "add":
            ks = ks[~present[ks]]
            zeta[ks] = encode_into(state, ks, fetch(ks))
            present[ks] = True
        else:
            ks = ks[present[ks]]
            if ks.size:
                import faiss

                state.index.remove_ids(faiss.IDSelectorBatch(ks))
            present[ks] = False
            zeta[ks] = 0.0
    return present, zeta
