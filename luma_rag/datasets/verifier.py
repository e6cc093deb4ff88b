"""The LUMA-Shapes evidence verifier: read the referent's attributes back with a VQA answerer.

:class:`AttributeVerifier` is the verifier of
:class:`~luma_rag.answer.verify.VerifyingAnswerer` for LUMA-Shapes with a VQA answerer: it
reads the attributes the question's referent names (``Question.named`` or, from text, the
referent of the question template parsed with
:func:`~luma_rag.datasets.captions.parse_query_attributes`), asks the answerer about each one
of a *reliable* kind on the hit's image, and verifies when all answers match. It also tells
the verifying answerer what a question asks (:meth:`AttributeVerifier.kind_of`), how to
compare answers (:meth:`AttributeVerifier.normalise`) and the answerer's per-kind held-out
accuracy (:attr:`AttributeVerifier.kind_accuracy`, for abstention).

Example:
    >>> llava = LlavaAnswerer("luma-tiny-llava", device="cpu", max_new_tokens=16)
    >>> bot = VerifyingAnswerer(llava, AttributeVerifier(llava), VerifyConfig(k_verify=10))
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Final

from luma_rag.answer.base import VISUAL_MODALITIES, Answerer
from luma_rag.answer.gate import GateDecision, GateNumbers
from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.datasets.questions import QUESTION_KINDS, QUESTION_TEMPLATES, Question, parse_answer
from luma_rag.datasets.vocab import SHAPE_WORDS
from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit

__all__ = [
    "AttributeVerifier",
    "answerer_kind_accuracy",
    "kind_accuracy_from_training",
    "parse_question",
    "question_kind",
    "shapes_normalise",
]

logger = logging.getLogger(__name__)

#: Attributes a referent can name that a question kind can check.
_CHECKABLE: Final = ("size", "color", "shape", "position", "count")


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


def question_kind(question: str) -> str | None:
    """The LUMA-Shapes kind a question asks (None: no template matches)."""
    return parse_question(question)[0]


def shapes_normalise(text: str, kind: str | None) -> str | None:
    """An answer's canonical value for ``kind`` (``parse_answer``), else plain words."""
    if kind is not None:
        value = parse_answer(text, kind)
        return None if value is None else str(value)
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(words) or None


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
        self._accuracy = dict(kind_accuracy) if kind_accuracy is not None else None
        self._cache: dict[tuple[str, str, str, bool], Any] = {}
        self.reads = 0

    @property
    def kind_accuracy(self) -> dict[str, float] | None:
        """Per-kind held-out accuracy of the answerer (given, or from its checkpoint)."""
        if self._accuracy is None:
            self._accuracy = answerer_kind_accuracy(self.answerer)
        return self._accuracy

    def kind_of(self, question: str) -> str | None:
        """The kind ``question`` asks (:func:`question_kind`)."""
        return question_kind(question)

    def normalise(self, text: str, kind: str | None) -> str | None:
        """An answer's canonical value for comparison (:func:`shapes_normalise`)."""
        return shapes_normalise(text, kind)

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
