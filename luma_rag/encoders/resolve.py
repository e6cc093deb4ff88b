"""One place that turns what a user passes as an encoder (an object or a name) into an Encoder.

``Luma.open(encoder=..., audio_encoder=...)`` calls :func:`check_encoder_name` for both names
first (registry lookup only: a mis-named or missing audio model is reported before the CLIP
model is loaded), then :func:`resolve_encoder`. What a name is — a CLIP-space encoder or an
audio encoder that crosses the bridge — comes from its registry entry or its directory's
config (:func:`luma_rag.encoders.registry.model_kind`), never from the spelling of the name.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from luma_rag.errors import ModelNotAvailableError

if TYPE_CHECKING:
    from luma_rag.encoders.base import Encoder

__all__ = ["check_encoder_name", "resolve_encoder"]

logger = logging.getLogger(__name__)

Role = Literal["clip", "audio"]
_ROLE_ARG = {"clip": "encoder", "audio": "audio_encoder"}
_EXAMPLES = {"clip": "'ViT-B-32/openai' or 'luma-tiny'", "audio": "'laion/clap-htsat-unfused'"}


def check_encoder_name(encoder: Encoder | str | None, role: Role) -> None:
    """Check a name before anything is loaded: known, of the right kind, weights on disk.

    Args:
        encoder: a name (checked), an encoder object or None (nothing to check).
        role: ``"clip"`` for ``encoder=``, ``"audio"`` for ``audio_encoder=``.

    Raises:
        ModelNotAvailableError: unknown name, a model of another kind, or weights missing
            (the message says where to put them).
    """
    if not isinstance(encoder, str):
        return
    from luma_rag.encoders.registry import model_kind, resolve_model

    kind = model_kind(encoder)
    if kind != role:
        article = "an" if kind[0] in "aeiou" else "a"
        raise ModelNotAvailableError(
            f"{_ROLE_ARG[role]}={encoder!r} is {article} {kind} model; {_ROLE_ARG[role]}= "
            f"takes a {role} model such as {_EXAMPLES[role]}"
        )
    resolve_model(encoder)  # finds the weights (or says where to put them); reads nothing


def resolve_encoder(encoder: Encoder | str | None, role: Role = "clip") -> Encoder | None:
    """An :class:`~luma_rag.encoders.base.Encoder` for ``encoder`` (None stays None).

    Args:
        encoder: an encoder object (returned as is) or a model name / directory.
        role: what the caller needs (see :func:`check_encoder_name`).

    Raises:
        ModelNotAvailableError: the name is unknown, of another kind, or its weights are not
            available offline.
    """
    if encoder is None or not isinstance(encoder, str):
        return encoder
    check_encoder_name(encoder, role)
    from luma_rag.encoders.registry import get_encoder

    return get_encoder(encoder)
