"""Verification that works with any VLM: yes/no questions about the evidence.

Before answering, the answerer checks its own evidence with a question any VLM (or LLM, for
text evidence) can answer: "Does this image show <referent>?" on each of the top hits. Only
hits answered "yes" count as verified; :class:`~luma_rag.answer.verify.VerifyingAnswerer`
then answers when the verified hits agree, and otherwise asks a clarifying question naming
the verified candidates. Nothing here parses corpus-specific attributes: the referent is the
question with its interrogative frame removed ("What color is the small circle on the left?"
→ "the small circle on the left"), or whatever ``referent=`` returns (e.g. the retrieval
text the gate was queried with).

:func:`verified_answerer` builds the default verified path: ``VerifyingAnswerer(answerer,
VlmVerifier(answerer), kind_of=None)``.

Example:
    >>> bot = verified_answerer(LlavaAnswerer("llava-hf/llava-1.5-7b-hf"))
    >>> ans = bot.answer("What color is the small circle?", gate.query("a small circle"))
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from luma_rag.answer.base import VISUAL_MODALITIES, Answerer
from luma_rag.answer.gate import GateDecision, GateNumbers
from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit

if TYPE_CHECKING:
    from luma_rag.answer.verify import VerifyConfig, VerifyingAnswerer

__all__ = ["VlmVerifier", "parse_yes_no", "referent_of", "verified_answerer"]

logger = logging.getLogger(__name__)

_FRAME: Final = re.compile(
    r"^\s*(?:(?:what|which)\s+(?:\w+\s+)?(?:is|are|does|do)|where\s+(?:is|are)|how\s+(?:many|big"
    r"|large|small)\s+(?:\w+\s+)?(?:is|are|does|do)?|is|are|does|do|can\s+you\s+(?:see|find))"
    r"\s+",
    re.IGNORECASE,
)
_YES: Final = frozenset({"yes", "yeah", "yep", "true", "correct", "it does", "it is"})
_NO: Final = frozenset({"no", "nope", "false", "not", "incorrect"})


def referent_of(question: str) -> str:
    """The thing a question is about: the question without its interrogative frame.

    "What color is the small circle on the left?" → "the small circle on the left";
    "How many stars are there?" → "stars"; "Is there a dog?" → "a dog".
    """
    q = question.strip()
    many = re.match(r"^\s*how\s+many\s+(.+?)\s+(?:are|is)\s+there\W*$", q, re.IGNORECASE)
    if many:
        return many.group(1)
    there = re.match(r"^\s*(?:is|are)\s+there\s+(.+?)\W*$", q, re.IGNORECASE)
    if there:
        return there.group(1)
    text = _FRAME.sub("", q, count=1).rstrip(" ?.!")
    text = re.sub(r"\s+(?:are|is)\s+there$", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+(?:show|have|contain)$", "", text, flags=re.IGNORECASE)
    return text or question.strip().rstrip("?")


def parse_yes_no(text: str) -> bool | None:
    """``True`` for a yes, ``False`` for a no, ``None`` when the reply says neither."""
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    if not words:
        return None
    first = words[0]
    if first in _YES or " ".join(words[:2]) in _YES:
        return True
    if first in _NO:
        return False
    return None


def _single(hit: Hit) -> GateDecision:
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
    """

    def __init__(
        self,
        answerer: Answerer,
        *,
        referent: Callable[[str], str] | None = None,
        image_prompt: str = "Does this image show {referent}? Answer yes or no.",
        text_prompt: str = "Is this about {referent}? Answer yes or no.",
    ) -> None:
        if not callable(getattr(answerer, "answer", None)):
            raise InvalidInputError(f"answerer must have an answer() method, got {answerer!r}")
        for name, prompt in (("image_prompt", image_prompt), ("text_prompt", text_prompt)):
            if "{referent}" not in prompt:
                raise InvalidInputError(f"{name} must contain '{{referent}}', got {prompt!r}")
        self.answerer = answerer
        self.referent = referent or referent_of
        self.image_prompt = image_prompt
        self.text_prompt = text_prompt
        self._cache: dict[tuple[str, str], bool | None] = {}

    def prompt(self, question: str, hit: Hit) -> str:
        """The yes/no question asked about ``hit``."""
        visual = hit.modality in VISUAL_MODALITIES
        template = self.image_prompt if visual else self.text_prompt
        return template.format(referent=self.referent(question))

    def __call__(self, question: str, hit: Hit) -> bool | None:
        """Whether ``hit`` shows what ``question`` refers to (None: the reply was unclear)."""
        prompt = self.prompt(question, hit)
        key = (f"{hit.id}\x00{hit.source}", prompt)
        if key not in self._cache:
            reply = self.answerer.answer(prompt, _single(hit)).text
            self._cache[key] = parse_yes_no(reply)
            logger.debug("verify %s: %r -> %r", hit.id, prompt, reply)
        return self._cache[key]


def verified_answerer(
    answerer: Answerer, config: VerifyConfig | None = None, **verifier: object
) -> VerifyingAnswerer:
    """The default verified path: yes/no verification with ``answerer`` itself, no parsing.

    Args:
        answerer: The VLM / LLM answerer.
        config: :class:`~luma_rag.answer.verify.VerifyConfig` (abstention needs per-kind
            accuracies and is off by default).
        **verifier: Passed to :class:`VlmVerifier` (``referent=``, prompts).
    """
    from luma_rag.answer.verify import VerifyingAnswerer

    check = VlmVerifier(answerer, **verifier)  # type: ignore[arg-type]
    return VerifyingAnswerer(answerer, check, config, kind_of=lambda _q: None)
