"""What the chat app's operations return: :class:`ChatReply`, :class:`IngestReport`,
:class:`MemoryView` (plain data, no UI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luma_rag.answer import Answer

__all__ = ["ChatReply", "IngestReport", "MemoryView", "Upload"]


@dataclass(frozen=True)
class ChatReply:
    """One answered query.

    Attributes:
        question: What was asked (for a media query without text, a default question).
        query_kind: ``"text"``, ``"image"`` or ``"audio"``.
        answer: The answerer's :class:`~luma_rag.answer.Answer` (text, decision, citations).
        telemetry: The panel's numbers: ``margin_top2`` (γ), ``delta_k`` (δ_k), ``epsilon``
            (ε_q), ``epsilon_items`` (ε_i), ``zeta_mean`` / ``zeta_max`` (ζ), ``rho`` (ρ),
            ``safe1``, ``safe_k`` (smallest certified k′, None when none), ``complete``,
            ``n_candidates``, ``k_used``, ``latency_ms`` (retrieval + gate + answer) and
            ``answer_ms`` (the answerer alone). Undefined numbers are None.
        visual: ``(path, caption)`` of cited image / video evidence that has a file.
        audio: ``(path, caption)`` of cited audio evidence that has a file.
    """

    question: str
    query_kind: str
    answer: Answer
    telemetry: dict[str, Any]
    visual: list[tuple[str, str]] = field(default_factory=list)
    audio: list[tuple[str, str]] = field(default_factory=list)

    @property
    def decision(self) -> str:
        """``"answer"``, ``"widen"``, ``"clarify"`` or ``"not_in_memory"``."""
        return self.answer.decision.decision


@dataclass(frozen=True)
class IngestReport:
    """What one ingest call stored.

    Attributes:
        ids: Ids of the new items, in upload order.
        labels: One line per item: ``"image shapes.png"``, ``"text (42 chars)"``.
        seconds: Wall time of the call.
    """

    ids: list[str]
    labels: list[str]
    seconds: float

    @property
    def message(self) -> str:
        """A one-line summary for the status box."""
        n = len(self.ids)
        return f"Stored {n} item{'s' * (n != 1)} in {self.seconds:.1f} s: " + "; ".join(self.labels)


@dataclass(frozen=True)
class MemoryView:
    """The memory's state for the Memory tab.

    Attributes:
        stats: ``Luma.stats()``: ``hot``, ``warm``, ``hot_budget``, ``total``, bytes per tier,
            ``bridge_version``, ``bridge_epsilon``, ...
        epsilon_history: One dict per bridge refresh: ``version``, ``pairs_seen``,
            ``epsilon``, ``time``, ``initial`` (empty without a bridge).
        gaps: Recent knowledge gaps, newest first: ``time`` (ISO, UTC), ``query``,
            ``clarification``, ``reason``.
        has_bridge: Whether the store has a CLAP→CLIP bridge (audio).
    """

    stats: dict[str, Any]
    epsilon_history: list[dict[str, Any]]
    gaps: list[dict[str, Any]]
    has_bridge: bool


@dataclass(frozen=True)
class Upload:
    """One validated upload: what it is, its label, and its text or file."""

    kind: str  # text | image | audio | video
    label: str
    text: str | None = None
    path: Path | None = None
    name: str = ""
