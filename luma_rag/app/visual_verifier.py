"""Verification by a model that reads pictures only, read from what the model writes.

The demo's tiny LLaVA answers from the question and one image; asked "Is this about …?" of a
caption it is shown no image and its "yes" means nothing. :class:`VisualOnlyVerifier` asks
image / video hits only: every other hit scores 0 ("not verified",
:meth:`~VisualOnlyVerifier.scores`) or ``None`` ("cannot tell",
:meth:`~VisualOnlyVerifier.many`). The app shows it each linked
group by its picture (:func:`~luma_rag.app.group_picture.pictures_for_groups`), so a caption
hit is checked on the picture it describes.

**Written claims.** A model may write out what it checks before it judges: the tiny LLaVA
replies ``"<claim> : <seen> : <verdict>"`` ("yellow circle center : yellow diamond center :
yes") — the claim in its own canonical words, what the image shows of it, then the verdict
(:attr:`luma_rag.datasets.questions.VerificationQuestion.reply`), or, trained with
``--verify-reply pairs``, per claimed attribute the claimed word, the seen word and whether
they match, then the verdict ("yellow yellow yes circle diamond no center center yes : no",
:func:`luma_rag.training.llava_mix.verification_reply`). Its verdict token is the
weak part (held-out verdict accuracy 0.85 while it reads each attribute ≥ 0.85–0.99): on the
demo store it says "yes" with P 0.68 after writing "yellow circle center : yellow diamond
center". So a reply whose written claim and seen words differ is read as a **no** (yes-score
0) whatever its verdict token says (:func:`written_verdict`); a reply in any other form is
scored by the model's own P("yes") as :class:`~luma_rag.answer.verify_vlm.VlmVerifier` scores
it. Nothing here knows a corpus's attribute words: it compares two strings the model wrote.

:func:`picture_verified_answerer` builds the app's verified path: the library's default
score-gap verification (:class:`~luma_rag.answer.scored.ScoredVerifyingAnswerer` with
:class:`~luma_rag.answer.scored.ScoredVerifyConfig`'s defaults, as
:func:`~luma_rag.answer.verify_vlm.verified_answerer` builds it) with this verifier.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from luma_rag.answer.base import VISUAL_MODALITIES, Answerer
from luma_rag.answer.verify_vlm import VlmVerifier
from luma_rag.results import Hit

if TYPE_CHECKING:
    from luma_rag.answer.scored import ScoredVerifyConfig, ScoredVerifyingAnswerer

__all__ = ["VisualOnlyVerifier", "picture_verified_answerer", "written_verdict"]

logger = logging.getLogger(__name__)

_WRITTEN: Final = re.compile(r"^\s*(?P<claim>[^:]+?)\s*:\s*(?P<seen>[^:]+?)\s*:\s*(?P<v>\w+)\W*$")
#: "<claimed> <seen> <yes|no>" per attribute, then " : <verdict>".
_PAIRS: Final = re.compile(r"^\s*(?P<body>(?:\w+\s+\w+\s+(?:yes|no)\s+)+):\s*(?P<v>\w+)\W*$", re.I)


def _readable(hit: Hit) -> bool:
    return hit.modality in VISUAL_MODALITIES and bool(hit.source)


def written_verdict(reply: str) -> bool | None:
    """Whether a ``"<claim> : <seen> : <verdict>"`` reply's claim and seen words agree, or
    those of a ``"<claimed> <seen> <yes|no> ... : <verdict>"`` reply (one triple per
    attribute; the written per-attribute judgements are not trusted, the words are compared).

    Returns:
        True / False for a reply of either form (the same words, case and spacing aside /
        not); None for a reply of any other form.
    """
    paired = _PAIRS.match(reply)
    if paired is not None and paired.group("v").lower() in ("yes", "no"):
        words = paired.group("body").lower().split()
        return words[0::3] == words[1::3]
    m = _WRITTEN.match(reply)
    if m is None or m.group("v").lower() not in ("yes", "no"):
        return None
    return m.group("claim").lower().split() == m.group("seen").lower().split()


class VisualOnlyVerifier:
    """Yes/no verification of image and video hits by a VLM (module docstring).

    Args:
        inner: Asks the question: its ``answerer`` (the VLM) and ``prompt(question, hit)``
            (e.g. ``VlmVerifier(llava)``: "Does this image show <referent>? Answer yes or no.").
    """

    def __init__(self, inner: VlmVerifier) -> None:
        self.inner = inner

    def __call__(self, question: str, hit: Hit) -> bool | None:
        """The verdict for ``hit`` (None: not a picture, or the reply was unclear)."""
        return self.many(question, [hit])[0]

    def many(self, question: str, hits: Sequence[Hit]) -> list[bool | None]:
        """The verdict per hit (None for a hit that is not a picture); pictures in one batch."""
        read = iter(self._read([(question, h) for h in hits if _readable(h)]))
        return [next(read)[0] if _readable(h) else None for h in hits]

    def scores(self, pairs: Sequence[tuple[str, Hit]]) -> list[float]:
        """The yes-score in [0, 1] per ``(question, hit)``: for a picture the VLM's P("yes"),
        0 when its written claim and seen words differ; 0.0 for any other hit (a model shown
        no image cannot verify it)."""
        read = iter(self._read([(q, h) for q, h in pairs if _readable(h)]))
        return [next(read)[1] if _readable(h) else 0.0 for _, h in pairs]

    def _read(self, pairs: Sequence[tuple[str, Hit]]) -> list[tuple[bool | None, float]]:
        """(verdict, yes-score) per pair, read by the inner verifier (batched, cached there);
        a reply whose written claim and seen words differ is a no at score 0."""
        return [
            (False, 0.0) if written_verdict(text) is False else (verdict, score)
            for verdict, score, text in self.inner.read(pairs)
        ]


def picture_verified_answerer(
    answerer: Answerer, config: ScoredVerifyConfig | None = None
) -> ScoredVerifyingAnswerer:
    """The default score-gap verified path for a model that reads pictures only.

    Args:
        answerer: The VLM (e.g. the tiny LLaVA); it verifies and answers.
        config: Settings (default :class:`~luma_rag.answer.scored.ScoredVerifyConfig`, the
            library's default verified path).
    """
    from luma_rag.answer.scored import ScoredVerifyingAnswerer

    return ScoredVerifyingAnswerer(answerer, VisualOnlyVerifier(VlmVerifier(answerer)), config)
