"""What a retriever is invoked with, turned into an engine query: text, or a media file."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args
from urllib.parse import unquote, urlparse

from luma_rag import Luma, QueryResult
from luma_rag._checks import check_k
from luma_rag.errors import InvalidInputError
from luma_rag.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = [
    "MEDIA_SUFFIXES",
    "QUERY_MODALITIES",
    "ParsedQuery",
    "QueryModality",
    "check_k",
    "parse_query",
    "search_or_none",
]

logger = logging.getLogger(__name__)

QueryModality = Literal["text", "image", "audio", "video"]
#: The modalities a query can have ("auto" picks one of them from the query itself).
QUERY_MODALITIES: Final[tuple[str, ...]] = get_args(QueryModality)

#: File suffixes (lower case) that make an ``"auto"`` query a media file rather than text:
#: the engine's own (:mod:`luma_rag.media`), so both sides agree on what a file is.
MEDIA_SUFFIXES: Final[dict[str, QueryModality]] = {
    **dict.fromkeys(sorted(IMAGE_SUFFIXES), "image"),
    **dict.fromkeys(sorted(AUDIO_SUFFIXES), "audio"),
    **dict.fromkeys(sorted(VIDEO_SUFFIXES), "video"),
}


@dataclass(frozen=True)
class ParsedQuery:
    """A validated query: ``value`` is the text, or the path of an existing media file."""

    modality: QueryModality
    value: str


def parse_query(query: Any, modality: str | None = "auto") -> ParsedQuery:
    """Decide what a query is and check that it can be run.

    Args:
        query: The text to search for, or the path (``str``, ``os.PathLike`` or a ``file://``
            URI) of an image, audio clip or video to search with.
        modality: ``"text"``, ``"image"``, ``"audio"`` or ``"video"``; ``"auto"`` (or None)
            treats a single-line string ending in a known media suffix (:data:`MEDIA_SUFFIXES`)
            as that kind of file, and anything else as text.

    Returns:
        The query's modality and its text or file path.

    Raises:
        InvalidInputError: an unknown modality, an empty query, or a media file that does not
            exist (the message says how to search for the string as text instead).
    """
    if modality is None:
        modality = "auto"
    if modality != "auto" and modality not in QUERY_MODALITIES:
        raise InvalidInputError(
            f"unknown query modality {modality!r}; use one of 'auto', "
            + ", ".join(repr(m) for m in QUERY_MODALITIES)
        )
    if isinstance(query, os.PathLike):
        query = os.fspath(query)
        if modality == "auto" and Path(query).suffix.lower() not in MEDIA_SUFFIXES:
            raise InvalidInputError(
                f"cannot tell the modality of {query!r} from its suffix; pass "
                "modality='image', 'audio' or 'video'"
            )
    if not isinstance(query, str):
        raise InvalidInputError(f"a query must be text or a file path, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError(
            "the query is empty; pass some text, or the path of an image, audio or video file"
        )
    if modality == "text":
        return ParsedQuery("text", query)
    path = _as_path(query)
    if modality == "auto":
        guessed = MEDIA_SUFFIXES.get(Path(path).suffix.lower()) if "\n" not in path else None
        if guessed is None:
            return ParsedQuery("text", query)
        modality = guessed
    if not Path(path).is_file():
        raise InvalidInputError(
            f"{modality} query: no such file {path!r}; pass an existing file, "
            "or modality='text' to search for this string as text"
        )
    return ParsedQuery(modality, path)  # type: ignore[arg-type]


def _as_path(query: str) -> str:
    """``file://`` URIs become paths; anything else is taken as a path already."""
    text = query.strip()
    if text.startswith("file://"):
        return unquote(urlparse(text).path)
    return text


def search_or_none(
    luma: Luma, filters: Mapping[str, Any] | None, run: Callable[[], QueryResult]
) -> QueryResult | None:
    """``run()`` (a filtered engine search), or None when its filter can match no item.

    The engine refuses a filter on a metadata key no stored item has (a typo guard). Stores
    in LangChain (``InMemoryVectorStore``) return no documents for such a filter instead, so
    the integration does too, with a warning in the log: when the search is refused and the
    filter, evaluated with absent keys as absent, matches no stored item, None comes back.
    A malformed filter still raises :class:`~luma_rag.errors.InvalidInputError`.
    """
    try:
        return run()
    except InvalidInputError:
        if not filters or luma.ids(filters, check_keys=False):
            raise
        logger.warning(
            "filter %r matches no stored item (no item has one of its keys); returning no "
            "documents",
            dict(filters),
        )
        return None
