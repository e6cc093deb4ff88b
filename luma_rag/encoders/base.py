"""The :class:`Encoder` protocol every backend implements, and its input/output helpers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import numpy as np

from luma_rag.errors import InvalidInputError
from luma_rag.media.image import ImageInput

__all__ = [
    "AudioInput",
    "Encoder",
    "ImageInput",
    "Modality",
    "check_batch",
    "check_texts",
    "l2_normalize",
]

Modality = Literal["text", "image", "audio"]

#: What audio encoders accept: a path to a sound file, or mono float samples at the
#: encoder's sample rate.
AudioInput: TypeAlias = "str | os.PathLike[str] | np.ndarray"


@runtime_checkable
class Encoder(Protocol):
    """Maps text, images and (for some backends) audio into one embedding space.

    Every ``encode_*`` method takes a batch and returns a C-contiguous float32 array of shape
    ``(n, dim)`` whose rows have unit L2 norm, in input order. An empty batch raises
    :class:`~luma_rag.errors.InvalidInputError`; a modality the encoder does not support
    raises :class:`~luma_rag.errors.UnsupportedMediaError`.
    """

    @property
    def name(self) -> str:
        """Registry name of the model, e.g. ``"luma-tiny-clip"`` or ``"ViT-B-32"``."""
        ...

    @property
    def dim(self) -> int:
        """Embedding dimension ``d``."""
        ...

    @property
    def modalities(self) -> frozenset[Modality]:
        """The modalities this encoder embeds."""
        ...

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed texts; returns float32 ``(len(texts), dim)``, unit rows."""
        ...

    def encode_image(self, images: Sequence[ImageInput], *, batch_size: int = 64) -> np.ndarray:
        """Embed images (paths, bytes or Pillow images); float32 ``(n, dim)``, unit rows."""
        ...

    def encode_audio(self, clips: Sequence[AudioInput], *, batch_size: int = 16) -> np.ndarray:
        """Embed audio clips; float32 ``(n, dim)``, unit rows."""
        ...


def check_batch(items: Any, what: str) -> list[Any]:
    """Return ``items`` as a list, refusing a bare string/bytes and an empty batch.

    Args:
        items: The batch the caller passed.
        what: Name used in error messages ("texts", "images", ...).

    Returns:
        The items as a new list.

    Raises:
        InvalidInputError: ``items`` is a single str/bytes, not a sequence, or empty.
    """
    if isinstance(items, str | bytes | os.PathLike):
        raise InvalidInputError(f"{what} must be a list, got one {type(items).__name__}; wrap it")
    try:
        out = list(items)
    except TypeError as e:
        raise InvalidInputError(f"{what} must be a list, got {type(items).__name__}") from e
    if not out:
        raise InvalidInputError(f"{what} is an empty batch; pass at least one")
    return out


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate a batch of texts.

    Args:
        texts: Strings to embed.

    Returns:
        The texts as a list.

    Raises:
        InvalidInputError: Not a non-empty list of ``str``.
    """
    out = check_batch(texts, "texts")
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise InvalidInputError(
            f"texts must be str; items {bad[:5]} are {type(out[bad[0]]).__name__}"
        )
    return out


def l2_normalize(x: Any) -> np.ndarray:
    """Return ``x`` as float32 with unit-norm rows (normalised in float64).

    Args:
        x: Array-like of shape ``(n, d)``.

    Returns:
        C-contiguous float32 ``(n, d)``; a zero row stays zero.
    """
    arr = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.ascontiguousarray(arr / np.maximum(norms, 1e-12), dtype=np.float32)
