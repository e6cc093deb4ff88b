"""What every answerer shares: the protocol, the answer it returns, and its cited evidence."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from luma_rag.answer.clarify import describe_hit
from luma_rag.answer.gate import GateDecision
from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit

__all__ = ["Answer", "Answerer", "Citation", "Evidence", "StreamingAnswerer", "answer_all"]

#: Modalities whose ``Hit.source`` can be shown to a vision-language model as its image.
VISUAL_MODALITIES = ("image", "video")


@dataclass(frozen=True)
class Citation:
    """One piece of evidence an answer cites.

    Attributes:
        id: The item's id in the store.
        source: The media file it came from (None for text / vectors).
        text: Its caption / text / transcript (None when it has none).
        score: Exact cosine score of the item against the query.
        rank: 1-based position in the evidence: the number the answer cites it by (``[1]``).
        modality: ``"text"``, ``"image"``, ``"audio"``, ``"video"`` or ``"vector"``.
    """

    id: str
    source: str | None
    text: str | None
    score: float
    rank: int
    modality: str = "vector"

    @classmethod
    def from_hit(cls, hit: Hit, rank: int) -> Citation:
        """Cite ``hit`` as evidence number ``rank`` (1-based)."""
        return cls(hit.id, hit.source, hit.text, float(hit.score), rank, hit.modality)


@dataclass(frozen=True)
class Evidence:
    """The numbered evidence of a gate decision, and the one image a VLM is shown.

    Attributes:
        hits: The decision's evidence hits, best first.
        citations: One :class:`Citation` per hit, numbered from 1.
        image_index: Index into ``hits`` of the best image / video hit that has a source
            file (LLaVA-1.5 takes exactly one image), or None.
    """

    hits: tuple[Hit, ...]
    citations: tuple[Citation, ...]
    image_index: int | None

    @classmethod
    def from_decision(cls, decision: GateDecision) -> Evidence:
        """Number the decision's evidence and pick its image."""
        hits = tuple(decision.evidence)
        citations = tuple(Citation.from_hit(h, i + 1) for i, h in enumerate(hits))
        image_index = next(
            (i for i, h in enumerate(hits) if h.modality in VISUAL_MODALITIES and h.source),
            None,
        )
        return cls(hits, citations, image_index)

    @property
    def image(self) -> Hit | None:
        """The hit whose source is shown as the image, or None."""
        return None if self.image_index is None else self.hits[self.image_index]

    def describe(self, index: int) -> str:
        """``"a red circle on the left (image, score 0.830)"`` for evidence ``index`` (0-based)."""
        hit = self.hits[index]
        return f"{describe_hit(hit)} ({hit.modality}, score {hit.score:.3f})"

    def line(self, index: int) -> str:
        """``"[1] a red circle on the left (image, score 0.830)"`` for evidence ``index``."""
        return f"[{index + 1}] {self.describe(index)}"

    def lines(self) -> list[str]:
        """:meth:`line` for every hit, in order."""
        return [self.line(i) for i in range(len(self.hits))]


@dataclass(frozen=True)
class Answer:
    """An answer with the gate decision it rests on, its citations and its telemetry.

    Attributes:
        text: What to show the user (for CLARIFY: a clarifying question).
        decision: The :class:`~luma_rag.answer.gate.GateDecision` behind it.
        citations: The evidence, numbered as the text cites it.
        telemetry: JSON-friendly numbers: the gate's, plus the answerer's own (model,
            tokens, latency).
    """

    text: str
    decision: GateDecision
    citations: list[Citation]
    telemetry: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for an app's telemetry panel or document metadata)."""
        return {
            "text": self.text,
            "decision": self.decision.to_dict(),
            "citations": [dataclasses.asdict(c) for c in self.citations],
            "telemetry": {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.telemetry.items()
            },
        }


@runtime_checkable
class Answerer(Protocol):
    """Turns a question and a gate decision into an :class:`Answer`."""

    def answer(self, question: str, decision: GateDecision) -> Answer:
        """Answer ``question`` from ``decision``'s evidence (or ask to clarify)."""
        ...


def answer_all(answerer: Answerer, requests: Sequence[tuple[str, GateDecision]]) -> list[Answer]:
    """Answer every ``(question, decision)``; in batches when ``answerer`` has ``answer_many``.

    An answerer may offer ``answer_many(requests) -> list[Answer]`` (one answer per request,
    in order, each what ``answer`` would give); batching is then its business (e.g.
    :meth:`~luma_rag.answer.llava.LlavaAnswerer.answer_many`). Otherwise one call each.
    """
    many = getattr(answerer, "answer_many", None)
    if callable(many) and len(requests) > 1:
        out = list(many(list(requests)))
        if len(out) != len(requests):
            raise InvalidInputError(
                f"{type(answerer).__name__}.answer_many returned {len(out)} answers for "
                f"{len(requests)} requests; it must return one per request"
            )
        return out
    return [answerer.answer(q, d) for q, d in requests]


@runtime_checkable
class StreamingAnswerer(Answerer, Protocol):
    """An :class:`Answerer` that can also stream its text."""

    def stream(self, question: str, decision: GateDecision) -> Iterator[str]:
        """Yield the answer text in chunks; joined, they are the text :meth:`answer` returns.

        Whitespace at either end of the joined chunks may differ.
        """
        ...
