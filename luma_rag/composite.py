"""Composite queries: one query from several inputs, by embedding arithmetic (MMRAG).

"This image, but red" is ``q = normalize(1.0·e(image) + 0.5·e("red"))``; audio plus text, or
"this image minus 'blue' plus 'red'" (a negative weight), are the same sum. Each part is
embedded by the store's encoders (audio crosses the CLAP→CLIP bridge), the sum is normalised,
and the engine searches with it — so the result is the engine's normal
:class:`~luma_rag.results.QueryResult`, with a Safe@k certificate whose query radius is
combined soundly from the parts' radii.

**The radius of a composite query.** Let ``u_1 … u_n`` be the parts' unit embeddings,
``w_i`` real weights, ``s = Σ w_i u_i`` (non-zero) and ``q = s/‖s‖``. Suppose every part is
replaced by a meaning-preserving variant whose unit embedding ``u'_i`` lies within ``ρ_i`` of
``u_i`` (``‖u'_i − u_i‖ ≤ ρ_i``; for a part that crossed the bridge, ``ρ_i`` includes the
bridge's drift ε, exactly as ``r = ρ + ε_q`` for a plain audio query). Then::

    ‖q' − q‖ ≤ r(x) = 2·sin(arcsin(x)/2)   with  x = δ/‖s‖,  δ = Σ |w_i|·ρ_i,   when x < 1,
    ‖q' − q‖ ≤ 2                                                                when x ≥ 1.

*Proof.* ``s' − s = Σ w_i (u'_i − u_i)``, so ``‖s' − s‖ ≤ Σ |w_i| ρ_i = δ`` by the triangle
inequality: ``s'`` lies in the closed ball ``B(s, δ)``. If ``δ < ‖s‖`` the ball does not contain
the origin, so ``s' ≠ 0`` and ``q'`` is defined; the angle θ between ``s`` and any point of the
ball is at most the half-angle under which the ball is seen from the origin, ``arcsin(δ/‖s‖)``
(the tangent from the origin meets the sphere of radius δ at a right angle). Two unit vectors at
angle θ are ``2·sin(θ/2)`` apart, and that is increasing in θ ∈ [0, π/2], hence
``‖q' − q‖ ≤ 2·sin(arcsin(x)/2)``. If ``δ ≥ ‖s‖``, ``s'`` may vanish or point anywhere, and the
only bound is the diameter of the sphere, 2 (the certificate is then vacuous, as it should be).
∎ Renormalisation is what the ``/‖s‖`` accounts for: parts that cancel (a small ``‖s‖``) amplify
their noise. Since ``2 sin(α/2) = sin α / cos(α/2)``, the bound lies between ``x`` and ``√2·x``;
for one part of any weight it is replaced by the exact ``ρ_1`` (``q = ±u_1``). A float allowance
of 1e-6 is added. The engine then certifies with ``r`` as the query radius (``Telemetry.rho``
reports it; ``Telemetry.epsilon`` stays 0 because the drift is already inside ``r``).

Example:
    >>> res = composite_query(luma, [Part(image="circle.png"), Part(text="red", weight=0.5)])
    >>> res.ids[0], res.telemetry.rho, res.telemetry.safe1
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from luma_rag._arrays import as_query
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.results import QueryResult

if TYPE_CHECKING:
    from luma_rag.embedder import MediaEmbedder
    from luma_rag.engine import Luma

__all__ = ["FLOAT_ALLOWANCE", "Part", "combine", "combined_radius", "composite_query"]

logger = logging.getLogger(__name__)

#: Added to every composite radius for float32 embeddings and float64 arithmetic.
FLOAT_ALLOWANCE: Final = 1e-6
#: A sum this short (relative to Σ|w_i|) is treated as cancelled: no direction to search in.
_MIN_RELATIVE_NORM: Final = 1e-6

MediaPath = str | os.PathLike[str]


@dataclass(frozen=True)
class Part:
    """One input of a composite query: exactly one of text / image / audio / video / vector.

    Attributes:
        text, image, audio, video: The input (a string; a media file path).
        vector: A (dim,) embedding already in the store's space (CLIP).
        weight: Its weight in the sum (any finite real, not 0; negative subtracts).
        radius: Its encoder radius ρ_i (None: the store's calibrated ρ for its modality,
            else ``SafetyConfig.rho``; a vector part defaults to ``SafetyConfig.rho``).
    """

    text: str | None = None
    image: MediaPath | None = None
    audio: MediaPath | None = None
    video: MediaPath | None = None
    vector: Any = None
    weight: float = 1.0
    radius: float | None = None

    def __post_init__(self) -> None:
        given = [
            name
            for name in ("text", "image", "audio", "video", "vector")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise InvalidInputError(
                "a Part takes exactly one of text=, image=, audio=, video=, vector= "
                f"(got {given or 'none'})"
            )
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w == 0:
            raise InvalidInputError(f"Part weight must be a finite non-zero number, got {w!r}")
        r = self.radius
        if r is not None and (
            isinstance(r, bool) or not isinstance(r, int | float) or not math.isfinite(r) or r < 0
        ):
            raise InvalidInputError(f"Part radius must be a finite number >= 0, got {r!r}")

    @property
    def modality(self) -> str:
        """``"text"``, ``"image"``, ``"audio"``, ``"video"`` or ``"vector"``."""
        for name in ("text", "image", "audio", "video"):
            if getattr(self, name) is not None:
                return name
        return "vector"


def combined_radius(weights: Any, radii: Any, norm: float) -> float:
    """The sound query radius of ``normalize(Σ w_i u_i)`` (see the module docstring).

    Args:
        weights: The parts' weights ``w_i``, float array-like (n,).
        radii: Their radii, float array-like ``ρ_i`` >= 0 (n,), drift included for bridged parts.
        norm: ``‖Σ w_i u_i‖`` of the unperturbed sum, > 0.

    Returns:
        r in [0, 2], float allowance included.
    """
    w = np.abs(np.asarray(weights, dtype=np.float64))
    rho = np.asarray(radii, dtype=np.float64)
    if w.shape != rho.shape or w.ndim != 1 or w.size == 0:
        raise InvalidInputError("weights and radii must be two equal-length, non-empty lists")
    if (rho < 0).any() or not np.isfinite(rho).all():
        raise InvalidInputError("radii must be finite and >= 0")
    if not norm > 0:
        raise InvalidInputError("the sum of the parts is zero; change the weights")
    if w.size == 1:
        return min(2.0, float(rho[0]) + FLOAT_ALLOWANCE)
    x = float(np.dot(w, rho)) / float(norm)
    if x >= 1.0:
        return 2.0
    return min(2.0, 2.0 * math.sin(math.asin(x) / 2.0) + FLOAT_ALLOWANCE)


def combine(vectors: Any, weights: Any, radii: Any) -> tuple[np.ndarray, float]:
    """Weighted sum of unit embeddings, normalised, and its sound radius.

    Args:
        vectors: (n, d) float array of the parts' embeddings (normalised here).
        weights: (n,) weights, finite, non-zero.
        radii: (n,) radii ρ_i >= 0.

    Returns:
        ``(q, r)``: q float32 (d,) unit vector, r the radius from :func:`combined_radius`.

    Raises:
        InvalidInputError: shapes disagree, a zero / non-finite row, or the parts cancel.
    """
    u = np.asarray(vectors, dtype=np.float64)
    if u.ndim != 2 or u.shape[0] == 0:
        raise InvalidInputError(f"vectors must be (n, d) with n >= 1, got shape {u.shape}")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (u.shape[0],):
        raise InvalidInputError(f"{u.shape[0]} vectors but {w.size} weights; give one each")
    if not np.isfinite(u).all() or not np.isfinite(w).all():
        raise InvalidInputError("vectors and weights must be finite")
    norms = np.linalg.norm(u, axis=1)
    if (norms < 1e-12).any():
        raise InvalidInputError("a part's embedding is the zero vector; it has no direction")
    u = u / norms[:, None]
    s = w @ u
    norm = float(np.linalg.norm(s))
    if norm <= _MIN_RELATIVE_NORM * float(np.abs(w).sum()):
        raise InvalidInputError(
            "the weighted parts cancel out (their sum is ~0); change the weights or the inputs"
        )
    return (s / norm).astype(np.float32), combined_radius(w, radii, norm)


def _embedder(luma: Luma) -> MediaEmbedder:
    return luma._need_embedder()


def _embed(luma: Luma, part: Part) -> tuple[np.ndarray, float]:
    """One part's CLIP-space unit embedding (d,) and its radius (bridge drift included)."""
    default = luma.config.safety.rho
    if part.vector is not None:
        vec = as_query(part.vector, luma.config.dim)
        return vec, default if part.radius is None else float(part.radius)
    emb = _embedder(luma).embed(
        text=part.text, image=part.image, audio=part.audio, video=part.video
    )
    radius = luma.rho.get(emb.modality, default) if part.radius is None else float(part.radius)
    vec = emb.vector
    if emb.bridged:
        bridge = luma.bridge
        if bridge is None:
            raise ConfigError(
                "audio parts need a store with a bridge (open it with audio_encoder=)"
            )
        vec = bridge.project(vec[None, :])[0]
        radius += float(bridge.epsilon)
    return np.asarray(vec, dtype=np.float32), radius


def composite_query(
    luma: Luma,
    parts: Sequence[Part],
    *,
    k: int = 10,
    filters: Mapping[str, Any] | None = None,
) -> QueryResult:
    """Search with ``normalize(Σ w_i e(part_i))`` and certify it with the combined radius.

    Args:
        luma: An open store with an encoder (and an audio encoder for audio parts).
        parts: One or more :class:`Part` (e.g. an image and a text modifier).
        k: Number of hits, >= 1.
        filters: Metadata filter, as ``Luma.search`` takes.

    Returns:
        The engine's :class:`~luma_rag.results.QueryResult`; ``telemetry.rho`` is the combined
        query radius r and ``telemetry.stages_ms["encode"]`` the time spent embedding parts.
    """
    if isinstance(parts, Part) or not isinstance(parts, Sequence) or not parts:
        raise InvalidInputError("parts must be a non-empty list of Part(...)")
    if not all(isinstance(p, Part) for p in parts):
        raise InvalidInputError("every element of parts must be a Part(...)")
    t0 = time.perf_counter()
    embedded = [_embed(luma, p) for p in parts]
    q, r = combine(
        np.stack([v for v, _ in embedded]), [p.weight for p in parts], [r for _, r in embedded]
    )
    encode_ms = (time.perf_counter() - t0) * 1000.0
    res = luma.search(q, k, filters=filters, rho=r)
    tel = dataclasses.replace(
        res.telemetry,
        latency_ms=(time.perf_counter() - t0) * 1000.0,
        stages_ms={"encode": encode_ms, **res.telemetry.stages_ms},
    )
    logger.debug("composite query of %d parts: r=%.4f", len(parts), r)
    return dataclasses.replace(res, telemetry=tel)
