"""Input checks at the library boundary: one copy of each, imported wherever a check is needed.

Every check raises :class:`~luma_rag.errors.InvalidInputError` with a message saying what to
change, and returns the value in the form the caller stores (plain ``int`` / ``float`` /
``list``). Nothing here touches a store.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from luma_rag.errors import InvalidInputError

__all__ = [
    "MAX_ENCODED_CHARS",
    "MAX_K",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "check_id_list",
    "check_ids",
    "check_k",
    "check_metadata",
    "check_optional_strings",
    "check_rho",
    "check_text",
    "encoder_prefix",
    "is_int",
    "is_real",
]

MAX_K = 10_000
"""Default largest ``k`` a search accepts (``LumaConfig.max_k`` overrides it per store)."""
MAX_METADATA_DEPTH = 32
"""Deepest nesting of dicts / lists accepted in one item's metadata."""
MAX_METADATA_BYTES = 1 << 20
"""Largest JSON encoding (bytes) of one item's metadata."""
MAX_ENCODED_CHARS = 4096
"""Longest text prefix handed to an encoder's tokenizer. CLIP reads 77 tokens and CLAP at most
512, which natural text fills well within this many characters, so the prefix embeds as the
whole text would while the tokenizer's work stays bounded (10 MB of text took 101 s)."""


def is_int(value: object) -> bool:
    """Whether ``value`` is an integer (``bool`` excluded)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_real(value: object) -> bool:
    """Whether ``value`` is a real number (``bool`` excluded)."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def check_k(k: Any, name: str = "k", *, max_k: int | None = None) -> int:
    """``k`` as an int after checking ``1 <= k`` (and ``k <= max_k`` when given)."""
    if not is_int(k) or k < 1:
        raise InvalidInputError(f"{name} must be an integer >= 1, got {k!r}")
    if max_k is not None and k > max_k:
        raise InvalidInputError(
            f"{name}={k} is above the limit of {max_k}; ask for fewer results, or raise "
            "LumaConfig.max_k if you really need more"
        )
    return int(k)


def check_rho(rho: Any) -> float:
    """The encoder radius as a float after checking it is finite and >= 0."""
    if not is_real(rho) or not math.isfinite(rho) or rho < 0:
        raise InvalidInputError(f"rho (encoder radius) must be a finite number >= 0, got {rho!r}")
    return float(rho)


def check_text(value: Any, name: str) -> str:
    """A string that encodes as UTF-8 (no lone surrogates): SQLite and tokenizers need that."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError(
            f"{name} is not valid UTF-8 text (character {e.start} is a lone surrogate); "
            "decode your input with errors='replace' first"
        ) from e
    return value


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of dicts / lists, iteratively (no RecursionError); stops past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, Mapping | list | tuple):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, Mapping) else node
            stack.extend((c, d + 1) for c in children)
    return deepest


def check_metadata(metadata: Sequence[Mapping[str, Any]] | None, n: int) -> list[dict[str, Any]]:
    """``n`` JSON-serialisable dicts with str keys, within the depth and size limits."""
    if metadata is None:
        return [{} for _ in range(n)]
    if isinstance(metadata, Mapping) or not isinstance(metadata, Sequence):
        raise InvalidInputError("metadata must be a list with one dict per vector")
    if len(metadata) != n:
        raise InvalidInputError(
            f"got {len(metadata)} metadata dicts for {n} vectors; pass one per vector"
        )
    out = []
    for i, m in enumerate(metadata):
        if m is None:
            m = {}
        if not isinstance(m, Mapping) or not all(isinstance(key, str) for key in m):
            raise InvalidInputError(f"metadata[{i}] must be a dict with string keys")
        if _depth(m, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
            raise InvalidInputError(
                f"metadata[{i}] is nested deeper than {MAX_METADATA_DEPTH} levels; flatten it"
            )
        try:
            size = len(json.dumps(m, allow_nan=False).encode("utf-8"))
        except (TypeError, ValueError) as e:  # UnicodeEncodeError is a ValueError
            raise InvalidInputError(
                f"metadata[{i}] is not JSON-serialisable UTF-8 ({e}); use str / int / float / "
                "bool / None values, lists and dicts"
            ) from e
        if size > MAX_METADATA_BYTES:
            raise InvalidInputError(
                f"metadata[{i}] is {size} bytes as JSON, above the limit of "
                f"{MAX_METADATA_BYTES}; store large payloads elsewhere and keep a reference"
            )
        out.append(dict(m))
    return out


def check_optional_strings(
    values: Sequence[str | None] | None, n: int, name: str
) -> list[str | None]:
    """``n`` strings (or None), each valid UTF-8; None -> ``[None] * n``."""
    if values is None:
        return [None] * n
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidInputError(f"{name} must be a list with one string (or None) per vector")
    if len(values) != n:
        raise InvalidInputError(f"got {len(values)} {name} for {n} vectors; pass one per vector")
    if not all(v is None or isinstance(v, str) for v in values):
        raise InvalidInputError(f"every entry of {name} must be a string or None")
    for i, v in enumerate(values):
        if v is not None:
            check_text(v, f"{name}[{i}]")
    return list(values)


def fresh_ids(n: int) -> list[str]:
    """``n`` random version-4 UUIDs as 32 hex digits (``uuid.uuid4().hex``'s form), made in
    one batch: one ``os.urandom`` read and one hex encoding instead of ``n`` of each."""
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.tobytes().hex()
    return [text[i : i + 32] for i in range(0, 32 * n, 32)]


def check_ids(ids: Sequence[str] | None, n: int) -> list[str]:
    """``n`` unique non-empty UTF-8 ids; None -> fresh uuids."""
    if ids is None:
        return fresh_ids(n)
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise InvalidInputError("ids must be a list of strings, one per vector")
    if len(ids) != n:
        raise InvalidInputError(f"got {len(ids)} ids for {n} vectors; pass one per vector")
    if not all(isinstance(i, str) and i for i in ids):
        raise InvalidInputError("every id must be a non-empty string")
    for j, i in enumerate(ids):
        check_text(i, f"ids[{j}]")
    if len(set(ids)) != n:
        raise InvalidInputError("ids within one batch must be unique")
    return list(ids)


def check_id_list(ids: Any, verb: str) -> list[Any]:
    """A list (not a lone string) of ids for ``delete`` / ``get``."""
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise InvalidInputError(f"{verb} takes a list of ids, e.g. luma.{verb}([id])")
    return list(ids)


def encoder_prefix(text: str) -> tuple[str, bool]:
    """``(prefix, truncated)``: the part of ``text`` an encoder needs (see MAX_ENCODED_CHARS)."""
    if len(text) <= MAX_ENCODED_CHARS:
        return text, False
    return text[:MAX_ENCODED_CHARS], True
