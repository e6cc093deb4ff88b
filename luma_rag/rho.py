"""ρ for any embedder: the encoder radius measured on the user's own items.

The Safe@k certificate needs ρ, the radius of meaning-preserving noise in embedding space
(see :mod:`luma_rag.safety`). With a LangChain ``Embeddings``, a LlamaIndex ``BaseEmbedding``
or any other function nobody calibrated, ρ would be 0 and Safe@1 would reduce to "margin > 0",
true almost always. :func:`calibrate_rho` measures it for *any* embedding function on a sample
of the user's own texts or images: each input and a few meaning-preserving variants of it
(:mod:`luma_rag.perturb`: word dropout, neighbour swaps, casing, typos; crops, shifts,
brightness, JPEG) are embedded, and ρ is the ``quantile`` (0.9 by default) of the distances
‖e(x) − e(x′)‖ between unit-normalised embeddings.

It is bounded in time (``time_budget_s``; the estimate says when it stopped early), reports
progress through a callback and the log, and returns a JSON-serialisable :class:`RhoEstimate`
that stores persist (``Luma.set_rho(..., source="calibrated")`` or ``Luma.set_calibration``).
A store whose ρ nobody calibrated or set reports ``rho_source: "unset"`` in every result.

:func:`as_embed_fn` adapts the usual embedder objects by duck typing (the core never imports
LangChain or LlamaIndex): ``embed_documents`` (LangChain), ``get_text_embedding_batch``
(LlamaIndex), ``encode_text`` / ``encode_image`` (LUMA encoders), or a plain callable.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from luma_rag._config import ConfigBase, check
from luma_rag.errors import InvalidInputError
from luma_rag.perturb import perturb_image, perturb_text

__all__ = ["RhoConfig", "RhoEstimate", "as_embed_fn", "calibrate_rho", "embedder_name"]

logger = logging.getLogger(__name__)

EmbedFn = Callable[[list[Any]], Any]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RhoConfig(ConfigBase):
    """Settings of :func:`calibrate_rho`.

    Attributes:
        quantile: ρ is this quantile of the variant distances, in ``(0, 1]``.
        variants: Perturbed variants per input, ``>= 1``.
        max_items: Inputs sampled from what is given, ``>= 1``.
        time_budget_s: Stop embedding new batches after this many seconds (the estimate is
            then computed from what was done and marked ``truncated``); ``> 0``.
        batch: Inputs per embedding call, ``>= 1``.
        strength: Perturbation strength (share of words dropped / misspelt; image shift
            fraction), in ``(0, 0.5]``.
        seed: Seed of the sample and of the perturbations.
    """

    quantile: float = 0.9
    variants: int = 3
    max_items: int = 128
    time_budget_s: float = 60.0
    batch: int = 32
    strength: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        check(0 < self.quantile <= 1, f"RhoConfig.quantile must be in (0, 1], got {self.quantile}")
        check(self.variants >= 1, f"RhoConfig.variants must be >= 1, got {self.variants}")
        check(self.max_items >= 1, f"RhoConfig.max_items must be >= 1, got {self.max_items}")
        check(self.batch >= 1, f"RhoConfig.batch must be >= 1, got {self.batch}")
        check(
            self.time_budget_s > 0, f"RhoConfig.time_budget_s must be > 0, got {self.time_budget_s}"
        )
        check(0 < self.strength <= 0.5, f"RhoConfig.strength must be in (0, 0.5]: {self.strength}")


@dataclass(frozen=True)
class RhoEstimate:
    """A calibrated encoder radius with how it was measured.

    Attributes:
        rho: The radius (finite, ``>= 0``).
        modality: ``"text"`` or ``"image"``.
        quantile: Quantile of the distances it is.
        n_items: Inputs used. n_pairs: (input, variant) pairs measured.
        seconds: Wall time. truncated: the time budget stopped it before ``max_items``.
        embedder: Name of the embedder it was measured for.
        source: Always ``"calibrated"``.
    """

    rho: float
    modality: str
    quantile: float
    n_items: int
    n_pairs: int
    seconds: float
    truncated: bool
    embedder: str
    source: Literal["calibrated"] = "calibrated"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RhoEstimate:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as e:
            raise InvalidInputError(f"not a RhoEstimate dict: {e}") from e


def embedder_name(embedder: Any) -> str:
    """A stable name for an embedder: its ``name`` / ``model_name`` / ``model``, else its class."""
    for attr in ("name", "model_name", "model"):
        value = getattr(embedder, attr, None)
        if isinstance(value, str) and value:
            return f"{type(embedder).__name__}:{value}"
    return type(embedder).__name__


def as_embed_fn(embedder: Any, modality: str = "text") -> EmbedFn:
    """A ``list -> (n, d) array`` function for a LangChain / LlamaIndex / LUMA embedder.

    Args:
        embedder: An object with ``embed_documents`` (LangChain ``Embeddings``),
            ``get_text_embedding_batch`` (LlamaIndex ``BaseEmbedding``), ``encode_text`` /
            ``encode_image`` (a LUMA :class:`~luma_rag.encoders.base.Encoder`), or a callable.
        modality: ``"text"`` or ``"image"``.

    Raises:
        InvalidInputError: nothing usable for ``modality`` was found.
    """
    if modality == "image":
        if hasattr(embedder, "encode_image"):
            return lambda xs: embedder.encode_image(xs)
        if hasattr(embedder, "get_image_embedding_batch"):
            return lambda xs: embedder.get_image_embedding_batch(xs)
    else:
        if hasattr(embedder, "embed_documents"):
            return lambda xs: embedder.embed_documents([str(x) for x in xs])
        if hasattr(embedder, "get_text_embedding_batch"):
            return lambda xs: embedder.get_text_embedding_batch([str(x) for x in xs])
        if hasattr(embedder, "encode_text"):
            return lambda xs: embedder.encode_text(xs)
    if callable(embedder):
        return lambda xs: embedder(xs)
    raise InvalidInputError(
        f"cannot embed {modality} with {type(embedder).__name__}: pass a LangChain Embeddings, "
        "a LlamaIndex BaseEmbedding, a LUMA encoder or a function list -> (n, d) array"
    )


def _unit(rows: Any, n: int) -> np.ndarray:
    try:
        a = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"the embedder returned something that is not numbers ({e})") from e
    if a.ndim != 2 or a.shape[0] != n:
        raise InvalidInputError(f"the embedder must return ({n}, d) for {n} inputs, got {a.shape}")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if not np.all(np.isfinite(a)) or np.any(norms == 0):
        raise InvalidInputError("the embedder returned NaN, inf or zero vectors")
    return a / norms


def calibrate_rho(
    embedder: Any,
    inputs: Sequence[Any],
    *,
    modality: Literal["text", "image"] = "text",
    config: RhoConfig | None = None,
    progress: Progress | None = None,
) -> RhoEstimate:
    """Measure ρ for ``embedder`` on a sample of the user's own ``inputs``.

    Args:
        embedder: Anything :func:`as_embed_fn` accepts.
        inputs: Texts (``modality="text"``) or PIL images / paths (``"image"``); a sample of
            at most ``config.max_items`` is used.
        modality: What ``inputs`` are.
        config: Settings (default :class:`RhoConfig`).
        progress: Called as ``progress(done, total)`` after each batch.

    Returns:
        The :class:`RhoEstimate`.

    Raises:
        InvalidInputError: no inputs, an unknown modality, or an embedder that returns bad
            vectors.
    """
    cfg = config or RhoConfig()
    if modality not in ("text", "image"):
        raise InvalidInputError(f"modality must be 'text' or 'image', got {modality!r}")
    pool = [x for x in inputs if not (modality == "text" and not str(x).strip())]
    if not pool:
        raise InvalidInputError(f"need at least one {modality} input to calibrate rho")
    embed = as_embed_fn(embedder, modality)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(pool))[: cfg.max_items]
    sample = [pool[int(i)] for i in order]
    start = time.perf_counter()
    dists: list[np.ndarray] = []
    done = 0
    for lo in range(0, len(sample), cfg.batch):
        chunk = sample[lo : lo + cfg.batch]
        if modality == "image":
            chunk = [_load(x) for x in chunk]
        originals = chunk * cfg.variants
        variants = [
            perturb_text(str(x), rng, strength=cfg.strength)
            if modality == "text"
            else perturb_image(x, rng, strength=cfg.strength / 3)
            for x in originals
        ]
        a = _unit(embed(list(originals)), len(originals))
        b = _unit(embed(variants), len(variants))
        dists.append(np.linalg.norm(a - b, axis=1))
        done += len(chunk)
        if progress is not None:
            progress(done, len(sample))
        logger.info("calibrating rho (%s): %d/%d inputs", modality, done, len(sample))
        if time.perf_counter() - start > cfg.time_budget_s and done < len(sample):
            logger.warning("rho calibration stopped by its time budget at %d inputs", done)
            break
    flat = np.concatenate(dists)
    rho = float(np.quantile(flat, cfg.quantile))
    return RhoEstimate(
        rho=float(rho) if math.isfinite(rho) else 0.0,
        modality=modality,
        quantile=cfg.quantile,
        n_items=done,
        n_pairs=int(flat.size),
        seconds=round(time.perf_counter() - start, 3),
        truncated=done < len(sample),
        embedder=embedder_name(embedder),
    )


def _load(x: Any) -> Any:
    """A PIL image from a PIL image or a path."""
    from PIL import Image

    if isinstance(x, Image.Image):
        return x
    try:
        with Image.open(x) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"cannot open image {x!r} for rho calibration ({e})") from e
