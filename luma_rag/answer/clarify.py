"""Clarifying questions: name what tells the leading candidates apart.

When the gate cannot certify any small set of results (CLARIFY), the user is asked one short
question built from what *distinguishes* the candidates that could each be the best match:

1. metadata attributes whose values differ (``color``, ``shape``, ``position``, ...), phrased
   as a noun phrase — "the red circle on the left or the blue square at the top";
2. otherwise their captions / texts, quoted;
3. otherwise their modalities — "the image or the audio clip";
4. otherwise their ids, with a request for a detail that would tell them apart.

Everything here is pure string work on :class:`~luma_rag.results.Hit` objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from luma_rag.results import Hit

__all__ = ["clarifying_question", "describe_hit", "item_attributes", "one_per_answer"]

logger = logging.getLogger(__name__)

#: Keys naming what an item *is*: the head noun of its description ("circle").
_NOUN_KEYS = ("shape", "object", "label", "category", "class", "kind", "type", "name", "title")
#: Keys phrased as adjectives before the noun, in this order ("large red").
_ADJECTIVE_KEYS = ("size", "color", "colour", "material")
#: Keys phrased as a place after the noun ("on the left").
_PLACE_KEYS = ("position", "location", "place", "region")
#: Keys never worth asking the user about (bookkeeping, not content).
_SKIP_KEYS = frozenset(
    {
        "id",
        "uid",
        "uuid",
        "key",
        "path",
        "file",
        "filename",
        "source",
        "uri",
        "url",
        "split",
        "seed",
        "index",
        "idx",
        "hash",
        "checksum",
        "created",
        "updated",
        "timestamp",
        "time",
    }
)
_PLACE_PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
    "centre": "in the centre",
    "middle": "in the middle",
}
_MODALITY_NOUNS = {
    "image": "image",
    "text": "text",
    "audio": "audio clip",
    "video": "video",
    "vector": "stored vector",
}
_MAX_QUOTE = 80


def item_attributes(hit: Hit) -> dict[str, str]:
    """Scalar metadata attributes of a hit, flattened one level, as display strings.

    Top-level scalars (str, int, float, bool) are kept; a nested dict such as
    ``{"attributes": {"color": "red"}}`` contributes its scalars under their own keys (a
    top-level key wins over a nested one). Bookkeeping keys (ids, paths, timestamps, keys
    starting with ``_``) and ``None`` values are dropped.

    Args:
        hit: The retrieved item.

    Returns:
        ``{key: value as text}``, keys lower-cased.
    """
    out: dict[str, str] = {}

    def take(data: Mapping[str, Any], overwrite: bool) -> None:
        for key, value in data.items():
            name = str(key).lower()
            if name.startswith("_") or name in _SKIP_KEYS or value is None:
                continue
            if isinstance(value, str | int | float | bool) and (overwrite or name not in out):
                text = str(value).strip()
                if text:
                    out[name] = text

    take(hit.metadata, overwrite=True)
    for value in hit.metadata.values():
        if isinstance(value, Mapping):
            take(value, overwrite=False)
    return out


def _modality_noun(modality: str) -> str:
    return _MODALITY_NOUNS.get(modality, f"{modality} item")


def _place(value: str) -> str:
    return _PLACE_PHRASES.get(value.lower(), f"in {value}")


def _phrase(attrs: Mapping[str, str], keys: Sequence[str], head: str | None) -> str:
    """Noun phrase from the attributes in ``keys``: adjectives, noun, place, then the rest."""
    adjectives = [attrs[k] for k in _ADJECTIVE_KEYS if k in keys and k in attrs]
    noun = next((attrs[k] for k in _NOUN_KEYS if k in attrs), None) or head or "one"
    places = [_place(attrs[k]) for k in _PLACE_KEYS if k in keys and k in attrs]
    named = {*_ADJECTIVE_KEYS, *_NOUN_KEYS, *_PLACE_KEYS}
    others = [f"{k} {attrs[k]}" for k in keys if k not in named and k in attrs]
    words = ["the", *adjectives, noun, *places]
    if others:
        words.append("with " + " and ".join(others))
    return " ".join(words)


def _distinguishing_keys(attrs: Sequence[Mapping[str, str]]) -> list[str]:
    """Keys whose values differ between the candidates; shared keys first, then partial ones.

    Order: nouns, adjectives, places (the order a description reads in), then the rest sorted.
    """
    keys = sorted({k for a in attrs for k in a})
    shared = [k for k in keys if all(k in a for a in attrs)]
    differs = [k for k in shared if len({a[k] for a in attrs}) > 1]
    if not differs:
        differs = [k for k in keys if len({a.get(k) for a in attrs}) > 1]
    rank = {k: i for i, k in enumerate((*_NOUN_KEYS, *_ADJECTIVE_KEYS, *_PLACE_KEYS))}
    return sorted(differs, key=lambda k: (rank.get(k, len(rank)), k))


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_QUOTE:
        text = text[: _MAX_QUOTE - 1].rstrip() + "…"
    return f"“{text}”"


def _alternatives(options: Sequence[str]) -> str:
    """``"A or B"`` / ``"A, B or C"``."""
    if len(options) == 1:
        return options[0]
    return ", ".join(options[:-1]) + " or " + options[-1]


def _by_attributes(hits: Sequence[Hit]) -> list[str] | None:
    attrs = [item_attributes(h) for h in hits]
    keys = _distinguishing_keys(attrs)
    if not keys:
        return None
    modalities = {h.modality for h in hits}
    options = []
    for hit, a in zip(hits, attrs, strict=True):
        head = _modality_noun(hit.modality) if len(modalities) > 1 else None
        options.append(_phrase(a, keys, head))
    return options if len(set(options)) == len(options) else None


def _by_text(hits: Sequence[Hit]) -> list[str] | None:
    texts = [h.text.strip() if h.text else "" for h in hits]
    if not all(texts) or len(set(texts)) < len(texts):
        return None
    return [_quote(t) for t in texts]


def _by_modality(hits: Sequence[Hit]) -> list[str] | None:
    options = [f"the {_modality_noun(h.modality)}" for h in hits]
    return options if len(set(options)) == len(options) else None


def clarifying_question(hits: Sequence[Hit]) -> str:
    """A question asking the user which of the leading candidates they mean.

    Built from what distinguishes the candidates (see the module docstring), e.g.
    ``"Did you mean the red circle on the left or the blue square at the top?"``.

    Args:
        hits: The leading candidates, best first (2-4 make a readable question). With one
            hit the question confirms it; with none it asks for more detail.

    Returns:
        One question, ending in ``?``.
    """
    hits = list(hits)
    if not hits:
        return (
            "I found nothing in memory that matches; could you describe what you are looking "
            "for in other words, or add material about it?"
        )
    if len(hits) == 1:
        only = _by_text(hits) or [describe_hit(hits[0])]
        return f"Did you mean {only[0]}?"
    for strategy in (_by_attributes, _by_text, _by_modality):
        options = strategy(hits)
        if options:
            return f"Did you mean {_alternatives(options)}?"
    ids = [f"item {h.id!r}" for h in hits]
    return (
        f"Did you mean {_alternatives(ids)}? They are too close to tell apart; could you add a "
        "detail (a colour, shape, place, time or source) that singles one out?"
    )


def describe_hit(hit: Hit) -> str:
    """Short human-readable description of one hit: its text, attributes, file or id.

    Args:
        hit: The retrieved item.

    Returns:
        The caption / text when it has one (whitespace collapsed), else a phrase from its
        attributes ("the red circle on the left"), else its source's file name, else its id.
    """
    if hit.text and hit.text.strip():
        return " ".join(hit.text.split())
    attrs = item_attributes(hit)
    if attrs:
        return _phrase(attrs, list(attrs), _modality_noun(hit.modality))
    if hit.source:
        return os.path.basename(hit.source) or hit.source
    return f"item {hit.id}"


def one_per_answer(
    pool: Sequence[Hit], answers: Mapping[str, str | None], limit: int
) -> tuple[Hit, ...]:
    """The options a clarifying question names: one hit per distinct answer (best first),
    padded to two, at most ``limit``. ``answers`` maps hit id → normalised answer; a hit it
    does not cover counts as an answer of its own."""
    seen: set[str | None] = set()
    picked: list[Hit] = []
    for hit in pool:
        value = answers.get(hit.id, hit.id)
        if value not in seen:
            seen.add(value)
            picked.append(hit)
    for hit in pool:
        if len(picked) >= 2:
            break
        if hit not in picked:
            picked.append(hit)
    return tuple(picked[:limit])
