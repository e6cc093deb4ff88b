"""Read linked evidence through its picture: one hit per group, the group's picture.

With ``GateConfig.link_key`` the demo's items come in groups (a picture, its caption stored
as text, its spoken caption share a ``doc_id``). A typed question ranks the group's *caption*
far above its picture (text against text), so most top hits are captions — and a model that
reads pictures only (the tiny LLaVA) can neither verify a caption nor answer from it, and an
answerer shown "the first image of the evidence" (:attr:`luma_rag.answer.base.Evidence.image`)
would be shown another group's picture. :func:`pictures_for_groups` closes that gap before
verification and answering: each group among the decision's evidence and hits is represented
**once**, by its picture / video, at the rank and score of its best-ranked member (so the
retrieval order of the groups is kept, and a verifier checks "does this picture show …?" on
the picture the caption describes). A group's picture is taken from the hits when it is
there, else found with the same query restricted to the group (``filters={link_key:
value}``: an exact lookup, no guess). Hits without a link, or of a group without a picture,
stay as they are; a represented group's picture no longer carries the link key in its
metadata (bookkeeping such as ``doc_id`` tells the user nothing in a clarifying question).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Final

from luma_rag.answer.base import VISUAL_MODALITIES
from luma_rag.answer.gate import GateDecision
from luma_rag.results import Hit, QueryResult

__all__ = ["pictures_for_groups"]

logger = logging.getLogger(__name__)

#: Most members of one group fetched to find its picture.
_GROUP_FETCH: Final = 10

Search = Callable[[dict[str, object], int], QueryResult]


def _visual(hit: Hit) -> bool:
    return hit.modality in VISUAL_MODALITIES and bool(hit.source)


def pictures_for_groups(
    decision: GateDecision, link_key: str | None, search: Search
) -> GateDecision:
    """``decision`` with each linked group in its evidence and hits shown once, by its picture.

    Args:
        decision: The gate's decision (NOT_IN_MEMORY is returned unchanged: nothing is read).
        link_key: The gate's ``GateConfig.link_key`` (None: nothing is linked; unchanged).
        search: Runs the same query restricted by a metadata filter with ``k`` hits, e.g.
            ``lambda f, k: luma.query(text, k=k, filters=f)``; called once per group whose
            picture is not among the hits.

    Returns:
        The decision with ``evidence`` and ``hits`` rewritten (module docstring) and
        ``k_used`` at most the number of evidence hits left (a WIDEN over a caption and its
        picture rests on one group); the same object when nothing changed.
    """
    if link_key is None or decision.decision == "not_in_memory" or not decision.hits:
        return decision
    pictures: dict[Hashable, Hit | None] = {}
    for hit in (*decision.evidence, *decision.hits):
        value = hit.metadata.get(link_key)
        if value is not None and _visual(hit) and value not in pictures:
            pictures[value] = hit
    for hit in (*decision.evidence, *decision.hits):
        value = hit.metadata.get(link_key)
        if value is not None and value not in pictures:
            members = search({link_key: value}, _GROUP_FETCH).hits
            pictures[value] = next((h for h in members if _visual(h)), None)
            if pictures[value] is None:
                logger.debug("app: group %r has no picture to show", value)
    evidence = _one_per_group(decision.evidence, link_key, pictures)
    hits = _one_per_group(decision.hits, link_key, pictures)
    if evidence == decision.evidence and hits == decision.hits:
        return decision
    k_used = min(decision.k_used, len(evidence)) if evidence else decision.k_used
    return dataclasses.replace(decision, evidence=evidence, hits=hits, k_used=k_used)


def _one_per_group(
    hits: Sequence[Hit], link_key: str, pictures: dict[Hashable, Hit | None]
) -> tuple[Hit, ...]:
    """``hits`` with each group's first member replaced by its picture, later members dropped."""
    out: list[Hit] = []
    seen: set[Hashable] = set()
    for hit in hits:
        value = hit.metadata.get(link_key)
        picture = None if value is None else pictures.get(value)
        if picture is None:
            out.append(hit)
            continue
        if value in seen:
            continue
        seen.add(value)
        # the link value is bookkeeping from here on: a clarifying question must not name it
        meta = {k: v for k, v in picture.metadata.items() if k != link_key}
        out.append(dataclasses.replace(picture, score=hit.score, rank=hit.rank, metadata=meta))
    return tuple(out)
