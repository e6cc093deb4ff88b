"""Streaming orthogonal Procrustes: the CLAP → CLIP map ``T`` and its drift (the maths only).

Persistence lives with the store (:mod:`luma_rag.store.bridge_file`); the state's validation in
:mod:`luma_rag.bridge.state`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from typing import Any

import numpy as np

from luma_rag._checks import is_int
from luma_rag.bridge.config import BridgeConfig
from luma_rag.bridge.fit import accumulate, fit, unit_rows
from luma_rag.bridge.state import BridgeState, Refresh, restore_state
from luma_rag.errors import InvalidInputError

__all__ = ["ProcrustesBridge"]

logger = logging.getLogger(__name__)


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
            save_bridge(bridge, "bridge.safetensors")  # luma_rag.store.bridge_file
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
        self._state = BridgeState(m=m, t=None, pairs_seen=0, history=())

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
        x = unit_rows(x_source, "x_source", self._config.source_dim, "source_dim (CLAP)")
        y = unit_rows(y_target, "y_target", self._config.target_dim, "target_dim (CLIP)")
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
                m = accumulate(m, x[start:stop], y[start:stop], cfg.forgetting)
                seen += stop - start
                since += stop - start
                if stop - start >= due:
                    t, eps = fit(m, t, cfg.inertia)
                    history.append(Refresh(len(history) + 1, seen, eps, time.time()))
                    epsilons.append(eps)
                    since = 0
                start = stop
            m.setflags(write=False)
            self._state = BridgeState(m=m, t=t, pairs_seen=seen, history=tuple(history))
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
            t, eps = fit(state.m, state.t, self._config.inertia)
            entry = Refresh(state.version + 1, state.pairs_seen, eps, time.time())
            self._state = BridgeState(state.m, t, state.pairs_seen, (*state.history, entry))
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
        x = unit_rows(x_source, "x_source", self._config.source_dim, "source_dim (CLAP)")
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
        if not is_int(version):
            raise InvalidInputError(f"version must be an int, got {type(version).__name__}")
        if state.version == 0:
            raise InvalidInputError(self._not_fitted_message(state))
        if not 1 <= version <= state.version:
            raise InvalidInputError(
                f"version {version} is out of range: this bridge has versions 1..{state.version}"
            )
        eps = math.fsum(r.epsilon for r in state.history[int(version) :])
        return self._renormalised(eps, state.history[int(version) - 1].min_norm)

    def _not_fitted_message(self, state: BridgeState) -> str:
        left = self._config.resolved_min_pairs - state.pairs_seen
        return (
            f"bridge not fitted: feed at least {max(left, 1)} more caption pairs with add_pairs "
            f"(the first map is fitted after {self._config.resolved_min_pairs} pairs; "
            f"{state.pairs_seen} so far), or call refresh() to force one"
        )

    # ------------------------------------------------------------------ state

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
        bridge._state = restore_state(config, state)
        return bridge


# ---------------------------------------------------------------------- helpers
