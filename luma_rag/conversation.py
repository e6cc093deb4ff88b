"""Conversation memory: answered turns kept as retrievable items, cited when a question refers back.

Each answered turn (question, answer text, decision, citations, certificate) is stored as an
item of modality ``"turn"`` with its session id and time, through the public engine API, in a
store of its own beside the main one (``<store>/turns``), so turns never crowd the main store's
rankings or its certificates. A turn's vector is ``normalize(e(question) + v(top cited item))``,
``v`` the cited item's own stored vector (the question alone when nothing was cited): a
follow-up names what was asked or what was found, and the text→item direction is the one the
encoders are trained for. A follow-up is embedded with its cue phrases removed ("again",
"you found", ...): they say *that* it refers back, not *what* to.

When a question refers back ("show me the red circle **again**", "which one did you find
**before**?": :attr:`ConversationConfig.followup_cues`), the session's earlier turns are searched
and *the gate decides over them*, with the same Safe@k certificate (ρ of text queries): a
Safe@1 turn scoring at least ``min_score`` is the answer — cited as ``[1]`` with modality
``"turn"``, followed by the items that turn cited; several close turns → CLARIFY naming them.
Otherwise the question goes to the main store's gate as usual. Retention: turns older than
``window_s`` and, beyond ``max_turns``, the oldest are deleted after every new turn;
``enabled=False`` stores and recalls nothing.

Example:
    >>> chat = Conversation(luma, EvidenceAnswerer(), session="alice")
    >>> chat.ask("a red circle on the left").text
    >>> chat.ask("show me the red circle again").citations[0].modality
    'turn'
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from luma_rag._config import ConfigBase, check
from luma_rag.answer.base import Answer, Answerer, Citation
from luma_rag.answer.gate import GateConfig, GateDecision, GatedRetriever
from luma_rag.closing import ClosesOnExit
from luma_rag.config import LumaConfig
from luma_rag.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from luma_rag.engine import Luma

__all__ = ["TURNS_DIR", "TURN_MODALITY", "Conversation", "ConversationConfig", "TurnMemory"]

logger = logging.getLogger(__name__)

TURN_MODALITY: Final = "turn"
#: Directory inside the main store that holds the turn store.
TURNS_DIR: Final = "turns"
_DEFAULT_CUES: Final = (
    "again", "before", "earlier", "previous", "previously", "last time", "you said",
    "you showed", "you found", "you mentioned", "you answered", "that one", "same one",
)  # fmt: skip
#: Conversational words that carry no content; removed with the cues before a follow-up is embedded.
_DEFAULT_FILLER: Final = (
    "show me", "tell me", "which", "what", "was", "is", "were", "did", "do", "you", "i", "me",
    "find", "see", "show", "one", "it", "that", "please",
)  # fmt: skip


@dataclass(frozen=True)
class ConversationConfig(ConfigBase):
    """Settings of the conversation memory.

    Attributes:
        enabled: False: nothing is stored or recalled (every question goes to the main gate).
        window_s: Turns older than this many seconds are deleted (None: kept forever).
        max_turns: Most turns kept in the turn store, oldest deleted first (None: no budget).
        k_turns: Earlier turns the gate looks at for a follow-up.
        min_score: Least cosine between a follow-up and a turn for the turn to be evidence.
        followup_cues: Words / phrases that mark a question as referring back (lower case,
            matched on word boundaries).
        filler: Content-free conversational words removed, with the cues, from a follow-up
            before it is embedded ("which circle did you find before?" → "circle ?").
    """

    enabled: bool = True
    window_s: float | None = 7 * 24 * 3600.0
    max_turns: int | None = 10_000
    k_turns: int = 3
    min_score: float = 0.5
    followup_cues: tuple[str, ...] = _DEFAULT_CUES
    filler: tuple[str, ...] = _DEFAULT_FILLER

    def __post_init__(self) -> None:
        check(isinstance(self.enabled, bool), "enabled must be True or False")
        check(
            self.window_s is None or (isinstance(self.window_s, int | float) and self.window_s > 0),
            f"window_s must be > 0 seconds or None, got {self.window_s!r}",
        )
        check(
            self.max_turns is None or (isinstance(self.max_turns, int) and self.max_turns >= 1),
            f"max_turns must be an integer >= 1 or None, got {self.max_turns!r}",
        )
        check(
            isinstance(self.k_turns, int) and self.k_turns >= 1,
            f"k_turns must be >= 1, got {self.k_turns!r}",
        )
        check(
            isinstance(self.min_score, int | float) and -1.0 <= self.min_score <= 1.0,
            f"min_score must be a cosine in [-1, 1], got {self.min_score!r}",
        )
        cues = tuple(self.followup_cues)
        check(
            all(isinstance(c, str) and c.strip() for c in cues),
            "followup_cues must be non-empty strings",
        )
        object.__setattr__(self, "followup_cues", tuple(c.lower() for c in cues))
        filler = tuple(self.filler)
        check(all(isinstance(c, str) and c.strip() for c in filler), "filler must be strings")
        object.__setattr__(self, "filler", tuple(c.lower() for c in filler))

    @staticmethod
    def _pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
        ordered = sorted(phrases, key=len, reverse=True)  # longest phrase first
        return re.compile(r"\b(?:" + "|".join(re.escape(c) for c in ordered) + r")\b")

    def _cue_pattern(self) -> re.Pattern[str]:
        return self._pattern(self.followup_cues)

    def refers_back(self, question: str) -> bool:
        """Whether ``question`` contains one of the follow-up cues."""
        return self._cue_pattern().search(" ".join(question.lower().split())) is not None

    def strip_cues(self, question: str) -> str:
        """``question`` without its cue phrases and filler (itself when nothing is left)."""
        text = self._pattern(self.followup_cues + self.filler).sub(
            " ", " ".join(question.lower().split())
        )
        text = " ".join(text.split())
        return text if re.search(r"\w", text) else question


class TurnMemory(ClosesOnExit):
    """The turn store: remember, recall and forget answered turns (see the module docstring)."""

    def __init__(self, luma: Luma, config: ConversationConfig | None = None) -> None:
        """Open (or create) the turn store of ``luma`` (which needs an encoder)."""
        from luma_rag.engine import Luma

        self.luma = luma
        self.config = config if config is not None else ConversationConfig()
        if luma.encoder is None:
            raise ConfigError("conversation memory needs a store with an encoder (text turns)")
        self.store = Luma.open(Path(luma.path) / TURNS_DIR, LumaConfig(dim=luma.config.dim))

    def close(self) -> None:
        """Close the turn store (the main store stays open)."""
        self.store.close()

    def _embed(self, texts: list[str]) -> np.ndarray:
        encoder = self.luma.encoder
        if encoder is None:
            raise ConfigError("the main store lost its encoder; reattach one to embed turns")
        return np.asarray(encoder.encode_text(texts), dtype=np.float32)

    def remember(
        self, session: str, question: str, answer: Answer, *, now: float | None = None
    ) -> str | None:
        """Store one answered turn; apply retention. Returns its id (None when disabled)."""
        if not self.config.enabled:
            return None
        _check_session(session)
        when = time.time() if now is None else float(now)
        cites = [dataclasses.asdict(c) for c in answer.citations]
        vec = self._embed([question])[0].astype(np.float64)
        top = [c.id for c in answer.citations[:1] if c.modality != TURN_MODALITY]
        found = self.luma.get(top) if top else []
        if found:
            vec = vec + np.asarray(found[0]["vector"], dtype=np.float64)
        meta = {
            "session": session,
            "time": when,
            "question": question,
            "answer": answer.text,
            "decision": answer.decision.decision,
            "citations": [{k: _finite(v) for k, v in c.items()} for c in cites],
            "certificate": answer.decision.numbers.to_dict(),
        }
        turn_id = f"turn-{uuid.uuid4().hex}"
        text = f"Q: {question} A: {answer.text}"
        self.store.add_vectors(
            vec[None, :], [meta], [turn_id], modality=TURN_MODALITY, texts=[text]
        )
        self.apply_retention(now=when)
        return turn_id

    def apply_retention(self, *, now: float | None = None) -> int:
        """Delete turns past the time window, then the oldest beyond the budget; returns count."""
        cfg = self.config
        when = time.time() if now is None else float(now)
        doomed: list[str] = []
        if cfg.window_s is not None and len(self.store):
            old = {"time": {"$lt": when - float(cfg.window_s)}}
            doomed = self.store.ids(old, check_keys=False)
        if cfg.max_turns is not None:
            alive = [i for i in self.store.ids() if i not in set(doomed)]
            doomed += alive[: max(0, len(alive) - cfg.max_turns)]
        if doomed:
            self.store.delete(doomed)
            logger.debug("conversation memory: forgot %d turn(s)", len(doomed))
        return len(doomed)

    def recall(
        self, session: str, question: str, gate: GateConfig | None = None
    ) -> GateDecision | None:
        """The gate's decision over ``session``'s earlier turns for ``question`` (None: none).

        The certificate uses the main store's ρ for text queries.
        """
        if not self.config.enabled:
            return None
        _check_session(session)
        where = {"session": session}
        if not self.store.ids(where, check_keys=False):
            return None
        rho = self.luma.rho.get("text", self.luma.config.safety.rho)
        cfg = gate if gate is not None else GateConfig(k=self.config.k_turns)
        turns = GatedRetriever(self.store, cfg, record_gaps=False)
        q = self._embed([self.config.strip_cues(question)])[0]
        return turns.search(q, question=question, filters=where, rho=rho)

    def forget(self, session: str | None = None) -> int:
        """Delete every turn of ``session`` (None: of every session); returns the count."""
        ids = (
            self.store.ids({"session": session}, check_keys=False) if session else self.store.ids()
        )
        if ids:
            self.store.delete(ids)
        return len(ids)

    def turns(self, session: str) -> list[dict[str, Any]]:
        """The session's stored turns, oldest first (metadata dicts with their ``id``)."""
        ids = self.store.ids({"session": session}, check_keys=False)
        return [{"id": d["id"], **d["metadata"]} for d in self.store.get(ids)]


class Conversation(ClosesOnExit):
    """A session: questions answered by the gate, with earlier turns as citable evidence."""

    def __init__(
        self,
        luma: Luma,
        answerer: Answerer,
        *,
        session: str | None = None,
        gate: GateConfig | None = None,
        config: ConversationConfig | None = None,
        memory: TurnMemory | None = None,
    ) -> None:
        """Start (or resume, with the same ``session``) a conversation over ``luma``.

        Args:
            memory: A shared :class:`TurnMemory` (default: one of its own, closed by
                :meth:`close`).
        """
        self.luma = luma
        self.answerer = answerer
        self.session = session if session is not None else uuid.uuid4().hex
        _check_session(self.session)
        self.gate = gate if gate is not None else GateConfig()
        self._own_memory = memory is None
        self.memory = memory if memory is not None else TurnMemory(luma, config)

    def close(self) -> None:
        """Close the turn store if this conversation opened it."""
        if self._own_memory:
            self.memory.close()

    def ask(self, question: str, *, now: float | None = None) -> Answer:
        """Answer ``question`` (from an earlier turn when it refers back to one) and remember it.

        Returns:
            The :class:`~luma_rag.answer.Answer`; ``telemetry["source"]`` is ``"turn"`` when it
            came from earlier turns, else ``"store"``; ``telemetry["turn_id"]`` is the id this
            turn was stored under (None when memory is off).
        """
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError("question must be a non-empty string")
        cfg = self.memory.config
        answer: Answer | None = None
        if cfg.enabled and cfg.refers_back(question):
            decision = self.memory.recall(self.session, question)
            if (
                decision is not None
                and decision.evidence
                and decision.evidence[0].score >= cfg.min_score
            ):
                answer = self._from_turns(decision)
        if answer is None:
            decision = GatedRetriever(self.luma, self.gate).query(question)
            answer = self.answerer.answer(question, decision)
            answer = dataclasses.replace(answer, telemetry={**answer.telemetry, "source": "store"})
        turn_id = self.memory.remember(self.session, question, answer, now=now)
        return dataclasses.replace(answer, telemetry={**answer.telemetry, "turn_id": turn_id})

    def _from_turns(self, decision: GateDecision) -> Answer:
        """An answer whose evidence is earlier turns: ``[1]`` the turn, then what it cited."""
        tel = {**decision.numbers.to_dict(), "source": "turn", "decision": decision.decision}
        if decision.decision == "clarify":
            text = decision.clarification or "Which earlier answer do you mean?"
            cites = [Citation.from_hit(h, i + 1) for i, h in enumerate(decision.evidence)]
            return Answer(text, decision, cites, tel)
        turn = decision.evidence[0]
        meta = turn.metadata
        cites = [Citation.from_hit(turn, 1)]
        for c in meta.get("citations", []):
            if c.get("id") in self.luma:  # an item deleted since is not cited
                cites.append(
                    Citation(
                        c["id"],
                        c.get("source"),
                        c.get("text"),
                        _score(c),
                        len(cites) + 1,
                        c.get("modality", "vector"),
                    )
                )
        when = time.strftime("%H:%M:%S", time.localtime(float(meta.get("time", 0.0))))
        text = (
            f'Earlier in this conversation [1] ({when}) you asked "{meta.get("question")}"; '
            f"I answered: {meta.get('answer')}"
        )
        if len(cites) > 1:
            text += " Its evidence: " + "; ".join(
                f"[{c.rank}] {c.text or c.source or c.id}" for c in cites[1:]
            )
        return Answer(text, decision, cites, tel)


def _score(c: dict[str, Any]) -> float:
    value = c.get("score")
    return float(value) if isinstance(value, int | float) else math.nan


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _check_session(session: object) -> None:
    if not isinstance(session, str) or not session.strip():
        raise InvalidInputError("session must be a non-empty string, e.g. a user or chat id")
