"""The encoder radius ρ: how far two inputs that mean the same land apart in embedding space.

ρ is the ``quantile`` (0.9 by default) of ‖e(x) − e(x′)‖ over pairs (x, x′) that mean the
same — several captions of one image, augmentations of one image, two voices speaking one
caption. It enters the Safe@k bound on the query side (see :mod:`luma_rag.safety`), which
turns "margin > 0" into a certificate that actually separates stable from fragile rankings.

Where the inputs come from: the core never generates data. :func:`calibrate_radii` takes a
:class:`CalibrationInputs` — groups of paraphrased captions, images, captions for the bridge —
and :func:`load_calibration_inputs` reads the set shipped beside the tiny checkpoints
(``encoders/checkpoints/calibration/``: ``inputs.json`` + PNGs), written by
``python -m luma_rag.training.calibration_data``. We ship *inputs*, not measured ρ: the inputs
do not depend on the model, so a retrained tiny model or a production model (``ViT-B-32``, a
transformers CLIP) is calibrated the same way on attach, and ρ is always measured with the
encoder actually in use. A production deployment should instead pass inputs drawn from its
own data (``CalibrationInputs(text_groups=..., images=...)`` to
``Luma.attach_encoders(..., calibration=...)``), or set ρ with ``luma.set_rho``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from luma_rag.errors import InvalidInputError, LumaError

if TYPE_CHECKING:
    from luma_rag.bridge import ProcrustesBridge
    from luma_rag.encoders.base import Encoder

__all__ = [
    "DEFAULT_INPUTS_DIR",
    "CalibrationInputs",
    "augment_image",
    "calibrate_radii",
    "group_pairs",
    "load_calibration_inputs",
    "radius_from_augmentations",
    "radius_from_groups",
    "radius_from_pairs",
]

logger = logging.getLogger(__name__)

DEFAULT_INPUTS_DIR = Path(__file__).parent / "encoders" / "checkpoints" / "calibration"
"""Where the shipped calibration inputs live (written by ``luma_rag.training.calibration_data``)."""


def radius_from_pairs(a: np.ndarray, b: np.ndarray, quantile: float = 0.9) -> float:
    """``quantile`` of the row distances ‖a_i − b_i‖ of two (n, d) arrays of unit vectors."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] == 0:
        raise InvalidInputError(
            f"need two equal (n, d) arrays with n >= 1, got {a.shape} and {b.shape}"
        )
    if not (0.0 < quantile <= 1.0):
        raise InvalidInputError(f"quantile must be in (0, 1], got {quantile}")
    dist = np.linalg.norm(a - b, axis=1)
    if not np.isfinite(dist).all():
        raise InvalidInputError("embeddings contain NaN or inf")
    return float(np.quantile(dist, quantile))


def group_pairs(
    groups: Sequence[Sequence[int]], max_per_group: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs within each group of same-meaning inputs (at most ``max_per_group`` each)."""
    left: list[int] = []
    right: list[int] = []
    for g in groups:
        for i, j in itertools.islice(itertools.combinations(list(g), 2), max_per_group):
            left.append(i)
            right.append(j)
    return np.array(left, dtype=np.int64), np.array(right, dtype=np.int64)


def radius_from_groups(
    embed: Callable[[list[str]], np.ndarray],
    groups: Sequence[Sequence[str]],
    quantile: float = 0.9,
) -> float:
    """ρ for a text encoder from groups of paraphrases (each group: captions of one item)."""
    flat: list[str] = []
    index_groups: list[list[int]] = []
    for g in groups:
        index_groups.append(list(range(len(flat), len(flat) + len(g))))
        flat.extend(g)
    left, right = group_pairs(index_groups)
    if left.size == 0:
        raise InvalidInputError("need at least one group with two or more paraphrases")
    emb = embed(flat)
    rho = radius_from_pairs(emb[left], emb[right], quantile)
    return rho if math.isfinite(rho) else 0.0


def augment_image(image: Any, rng: np.random.Generator) -> Any:
    """A meaning-preserving variant of a Pillow image: a shift of a few pixels and a small
    brightness / contrast change (no flips or crops: position is part of the meaning)."""
    from PIL import ImageChops, ImageEnhance

    w = image.size[0]
    dx, dy = (int(v) for v in rng.integers(-max(1, w // 32), max(1, w // 32) + 1, 2))
    out = ImageChops.offset(image, dx, dy)
    out = ImageEnhance.Brightness(out).enhance(float(rng.uniform(0.9, 1.1)))
    return ImageEnhance.Contrast(out).enhance(float(rng.uniform(0.9, 1.1)))


def radius_from_augmentations(
    embed: Callable[[list[Any]], np.ndarray],
    images: Sequence[Any],
    *,
    n_aug: int = 2,
    quantile: float = 0.9,
    seed: int = 0,
) -> float:
    """ρ for an image encoder: distances between each image and ``n_aug`` augmentations of it."""
    if len(images) == 0 or n_aug < 1:
        raise InvalidInputError("need at least one image and one augmentation")
    rng = np.random.default_rng(seed)
    originals = list(images) * n_aug
    variants = [augment_image(im, rng) for im in originals]
    return radius_from_pairs(embed(originals), embed(variants), quantile)


@dataclass(frozen=True)
class CalibrationInputs:
    """Inputs that mean the same, to measure ρ per modality (nothing is generated here).

    Attributes:
        text_groups: groups of paraphrases (each group: captions of one item) -> text ρ.
        images: Pillow RGB images; each is compared with shifted / re-lit copies -> image and
            video ρ (a video vector pools image embeddings).
        audio_captions: captions whose CLAP-text, through the bridge, is compared with their
            CLIP-text -> audio ρ (the bridge residual; drift ε is added apart).
        bridge_captions: captions that warm-start an unfitted bridge (CLAP-text, CLIP-text).
    """

    text_groups: list[list[str]] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    audio_captions: list[str] = field(default_factory=list)
    bridge_captions: list[str] = field(default_factory=list)


def load_calibration_inputs(directory: str | Path | None = None) -> CalibrationInputs:
    """Read ``inputs.json`` (+ its PNGs) from ``directory`` (default: the shipped set).

    Raises:
        InvalidInputError: the directory holds no readable calibration set.
    """
    from PIL import Image

    root = Path(directory) if directory is not None else DEFAULT_INPUTS_DIR
    try:
        data = json.loads((root / "inputs.json").read_text(encoding="utf-8"))
        images = []
        for name in data["images"]:
            with Image.open(root / name) as im:
                images.append(im.convert("RGB"))
        return CalibrationInputs(
            text_groups=[list(map(str, g)) for g in data["text_groups"]],
            images=images,
            audio_captions=[str(c) for c in data["audio_captions"]],
            bridge_captions=[str(c) for c in data["bridge_captions"]],
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidInputError(
            f"{root} holds no readable calibration inputs ({e}); regenerate them with "
            "`python -m luma_rag.training.calibration_data`"
        ) from e


def calibrate_radii(
    encoder: Encoder,
    audio_encoder: Encoder | None,
    bridge: ProcrustesBridge | None,
    modalities: set[str],
    inputs: CalibrationInputs,
) -> dict[str, float]:
    """ρ per query modality in ``modalities`` from ``inputs`` (DESIGN.md, "Safe@k").

    text: paraphrase groups; image (and video): images vs. shifted / re-lit copies; audio: the
    bridge's residual ‖T·CLAP(caption) − CLIP(caption)‖ (needs a fitted bridge). A modality
    whose inputs are missing, or whose encoder cannot take them, is left out (logged).
    """
    out: dict[str, float] = {}
    if "text" in modalities and inputs.text_groups:
        out["text"] = radius_from_groups(encoder.encode_text, inputs.text_groups)
    if modalities & {"image", "video"} and "image" in encoder.modalities and inputs.images:
        try:
            rho_image = radius_from_augmentations(encoder.encode_image, inputs.images, seed=3)
        except (LumaError, NotImplementedError, TypeError, ValueError, OSError) as e:
            # e.g. a custom encoder that takes only paths: say so, certify image queries
            # with SafetyConfig.rho until luma.set_rho("image", ...) is called
            logger.warning("could not calibrate the image radius with %s: %s", encoder.name, e)
        else:
            out["image"] = out["video"] = rho_image
    if (
        "audio" in modalities
        and audio_encoder is not None
        and bridge is not None
        and bridge.fitted
        and inputs.audio_captions
    ):
        projected = bridge.project(audio_encoder.encode_text(inputs.audio_captions))
        out["audio"] = radius_from_pairs(projected, encoder.encode_text(inputs.audio_captions))
    logger.info("calibrated encoder radii: %s", out)
    return out
