"""Answers a person can read: never empty, cited inline, the gate's own words when it abstains.

:class:`ReadableAnswerer` wraps any :class:`~luma_rag.answer.base.Answerer` (a VLM, an LLM
chain, the evidence answerer) and fixes what its raw text can get wrong:

* **NOT_IN_MEMORY** — the inner answerer is not called at all: the text says nothing in
  memory answers the question, why, and asks for material or a rephrase; no citations.
* **CLARIFY** — the text is the gate's own clarifying question (which names the candidates),
  not a model's generic "which one do you mean?".
* **ANSWER / WIDEN** — an empty or punctuation-only reply falls back to the cited evidence,
  saying so ("I could not phrase an answer; the best evidence is [1] …"); a reply without
  inline citations gets them (``[1]`` for an ANSWER, ``[1]–[k]`` for a WIDEN).
* Internal node fields (``doc_id None``, ``ref_doc_id …``) never reach the text
  (:func:`clean_text`).

``Answer.telemetry["readable"]`` says what was changed.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from typing import Any, Final

from luma_rag.answer.base import Answer, Answerer, Evidence
from luma_rag.answer.gate import GateDecision
from luma_rag.errors import InvalidInputError

__all__ = [
    "ReadableAnswerer",
    "ReadableStreamingAnswerer",
    "clean_text",
    "not_in_memory_text",
    "readable",
]

logger = logging.getLogger(__name__)

_NODE_FIELDS: Final = re.compile(
    r"\b(?:doc_id|document_id|ref_doc_id|node_id|id_|embedding|excluded_\w+_keys)\s*[:=]?\s*"
    r"(?:None|null|'[^']*'|\"[^\"]*\"|[\w-]+)(?:\s*(?:,|and)\s*)?",
    re.IGNORECASE,
)
_CITATION: Final = re.compile(r"\[\d+\]")


def clean_text(text: str) -> str:
    """``text`` without internal node fields ("doc_id None and ref_doc_id None") and extra space."""
    out = _NODE_FIELDS.sub("", text)
    return re.sub(r"\s{2,}", " ", out).strip(" ,;")


def not_in_memory_text(decision: GateDecision) -> str:
    """What a NOT_IN_MEMORY answer says: nothing relevant, why, and what the user can do."""
    why = decision.reason.removeprefix("nothing in memory answers this:").strip()
    because = f" ({why})" if why and why != decision.reason.strip() else ""
    return (
        f"Nothing in memory answers this{because}. "
        "Could you add material about it, or rephrase the question?"
    )


def _has_words(text: str) -> bool:
    return any(c.isalnum() for c in _CITATION.sub("", text))


class ReadableAnswerer:
    """Wraps ``answerer`` so every reply is readable (module docstring).

    Args:
        answerer: Any object with ``answer(question, decision) -> Answer``.
    """

    def __init__(self, answerer: Answerer) -> None:
        if not callable(getattr(answerer, "answer", None)):
            raise InvalidInputError(f"answerer must have an answer() method, got {answerer!r}")
        self.answerer = answerer
        self.name = f"readable({getattr(answerer, 'name', type(answerer).__name__)})"

    def answer(self, question: str, decision: GateDecision) -> Answer:
        """Answer through the wrapped answerer, then make the text readable."""
        if decision.decision == "not_in_memory":
            text = not_in_memory_text(decision)
            telemetry: dict[str, Any] = {
                "answerer": self.name,
                "decision": "not_in_memory",
                "readable": "not_in_memory",
                **decision.numbers.to_dict(),
            }
            return Answer(text, decision, [], telemetry)
        raw = self.answerer.answer(question, decision)
        final = raw.decision  # a verifying answerer may have changed the decision
        text, change = clean_text(raw.text), "unchanged"
        if final.decision == "clarify":
            if final.clarification and final.clarification not in text:
                text, change = final.clarification, "gate_clarification"
        elif final.decision in ("answer", "widen"):
            evidence = Evidence.from_decision(final)
            if not _has_words(text):
                first = evidence.line(0) if evidence.hits else "nothing I can cite"
                text = f"I could not phrase an answer; the best evidence is {first}."
                change = "fallback_to_evidence"
            elif not _CITATION.search(text) and evidence.hits:
                text = f"{text.rstrip()} {_marks(final)}"
                change = "citations_added"
        telemetry = {**raw.telemetry, "readable": change}
        return dataclasses.replace(raw, text=text, telemetry=telemetry)


def _marks(decision: GateDecision) -> str:
    k = decision.k_used if decision.decision == "widen" else 1
    return "[1]" if k <= 1 else f"[1]–[{k}]"


class ReadableStreamingAnswerer(ReadableAnswerer):
    """:class:`ReadableAnswerer` over an answerer that streams: its pieces pass through
    (node fields removed), with the citation marks or the evidence fallback appended."""

    def stream(self, question: str, decision: GateDecision) -> Iterator[str]:
        """Yield the wrapped answerer's pieces, then whatever makes the whole readable."""
        if decision.decision in ("not_in_memory", "clarify"):
            yield self.answer(question, decision).text
            return
        pieces: list[str] = []
        for piece in self.answerer.stream(question, decision):  # type: ignore[attr-defined]
            piece = clean_text(piece) if _NODE_FIELDS.search(piece) else piece
            pieces.append(piece)
            yield piece
        text = "".join(pieces)
        evidence = Evidence.from_decision(decision)
        if not _has_words(text):
            first = evidence.line(0) if evidence.hits else "nothing I can cite"
            yield f"I could not phrase an answer; the best evidence is {first}."
        elif not _CITATION.search(text) and evidence.hits:
            yield f" {_marks(decision)}"


def readable(answerer: Answerer) -> ReadableAnswerer:
    """Wrap ``answerer`` (streaming when it streams); an already readable one is kept."""
    if isinstance(answerer, ReadableAnswerer):
        return answerer
    if callable(getattr(answerer, "stream", None)):
        return ReadableStreamingAnswerer(answerer)
    return ReadableAnswerer(answerer)
