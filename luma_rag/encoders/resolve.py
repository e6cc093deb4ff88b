"""One place that turns what a user passes as an encoder (an object or a name) into an Encoder.

``Luma.open(encoder=..., audio_encoder=...)`` calls :func:`resolve_encoder`. Today CLAP names
(``luma-tiny-clap``, ``laion/clap-...``) go to the CLAP backend and every other name to the
registry (:func:`luma_rag.encoders.registry.get_encoder`); the production-models work changes
this function only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from luma_rag.encoders.base import Encoder

__all__ = ["resolve_encoder"]

logger = logging.getLogger(__name__)


def resolve_encoder(encoder: Encoder | str | None) -> Encoder | None:
    """An :class:`~luma_rag.encoders.base.Encoder` for ``encoder`` (None stays None).

    Args:
        encoder: an encoder object (returned as is) or a model name.

    Raises:
        ModelNotAvailableError: the name is unknown or its weights are not available offline.
    """
    if encoder is None or not isinstance(encoder, str):
        return encoder
    if encoder.startswith("luma-tiny-clap") or "clap" in encoder.lower():
        from luma_rag.encoders.clap.backend import ClapEncoder

        return ClapEncoder(encoder)
    from luma_rag.encoders.registry import get_encoder

    return get_encoder(encoder)
