"""Verified answering: check that the evidence is what the question refers to before answering.

Safe@1 certifies that a ranking is *stable*, not that its top item is the one the question
means: a small encoder can rank a wrong item first, stably, and two items can both fit the
referent ("the small pink star" twice, at different places). :class:`VerifyingAnswerer` wraps
any :class:`~luma_rag.answer.base.Answerer` and, for an ANSWER or a WIDEN, checks the evidence
first with a pluggable *verifier* ``verifier(question, hit) -> bool | None`` (does ``hit``
show what the question refers to? ``None``: cannot tell):

* the top ``k_verify`` of the decision's hits are verified (fetch the result at least that
  deep: a second item that fits the referent can only be seen if it is among them); with
  none verified the decision becomes CLARIFY;
* every verified hit is asked the question (as the top evidence of an ANSWER); when their
  normalised answers differ (or one cannot be read) the question is ambiguous → CLARIFY over
  the verified items that disagree, with :func:`~luma_rag.answer.clarify.clarifying_question`;
* when they agree: an ANSWER stays an ANSWER only if its certified top-1 is verified (the
  answer comes from it); otherwise — the top-1 not verified, or the gate's decision a WIDEN —
  the outcome is a **WIDEN over the verified hits only**, answered from the best of them.

With ``VerifyConfig.abstain_unreliable`` it also refuses to answer questions of a kind the
answerer reads unreliably (held-out accuracy below ``min_kind_accuracy``) → CLARIFY with the
reason. NOT_IN_MEMORY passes through unchanged, and so does CLARIFY unless
``VerifyConfig.rescue_clarify`` (then verified hits that agree make a WIDEN over them). Every
answer the wrapper touches carries ``telemetry["verified"]`` (ids of the verified hits) and
``telemetry["verification"]`` (what was checked and why it ended as it did).

What a question *asks* (its kind) and how two answers are compared come from the verifier
when it knows its question grammar (``verifier.kind_of(question)``,
``verifier.normalise(text, kind)``, ``verifier.kind_accuracy``), else from ``kind_of=`` /
plain text comparison. The LUMA-Shapes verifier,
:class:`luma_rag.datasets.verifier.AttributeVerifier`, lives beside its dataset.

Nothing here imports torch; the wrappers call whatever answerer they are given.

Example:
    >>> from luma_rag.datasets.verifier import AttributeVerifier
    >>> llava = LlavaAnswerer("luma-tiny-llava", device="cpu", max_new_tokens=16)
    >>> bot = VerifyingAnswerer(llava, AttributeVerifier(llava), VerifyConfig(k_verify=10))
    >>> gate = GatedRetriever(luma, GateConfig(k=10))  # hits to verify: the top 10
    >>> ans = bot.answer("What color is the small circle?", gate.query("a small circle"))
    >>> ans.decision.decision, ans.telemetry["verified"]
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from luma_rag._checks import is_int
from luma_rag._config import ConfigBase, check
from luma_rag.answer.base import Answer, Answerer, answer_all
from luma_rag.answer.clarify import describe_hit, one_per_answer
from luma_rag.answer.gate import GateDecision
from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit

__all__ = ["Verifier", "VerifyConfig", "VerifyingAnswerer", "normalise_text"]

logger = logging.getLogger(__name__)

#: ``verifier(question, hit)``: True when ``hit`` is what ``question`` refers to, False when
#: it is not, None when it cannot tell.
Verifier = Callable[[str, Hit], "bool | None"]


@dataclass(frozen=True)
class VerifyConfig(ConfigBase):
    """Settings of :class:`VerifyingAnswerer`.

    Attributes:
        k_verify: How many of the decision's top hits are verified; ``>= 1``.
        abstain_unreliable: CLARIFY (do not answer) questions of a kind the answerer reads
            with held-out accuracy below ``min_kind_accuracy``.
        min_kind_accuracy: Accuracy a question kind needs to be answered (with
            ``abstain_unreliable``), in ``[0, 1]``.
        max_options: Most items a clarifying question names; ``>= 2``.
        rescue_clarify: Also verify the hits of a gate CLARIFY (an unstable ranking): when
            the verified hits agree, the outcome is a WIDEN over them. Off by default: the
            gate's ANSWER / WIDEN then always rest on a certificate as well.

    Example:
        >>> VerifyConfig.from_json(VerifyConfig(k_verify=3).to_json())  # doctest: +ELLIPSIS
        VerifyConfig(k_verify=3, abstain_unreliable=False, ..., rescue_clarify=False)
    """

    k_verify: int = 10
    abstain_unreliable: bool = False
    min_kind_accuracy: float = 0.9
    max_options: int = 3
    rescue_clarify: bool = False

    def __post_init__(self) -> None:
        check(
            is_int(self.k_verify) and self.k_verify >= 1,
            f"VerifyConfig.k_verify must be an int >= 1, got {self.k_verify!r}",
        )
        check(
            isinstance(self.abstain_unreliable, bool),
            f"VerifyConfig.abstain_unreliable must be a bool, got {self.abstain_unreliable!r}",
        )
        check(
            isinstance(self.min_kind_accuracy, int | float)
            and not isinstance(self.min_kind_accuracy, bool)
            and 0.0 <= self.min_kind_accuracy <= 1.0,
            f"VerifyConfig.min_kind_accuracy must be in [0, 1], got {self.min_kind_accuracy!r}",
        )
        object.__setattr__(self, "min_kind_accuracy", float(self.min_kind_accuracy))
        check(
            is_int(self.max_options) and self.max_options >= 2,
            f"VerifyConfig.max_options must be an int >= 2, got {self.max_options!r}",
        )
        check(
            isinstance(self.rescue_clarify, bool),
            f"VerifyConfig.rescue_clarify must be a bool, got {self.rescue_clarify!r}",
        )


# -- the verifying answerer -------------------------------------------------------------------


def _answer_from(decision: GateDecision, hit: Hit) -> GateDecision:
    """An ANSWER decision with ``hit`` as the top evidence, the rest as context."""
    rest = tuple(h for h in decision.evidence if h.id != hit.id)
    return dataclasses.replace(
        decision, decision="answer", k_used=1, evidence=(hit, *rest), clarification=None
    )


def normalise_text(text: str, kind: str | None = None) -> str | None:
    """An answer as lower-case words without punctuation (None when empty); ``kind`` unused."""
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(words) or None


class VerifyingAnswerer:
    """An :class:`~luma_rag.answer.base.Answerer` that answers only from verified evidence.

    See the module docstring for the rules.

    Args:
        answerer: Answers the question from each verified hit, and every final decision.
        verifier: ``verifier(question, hit) -> bool | None``, e.g. a
            :class:`luma_rag.datasets.verifier.AttributeVerifier`.
        config: Settings (default :class:`VerifyConfig`).
        kind_accuracy: Per-kind accuracy of ``answerer`` for abstention; None: the
            verifier's ``kind_accuracy`` (if it has one) when abstention is on.
        kind_of: Maps a question to its kind (None: unknown); default the verifier's
            ``kind_of`` when it has one, else every kind is unknown.
        normalise: ``normalise(answer_text, kind)`` to compare answers; default the
            verifier's ``normalise`` when it has one, else :func:`normalise_text`.

    Raises:
        InvalidInputError: a bad answerer or verifier, or abstention without accuracies.

    Example:
        >>> bot = VerifyingAnswerer(llava, AttributeVerifier(llava))
        >>> ans = bot.answer("What color is the small circle?", gate.query("a small circle"))
        >>> ans.decision.decision, ans.telemetry["verified"]
    """

    def __init__(
        self,
        answerer: Answerer,
        verifier: Verifier,
        config: VerifyConfig | None = None,
        *,
        kind_accuracy: Mapping[str, float] | None = None,
        kind_of: Callable[[str], str | None] | None = None,
        normalise: Callable[[str, str | None], str | None] | None = None,
    ) -> None:
        if not callable(getattr(answerer, "answer", None)):
            raise InvalidInputError(f"answerer must have an answer() method, got {answerer!r}")
        if not callable(verifier):
            raise InvalidInputError(f"verifier must be callable, got {verifier!r}")
        if config is not None and not isinstance(config, VerifyConfig):
            raise InvalidInputError(f"config must be a VerifyConfig, got {config!r}")
        self.answerer = answerer
        self.verifier = verifier
        self.config = config if config is not None else VerifyConfig()
        self.kind_of: Callable[[str], str | None] = (
            kind_of or getattr(verifier, "kind_of", None) or (lambda question: None)
        )
        self.normalise: Callable[[str, str | None], str | None] = (
            normalise or getattr(verifier, "normalise", None) or normalise_text
        )
        if kind_accuracy is None and self.config.abstain_unreliable:
            kind_accuracy = getattr(verifier, "kind_accuracy", None)
            if kind_accuracy is None:
                raise InvalidInputError(
                    "VerifyConfig.abstain_unreliable needs the answerer's per-kind accuracy: "
                    "pass kind_accuracy= (e.g. luma_rag.datasets.verifier."
                    "kind_accuracy_from_training(checkpoint_dir))"
                )
        self.kind_accuracy = dict(kind_accuracy) if kind_accuracy is not None else None

    def unreliable(self, kind: str | None) -> bool:
        """Whether questions of ``kind`` are refused (abstention on, accuracy below the bar)."""
        if not self.config.abstain_unreliable or kind is None or self.kind_accuracy is None:
            return False
        return self.kind_accuracy.get(kind, 0.0) < self.config.min_kind_accuracy

    def answer(self, question: str, decision: GateDecision) -> Answer:
        """Answer ``question`` from ``decision`` if its evidence verifies and agrees.

        Raises:
            InvalidInputError: an empty question or a decision that is not a GateDecision.
        """
        _check_request(question, decision)
        if decision.decision == "not_in_memory" or (
            decision.decision == "clarify" and not self.config.rescue_clarify
        ):
            return self.answerer.answer(question, decision)
        cfg = self.config
        kind = self.kind_of(question)
        info: dict[str, Any] = {"gate_decision": decision.decision, "kind": kind}
        if self.unreliable(kind):
            acc = (self.kind_accuracy or {}).get(str(kind), 0.0)
            info["outcome"] = "abstained"
            reason = (
                f"verification: the answerer reads {kind} questions unreliably (held-out "
                f"accuracy {acc:.2f} < {cfg.min_kind_accuracy:.2f}); not answering"
            )
            top = decision.evidence[:1]
            what = describe_hit(top[0]) if top else "what I found"
            question_back = (
                f"I cannot reliably tell the {kind} from the image of {what}; could you ask "
                "about another detail (its colour, size, position or count)?"
            )
            return _clarify(self.answerer, question, decision, top, reason, info, [], question_back)

        pool = _pool(decision, cfg.k_verify)
        verdicts = dict(zip([h.id for h in pool], self._verify(question, pool), strict=True))
        verified = [h for h in pool if verdicts[h.id] is True]
        info.update(
            checked=[h.id for h in pool],
            rejected=[h.id for h in pool if verdicts[h.id] is False],
            undecided=[h.id for h in pool if verdicts[h.id] is None],
        )
        ids = [h.id for h in verified]
        if not verified:
            info["outcome"] = "unverified"
            options = tuple(h for h in pool if verdicts[h.id] is None)[: cfg.max_options]
            options = options or tuple(pool[: cfg.max_options])
            reason = (
                f"verification: none of the top {len(pool)} hits shows what the question refers to"
            )
            return _clarify(self.answerer, question, decision, options, reason, info, ids)

        requests = [(question, _answer_from(decision, hit)) for hit in verified]
        answers = dict(zip(ids, answer_all(self.answerer, requests), strict=True))
        values = {i: self.normalise(answers[i].text, kind) for i in ids}
        info["answers"] = values
        distinct = set(values.values())
        if len(distinct) == 1 and None not in distinct:
            said = next(iter(distinct))
            lead = decision.evidence[0] if decision.evidence else None
            if decision.decision == "answer" and lead is not None and lead.id == ids[0]:
                info["outcome"] = "answered"
                reason = (
                    f"{decision.reason}; the top hit is verified ({len(verified)} of the top "
                    f"{len(pool)} verified, all answer {said!r})"
                )
                final = dataclasses.replace(_answer_from(decision, lead), reason=reason)
            else:
                info["outcome"] = "widened"
                not_top = "" if lead is None or lead.id in ids else ", not the top hit"
                reason = (
                    f"verification: {len(verified)} of the top {len(pool)} hits show what the "
                    f"question refers to{not_top}, and all answer {said!r} (gate: "
                    f"{decision.decision}); answering from the verified hits only"
                )
                final = _widened(decision, verified, reason)
            info["answered_from"] = final.evidence[0].id
            return _recorded(answers[final.evidence[0].id], ids, info, final)
        info["outcome"] = "ambiguous"
        options = one_per_answer(verified, values, cfg.max_options)
        shown = sorted(str(v) for v in distinct)
        reason = (
            f"verification: {len(verified)} verified items fit the question and their answers "
            f"differ ({shown})"
        )
        return _clarify(self.answerer, question, decision, options, reason, info, ids)

    def _verify(self, question: str, pool: Sequence[Hit]) -> list[bool | None]:
        """The verifier's verdict per hit (in one batch when it offers ``many``)."""
        many = getattr(self.verifier, "many", None)
        if callable(many):
            out = list(many(question, list(pool)))
            if len(out) != len(pool):
                raise InvalidInputError(
                    f"verifier.many returned {len(out)} verdicts for {len(pool)} hits"
                )
            return out
        return [self.verifier(question, h) for h in pool]


def _clarify(
    answerer: Answerer,
    question: str,
    decision: GateDecision,
    options: Sequence[Hit],
    reason: str,
    info: dict[str, Any],
    verified: list[str],
    clarification: str | None = None,
) -> Answer:
    """``answerer``'s reply to ``decision`` turned CLARIFY over ``options``, with the
    verification record (``verified`` ids, ``info``) in its telemetry."""
    logger.debug("%s; %s → clarify", reason, decision.decision)
    out = answerer.answer(question, decision.as_clarify(options, reason, clarification))
    return _recorded(out, verified, info)


def _check_request(question: object, decision: object) -> None:
    """The input checks every verifying answerer's ``answer`` starts with.

    Raises:
        InvalidInputError: an empty question or a decision that is not a GateDecision.
    """
    if not isinstance(question, str) or not question.strip():
        raise InvalidInputError(f"question must be a non-empty str, got {question!r}")
    if not isinstance(decision, GateDecision):
        raise InvalidInputError(f"decision must be a GateDecision, got {decision!r}")


def _recorded(
    out: Answer, verified: list[str], info: dict[str, Any], final: GateDecision | None = None
) -> Answer:
    """``out`` with the verification record (``verified`` ids, ``info``) in its telemetry
    and, when given, ``final`` as its decision."""
    telemetry = {**out.telemetry, "verified": verified, "verification": info}
    if final is None:
        return dataclasses.replace(out, telemetry=telemetry)
    return dataclasses.replace(out, decision=final, telemetry=telemetry)


def _widened(decision: GateDecision, evidence: Sequence[Hit], reason: str) -> GateDecision:
    """``decision`` turned WIDEN over ``evidence`` (first = the hit answered from)."""
    return dataclasses.replace(
        decision,
        decision="widen",
        k_used=len(evidence),
        evidence=tuple(evidence),
        reason=reason,
        clarification=None,
    )


def _pool(decision: GateDecision, k: int) -> list[Hit]:
    """The top ``k`` hits, best first: the decision's evidence first, then its other hits."""
    pool: list[Hit] = []
    for hit in (*decision.evidence, *decision.hits):
        if len(pool) >= k:
            break
        if all(hit.id != p.id for p in pool):
            pool.append(hit)
    pool.sort(key=lambda h: -h.score)
    return pool
