"""Verification by a model that reads pictures only: text and audio evidence is "cannot tell".

The demo's tiny LLaVA answers from the question and one image; asked "Is this about …?" of a
caption it is shown no image and its "yes" means nothing. :class:`VisualOnlyVerifier` wraps
a :class:`~luma_rag.answer.verify_vlm.VlmVerifier` and asks it about image / video hits only;
every other hit gets ``None`` (not verified, not refuted), so
:class:`~luma_rag.answer.verify.VerifyingAnswerer` answers only from pictures the model has
looked at. :func:`picture_verified_answerer` builds the demo's verified path with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from luma_rag.answer.base import VISUAL_MODALITIES, Answerer
from luma_rag.results import Hit

if TYPE_CHECKING:
    from luma_rag.answer.verify import VerifyingAnswerer
    from luma_rag.answer.verify_vlm import VlmVerifier

__all__ = ["VisualOnlyVerifier", "picture_verified_answerer"]

logger = logging.getLogger(__name__)


class VisualOnlyVerifier:
    """``verifier(question, hit)``: the wrapped verifier's verdict for image / video hits,
    ``None`` for any other hit.

    Args:
        inner: The yes/no verifier (e.g. ``VlmVerifier(llava)``).
    """

    def __init__(self, inner: VlmVerifier) -> None:
        self.inner = inner

    def __call__(self, question: str, hit: Hit) -> bool | None:
        """The verdict for ``hit`` (None: not a picture, or the reply was unclear)."""
        return self.many(question, [hit])[0]

    def many(self, question: str, hits: Sequence[Hit]) -> list[bool | None]:
        """The verdict per hit; the pictures are asked in one batch."""
        visual = [h for h in hits if h.modality in VISUAL_MODALITIES and h.source]
        verdicts = iter(self.inner.many(question, visual) if visual else [])
        return [
            next(verdicts) if h.modality in VISUAL_MODALITIES and h.source else None for h in hits
        ]


def picture_verified_answerer(answerer: Answerer) -> VerifyingAnswerer:
    """The verified path (:func:`~luma_rag.answer.verify_vlm.verified_answerer`) for a model
    that reads pictures only: yes/no checks on the image / video hits alone."""
    from luma_rag.answer.verify import VerifyingAnswerer
    from luma_rag.answer.verify_vlm import VlmVerifier

    check = VisualOnlyVerifier(VlmVerifier(answerer))
    return VerifyingAnswerer(answerer, check, kind_of=lambda _q: None)
