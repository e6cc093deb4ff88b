"""Linked text items: the words inside a media item, stored beside it and fused at query time.

At ingest, :func:`ingest_with_text` stores the media item as usual and, when an extractor
(a transcriber for audio / video, an OCR reader for images) finds words in it, a *linked item*:
modality ``"transcript"`` or ``"ocr"``, the words as its text, their CLIP text embedding as its
vector, ``metadata[LINK_KEY]`` = the media item's id, id ``"<id>#transcript"`` / ``"<id>#ocr"``.
So a clip is found both by its sound (CLAP → bridge) and by its words (CLIP text).

At query time, :func:`query_fused` runs the routes a query has — the media query itself, and
for an audio query its transcript as a text query — maps linked items to the media item they
belong to, and fuses the rankings by reciprocal-rank fusion (RRF, ``Σ 1/(c + rank)``, c = 60),
which needs no common score scale: a bridged CLAP score and a CLIP text score are not
comparable. Each route keeps its own Safe@k certificate in :attr:`FusedResult.routes`; the
fused order itself carries none (RRF is not a perturbation-bounded score).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit, QueryResult

if TYPE_CHECKING:
    from luma_rag.engine import Luma

__all__ = [
    "LINK_KEY",
    "FusedHit",
    "FusedResult",
    "TextExtractor",
    "add_linked_text",
    "ingest_with_text",
    "parent_id",
    "query_fused",
]

logger = logging.getLogger(__name__)

#: Metadata key of a linked item naming the media item it belongs to.
LINK_KEY: Final = "linked_to"
#: RRF constant (Cormack et al., 2009).
RRF_C: Final = 60.0
_KINDS: Final = {"audio": "transcript", "video": "transcript", "image": "ocr"}

MediaPath = str | os.PathLike[str]


@runtime_checkable
class TextExtractor(Protocol):
    """Anything that turns a media file into text (``""`` when it holds none)."""

    name: str

    def extract(self, path: MediaPath) -> str:
        """The words in the file at ``path``."""
        ...


def parent_id(hit: Hit) -> str:
    """The media item a hit stands for: its ``linked_to`` for a linked item, else its own id."""
    link = hit.metadata.get(LINK_KEY)
    return link if isinstance(link, str) and link else hit.id


def ingest_with_text(
    luma: Luma,
    extractor: TextExtractor | None,
    *,
    image: MediaPath | None = None,
    audio: MediaPath | None = None,
    video: MediaPath | None = None,
    caption: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    id: str | None = None,
) -> tuple[str, str | None]:
    """Ingest one media item and, when ``extractor`` finds words in it, its linked text item.

    Args:
        luma: An open store with an encoder.
        extractor: A transcriber (audio / video) or OCR reader (image); None: plain ingest.
        image, audio, video: The media file (exactly one).
        caption, metadata, id: As ``Luma.ingest`` takes them.

    Returns:
        ``(media_id, linked_id)``; ``linked_id`` is None when no words were found.
    """
    given: dict[str, Any] = {
        k: v for k, v in (("image", image), ("audio", audio), ("video", video)) if v
    }
    if len(given) != 1:
        raise InvalidInputError("pass exactly one of image=, audio=, video=")
    ((kind, path),) = given.items()
    saved = luma.enrichers.pop(kind, None)  # this call's extractor, not the store's
    try:
        media_id = luma.ingest(**given, caption=caption, metadata=metadata, id=id)
    finally:
        if saved is not None:
            luma.enrichers[kind] = saved
    if extractor is None:
        return media_id, None
    return media_id, add_linked_text(luma, media_id, path, kind, extractor, metadata or {})


def add_linked_text(
    luma: Luma,
    media_id: str,
    path: MediaPath,
    modality: str,
    extractor: TextExtractor,
    metadata: Mapping[str, Any],
) -> str | None:
    """Store the words ``extractor`` finds in ``path`` as the linked item of ``media_id``.

    Returns:
        The linked item's id, or None when no words were found (nothing is stored).
    """
    if modality not in _KINDS:
        raise InvalidInputError(f"no linked text for {modality!r} items; use {sorted(_KINDS)}")
    words = extractor.extract(path)
    if not words.strip():
        return None
    encoder = luma.encoder
    if encoder is None:
        raise InvalidInputError("the store has no encoder to embed the linked text")
    link_kind = _KINDS[modality]
    meta = {**metadata, LINK_KEY: media_id, "extractor": extractor.name}
    return luma.add_vectors(
        encoder.encode_text([words]),
        [meta],
        [f"{media_id}#{link_kind}"],
        modality=link_kind,
        texts=[words],
        sources=[os.fspath(path)],
    )[0]


@dataclass(frozen=True)
class FusedHit:
    """One media item in a fused ranking.

    Attributes:
        id: The media item's id (linked items are mapped to it).
        score: Its RRF score (higher is better; not a cosine).
        routes: Per route, the 1-based rank at which it (or its linked item) appeared.
        hit: The best-ranked :class:`~luma_rag.results.Hit` that stood for it.
    """

    id: str
    score: float
    routes: dict[str, int]
    hit: Hit


@dataclass(frozen=True)
class FusedResult:
    """The fused ranking and each route's own result (with its certificate)."""

    hits: list[FusedHit]
    routes: dict[str, QueryResult] = field(default_factory=dict)
    transcript: str | None = None

    @property
    def ids(self) -> list[str]:
        """Media ids, best first."""
        return [h.id for h in self.hits]


def fuse(routes: Mapping[str, QueryResult], k: int) -> list[FusedHit]:
    """Reciprocal-rank fusion of several rankings over media ids (linked items mapped)."""
    scores: dict[str, float] = {}
    seen: dict[str, dict[str, int]] = {}
    best: dict[str, tuple[int, Hit]] = {}
    for name, res in routes.items():
        rank = 0
        for hit in res.hits:
            pid = parent_id(hit)
            if name in seen.get(pid, {}):
                continue  # the item and its linked text in one route count once
            rank += 1
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (RRF_C + rank)
            seen.setdefault(pid, {})[name] = rank
            if pid not in best or rank < best[pid][0]:
                best[pid] = (rank, hit)
    order = sorted(scores, key=lambda p: (-scores[p], min(seen[p].values()), p))[:k]
    return [FusedHit(p, scores[p], seen[p], best[p][1]) for p in order]


def query_fused(
    luma: Luma,
    text: str | None = None,
    *,
    image: MediaPath | None = None,
    audio: MediaPath | None = None,
    video: MediaPath | None = None,
    transcriber: TextExtractor | None = None,
    k: int = 10,
    depth: int = 50,
    filters: Mapping[str, Any] | None = None,
) -> FusedResult:
    """Query every route the input has and fuse them over media items.

    Routes: ``"media"`` (the query as ``Luma.query`` takes it) and, for an audio / video query
    with a ``transcriber`` (default: the store's ``luma.enrichers`` for that modality),
    ``"transcript"`` (its words as a text query). Linked items found
    by either route count for their media item.

    Args:
        k: Fused hits to return. depth: Hits fetched per route before fusing (>= k).
    """
    if depth < k:
        raise InvalidInputError(f"depth ({depth}) must be >= k ({k})")
    fetch = max(depth, k) * 2  # an item and its linked text may both take a place
    routes = {
        "media": luma.query(text, image=image, audio=audio, video=video, k=fetch, filters=filters)
    }
    words = None
    spoken = audio if audio is not None else video
    if transcriber is None and spoken is not None:
        transcriber = luma.enrichers.get("audio" if audio is not None else "video")
    if spoken is not None and transcriber is not None:
        words = transcriber.extract(spoken)
        if words.strip():
            routes["transcript"] = luma.query(words, k=fetch, filters=filters)
    return FusedResult(fuse(routes, k), routes, words)
