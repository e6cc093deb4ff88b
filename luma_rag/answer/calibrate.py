"""Calibrate the gate's radius ρ on held-out queries, so that its ANSWERs retrieve the right item.

Safe@1 says the top item stays first under every perturbation within ρ; it says nothing about
whether that item is the one the user meant. The store's ρ is measured on paraphrases of full
captions, and the gate's real queries (partial referents such as "a small circle on the left")
land farther from their items than that. This module picks ρ for the gate's own query
distribution, risk-control style (Learn-then-Test, Angelopoulos et al. 2021):

1. For every calibration query (text plus the ids that are a right top-1), the **critical
   radius** ρ*_q = sup {ρ : Safe@1 at ρ}: Safe@1 only gets harder as ρ grows (every bound
   grows with ρ), so the query is certified at ρ exactly when ρ < ρ*_q. The top-1 itself does
   not depend on ρ.
2. For a candidate ρ, the *certified* queries are those with ρ*_q > ρ, and the *risk* is the
   share of them whose top-1 is wrong. We want the smallest ρ with risk ≤ α.
3. Finite-sample correction: at a candidate ρ the hypothesis "risk > α" is rejected when the
   binomial p-value ``P(Bin(n, α) <= errors)`` is small; the answer is the smallest rejected
   candidate. Candidates are a fixed grid (``grid_step`` up to ``max_rho``). Two ways to
   control the chance of any false rejection at δ:

   * ``"bonferroni"`` (default): every tested candidate at level δ / m;
   * ``"fixed_sequence"``: each at level δ, from the largest ρ down, stopping at the first
     candidate that is not rejected. No multiplicity cost, but one failure among the few
     queries certified at a large ρ ends the search, so it is often powerless here.

   Candidates that certify fewer than ``min_certified`` queries are not tested (they could
   not be rejected anyway); that count depends on the radii only, not on the labels.

With probability about ≥ 1 − δ over the calibration draw, the chosen ρ keeps the wrong-top-1
share among Safe@1 queries ≤ α on queries from the same distribution (the binomial test is
conditional on the calibration radii; see ``README``). ``delta=None`` drops the correction
and uses the empirical share.

Example:
    >>> cfg = RadiusCalibrationConfig(alpha=0.1, delta=None, min_certified=1, grid_step=0.01)
    >>> cal = calibrate_radius([0.5, 0.4, 0.3, 0.05], [True, True, True, False], cfg)
    >>> cal.rho, cal.n_certified, cal.n_errors
    (0.05, 3, 0)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from luma_rag._checks import is_real
from luma_rag._config import ConfigBase, check
from luma_rag.answer.gate import GateConfig
from luma_rag.errors import InvalidInputError
from luma_rag.results import QueryResult

if TYPE_CHECKING:
    from luma_rag.engine import Luma

__all__ = [
    "GateCalibration",
    "RadiusCalibrationConfig",
    "binomial_cdf",
    "calibrate_gate_radius",
    "calibrate_radius",
    "critical_radius",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RadiusCalibrationConfig(ConfigBase):
    """Settings of the radius calibration.

    Attributes:
        alpha: Target risk: the share of Safe@1 queries whose top-1 is wrong; in ``(0, 1)``.
        delta: Allowed probability that the calibration misses the target (binomial test),
            in ``(0, 1)``; ``None`` uses the empirical share (no finite-sample correction).
        min_certified: Smallest number of certified calibration queries a candidate ρ must
            have to be tested; ``>= 1``. ``None`` (default): the smallest count at which the
            test can pass at all, ``ceil(log δ / log(1 − α))`` (22 for α = δ = 0.1), or
            ``ceil(1 / α)`` with ``delta=None``.
        tol: Absolute precision of each critical radius (bisection); ``> 0``.
        max_rho: Largest radius searched and tested; a query still Safe@1 there gets
            ρ* = +inf; ``> 0``.
        grid_step: Spacing of the candidate radii ``0, grid_step, …, max_rho``; ``> 0``.
        method: ``"bonferroni"`` or ``"fixed_sequence"`` (module docstring).

    Example:
        >>> RadiusCalibrationConfig.from_json(RadiusCalibrationConfig().to_json())
        RadiusCalibrationConfig(alpha=0.1, delta=0.1, min_certified=None, tol=0.0001, \
max_rho=1.0, grid_step=0.005, method='bonferroni')
    """

    alpha: float = 0.1
    delta: float | None = 0.1
    min_certified: int | None = None
    tol: float = 1e-4
    max_rho: float = 1.0
    grid_step: float = 0.005
    method: Literal["bonferroni", "fixed_sequence"] = "bonferroni"

    def __post_init__(self) -> None:
        check(
            is_real(self.alpha) and 0 < self.alpha < 1,
            f"RadiusCalibrationConfig.alpha must be in (0, 1), got {self.alpha!r}",
        )
        check(
            self.delta is None or (is_real(self.delta) and 0 < self.delta < 1),
            f"RadiusCalibrationConfig.delta must be None or in (0, 1), got {self.delta!r}",
        )
        check(
            self.min_certified is None
            or (
                isinstance(self.min_certified, int)
                and not isinstance(self.min_certified, bool)
                and self.min_certified >= 1
            ),
            f"RadiusCalibrationConfig.min_certified must be None or an int >= 1, "
            f"got {self.min_certified!r}",
        )
        check(
            is_real(self.tol) and math.isfinite(self.tol) and self.tol > 0,
            f"RadiusCalibrationConfig.tol must be a finite number > 0, got {self.tol!r}",
        )
        check(
            is_real(self.max_rho) and math.isfinite(self.max_rho) and self.max_rho > 0,
            f"RadiusCalibrationConfig.max_rho must be a finite number > 0, got {self.max_rho!r}",
        )
        check(
            is_real(self.grid_step)
            and math.isfinite(self.grid_step)
            and 0 < self.grid_step <= self.max_rho,
            f"RadiusCalibrationConfig.grid_step must be in (0, max_rho], got {self.grid_step!r}",
        )
        check(
            self.method in ("bonferroni", "fixed_sequence"),
            f"RadiusCalibrationConfig.method must be 'bonferroni' or 'fixed_sequence', "
            f"got {self.method!r}",
        )


@dataclass(frozen=True)
class GateCalibration:
    """The calibrated radius and the calibration numbers behind it.

    Attributes:
        rho: The chosen radius: the smallest ρ whose Safe@1 queries meet the target (when
            ``feasible``), else the largest critical radius, at which no calibration query is
            certified (the gate then practically never ANSWERs).
        feasible: Whether some ρ met the target.
        alpha, delta: The target and the confidence used.
        n_queries: Calibration queries. n_certified / n_errors: Safe@1 queries at ``rho`` and
            how many of them had a wrong top-1.
        risk: ``n_errors / n_certified`` (NaN when nothing is certified).
        p_value: The binomial p-value of "risk > alpha" at ``rho`` (NaN with ``delta=None``).
    """

    rho: float
    feasible: bool
    alpha: float
    delta: float | None
    n_queries: int
    n_certified: int
    n_errors: int
    risk: float
    p_value: float

    def gate_config(self, base: GateConfig | None = None) -> GateConfig:
        """``base`` (default :class:`GateConfig`) with this calibration's ρ."""
        cfg = base if base is not None else GateConfig()
        return GateConfig(k=cfg.k, k_max=cfg.k_max, max_options=cfg.max_options, rho=self.rho)

    def to_dict(self) -> dict[str, float | int | bool | None]:
        """JSON-friendly dict; NaN and ±inf become ``None``."""
        out: dict[str, float | int | bool | None] = {}
        for key, value in self.__dict__.items():
            out[key] = None if isinstance(value, float) and not math.isfinite(value) else value
        return out


def binomial_cdf(k: int, n: int, p: float) -> float:
    """``P(Bin(n, p) <= k)``, summed in log space (exact to float precision).

    Raises:
        InvalidInputError: ``n < 0``, or ``p`` not in ``[0, 1]``.
    """
    if n < 0 or not (is_real(p) and 0.0 <= p <= 1.0):
        raise InvalidInputError(f"binomial_cdf needs n >= 0 and 0 <= p <= 1, got n={n}, p={p}")
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p == 0.0:
        return 1.0
    if p == 1.0:
        return 0.0
    lp, lq = math.log(p), math.log1p(-p)
    lnf = math.lgamma(n + 1)
    terms = [lnf - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(k + 1)]  # fmt: skip
    top = max(terms)
    return float(min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms)))


def _min_testable(cfg: RadiusCalibrationConfig) -> int:
    """Fewest certified queries with which the target can be met at all (zero errors)."""
    if cfg.delta is None:
        return math.ceil(1.0 / cfg.alpha)
    return max(1, math.ceil(math.log(cfg.delta) / math.log1p(-cfg.alpha)))


def critical_radius(
    safe_at: Callable[[float], bool], *, tol: float = 1e-4, max_rho: float = 4.0
) -> float:
    """The largest radius at which a query is still Safe@1, by bisection.

    Args:
        safe_at: Whether the query is Safe@1 at radius ρ; must be monotone (True below some
            ρ*, False above), which holds for the engine's certificate.
        tol: Absolute precision of the answer, ``> 0``.
        max_rho: Largest radius tried.

    Returns:
        ρ* (a radius at which the query is certified, within ``tol`` of the boundary); ``0.0``
        when it is not Safe@1 even at ρ = 0; ``+inf`` when it is Safe@1 at ``max_rho``.
    """
    if not safe_at(0.0):
        return 0.0
    if safe_at(max_rho):
        return math.inf
    lo, hi = 0.0, max_rho
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if safe_at(mid):
            lo = mid
        else:
            hi = mid
    return lo


def calibrate_radius(
    critical_radii: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    config: RadiusCalibrationConfig | None = None,
) -> GateCalibration:
    """Choose the smallest ρ whose Safe@1 queries have a wrong top-1 at most ``alpha`` of the time.

    A query is certified at ρ when ``critical_radii[q] > ρ``. Candidates are the grid
    ``0, grid_step, …, max_rho`` (module docstring).

    Args:
        critical_radii: ρ*_q per calibration query (``>= 0``; ``+inf`` allowed).
        correct: Whether each query's top-1 is right.
        config: Target and correction (default :class:`RadiusCalibrationConfig`).

    Returns:
        The :class:`GateCalibration`.

    Raises:
        InvalidInputError: empty input, lengths that differ, NaN or negative radii.
    """
    cfg = config if config is not None else RadiusCalibrationConfig()
    try:
        radii = np.asarray(critical_radii, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"critical_radii must be numbers ({e})") from e
    ok = np.asarray(correct)
    if radii.ndim != 1 or radii.size == 0:
        raise InvalidInputError("critical_radii must be a non-empty 1-D sequence")
    if ok.shape != radii.shape:
        raise InvalidInputError(
            f"correct must have one flag per query: {ok.shape} vs {radii.shape}"
        )
    if ok.dtype != np.bool_:
        raise InvalidInputError(f"correct must hold booleans, got dtype {ok.dtype}")
    if np.any(np.isnan(radii)) or np.any(radii < 0):
        raise InvalidInputError("critical_radii must be >= 0 (use +inf for always-safe)")

    min_certified = cfg.min_certified if cfg.min_certified is not None else _min_testable(cfg)
    steps = math.floor(cfg.max_rho / cfg.grid_step + 1e-9)
    candidates = np.round(np.arange(steps + 1) * cfg.grid_step, 12)[::-1]

    def stats(rho: float) -> tuple[int, int, float]:
        cert = radii > rho
        n, err = int(cert.sum()), int((cert & ~ok).sum())
        if cfg.delta is None:
            return n, err, math.nan
        p = binomial_cdf(err, n, cfg.alpha) if n else 1.0
        return n, err, p

    def meets(n: int, err: int, p: float, level: float | None) -> bool:
        if level is None:
            return n > 0 and err <= cfg.alpha * n
        return p <= level

    tested = [(rho, *stats(rho)) for rho in candidates.tolist()]
    tested = [t for t in tested if t[1] >= min_certified]  # radii only, not labels
    level = cfg.delta
    if level is not None and cfg.method == "bonferroni" and tested:
        level /= len(tested)
    chosen: tuple[float, int, int, float] | None = None
    for rho, n, err, p in tested:  # largest ρ first
        if meets(n, err, p, level):
            chosen = (rho, n, err, p)
        elif cfg.method == "fixed_sequence":
            break
    feasible = chosen is not None
    if chosen is None:
        finite = radii[np.isfinite(radii)]
        rho = float(finite.max()) if finite.size else 0.0
        n, err, p = stats(rho)
        chosen = (rho, n, err, p)
        logger.warning(
            "no radius meets risk <= %.3g on %d calibration queries; falling back to the "
            "largest critical radius rho=%.4g, which certifies %d of them",
            cfg.alpha,
            radii.size,
            rho,
            n,
        )
    rho, n, err, p = chosen
    result = GateCalibration(
        rho=float(rho),
        feasible=feasible,
        alpha=float(cfg.alpha),
        delta=None if cfg.delta is None else float(cfg.delta),
        n_queries=int(radii.size),
        n_certified=n,
        n_errors=err,
        risk=err / n if n else math.nan,
        p_value=p,
    )
    logger.info("gate calibration: %s", result)
    return result


def calibrate_gate_radius(
    luma: Luma,
    queries: Sequence[tuple[str, Collection[str]]],
    config: RadiusCalibrationConfig | None = None,
    *,
    k: int = 2,
) -> tuple[GateCalibration, list[float]]:
    """Calibrate the gate's ρ alone on labelled text queries against an open store.

    Radius only, top-1 labels: the gate's full calibration — ρ, relevance floor and
    verification, against the answers' risk — is :func:`luma_rag.risk_control.calibrate_gate`
    (this function was called ``calibrate_gate`` too, until that one landed).

    Each query is encoded once (``luma.encoder``) and searched at the radii the bisection
    asks for; its top-1 is right when its id is among the query's right ids. Use queries and
    items disjoint from anything the calibrated gate is evaluated on.

    Args:
        luma: An open store with a text encoder.
        queries: ``(text, ids of the items that are a right top-1)`` per query.
        config: Target and correction.
        k: Hits fetched per search (Safe@1 does not depend on it).

    Returns:
        ``(calibration, critical radius per query)``.

    Raises:
        InvalidInputError: no queries, or a store without an encoder.
    """
    cfg = config if config is not None else RadiusCalibrationConfig()
    if not queries:
        raise InvalidInputError("calibrate_gate_radius needs at least one labelled query")
    encoder = luma.encoder
    if encoder is None:
        raise InvalidInputError("calibrate_gate_radius needs a store with an encoder attached")
    radii: list[float] = []
    correct: list[bool] = []
    for text, right in queries:
        vector = np.asarray(encoder.encode_text([text])[0])  # as Luma.query embeds it
        first = luma.search(vector, k, rho=0.0)
        correct.append(bool(first.hits) and first.hits[0].id in right)

        def safe_at(rho: float, v: np.ndarray = vector) -> bool:
            result: QueryResult = luma.search(v, k, rho=rho)
            return bool(result.telemetry.safe1)

        radii.append(critical_radius(safe_at, tol=cfg.tol, max_rho=cfg.max_rho))
    return calibrate_radius(radii, np.asarray(correct, dtype=bool), cfg), radii
