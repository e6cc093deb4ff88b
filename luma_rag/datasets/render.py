"""Pillow renderer of LUMA-Shapes frames: grey backgrounds and anti-aliased flat shapes.

Shapes are drawn into a 4x supersampled mask that is box-filtered down to the frame size, then
the shape colour is composited over the background through that mask. Everything is integer
or float64 arithmetic on fixed inputs, so the same :class:`Scene` always gives the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from luma_rag.datasets.vocab import BACKGROUNDS, SHAPES
from luma_rag.errors import InvalidInputError, MissingDependencyError

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "Background",
    "Scene",
    "background_array",
    "render_frame",
    "require_pillow",
    "shape_polygon",
]

_SUPERSAMPLE = 4
_STRIPE_CONTRAST = 22
_NOISE_SIGMA = 16.0


@dataclass(frozen=True)
class Background:
    """A grey background.

    Attributes:
        kind: "plain", "noise" (per-pixel Gaussian grey noise) or "stripes".
        gray: Mean grey level, 0-255.
        angle: Stripe angle in degrees (stripes only).
        period: Stripe period in pixels (stripes only).
        seed: Seed of the noise (noise only).
    """

    kind: str
    gray: int
    angle: int = 0
    period: int = 10
    seed: int = 0


@dataclass(frozen=True)
class Scene:
    """One or more copies of a shape on a background, in pixel coordinates.

    Attributes:
        shape: Canonical shape name.
        rgb: Fill colour.
        centers: Shape centres ``(x, y)`` in pixels; may lie partly outside the frame.
        radius: Nominal radius in pixels (about half the shape's extent).
        rotation: Rotation in degrees, counter-clockwise.
    """

    shape: str
    rgb: tuple[int, int, int]
    centers: tuple[tuple[float, float], ...]
    radius: float
    rotation: float


def require_pillow() -> None:
    """Raise :class:`MissingDependencyError` unless Pillow can be imported."""
    try:
        import PIL  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(
            "Pillow is required to render LUMA-Shapes; install it with "
            "`pip install 'luma-rag[datasets]'` (or `pip install pillow`)"
        ) from e


def background_array(bg: Background, size: int) -> np.ndarray:
    """Render a background.

    Args:
        bg: What to draw.
        size: Side of the square frame in pixels.

    Returns:
        ``(size, size, 3)`` uint8 RGB array (grey: the three channels are equal).
    """
    if bg.kind == "plain":
        gray = np.full((size, size), float(bg.gray))
    elif bg.kind == "noise":
        noise = np.random.default_rng(bg.seed).normal(0.0, _NOISE_SIGMA, (size, size))
        gray = bg.gray + noise
    elif bg.kind == "stripes":
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        theta = math.radians(bg.angle)
        u = xx * math.cos(theta) + yy * math.sin(theta)
        band = np.floor(u / (bg.period / 2.0)).astype(np.int64) % 2
        gray = bg.gray + np.where(band == 0, -_STRIPE_CONTRAST, _STRIPE_CONTRAST).astype(float)
    else:
        raise InvalidInputError(f"unknown background kind {bg.kind!r}; use {list(BACKGROUNDS)}")
    level = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return np.repeat(level[:, :, None], 3, axis=2)


def _regular(n: int, r: float, start_deg: float) -> list[tuple[float, float]]:
    return [
        (
            r * math.cos(math.radians(start_deg + 360.0 * i / n)),
            r * math.sin(math.radians(start_deg + 360.0 * i / n)),
        )
        for i in range(n)
    ]


def _unit_outline(shape: str) -> list[tuple[float, float]]:
    """Outline of ``shape`` with nominal radius 1, y pointing down, centred on the origin."""
    if shape == "square":
        return _regular(4, 1.2, 45.0)
    if shape == "triangle":
        return _regular(3, 1.25, -90.0)
    if shape == "pentagon":
        return _regular(5, 1.08, -90.0)
    if shape == "hexagon":
        return _regular(6, 1.05, 0.0)
    if shape == "diamond":
        return [(0.0, -1.2), (0.72, 0.0), (0.0, 1.2), (-0.72, 0.0)]
    if shape == "star":
        outer = _regular(5, 1.2, -90.0)
        inner = _regular(5, 0.5, -54.0)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if shape == "cross":
        a, w = 1.05, 0.36
        return [
            (-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w),
            (w, a), (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w),
        ]  # fmt: skip
    raise InvalidInputError(f"no outline for shape {shape!r}; use one of {list(SHAPES)}")


def shape_polygon(
    shape: str, cx: float, cy: float, radius: float, rotation: float
) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape in pixel coordinates.

    Args:
        shape: Any shape of :data:`~luma_rag.datasets.vocab.SHAPES` except "circle".
        cx: Centre x in pixels.
        cy: Centre y in pixels.
        radius: Nominal radius in pixels.
        rotation: Counter-clockwise rotation in degrees.

    Returns:
        ``(x, y)`` vertices in drawing order.
    """
    theta = math.radians(-rotation)  # image y points down
    c, s = math.cos(theta), math.sin(theta)
    return [
        (cx + radius * (x * c - y * s), cy + radius * (x * s + y * c))
        for x, y in _unit_outline(shape)
    ]


def _mask(scene: Scene, size: int) -> PIL.Image.Image:
    require_pillow()
    from PIL import Image, ImageDraw

    big = size * _SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    k = float(_SUPERSAMPLE)
    for cx, cy in scene.centers:
        if scene.shape == "circle":
            r = scene.radius * k
            draw.ellipse((cx * k - r, cy * k - r, cx * k + r, cy * k + r), fill=255)
        else:
            points = shape_polygon(scene.shape, cx * k, cy * k, scene.radius * k, scene.rotation)
            draw.polygon(points, fill=255)
    return mask.resize((size, size), Image.Resampling.BOX)


def render_frame(background: np.ndarray, scene: Scene) -> PIL.Image.Image:
    """Composite ``scene`` over a background.

    Args:
        background: ``(size, size, 3)`` uint8 RGB array from :func:`background_array`.
        scene: The shapes to draw.

    Returns:
        RGB :class:`PIL.Image.Image` of ``size x size``.
    """
    require_pillow()
    from PIL import Image

    size = int(background.shape[0])
    frame = Image.fromarray(np.ascontiguousarray(background, dtype=np.uint8))
    frame.paste(scene.rgb, (0, 0, size, size), _mask(scene, size))
    return frame
