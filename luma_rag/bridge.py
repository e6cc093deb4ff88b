"""The CLAP → CLIP bridge: streaming orthogonal Procrustes with a recorded drift.

Audio lives in CLAP space, everything else in CLIP space. The bridge keeps the correlation
``M = Σ x_clapᵀ y_clip`` over co-occurring pairs (a caption through both text towers, or an
audio clip and its caption) and, every ``refresh_every`` pairs, replaces the map with the
orthogonal Procrustes solution ``T = U Vᵀ`` from the SVD ``M = U S Vᵀ``. ``T`` has shape
``(source_dim, target_dim)`` and maps a CLAP row vector into CLIP space: ``y ≈ x @ T``.

Each refresh records the drift ``ε = ‖T_new − T_prev‖₂`` (spectral norm). An item projected at
version ``v`` has moved by at most :meth:`ProcrustesBridge.drift_since` ``(v)`` since then — the
sum of the later ε, by the triangle inequality. That number feeds the Safe@k certificate.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> bridge = ProcrustesBridge(BridgeConfig(source_dim=8, target_dim=8, refresh_every=64))
    >>> q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    >>> x = rng.standard_normal((64, 8))
    >>> bridge.add_pairs(x, x @ q)  # 64 pairs: the first refresh
    [0.0]
    >>> bool(np.allclose(bridge.project(x[:2]), x[:2] @ q / np.linalg.norm(x[:2], axis=1)[:, None],
    ...                  atol=1e-5))
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

from luma_rag._config import ConfigBase, check
from luma_rag.errors import (
    DimensionMismatchError,
    InvalidInputError,
    LumaError,
    StoreCorruptedError,
)

__all__ = ["BridgeConfig", "ProcrustesBridge"]

logger = logging.getLogger(__name__)

_FORMAT = "luma-rag.bridge"
_FORMAT_VERSION = "1"
_ORTHO_TOL = 1e-6  # max |T Tᵀ − I| accepted when loading (fresh SVDs give ~1e-14)
_MAX_EPS = 2.0 + 1e-6  # ‖A − B‖₂ ≤ 2 for two semi-orthogonal matrices
_REQUIRED_KEYS = frozenset(
    {"M", "pairs_seen", "history_pairs_seen", "history_epsilon", "history_time"}
)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class BridgeConfig(ConfigBase):
    """Settings of a :class:`ProcrustesBridge`.

    Attributes:
        source_dim: Dimension of the source (CLAP) embeddings, e.g. 512.
        target_dim: Dimension of the target (CLIP) embeddings, e.g. 512 or 768; may differ
            from ``source_dim`` (``T`` is then rectangular).
        refresh_every: Pairs between two refreshes of ``T`` (the paper uses 512).
        forgetting: Per-pair decay ``λ`` in ``(0, 1]``: each new pair multiplies the old
            correlation by ``λ`` (``M ← λ M + xᵀ y``), so the memory is about ``1 / (1 − λ)``
            pairs. Applied per pair, not per call, so the result does not depend on how the
            stream is batched. ``1.0`` (default) keeps every pair forever.
        min_pairs: Pairs before the first ``T`` is fitted. ``None`` (default) means
            ``max(refresh_every, min(source_dim, target_dim))``: never before the regular
            cadence, and never from a correlation that cannot have full rank (with fewer pairs
            than ``min(source_dim, target_dim)`` part of ``T`` is arbitrary). After the first
            fit, refreshes follow every ``refresh_every`` pairs.
        inertia: Weight ``μ`` of the previous map in each refit, relative to ``‖M‖₂``: the
            refit maximises ``tr(Tᵀ (M + μ‖M‖₂ T_prev))``, i.e. it solves Procrustes with a
            proximal term ``‖T − T_prev‖_F²``. Where the pairs pin ``T`` down (directions with
            singular values of ``M`` well above ``μ‖M‖₂``) this is plain Procrustes; in the
            directions no pair visits, plain Procrustes returns an arbitrary rotation that
            changes at every refit, so ε (a worst case over all unit queries) saturates at 2
            whatever the data do. With inertia those directions keep their previous map and ε
            measures how the map really moved. ``0`` is plain Procrustes at every refit.
    """

    source_dim: int
    target_dim: int
    refresh_every: int = 512
    forgetting: float = 1.0
    min_pairs: int | None = None
    inertia: float = 0.01

    def __post_init__(self) -> None:
        for name in ("source_dim", "target_dim", "refresh_every"):
            value = getattr(self, name)
            check(
                _is_int(value) and value >= 1,
                f"BridgeConfig.{name} must be a positive int, got {value!r}",
            )
        check(
            self.min_pairs is None or (_is_int(self.min_pairs) and self.min_pairs >= 1),
            f"BridgeConfig.min_pairs must be None (automatic) or a positive int, "
            f"got {self.min_pairs!r}",
        )
        f = self.forgetting
        check(
            isinstance(f, int | float) and not isinstance(f, bool) and 0.0 < f <= 1.0,
            f"BridgeConfig.forgetting must be in (0, 1] (1.0 = no forgetting, "
            f"0.999 ≈ a memory of 1000 pairs), got {f!r}",
        )
        object.__setattr__(self, "forgetting", float(f))
        mu = self.inertia
        check(
            isinstance(mu, int | float) and not isinstance(mu, bool) and 0.0 <= mu <= 1.0,
            f"BridgeConfig.inertia must be in [0, 1] (0 = plain Procrustes), got {mu!r}",
        )
        object.__setattr__(self, "inertia", float(mu))

    @property
    def resolved_min_pairs(self) -> int:
        """Pairs before the first automatic refresh (``min_pairs`` with its default applied)."""
        if self.min_pairs is not None:
            return self.min_pairs
        return max(self.refresh_every, min(self.source_dim, self.target_dim))


class _Refresh(NamedTuple):
    version: int
    pairs_seen: int
    epsilon: float
    time: float
    # Smallest ‖x T‖ of a stored item projected with this version before renormalisation
    # (1.0 until one is; only below 1 when source_dim > target_dim).
    min_norm: float = 1.0


@dataclass(frozen=True)
class _State:
    """Immutable snapshot; the bridge swaps it whole so readers never see a half update."""

    m: np.ndarray  # (source_dim, target_dim) float64, read-only
    t: np.ndarray | None  # (source_dim, target_dim) float64, read-only; None before the fit
    pairs_seen: int
    history: tuple[_Refresh, ...]

    @property
    def version(self) -> int:
        return len(self.history)

    @property
    def since_refresh(self) -> int:
        return self.pairs_seen - (self.history[-1].pairs_seen if self.history else 0)


class ProcrustesBridge:
    """Streaming orthogonal Procrustes map from CLAP space to CLIP space.

    Thread safety: writers (:meth:`add_pairs`, :meth:`refresh`) serialise on a lock and
    publish a new immutable snapshot; readers (:meth:`project`, the properties) read one
    snapshot and never block on a refresh.

    Setup:
        >>> cfg = BridgeConfig(source_dim=512, target_dim=768)  # CLAP 512-d → CLIP ViT-L 768-d

    Use:
        .. code-block:: python

            bridge = ProcrustesBridge(cfg)
            bridge.add_pairs(clap_text(captions), clip_text(captions))  # (n, 512), (n, 768)
            y, version = bridge.project_with_version(clap_audio(clips))  # (n, 768) float32
            ...
            eps_i = bridge.drift_since(version)  # bound on how far y has moved since
            bridge.save("bridge.safetensors")
    """

    def __init__(self, config: BridgeConfig) -> None:
        """Create an empty (unfitted) bridge.

        Args:
            config: Dimensions, cadence and forgetting.
        """
        if not isinstance(config, BridgeConfig):
            raise InvalidInputError(
                f"ProcrustesBridge expects a BridgeConfig, got {type(config).__name__}"
            )
        self._config = config
        self._lock = threading.Lock()
        m = np.zeros((config.source_dim, config.target_dim), dtype=np.float64)
        m.setflags(write=False)
        self._state = _State(m=m, t=None, pairs_seen=0, history=())

    # ------------------------------------------------------------------ properties

    @property
    def config(self) -> BridgeConfig:
        """The bridge's configuration."""
        return self._config

    @property
    def fitted(self) -> bool:
        """Whether a map ``T`` exists (at least one refresh happened)."""
        return self._state.t is not None

    @property
    def version(self) -> int:
        """Number of refreshes so far; ``T`` of version ``v`` is the one after refresh ``v``."""
        return self._state.version

    @property
    def epsilon(self) -> float:
        """ε of the last refresh; ``0.0`` after the first one, ``nan`` before any."""
        history = self._state.history
        return history[-1].epsilon if history else math.nan

    @property
    def pairs_seen(self) -> int:
        """Number of pairs fed with :meth:`add_pairs` (not decayed by forgetting)."""
        return self._state.pairs_seen

    @property
    def transform(self) -> np.ndarray | None:
        """Current map ``T``, shape ``(source_dim, target_dim)``, float64, read-only; or None."""
        return self._state.t

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict per refresh: ``version``, ``pairs_seen``, ``epsilon``, ``time``, ``initial``.

        ``time`` is Unix time in seconds. ``initial`` marks version 1, whose ``epsilon`` is
        ``0.0`` because there is no earlier map to compare with (nothing can have been
        projected before it).
        """
        return [{**r._asdict(), "initial": r.version == 1} for r in self._state.history]

    def __repr__(self) -> str:
        c, s = self._config, self._state
        return (
            f"ProcrustesBridge(source_dim={c.source_dim}, target_dim={c.target_dim}, "
            f"version={s.version}, pairs_seen={s.pairs_seen})"
        )

    # ------------------------------------------------------------------ fitting

    def add_pairs(self, x_source: np.ndarray, y_target: np.ndarray) -> list[float]:
        """Feed co-occurring pairs; refresh ``T`` whenever the cadence says so.

        Rows are L2-normalised internally, then ``M`` accumulates ``xᵀ y`` (with forgetting).
        The batch is processed in chunks cut at refresh points, so the cadence is exact however
        the stream is batched: the first refresh after ``config.resolved_min_pairs`` pairs,
        then one every ``refresh_every`` pairs since the last refresh (forced ones included).

        Args:
            x_source: Source (CLAP) embeddings, shape ``(n, source_dim)``, real dtype.
            y_target: Target (CLIP) embeddings of the same pairs, shape ``(n, target_dim)``.

        Returns:
            The ε of every refresh this call triggered, in order (empty if none).

        Raises:
            DimensionMismatchError: A second dimension differs from the config.
            InvalidInputError: Not 2-D, empty, different row counts, NaN/inf, an all-zero row,
                or pairs that cancel out to a zero correlation. Nothing changes on error.
        """
        x = _unit_rows(x_source, "x_source", self._config.source_dim, "source_dim (CLAP)")
        y = _unit_rows(y_target, "y_target", self._config.target_dim, "target_dim (CLIP)")
        if x.ndim != 2 or y.ndim != 2:
            raise InvalidInputError(
                f"add_pairs expects 2-D arrays (n, dim); got x_source with shape "
                f"{x.shape} and y_target with shape {y.shape}"
            )
        if x.shape[0] != y.shape[0]:
            raise InvalidInputError(
                f"x_source has {x.shape[0]} rows but y_target has {y.shape[0]}; "
                "pass one target row per source row"
            )
        cfg = self._config
        with self._lock:
            state = self._state
            m, t, seen = state.m, state.t, state.pairs_seen
            history = list(state.history)
            since = state.since_refresh
            epsilons: list[float] = []
            start, n = 0, x.shape[0]
            while start < n:
                due = cfg.refresh_every - since if t is not None else cfg.resolved_min_pairs - seen
                stop = min(n, start + max(1, due))
                m = _accumulate(m, x[start:stop], y[start:stop], cfg.forgetting)
                seen += stop - start
                since += stop - start
                if stop - start >= due:
                    t, eps = _fit(m, t, cfg.inertia)
                    history.append(_Refresh(len(history) + 1, seen, eps, time.time()))
                    epsilons.append(eps)
                    since = 0
                start = stop
            m.setflags(write=False)
            self._state = _State(m=m, t=t, pairs_seen=seen, history=tuple(history))
        for r in history[len(history) - len(epsilons) :]:
            logger.debug("bridge refresh v%d at %d pairs: eps=%.3g", *r[:3])
        return epsilons

    def refresh(self) -> float:
        """Refit ``T`` from the current ``M`` now, off the regular cadence.

        The cadence restarts from here: the next automatic refresh comes ``refresh_every``
        pairs later. A forced refresh before ``resolved_min_pairs`` pairs is allowed (it logs a
        warning when ``M`` cannot have full rank yet).

        Returns:
            ε = ``‖T_new − T_prev‖₂``; ``0.0`` for the first refresh (no previous map).

        Raises:
            InvalidInputError: No pair has been fed yet, or ``M`` is zero.
        """
        with self._lock:
            state = self._state
            if state.pairs_seen == 0:
                raise InvalidInputError(
                    "cannot refresh the bridge: no pairs yet; feed caption pairs with add_pairs"
                )
            rank_needed = min(self._config.source_dim, self._config.target_dim)
            if state.pairs_seen < rank_needed:
                logger.warning(
                    "forced bridge refresh from %d pairs, fewer than min(source_dim, "
                    "target_dim)=%d: part of T is arbitrary",
                    state.pairs_seen,
                    rank_needed,
                )
            t, eps = _fit(state.m, state.t, self._config.inertia)
            entry = _Refresh(state.version + 1, state.pairs_seen, eps, time.time())
            self._state = _State(state.m, t, state.pairs_seen, (*state.history, entry))
        logger.debug("bridge refresh v%d (forced) at %d pairs: eps=%.3g", *entry[:3])
        return eps

    # ------------------------------------------------------------------ use

    def project(self, x_source: np.ndarray) -> np.ndarray:
        """Map source (CLAP) vectors into target (CLIP) space.

        Args:
            x_source: Shape ``(n, source_dim)`` or ``(source_dim,)``, real dtype, no zero rows.

        Returns:
            float32, L2-normalised rows, shape ``(n, target_dim)`` or ``(target_dim,)``.

        Raises:
            InvalidInputError: The bridge is not fitted yet, or bad input (see
                :meth:`add_pairs`), or a row falls in the null space of a ``T`` that drops
                dimensions (``source_dim > target_dim``).
            DimensionMismatchError: The last dimension is not ``source_dim``.
        """
        return self._project(x_source)[0]

    def project_query(self, x_source: np.ndarray) -> tuple[np.ndarray, float]:
        """Project one query and bound how far the last refresh can have moved it.

        ``ε_q`` is the last refresh's ε, corrected for renormalisation: when
        ``source_dim > target_dim`` the projection ``x T`` has norm ``n_x <= 1`` and is
        rescaled to unit length, which magnifies a change of ``T`` by up to ``2 / n_x``
        (``‖a/‖a‖ − b/‖b‖‖ <= 2‖a − b‖ / ‖a‖``), capped at 2.

        Args:
            x_source: Shape ``(source_dim,)`` or ``(1, source_dim)``.

        Returns:
            ``(y, eps_q)``: ``y`` float32 unit, shape as :meth:`project`; ``eps_q`` ``>= 0``.
        """
        y, _, norms = self._project(x_source)
        eps = self.epsilon
        return y, self._renormalised(eps if math.isfinite(eps) else 0.0, float(norms.min()))

    def project_with_version(self, x_source: np.ndarray) -> tuple[np.ndarray, int]:
        """Like :meth:`project`, for vectors that will be *stored*: also returns the version.

        The smallest pre-normalisation norm ``‖x T‖`` of the batch is recorded with the
        version, so :meth:`drift_since` can bound the drift of the renormalised items.

        Args:
            x_source: Shape ``(n, source_dim)`` or ``(source_dim,)``.

        Returns:
            ``(y, version)``: ``y`` float32 L2-normalised, shape ``(n, target_dim)`` or
            ``(target_dim,)``; ``version`` the refresh count of the map that produced it.
        """
        y, version, norms = self._project(x_source)
        low = float(norms.min())
        if self._config.source_dim > self._config.target_dim and norms.size:
            with self._lock:
                state = self._state
                entry = state.history[version - 1]
                if low < entry.min_norm:
                    history = list(state.history)
                    history[version - 1] = entry._replace(min_norm=low)
                    self._state = dataclasses.replace(state, history=tuple(history))
        return y, version

    def _project(self, x_source: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
        """``(unit y float32, version, pre-normalisation norms (n,) float64)``."""
        state = self._state  # one snapshot: T and version agree
        if state.t is None:
            raise InvalidInputError(self._not_fitted_message(state))
        x = _unit_rows(x_source, "x_source", self._config.source_dim, "source_dim (CLAP)")
        y = x @ state.t
        norms = np.linalg.norm(y, axis=-1, keepdims=True)
        lost = np.flatnonzero(norms.reshape(-1) < 1e-9)
        if lost.size:
            raise InvalidInputError(
                f"row {int(lost[0])} of x_source maps to ~zero in target space (it lies in "
                "the null space of T, which drops source dimensions); it has no direction there"
            )
        return (y / norms).astype(np.float32), state.version, norms.reshape(-1)

    def _renormalised(self, eps: float, norm: float) -> float:
        """Drift of a renormalised projection whose map moved by ``eps`` (spectral norm)."""
        if eps <= 0.0:
            return 0.0
        if self._config.source_dim <= self._config.target_dim:
            return eps  # T Tᵀ = I: ‖x T‖ = ‖x‖ = 1, nothing is rescaled
        return min(2.0, 2.0 * eps / norm) if norm > 0 else 2.0

    def drift_since(self, version: int) -> float:
        """Upper bound on how far a stored item projected with version ``v`` has moved.

        ``‖T_now − T_v‖₂ <= Σ ε`` over later refreshes; when ``source_dim > target_dim`` the
        stored vector was renormalised from a projection of norm ``>= min_norm`` (recorded by
        :meth:`project_with_version`), so the bound is ``min(2, 2 Σε / min_norm)``. An item
        projected with the map of version ``v`` has ``ε_i = drift_since(v)``.

        Args:
            version: A version in ``[1, self.version]``.

        Returns:
            ``Σ ε`` over refreshes ``version + 1 … self.version``; ``0.0`` for the current one.

        Raises:
            InvalidInputError: ``version`` not an int in range, or the bridge is not fitted.
        """
        state = self._state
        if not _is_int(version):
            raise InvalidInputError(f"version must be an int, got {type(version).__name__}")
        if state.version == 0:
            raise InvalidInputError(self._not_fitted_message(state))
        if not 1 <= version <= state.version:
            raise InvalidInputError(
                f"version {version} is out of range: this bridge has versions 1..{state.version}"
            )
        eps = math.fsum(r.epsilon for r in state.history[int(version) :])
        return self._renormalised(eps, state.history[int(version) - 1].min_norm)

    def _not_fitted_message(self, state: _State) -> str:
        left = self._config.resolved_min_pairs - state.pairs_seen
        return (
            f"bridge not fitted: feed at least {max(left, 1)} more caption pairs with add_pairs "
            f"(the first map is fitted after {self._config.resolved_min_pairs} pairs; "
            f"{state.pairs_seen} so far), or call refresh() to force one"
        )

    # ------------------------------------------------------------------ persistence

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays that fully describe the bridge (config aside), for safetensors.

        Returns:
            ``M`` (s, t) float64; ``T`` (s, t) float64 only once fitted; ``pairs_seen`` (1,)
            int64; ``history_pairs_seen`` (v,) int64; ``history_epsilon`` (v,) float64;
            ``history_time`` (v,) float64. All are fresh copies.
        """
        state = self._state
        history = state.history
        out = {
            "M": np.array(state.m, dtype=np.float64),
            "pairs_seen": np.array([state.pairs_seen], dtype=np.int64),
            "history_pairs_seen": np.array([r.pairs_seen for r in history], dtype=np.int64),
            "history_epsilon": np.array([r.epsilon for r in history], dtype=np.float64),
            "history_time": np.array([r.time for r in history], dtype=np.float64),
            "history_min_norm": np.array([r.min_norm for r in history], dtype=np.float64),
        }
        if state.t is not None:
            out["T"] = np.array(state.t, dtype=np.float64)
        return out

    @classmethod
    def from_state_dict(
        cls, config: BridgeConfig, state: dict[str, np.ndarray]
    ) -> ProcrustesBridge:
        """Rebuild a bridge from :meth:`state_dict` output, checking it thoroughly.

        Args:
            config: The configuration the state was written with (dimensions must agree).
            state: Arrays as returned by :meth:`state_dict`.

        Returns:
            The restored bridge.

        Raises:
            StoreCorruptedError: Missing or unknown keys, wrong shapes or dtypes, non-finite
                values, a ``T`` that is not semi-orthogonal, or counters that disagree.
        """
        bridge = cls(config)
        bridge._state = _restore(config, state)
        return bridge

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the bridge atomically to a safetensors file (config JSON in its metadata).

        The file is written to a temporary sibling, fsynced, then moved over ``path`` with
        ``os.replace``, so a crash leaves either the old file or the new one.

        Args:
            path: Destination file, conventionally ``*.safetensors``.

        Raises:
            OSError: The file cannot be written.
        """
        tensors = self.state_dict()
        metadata = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "config": self._config.to_json(),
            "sha256": _digest(tensors, self._config.to_json()),
        }
        _atomic_write(Path(os.fspath(path)), safetensors.numpy.save(tensors, metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ProcrustesBridge:
        """Read a bridge written by :meth:`save`.

        Args:
            path: File written by :meth:`save`.

        Returns:
            The restored bridge, with the config stored in the file.

        Raises:
            InvalidInputError: No readable file at ``path``.
            StoreCorruptedError: The file is truncated, corrupt, fails its checksum, or holds
                an inconsistent state.
        """
        p = Path(os.fspath(path))
        try:
            data = p.read_bytes()
        except OSError as e:
            raise InvalidInputError(f"cannot read bridge file {p}: {e}") from e
        tensors, metadata = _decode(data, p)
        if metadata.get("format") != _FORMAT or metadata.get("format_version") != _FORMAT_VERSION:
            raise StoreCorruptedError(
                f"{p} is not a LUMA-RAG bridge file of format version {_FORMAT_VERSION} "
                f"(format={metadata.get('format')!r}, "
                f"format_version={metadata.get('format_version')!r})"
            )
        try:
            config = BridgeConfig.from_json(str(metadata.get("config")))
        except (LumaError, TypeError) as e:  # TypeError: a required field is missing
            raise StoreCorruptedError(f"bridge file {p} has an invalid config: {e}") from e
        if metadata.get("sha256") != _digest(tensors, str(metadata.get("config"))):
            raise StoreCorruptedError(f"bridge file {p} fails its checksum; restore it from backup")
        return cls.from_state_dict(config, tensors)


# ---------------------------------------------------------------------- helpers


def _unit_rows(a: Any, name: str, dim: int, dim_label: str) -> np.ndarray:
    """Validate a (n, dim) or (dim,) real array and return its rows L2-normalised, float64."""
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:
        raise InvalidInputError(f"{name} is not a numeric array: {e}") from e
    if arr.dtype.kind not in "fiu":
        raise InvalidInputError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise InvalidInputError(f"{name} must be (n, {dim}) or ({dim},), got shape {arr.shape}")
    if arr.shape[-1] != dim:
        raise DimensionMismatchError(
            f"{name} has {arr.shape[-1]}-d vectors but the bridge's {dim_label} is {dim}; "
            f"pass embeddings of the model the bridge was configured for"
        )
    rows = arr.reshape(-1, dim).astype(np.float64)
    if rows.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty; pass at least one row")
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        raise InvalidInputError(f"row {int(np.argmin(finite))} of {name} holds NaN or inf")
    scale = np.abs(rows).max(axis=1, keepdims=True)  # rescale first: no overflow in the norm
    if not scale.all():
        zero = int(np.argmin(scale.reshape(-1)))
        raise InvalidInputError(
            f"row {zero} of {name} is all zeros; a zero vector has no direction"
        )
    rows /= scale
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.reshape(arr.shape)


def _accumulate(m: np.ndarray, x: np.ndarray, y: np.ndarray, forgetting: float) -> np.ndarray:
    """Return ``λ^n M + Σ_i λ^(n-1-i) x_iᵀ y_i`` as a new array (M is never mutated)."""
    if forgetting == 1.0:
        return m + x.T @ y
    n = x.shape[0]
    weights = forgetting ** np.arange(n - 1, -1, -1, dtype=np.float64)
    return forgetting**n * m + (x * weights[:, None]).T @ y


def _fit(
    m: np.ndarray, t_prev: np.ndarray | None, inertia: float = 0.0
) -> tuple[np.ndarray, float]:
    """Procrustes solution ``U Vᵀ`` of ``M`` (+ ``inertia``·‖M‖₂·``t_prev``) and its spectral
    distance to ``t_prev``."""
    if not np.any(m):
        raise InvalidInputError(
            "the accumulated pair correlation M is zero (the pairs cancel out); feed pairs "
            "whose source and target agree"
        )
    try:
        target = m
        if t_prev is not None and inertia > 0:
            target = m + inertia * float(np.linalg.norm(m, 2)) * t_prev
        u, _, vt = np.linalg.svd(target, full_matrices=False)
        t = u @ vt
        eps = 0.0 if t_prev is None else float(np.linalg.norm(t - t_prev, 2))
    except np.linalg.LinAlgError as e:
        raise LumaError(f"SVD of the bridge correlation did not converge: {e}") from e
    t.setflags(write=False)
    return t, eps


def _semi_orthogonality_error(t: np.ndarray) -> float:
    gram = t @ t.T if t.shape[0] <= t.shape[1] else t.T @ t
    return float(np.abs(gram - np.eye(gram.shape[0])).max())


def _restore(config: BridgeConfig, state: dict[str, np.ndarray]) -> _State:
    """Validate a state dict against ``config`` and build the snapshot it describes."""

    def bad(message: str) -> StoreCorruptedError:
        return StoreCorruptedError(f"bridge state is inconsistent: {message}")

    if not isinstance(state, dict):
        raise bad(f"expected a dict of arrays, got {type(state).__name__}")
    keys = set(state)
    missing, unknown = _REQUIRED_KEYS - keys, keys - _REQUIRED_KEYS - {"T", "history_min_norm"}
    if missing or unknown:
        raise bad(f"missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    arrays: dict[str, np.ndarray] = {}
    for key, value in state.items():
        kind = "iu" if key in ("pairs_seen", "history_pairs_seen") else "fiu"
        if not isinstance(value, np.ndarray) or value.dtype.kind not in kind:
            raise bad(f"{key} must be a numeric array of kind {kind!r}")
        if not np.isfinite(value).all():
            raise bad(f"{key} holds NaN or inf")
        arrays[key] = np.array(value, dtype=np.int64 if kind == "iu" else np.float64)

    shape = (config.source_dim, config.target_dim)
    m, t = arrays["M"], arrays.get("T")
    hist_pairs, hist_eps = arrays["history_pairs_seen"], arrays["history_epsilon"]
    hist_time = arrays["history_time"]
    # Stores written before the norms were recorded: unknown, so as small as possible (sound).
    unknown_norm = 0.0 if config.source_dim > config.target_dim else 1.0
    hist_norm = arrays.get("history_min_norm", np.full(hist_eps.shape, unknown_norm))
    if hist_norm.shape != hist_eps.shape or np.any(hist_norm < 0) or np.any(hist_norm > 1 + 1e-6):
        raise bad("history_min_norm must match the history and lie in [0, 1]")
    if m.shape != shape or (t is not None and t.shape != shape):
        shapes = f"M {m.shape}" + ("" if t is None else f", T {t.shape}")
        raise bad(f"{shapes}; the config expects {shape}")
    if arrays["pairs_seen"].shape != (1,):
        raise bad(f"pairs_seen must have shape (1,), got {arrays['pairs_seen'].shape}")
    pairs_seen = int(arrays["pairs_seen"][0])
    v = hist_eps.shape[0]
    if not hist_pairs.shape == hist_eps.shape == hist_time.shape == (v,):
        raise bad("the history arrays must be 1-D and of equal length")
    if (t is not None) != (v > 0):
        raise bad(f"T is {'present' if t is not None else 'absent'} with {v} refreshes")
    if pairs_seen < 0 or (pairs_seen == 0 and m.any()):
        raise bad(f"pairs_seen={pairs_seen} disagrees with M")
    if v and (hist_pairs[0] < 1 or np.any(np.diff(hist_pairs) < 0) or hist_pairs[-1] > pairs_seen):
        raise bad("history pairs_seen must be >= 1, non-decreasing and <= pairs_seen")
    if np.any(hist_eps < 0) or np.any(hist_eps > _MAX_EPS) or (v and hist_eps[0] != 0.0):
        raise bad("history epsilons must lie in [0, 2], the first one 0")
    if t is not None and _semi_orthogonality_error(t) > _ORTHO_TOL:
        raise bad("T is not semi-orthogonal")
    for a in (m, t):
        if a is not None:
            a.setflags(write=False)
    history = tuple(
        _Refresh(i + 1, int(p), float(e), float(s), float(nm))
        for i, (p, e, s, nm) in enumerate(
            zip(hist_pairs, hist_eps, hist_time, hist_norm, strict=True)
        )
    )
    return _State(m=m, t=t, pairs_seen=pairs_seen, history=history)


def _digest(tensors: dict[str, np.ndarray], config_json: str) -> str:
    """SHA-256 over the config JSON, then names, dtypes, shapes and little-endian bytes."""
    h = hashlib.sha256(config_json.encode())
    for name in sorted(tensors):
        a = tensors[name]
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _decode(data: bytes, path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse safetensors bytes into tensors and metadata; StoreCorruptedError on any damage."""
    try:
        tensors = safetensors.numpy.load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        metadata = header.get("__metadata__") or {}
    except (SafetensorError, ValueError, TypeError, KeyError, AttributeError) as e:
        # ValueError covers json and unicode decoding; all mean a damaged file.
        raise StoreCorruptedError(
            f"bridge file {path} is truncated or not a safetensors file ({e}); "
            "restore it from backup or rebuild the bridge from its pairs"
        ) from e
    if not isinstance(metadata, dict):
        raise StoreCorruptedError(f"bridge file {path} has malformed metadata")
    return tensors, metadata


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp sibling, fsync it, ``os.replace`` it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if os.name == "posix":  # make the rename itself durable
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
