"""The gate over linked items: answer from a certified group, show the group's picture.

With ``GateConfig.link_key`` set, items whose metadata share a value under that key are
renderings of one thing (the demo's picture and its spoken caption; the chunks of one
LlamaIndex document, ``ref_doc_id``; the pages of one LangChain ``source``). The item-level
decision (:func:`~luma_rag.answer.rules.decide`) treats them as rivals; :func:`linked_decision`
reads the same query at the level of groups:

* ANSWER (item Safe@1, which implies Group-Safe@1): the evidence is reordered so the top
  group comes first, its picture / video first (an answerer shown one image is shown the
  group's own picture, not a context hit's), then the other hits.
* WIDEN / CLARIFY: every certified candidate is fetched with its raw vector and
  :func:`~luma_rag.safety.groups.certify_groups` checks Group-Safe@1 with the result's own
  bounds (r = ρ + ε_q, e_i ≤ the largest item drift, the store's multiplier). Certified and
  complete at 1 → ANSWER from the group; else the decision stands, its clarifying options
  reduced to one per group, and the group's numbers are reported in ``GateNumbers``.
* NOT_IN_MEMORY is never overruled (the caller does not pass it here).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from luma_rag.answer.clarify import clarifying_question
from luma_rag.answer.decision import GateConfig, GateDecision
from luma_rag.results import Hit, QueryResult
from luma_rag.safety.groups import GroupCertificate, certify_groups, group_labels

if TYPE_CHECKING:
    from luma_rag.engine import Luma

__all__ = ["group_first", "linked_decision"]

logger = logging.getLogger(__name__)

_VISUAL = ("image", "video")


def group_first(hits: Sequence[Hit], labels: Sequence[Hashable], limit: int) -> tuple[Hit, ...]:
    """The top group's hits (visual first, then by rank), then the other hits, ``limit`` in all.

    Args:
        hits: Ranked hits, best first.
        labels: Their group labels (:func:`~luma_rag.safety.groups.group_labels`).
        limit: How many hits to return (at least 1).

    Returns:
        The reordered evidence.
    """
    if not hits:
        return ()
    top = labels[0]
    members = [h for h, g in zip(hits, labels, strict=True) if g == top]
    members.sort(key=lambda h: h.modality not in _VISUAL)  # stable: rank order within each
    others = [h for h, g in zip(hits, labels, strict=True) if g != top]
    return tuple([*members, *others][: max(1, limit)])


def _label_text(label: Hashable) -> str:
    kind, value = label if isinstance(label, tuple) else ("id", label)
    return f"{kind}:{value}"


def _with_group(base: GateDecision, cert: GroupCertificate, **changes: Any) -> GateDecision:
    numbers = dataclasses.replace(
        base.numbers,
        group_safe=cert.safe,
        group_margin=cert.margin,
        group_slack=cert.slack,
        group=None if cert.group is None else _label_text(cert.group),
    )
    return dataclasses.replace(base, numbers=numbers, **changes)


def linked_decision(
    decision: GateDecision,
    fetch: Callable[[int], QueryResult],
    luma: Luma,
    config: GateConfig,
) -> GateDecision:
    """Re-read ``decision`` over groups of linked items (see the module docstring).

    Args:
        decision: The item-level decision (ANSWER, WIDEN or CLARIFY).
        fetch: Runs the same query with ``k`` hits (as :class:`GatedRetriever` fetches).
        luma: The store (raw vectors of the candidates, the bounds' multiplier).
        config: The gate's settings; ``config.link_key`` is set.

    Returns:
        The decision, an ANSWER from a certified group, or the decision with its group
        numbers and one clarifying option per group.
    """
    key = config.link_key
    if key is None or not decision.hits:
        return decision
    if decision.decision == "answer":  # item Safe@1 ⇒ Group-Safe@1; lead with the group
        labels = group_labels(
            [h.id for h in decision.hits], [h.metadata for h in decision.hits], key
        )
        cert = certify_groups(
            [h.score for h in decision.hits], np.zeros(len(decision.hits)), labels
        )
        # item Safe@1's slack is a lower bound on the group's (the top item is the witness)
        cert = dataclasses.replace(cert, safe=True, slack=decision.numbers.slack, witness=0)
        return _with_group(decision, cert, evidence=group_first(decision.hits, labels, config.k))
    n = int(decision.numbers.n_candidates)
    result = fetch(max(n, len(decision.hits)))
    hits = result.hits
    if not hits or hits[0].id != decision.hits[0].id:  # the store changed in between
        logger.warning("gate: the group check ranks differently; keeping the item decision")
        return decision
    labels = group_labels([h.id for h in hits], [h.metadata for h in hits], key)
    cert = _certify(result, labels, luma)
    complete_at = max(
        int(result.telemetry.complete_at), len(hits) if result.telemetry.complete else 0
    )
    if cert.safe and complete_at >= 1:
        members = len(cert.members)
        reason = (
            f"Group-Safe@1 over items linked by {key!r}: the top group ({members} item"
            f"{'s' if members != 1 else ''}, {_label_text(cert.group)}) beats every other group "
            f"under the bounds (group margin {cert.margin:.4g}, slack {cert.slack:.4g}); which "
            f"of its items ranks first is not certified"
        )
        return _with_group(
            decision,
            cert,
            decision="answer",
            k_used=1,
            evidence=group_first(hits, labels, config.k),
            reason=reason,
            clarification=None,
            settled=True,
            requeried=True,
            hits=tuple(hits),
        )
    if decision.decision == "clarify":
        decision = _one_option_per_group(decision, key, config.max_options)
    return _with_group(decision, cert)


def _certify(result: QueryResult, labels: Sequence[Hashable], luma: Luma) -> GroupCertificate:
    """Group-Safe@1 of ``result`` with its own bounds and the candidates' raw vectors."""
    hits, cert, tel = result.hits, result.certificate, result.telemetry
    m = len(hits)
    tau = np.asarray(cert.tau, dtype=np.float64)
    scores = [h.score for h in hits]
    # unlisted candidates rank below the last hit: their perturbed score is at most that + τ
    ceiling = scores[-1] + float(tau[m:].max()) if cert.n > m else -math.inf
    stored = {d["id"]: d["vector"] for d in luma.get([h.id for h in hits])}
    if any(h.id not in stored for h in hits):  # deleted in between: the per-item test only
        vectors = None
    else:
        vectors = np.stack([np.asarray(stored[h.id], dtype=np.float32) for h in hits])
    return certify_groups(
        scores,
        tau[:m],
        labels,
        rival_ceiling=ceiling,
        vectors=vectors,
        r=float(tel.rho) + float(tel.epsilon),
        e=np.full(m, float(tel.epsilon_items)),
        multiplier=float(luma.config.safety.multiplier),
    )


def _one_option_per_group(decision: GateDecision, key: str, limit: int) -> GateDecision:
    """A CLARIFY whose options name each group once (its best visual item, else its best),
    asked without the link key (bookkeeping such as ``doc_id`` tells the user nothing)."""
    options = decision.evidence
    labels = group_labels([h.id for h in options], [h.metadata for h in options], key)
    chosen: dict[Hashable, Hit] = {}
    for h, g in zip(options, labels, strict=True):
        if g not in chosen or (chosen[g].modality not in _VISUAL and h.modality in _VISUAL):
            chosen[g] = h
    picked = tuple(list(chosen.values())[:limit]) if len(chosen) >= 2 else tuple(options)
    asked = [
        dataclasses.replace(h, metadata={k: v for k, v in h.metadata.items() if k != key})
        for h in picked
    ]
    return dataclasses.replace(decision, evidence=picked, clarification=clarifying_question(asked))
