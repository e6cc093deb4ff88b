"""Show the answerer the picture of the group the gate answered from.

With ``GateConfig.link_key`` the gate answers from a *group* of linked items (the demo's
picture, its caption as text and its spoken caption share a ``doc_id``) and leads the
evidence with the group's picture — when that picture is among the hits it fetched. A text
question ranks the group's caption far above its picture (text against text), so the
picture is often not among the top ``k`` hits, and an answerer that is shown the first
image of the evidence (:attr:`luma_rag.answer.base.Evidence.image`) would be shown another
group's picture. :func:`lead_with_group_picture` closes that gap in the app: for an ANSWER
or WIDEN whose first evidence is not visual, it looks the group's picture / video up with
the same query restricted to the group (``filters={link_key: value}``: an exact score, no
guess) and puts it first in the evidence and the hits, so the answer, the verification and
the cited evidence all read the group's own picture.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Final

from luma_rag.answer.base import VISUAL_MODALITIES
from luma_rag.answer.gate import GateDecision
from luma_rag.results import QueryResult

__all__ = ["lead_with_group_picture"]

logger = logging.getLogger(__name__)

#: Most members of one group fetched to find its picture.
_GROUP_FETCH: Final = 10


def lead_with_group_picture(
    decision: GateDecision,
    link_key: str | None,
    search: Callable[[dict[str, object], int], QueryResult],
) -> GateDecision:
    """``decision`` with the top group's picture / video first in its evidence and hits.

    Args:
        decision: The gate's decision.
        link_key: The gate's ``GateConfig.link_key`` (None: nothing is linked; unchanged).
        search: Runs the same query restricted by a metadata filter with ``k`` hits, e.g.
            ``lambda f, k: luma.query(text, k=k, filters=f)``.

    Returns:
        The decision unchanged when it is not ANSWER / WIDEN, its first evidence is already
        visual, the first evidence has no ``link_key`` value, or the group has no picture;
        else the decision with the group's best visual item first (once) in ``evidence`` and
        ``hits``.
    """
    if link_key is None or decision.decision not in ("answer", "widen") or not decision.evidence:
        return decision
    top = decision.evidence[0]
    value = top.metadata.get(link_key)
    if top.modality in VISUAL_MODALITIES or value is None:
        return decision
    shown = next(
        (
            h
            for h in decision.evidence
            if h.modality in VISUAL_MODALITIES and h.metadata.get(link_key) == value
        ),
        None,
    )
    if shown is None:
        members = search({link_key: value}, _GROUP_FETCH).hits
        shown = next((h for h in members if h.modality in VISUAL_MODALITIES and h.source), None)
    if shown is None:
        logger.debug("app: group %r has no picture to show", value)
        return decision
    evidence = (shown, *(h for h in decision.evidence if h.id != shown.id))
    hits = (shown, *(h for h in decision.hits if h.id != shown.id))
    return dataclasses.replace(decision, evidence=evidence, hits=hits)
