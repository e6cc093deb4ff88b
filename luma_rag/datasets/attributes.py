"""Attributes of one LUMA-Shapes item and group-aware relevance between a query and an item."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from luma_rag.datasets.vocab import (
    ATTRIBUTE_NAMES,
    BACKGROUNDS,
    COLORS,
    COUNTS,
    MOTIONS,
    POSITIONS,
    SHAPES,
    SIZES,
)
from luma_rag.errors import InvalidInputError

__all__ = ["ShapeAttributes", "relevant"]

_ALLOWED: dict[str, tuple[object, ...]] = {
    "shape": SHAPES,
    "color": COLORS,
    "size": SIZES,
    "position": POSITIONS,
    "count": COUNTS,
    "background": BACKGROUNDS,
    "motion": (*MOTIONS, None),
}


@dataclass(frozen=True)
class ShapeAttributes:
    """What one item depicts; every value is one of the canonical strings of :mod:`.vocab`.

    Attributes:
        shape: One of :data:`~luma_rag.datasets.vocab.SHAPES` ("circle", "square", ...).
        color: One of :data:`~luma_rag.datasets.vocab.COLORS` ("red", "blue", ...).
        size: "small" or "large". Two-shape items are always "small".
        position: "left", "right", "top", "bottom" or "center": where the shape (or the pair
            of shapes) sits in the frame.
        count: 1 or 2. Two-shape items repeat the same shape in the same colour and size.
        background: "plain", "noise" or "stripes" (always grey, so colour names stay exact).
        motion: Direction of motion in the item's video ("left", "right", "up", "down"), or
            ``None`` when the corpus was generated without video.
    """

    shape: str
    color: str
    size: str
    position: str
    count: int
    background: str
    motion: str | None = None

    def __post_init__(self) -> None:
        for name in ATTRIBUTE_NAMES:
            _check_value(name, getattr(self, name))

    def as_dict(self) -> dict[str, Any]:
        """Return the attributes as the manifest's ``attributes`` dict (manifest key order)."""
        return {name: getattr(self, name) for name in ATTRIBUTE_NAMES}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShapeAttributes:
        """Build from a manifest ``attributes`` dict; unknown or missing keys raise."""
        unknown = set(data) - set(ATTRIBUTE_NAMES)
        missing = set(ATTRIBUTE_NAMES) - set(data) - {"motion"}
        if unknown or missing:
            raise InvalidInputError(
                f"attributes must have the keys {list(ATTRIBUTE_NAMES)}; "
                f"unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        return cls(**dict(data))


def _check_value(name: str, value: object) -> None:
    allowed = _ALLOWED.get(name)
    if allowed is None:
        raise InvalidInputError(
            f"unknown attribute {name!r}; valid attributes: {list(ATTRIBUTE_NAMES)}"
        )
    if value not in allowed or isinstance(value, bool):
        raise InvalidInputError(f"attribute {name}={value!r} is not one of {list(allowed)}")


def relevant(
    query_attrs: Mapping[str, object], item_attrs: Mapping[str, object] | ShapeAttributes
) -> bool:
    """Group-aware relevance: an item is relevant when every attribute the query names matches.

    Attributes the query does not name (absent, or ``None``) are free, so the query
    "a red circle" (``{"shape": "circle", "color": "red", "count": 1}``) makes every single red
    circle relevant whatever its size, position, background or motion. A query that names
    nothing makes every item relevant.

    Args:
        query_attrs: Attributes named by the query, e.g. the output of
            :func:`~luma_rag.datasets.captions.parse_query_attributes`.
        item_attrs: The item's attributes (manifest dict or :class:`ShapeAttributes`).

    Returns:
        ``True`` when all named attributes are equal.

    Raises:
        InvalidInputError: A query key is not an attribute name or has an impossible value.
    """
    item = item_attrs.as_dict() if isinstance(item_attrs, ShapeAttributes) else item_attrs
    for name, value in query_attrs.items():
        if value is None:
            continue
        _check_value(name, value)
        if item.get(name) != value:
            return False
    return True
