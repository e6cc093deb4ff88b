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
* otherwise the answer of the top verified hit goes out, the decision keeping the gate's
  kind (ANSWER / WIDEN) with that hit moved to the front of the evidence.

With ``VerifyConfig.abstain_unreliable`` it also refuses to answer questions of a kind the
answerer reads unreliably (held-out accuracy below ``min_kind_accuracy``, e.g. *shape* for the
tiny LLaVA) → CLARIFY with the reason. CLARIFY decisions pass through unchanged. Every answer
the wrapper touches carries ``telemetry["verified"]`` (ids of the verified hits) and
``telemetry["verification"]`` (what was checked and why it ended as it did).

:class:`AttributeVerifier` is the verifier for LUMA-Shapes with a VQA answerer: it reads the
attributes the question's referent names (``Question.named`` or, from text, the referent of
the question template parsed with :func:`~luma_rag.datasets.captions.parse_query_attributes`),
asks the answerer about each one of a *reliable* kind on the hit's image, and verifies when
all answers match.

Nothing here imports torch; the wrappers call whatever answerer they are given.

Example:
    >>> llava = LlavaAnswerer("luma-tiny-llava", device="cpu", max_new_tokens=8)
    >>> bot = VerifyingAnswerer(llava, AttributeVerifier(llava), VerifyConfig(k_verify=10))
    >>> gate = GatedRetriever(luma, GateConfig(k=10))  # hits to verify: the top 10
    >>> ans = bot.answer("What color is the small circle?", gate.query("a small circle"))
    >>> ans.decision.decision, ans.telemetry["verified"]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from luma_rag._config import ConfigBase, check
from luma_rag.answer.base import VISUAL_MODALITIES, Answer, Answerer
from luma_rag.answer.clarify import clarifying_question, describe_hit, one_per_answer
from luma_rag.answer.gate import GateDecision, GateNumbers
from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.datasets.questions import QUESTION_KINDS, QUESTION_TEMPLATES, Question, parse_answer
from luma_rag.datasets.vocab import SHAPE_WORDS
from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit

__all__ = [
    "AttributeVerifier",
    "Verifier",
    "VerifyConfig",
    "VerifyingAnswerer",
    "answerer_kind_accuracy",
    "kind_accuracy_from_training",
    "parse_question",
]

logger = logging.getLogger(__name__)

#: ``verifier(question, hit)``: True when ``hit`` is what ``question`` refers to, False when
#: it is not, None when it cannot tell.
Verifier = Callable[[str, Hit], "bool | None"]

#: Attributes a referent can name that a question kind can check.
_CHECKABLE: Final = ("size", "color", "shape", "position", "count")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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

    Example:
        >>> VerifyConfig.from_json(VerifyConfig(k_verify=3).to_json())
        VerifyConfig(k_verify=3, abstain_unreliable=False, min_kind_accuracy=0.9, max_options=3)
    """

    k_verify: int = 10
    abstain_unreliable: bool = False
    min_kind_accuracy: float = 0.9
    max_options: int = 3

    def __post_init__(self) -> None:
        check(
            _is_int(self.k_verify) and self.k_verify >= 1,
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
            _is_int(self.max_options) and self.max_options >= 2,
            f"VerifyConfig.max_options must be an int >= 2, got {self.max_options!r}",
        )


# -- reading questions ------------------------------------------------------------------------


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{ref\}|\{be\}|\{Be\})", template)
    out = []
    for part in parts:
        if part == "{ref}":
            out.append(r"(?:the\s+)?(?P<ref>.+?)")
        elif part in ("{be}", "{Be}"):
            out.append(r"(?:is|are)")
        else:
            words = part.split(" ")
            out.append(
                r"\s+".join("(?:is|are)" if w in ("is", "are") else re.escape(w) for w in words)
            )
    return re.compile(r"^\s*" + "".join(out) + r"\s*$", re.IGNORECASE)


_TEMPLATES: Final = tuple(
    (kind, _template_regex(t)) for kind, ts in QUESTION_TEMPLATES.items() for t in ts
)


_ARE: Final = re.compile(r"\b(?:are|two|both|pair)\b", re.IGNORECASE)
#: Plural nouns a referent can use ("circles", "shapes", "five-pointed stars").
_PLURALS: Final = tuple(
    sorted(
        {p for pairs in SHAPE_WORDS.values() for _, p in pairs}
        | {"shapes", "objects", "figures", "things", "items"},
        key=len,
        reverse=True,
    )
)


def _plural(ref: str) -> bool:
    """Whether a referent's noun is plural."""
    text = " " + " ".join(re.findall(r"[a-z-]+", ref.lower())) + " "
    return any(f" {p} " in text for p in _PLURALS)


def parse_question(question: str | Question) -> tuple[str | None, dict[str, Any]]:
    """The kind a question asks and the attributes its referent names.

    A :class:`~luma_rag.datasets.questions.Question` gives its own ``kind`` and ``named``.
    A text is matched against the LUMA-Shapes question templates; the referent's attributes
    are read with :func:`~luma_rag.datasets.captions.parse_query_attributes` (a text matching
    no template: the kind is None and the whole text is parsed).

    Args:
        question: A question text or :class:`Question`.

    Returns:
        ``(kind or None, {attribute: canonical value})``; the asked kind is never named.

    Raises:
        InvalidInputError: ``question`` is neither a non-empty str nor a Question.

    Example:
        >>> parse_question("What color is the small circle on the left?")
        ('color', {'shape': 'circle', 'size': 'small', 'position': 'left', 'count': 1})
    """
    if isinstance(question, Question):
        return question.kind, {k: v for k, v in question.named.items() if k != question.kind}
    if not isinstance(question, str) or not question.strip():
        raise InvalidInputError(f"a question must be a non-empty str, got {question!r}")
    text = " ".join(question.split())
    for kind, pattern in _TEMPLATES:
        match = pattern.match(text)
        if match:
            ref = match.group("ref")
            named = parse_query_attributes(ref)
            if kind != "count" and "count" not in named:
                named["count"] = 2 if _plural(ref) or _ARE.search(text) else 1
            return kind, {k: v for k, v in named.items() if k in _CHECKABLE and k != kind}
    named = parse_query_attributes(text)
    return None, {k: v for k, v in named.items() if k in _CHECKABLE}


def kind_accuracy_from_training(
    path: str | os.PathLike[str], split: str = "val"
) -> dict[str, float]:
    """Per-kind held-out accuracy from a checkpoint's ``training.json``.

    Args:
        path: ``training.json`` or the checkpoint directory holding it.
        split: The metrics split to read (``"val"``: not the test split).

    Returns:
        ``{kind: accuracy}`` for every kind it reports.

    Raises:
        InvalidInputError: the file is missing, unreadable or has no such metrics.
    """
    file = Path(path)
    if file.is_dir():
        file = file / "training.json"
    try:
        metrics = json.loads(file.read_text(encoding="utf-8"))["metrics"][split]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidInputError(f"no {split!r} metrics in {file}: {e}") from e
    out: dict[str, float] = {
        kind: float(metrics[f"accuracy_{kind}"])
        for kind in QUESTION_KINDS
        if isinstance(metrics.get(f"accuracy_{kind}"), int | float)
    }
    if not out:
        raise InvalidInputError(f"{file} reports no per-kind accuracy for split {split!r}")
    return out


def answerer_kind_accuracy(answerer: object, split: str = "val") -> dict[str, float] | None:
    """Per-kind accuracy of a :class:`~luma_rag.answer.llava.LlavaAnswerer`'s checkpoint.

    Reads ``training.json`` beside the shipped tiny LLaVA or in a local model directory;
    None when the answerer has no such file (a Hugging Face model, a non-LLaVA answerer).
    """
    model_id = getattr(answerer, "model_id", None)
    if not isinstance(model_id, str):
        return None
    from luma_rag.answer.tiny_llava import TINY_LLAVA_DIR, TINY_LLAVA_MODEL

    folder = Path(TINY_LLAVA_DIR) if model_id == TINY_LLAVA_MODEL else Path(model_id)
    if not (folder / "training.json").is_file():
        return None
    try:
        return kind_accuracy_from_training(folder, split)
    except InvalidInputError as e:
        logger.warning("ignoring %s: %s", folder / "training.json", e)
        return None


# -- the attribute verifier -------------------------------------------------------------------


def _single(hit: Hit) -> GateDecision:
    """An ANSWER decision with ``hit`` alone as evidence (for reading one image)."""
    nan = math.nan
    numbers = GateNumbers(nan, nan, nan, nan, nan, nan, nan, nan, True, 1, True, 1, 1)
    return GateDecision("answer", 1, (hit,), "verification read", numbers, hits=(hit,))


class AttributeVerifier:
    """Verifies a LUMA-Shapes hit by asking a VQA answerer the referent's attributes.

    For each attribute the question's referent names (:func:`parse_question`) whose kind is
    reliable, the answerer is asked a plain question about the hit's image ("What color is
    the shape?"); the hit verifies when every answer matches, fails when one differs, and is
    undecided (None) when nothing reliable can be checked, the hit has no image, or an answer
    cannot be read. Reads are cached per (item, source, kind, number).

    Args:
        answerer: Answers a question about the top image of an ANSWER decision.
        reliable_kinds: Kinds whose answers are trusted; None: the kinds with held-out
            accuracy ``>= min_accuracy`` in ``kind_accuracy`` or, without it, in the
            answerer's ``training.json`` (:func:`answerer_kind_accuracy`); with neither,
            every kind (logged).
        kind_accuracy: Per-kind accuracy to pick reliable kinds from.
        min_accuracy: Accuracy a kind needs to be used, in ``[0, 1]``.

    Raises:
        InvalidInputError: an answerer without ``answer``, an unknown kind, a bad accuracy.
    """

    def __init__(
        self,
        answerer: Answerer,
        reliable_kinds: Collection[str] | None = None,
        *,
        kind_accuracy: Mapping[str, float] | None = None,
        min_accuracy: float = 0.9,
    ) -> None:
        if not callable(getattr(answerer, "answer", None)):
            raise InvalidInputError(f"answerer must have an answer() method, got {answerer!r}")
        if isinstance(min_accuracy, bool) or not isinstance(min_accuracy, int | float):
            raise InvalidInputError(f"min_accuracy must be a number, got {min_accuracy!r}")
        if not 0.0 <= min_accuracy <= 1.0:
            raise InvalidInputError(f"min_accuracy must be in [0, 1], got {min_accuracy!r}")
        self.answerer = answerer
        if reliable_kinds is None:
            acc = kind_accuracy if kind_accuracy is not None else answerer_kind_accuracy(answerer)
            if acc is None:
                logger.warning("no per-kind accuracy for %r: trusting every kind", answerer)
                reliable_kinds = QUESTION_KINDS
            else:
                reliable_kinds = [k for k in QUESTION_KINDS if acc.get(k, 0.0) >= min_accuracy]
        if isinstance(reliable_kinds, str):
            raise InvalidInputError("reliable_kinds must be a collection of kinds, not a str")
        unknown = set(reliable_kinds) - set(QUESTION_KINDS)
        if unknown:
            raise InvalidInputError(
                f"unknown question kinds {sorted(unknown)}; use {QUESTION_KINDS}"
            )
        self.reliable_kinds: tuple[str, ...] = tuple(
            k for k in QUESTION_KINDS if k in reliable_kinds
        )
        self._cache: dict[tuple[str, str, str, bool], Any] = {}
        self.reads = 0

    def read(self, hit: Hit, kind: str, *, plural: bool = False) -> Any:
        """The answerer's value of ``kind`` for ``hit``'s image (None: unreadable / no image)."""
        if kind not in QUESTION_KINDS:
            raise InvalidInputError(f"unknown question kind {kind!r}; use one of {QUESTION_KINDS}")
        if hit.modality not in VISUAL_MODALITIES or not hit.source:
            return None
        plural = plural or kind == "count"
        key = (hit.id, hit.source, kind, plural)
        if key not in self._cache:
            template = QUESTION_TEMPLATES[kind][0]
            be = "are" if plural else "is"
            text = template.format(ref="shapes" if plural else "shape", be=be, Be=be.capitalize())
            self.reads += 1
            answer = self.answerer.answer(text, _single(hit))
            self._cache[key] = parse_answer(answer.text, kind)
        return self._cache[key]

    def checks(self, question: str | Question) -> dict[str, Any]:
        """The named attributes of ``question`` this verifier checks (reliable kinds only)."""
        _, named = parse_question(question)
        return {k: v for k, v in named.items() if k in self.reliable_kinds}

    def __call__(self, question: str | Question, hit: Hit) -> bool | None:
        """Whether ``hit`` shows what ``question`` refers to; None when it cannot tell."""
        if not isinstance(hit, Hit):
            raise InvalidInputError(f"hit must be a Hit, got {type(hit).__name__}")
        _, named = parse_question(question)
        wanted = {k: v for k, v in named.items() if k in self.reliable_kinds}
        if not wanted:
            return None
        plural = named.get("count") == 2
        unknown = False
        for kind, value in wanted.items():
            seen = self.read(hit, kind, plural=plural)
            if seen is None:
                unknown = True
            elif seen != value:
                return False
        return None if unknown else True


# -- the verifying answerer -------------------------------------------------------------------


def _answer_from(decision: GateDecision, hit: Hit) -> GateDecision:
    """An ANSWER decision with ``hit`` as the top evidence, the rest as context."""
    rest = tuple(h for h in decision.evidence if h.id != hit.id)
    return dataclasses.replace(
        decision, decision="answer", k_used=1, evidence=(hit, *rest), clarification=None
    )


def _normalise(text: str, kind: str | None) -> str | None:
    if kind is not None:
        value = parse_answer(text, kind)
        return None if value is None else str(value)
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(words) or None


class VerifyingAnswerer:
    """An :class:`~luma_rag.answer.base.Answerer` that answers only from verified evidence.

    See the module docstring for the rules.

    Args:
        answerer: Answers the question from each verified hit, and every final decision.
        verifier: ``verifier(question, hit) -> bool | None``, e.g. an
            :class:`AttributeVerifier`.
        config: Settings (default :class:`VerifyConfig`).
        kind_accuracy: Per-kind accuracy of ``answerer`` for abstention; None: read from the
            answerer's checkpoint (:func:`answerer_kind_accuracy`) when abstention is on.
        kind_of: Maps a question to its kind (None: unknown, answers compared as text);
            default the LUMA-Shapes templates (:func:`parse_question`).

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
        self.kind_of = kind_of if kind_of is not None else (lambda q: parse_question(q)[0])
        if kind_accuracy is None and self.config.abstain_unreliable:
            kind_accuracy = answerer_kind_accuracy(answerer)
            if kind_accuracy is None:
                raise InvalidInputError(
                    "VerifyConfig.abstain_unreliable needs the answerer's per-kind accuracy: "
                    "pass kind_accuracy= (e.g. kind_accuracy_from_training(checkpoint_dir))"
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
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError(f"question must be a non-empty str, got {question!r}")
        if not isinstance(decision, GateDecision):
            raise InvalidInputError(f"decision must be a GateDecision, got {decision!r}")
        if decision.decision == "clarify":
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
            return self._clarify(question, decision, top, reason, info, [], question_back)

        pool = _pool(decision, cfg.k_verify)
        verdicts = {h.id: self.verifier(question, h) for h in pool}
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
            return self._clarify(question, decision, options, reason, info, ids)

        answers: dict[str, Answer] = {}
        values: dict[str, str | None] = {}
        for hit in verified:
            answers[hit.id] = self.answerer.answer(question, _answer_from(decision, hit))
            values[hit.id] = _normalise(answers[hit.id].text, kind)
        info["answers"] = values
        distinct = set(values.values())
        if len(distinct) == 1 and None not in distinct:
            best = verified[0]
            info["outcome"] = "answered"
            info["answered_from"] = best.id
            rest = tuple(h for h in decision.evidence if h.id != best.id)
            reason = (
                f"{decision.reason}; verified {len(verified)} of the top {len(pool)} hits, "
                f"all answer {next(iter(distinct))!r}"
            )
            final = dataclasses.replace(decision, evidence=(best, *rest), reason=reason)
            out = answers[best.id]
            telemetry = {**out.telemetry, "verified": ids, "verification": info}
            return dataclasses.replace(out, decision=final, telemetry=telemetry)
        info["outcome"] = "ambiguous"
        options = one_per_answer(verified, values, cfg.max_options)
        shown = sorted(str(v) for v in distinct)
        reason = (
            f"verification: {len(verified)} verified items fit the question and their answers "
            f"differ ({shown})"
        )
        return self._clarify(question, decision, options, reason, info, ids)

    def _clarify(
        self,
        question: str,
        decision: GateDecision,
        options: Sequence[Hit],
        reason: str,
        info: dict[str, Any],
        verified: list[str],
        clarification: str | None = None,
    ) -> Answer:
        logger.debug("%s; %s → clarify", reason, decision.decision)
        clar = dataclasses.replace(
            decision,
            decision="clarify",
            k_used=0,
            evidence=tuple(options),
            reason=reason,
            clarification=clarification or clarifying_question(list(options)),
        )
        out = self.answerer.answer(question, clar)
        telemetry = {**out.telemetry, "verified": verified, "verification": info}
        return dataclasses.replace(out, telemetry=telemetry)


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
