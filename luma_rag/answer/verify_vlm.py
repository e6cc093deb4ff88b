"""Verification that works with any VLM: yes/no questions about the evidence.

Before answering, the answerer checks its own evidence with a question any VLM (or LLM, for
text evidence) can answer: "Does this image show <referent>?" on each of the top hits. The
answerer then answers when the verified hits agree, and otherwise asks a clarifying question
naming the verified candidates. Nothing here parses corpus-specific attributes: the referent
is the question with its interrogative frame removed ("What color is the small circle on the
left?" → "the small circle on the left"), or whatever ``referent=`` returns (e.g. the
retrieval text the gate was queried with).

:func:`verified_answerer` builds the default verified path: the **guarded score-gap**
verification (:class:`~luma_rag.answer.scored.ScoredVerifyingAnswerer` with
:class:`~luma_rag.answer.scored.ScoredVerifyConfig`'s defaults): the top few hits in rank order,
each scored by the answerer's own P("yes") (:meth:`VlmVerifier.scores`,
:mod:`luma_rag.answer.verdict`; 1 / 0 from the parsed reply for a VLM that reports none); a gate
CLARIFY is verified too; nothing is answered when a content word of the query is unknown to
the store (so an off-topic question is never verified into an answer), nor when the answerer
gives its own answer a probability under 0.9. It ANSWERs by the certificate's Safe@1 or by
verification: the store's exact top-1, verified with the highest yes-score, every other
contender giving the same answer and some checked hit not fitting, read with probability
>= 0.99 ("certified by verification", ``telemetry["verification"]["route"]``). The earlier
paths stay reachable by config: ``verified_answerer(bot, SESSION7_SCORED)`` (session 7's
default: ANSWER by Safe@1 only), ``verified_answerer(bot, VerifyConfig())`` (yes/no strings
over the gate's ANSWER / WIDEN hits, the default until session 7) and
``verified_answerer(bot, SESSION6_SCORED)`` (the score-gap path without its guards).
Figures: README, "Coverage and risk, held out".

Example:
    >>> bot = verified_answerer(LlavaAnswerer("llava-hf/llava-1.5-7b-hf"))
    >>> ans = bot.answer("What color is the small circle?", gate.query("a small circle"))
"""

from __future__ import annotations

import logging
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

from luma_rag.answer.base import VISUAL_MODALITIES, Answer, Answerer, answer_all
from luma_rag.answer.gate import GateDecision, GatedRetriever, GateNumbers
from luma_rag.answer.verdict import verdict_score
from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit

if TYPE_CHECKING:
    from luma_rag.answer.scored import ScoredVerifyConfig, ScoredVerifyingAnswerer
    from luma_rag.answer.verify import VerifyConfig, VerifyingAnswerer

__all__ = [
    "VlmVerifier",
    "answer_gated",
    "parse_yes_no",
    "referent_of",
    "single_hit_decision",
    "verified_answerer",
]

logger = logging.getLogger(__name__)

_BE: Final = r"(?:is|are|was|were|does|do)"
#: Interrogative frames, tried in order; group ``ref`` is what the question is about. English
#: question grammar only: nothing here knows a corpus's attribute words.
_FRAMES: Final = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^how\s+many\s+(?P<ref>.+?)(?:\s+(?:are|is)\s+there|\s+(?:are|is)\s+(?:in|on)\s+.+"
        r"|\s+can\s+you\s+see|\s+(?:do|does)\s+.+)?$",
        r"^count\s+(?P<ref>.+)$",
        rf"^{_BE}\s+there\s+(?P<ref>.+)$",
        rf"^(?:what|which)\s+(?:\w+\s+){{0,3}}?{_BE}\s+(?P<ref>.+)$",
        rf"^where\s+(?:(?:in|on)\s+(?:the\s+)?\w+\s+)?{_BE}\s+(?P<ref>.+?)(?:\s+located)?$",
        rf"^(?:in|on|at)\s+(?:what|which)\s+(?:\w+\s+){{0,4}}?{_BE}\s+(?P<ref>.+)$",
        rf"^how\s+\w+\s+{_BE}\s+(?P<ref>.+)$",
        rf"^{_BE}\s+(?P<ref>.+?)\s+\w+\s+or\s+\w+$",
        r"^(?:can|could)\s+you\s+(?:see|find|spot)\s+(?P<ref>.+)$",
        rf"^{_BE}\s+(?P<ref>.+)$",
    )
)
#: "the colour of X" → X: an attribute noun in front of the referent.
_OF: Final = re.compile(r"^the\s+\w+\s+of\s+(?=\S)", re.IGNORECASE)
_TAIL: Final = re.compile(
    r"\s+(?:in|on)\s+(?:the|this)\s+(?:image|picture|photo)$|\s+(?:show|have|contain)$",
    re.IGNORECASE,
)
_YES: Final = frozenset({"yes", "yeah", "yep", "true", "correct", "it does", "it is"})
_NO: Final = frozenset({"no", "nope", "false", "not", "incorrect"})


def referent_of(question: str) -> str:
    """The thing a question is about: the question without its interrogative frame.

    "What color is the small circle on the left?" → "the small circle on the left";
    "What is the size of the red star?" → "the red star"; "How many stars are there?" →
    "stars"; "Count the red stars." → "the red stars"; "Is there a dog?" → "a dog"; a text
    with no frame it knows is returned as it is (without its final punctuation).
    """
    text = re.sub(r"\s+", " ", question.strip()).rstrip(" ?.!")
    for frame in _FRAMES:
        m = frame.match(text)
        if m and m.group("ref").strip():
            text = m.group("ref").strip()
            break
    text = _TAIL.sub("", _OF.sub("", text))
    return text or question.strip().rstrip("?")


def parse_yes_no(text: str) -> bool | None:
    """``True`` for a yes, ``False`` for a no, ``None`` when the reply says neither.

    The verdict is the reply's first word ("Yes, it does.") or, when that is neither, a bare
    "yes" / "no" that ends it: a model that describes before it judges ("small blue square
    left: no", as the tiny LLaVA is trained to) puts its verdict last.
    """
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    if not words:
        return None
    first = words[0]
    if first in _YES:
        return True
    if " ".join(words[:2]) in _YES:  # "It is a red circle." / "It is not a red circle."
        return not (len(words) > 2 and words[2] in ("not", "no"))
    if first in _NO:
        return False
    if words[-1] in ("yes", "no"):
        return words[-1] == "yes"
    return None


def single_hit_decision(hit: Hit) -> GateDecision:
    """An ANSWER decision with ``hit`` alone as evidence (what the VLM is shown)."""
    nan = math.nan
    numbers = GateNumbers(nan, nan, nan, nan, nan, nan, nan, nan, True, 1, True, 1, 1)
    return GateDecision("answer", 1, (hit,), "verification read", numbers, hits=(hit,))


class VlmVerifier:
    """``verifier(question, hit) -> bool | None`` asking a VLM a yes/no question about ``hit``.

    Args:
        answerer: Any :class:`~luma_rag.answer.base.Answerer` (a VLM for images; an LLM
            answerer works for text evidence).
        referent: Maps the user's question to what it refers to (default
            :func:`referent_of`).
        image_prompt: Asked about image / video evidence; ``{referent}`` is filled in.
        text_prompt: Asked about text evidence.
        max_cached: Verdicts kept (least recently used dropped first), keyed on the hit's
            id, source and text and the prompt, so an item re-added with new content is
            asked again; a long-running service stays bounded.
    """

    def __init__(
        self,
        answerer: Answerer,
        *,
        referent: Callable[[str], str] | None = None,
        image_prompt: str = "Does this image show {referent}? Answer yes or no.",
        text_prompt: str = "Is this about {referent}? Answer yes or no.",
        max_cached: int = 4096,
    ) -> None:
        if not callable(getattr(answerer, "answer", None)):
            raise InvalidInputError(f"answerer must have an answer() method, got {answerer!r}")
        for name, prompt in (("image_prompt", image_prompt), ("text_prompt", text_prompt)):
            if "{referent}" not in prompt:
                raise InvalidInputError(f"{name} must contain '{{referent}}', got {prompt!r}")
        if isinstance(max_cached, bool) or not isinstance(max_cached, int) or max_cached < 1:
            raise InvalidInputError(f"max_cached must be an int >= 1, got {max_cached!r}")
        self.answerer = answerer
        self.referent = referent or referent_of
        self.image_prompt = image_prompt
        self.text_prompt = text_prompt
        self.max_cached = max_cached
        self._cache: OrderedDict[tuple[str, str], tuple[bool | None, float, str]] = OrderedDict()

    def prompt(self, question: str, hit: Hit) -> str:
        """The yes/no question asked about ``hit``."""
        visual = hit.modality in VISUAL_MODALITIES
        template = self.image_prompt if visual else self.text_prompt
        return template.format(referent=self.referent(question))

    def __call__(self, question: str, hit: Hit) -> bool | None:
        """Whether ``hit`` shows what ``question`` refers to (None: the reply was unclear)."""
        return self.many(question, [hit])[0]

    def many(self, question: str, hits: Sequence[Hit]) -> list[bool | None]:
        """:meth:`__call__` for each of ``hits``, the uncached ones asked in one batch."""
        return self.ask([(question, h) for h in hits])

    def ask(self, pairs: Sequence[tuple[str, Hit]]) -> list[bool | None]:
        """The verdict per ``(question, hit)``; uncached prompts go to the answerer in one
        batch (:func:`~luma_rag.answer.base.answer_all`), each asked once."""
        return [verdict for verdict, _, _ in self.read(pairs)]

    def scores(self, pairs: Sequence[tuple[str, Hit]]) -> list[float]:
        """The yes-score in [0, 1] per ``(question, hit)``: the answerer's own P("yes") at its
        verdict when it reports one (``telemetry["verdict_yes"]``, as
        :class:`~luma_rag.answer.llava.LlavaAnswerer` does), else the parsed verdict as
        1 / 0 (0.5 when unclear); see :mod:`luma_rag.answer.verdict`."""
        return [score for _, score, _ in self.read(pairs)]

    def read(self, pairs: Sequence[tuple[str, Hit]]) -> list[tuple[bool | None, float, str]]:
        """``(verdict, yes-score, reply text)`` per ``(question, hit)``; uncached prompts asked
        in one batch, each once (:meth:`ask` and :meth:`scores` read these)."""
        keys = [(f"{h.id}\x00{h.source}\x00{h.text or ''}", self.prompt(q, h)) for q, h in pairs]
        found: dict[tuple[str, str], tuple[bool | None, float, str]] = {}
        todo: dict[tuple[str, str], Hit] = {}
        for key, (_, hit) in zip(keys, pairs, strict=True):
            if key in self._cache:
                self._cache.move_to_end(key)
                found[key] = self._cache[key]
            else:
                todo.setdefault(key, hit)
        replies = answer_all(
            self.answerer, [(key[1], single_hit_decision(h)) for key, h in todo.items()]
        )
        for key, reply in zip(todo, replies, strict=True):
            verdict = parse_yes_no(reply.text)
            found[key] = (verdict, verdict_score(reply.telemetry, verdict), reply.text)
            self._cache[key] = found[key]
            logger.debug("verify %s: %r -> %r", key[0], key[1], reply.text)
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return [found[key] for key in keys]


def verified_answerer(
    answerer: Answerer,
    config: ScoredVerifyConfig | VerifyConfig | None = None,
    **verifier: object,
) -> ScoredVerifyingAnswerer | VerifyingAnswerer:
    """The default verified path: verification by the answerer itself, no corpus parsing.

    Args:
        answerer: The VLM / LLM answerer.
        config: ``None`` (the default: :class:`~luma_rag.answer.scored.ScoredVerifyConfig`'s
            defaults) or a :class:`~luma_rag.answer.scored.ScoredVerifyConfig`: the guarded
            score-gap verification of the top few hits in rank order
            (:class:`~luma_rag.answer.scored.ScoredVerifyingAnswerer`); a
            :class:`~luma_rag.answer.verify.VerifyConfig`: the earlier yes/no strings over
            ``k_verify`` hits on the gate's ANSWER / WIDEN
            (:class:`~luma_rag.answer.verify.VerifyingAnswerer`).
        **verifier: Passed to :class:`VlmVerifier` (``referent=``, prompts).
    """
    from luma_rag.answer.scored import ScoredVerifyConfig, ScoredVerifyingAnswerer
    from luma_rag.answer.verify import VerifyConfig, VerifyingAnswerer

    check = VlmVerifier(answerer, **verifier)  # type: ignore[arg-type]
    if config is None or isinstance(config, ScoredVerifyConfig):
        return ScoredVerifyingAnswerer(answerer, check, config)
    if not isinstance(config, VerifyConfig):
        raise InvalidInputError(
            f"config must be a ScoredVerifyConfig, a VerifyConfig or None, got {config!r}"
        )
    return VerifyingAnswerer(answerer, check, config, kind_of=lambda _q: None)


def answer_gated(
    gate: GatedRetriever,
    question: str,
    answerer: Answerer,
    *,
    query: str | None = None,
    verify: ScoredVerifyConfig | VerifyConfig | Literal[False] | None = None,
    filters: Mapping[str, Any] | None = None,
) -> Answer:
    """Gate ``query`` (default: ``question``) with ``gate`` and answer ``question``, verified.

    The default path verifies the evidence with ``answerer`` itself (:func:`verified_answerer`):
    the top hits are asked a yes/no question about what ``question`` refers to and scored by
    the answerer's P("yes"); the answer comes only from verified hits that agree, on a query
    whose words the store knows; otherwise a CLARIFY names the candidates.

    Args:
        gate: The :class:`~luma_rag.answer.gate.GatedRetriever`.
        question: The user's question (what the answerer is asked).
        answerer: Any :class:`~luma_rag.answer.base.Answerer` (a VLM for images).
        query: What the store is searched with, if not the question itself (e.g. the
            referent: "a small red circle").
        verify: ``None``: the default verification; a
            :class:`~luma_rag.answer.scored.ScoredVerifyConfig` (its settings) or a
            :class:`~luma_rag.answer.verify.VerifyConfig` (the earlier yes/no path over the
            gate's ANSWER / WIDEN); ``False``: no verification (the gate's decision is
            answered as it is).
        filters: Passed to :meth:`GatedRetriever.query`.

    Returns:
        The :class:`~luma_rag.answer.base.Answer`, its ``decision`` the final outcome.
    """
    decision = gate.query(query if query is not None else question, filters=filters)
    if verify is False:
        return answerer.answer(question, decision)
    return verified_answerer(answerer, verify).answer(question, decision)
