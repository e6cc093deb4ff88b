"""transformers CLAP behind the :class:`~luma_rag.encoders.base.Encoder` protocol (text + audio).

Setup:
    .. code-block:: bash

        pip install 'luma-rag[models]'

Instantiate:
    >>> from luma_rag.encoders.clap import ClapEncoder
    >>> enc = ClapEncoder("luma-tiny-clap")  # the shipped checkpoint; or a local directory
    >>> enc.dim
    128

Embed:
    >>> import numpy as np
    >>> t = enc.encode_text(["a small red circle on the left"])
    >>> tone = np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)
    >>> a = enc.encode_audio([(tone, 16_000)])  # or paths of WAV files
    >>> t.shape, a.shape, t.dtype
    ((1, 128), (1, 128), dtype('float32'))

A name resolves through the registry (:func:`~luma_rag.encoders.registry.resolve_model`) like every
model: a directory passed by path, the shipped ``luma-tiny-clap``, ``$LUMA_MODEL_DIR/<name>``
(``$LUMA_MODEL_DIR/laion/clap-htsat-unfused``), then the local Hugging Face cache. Nothing is
downloaded; a model found nowhere raises :class:`~luma_rag.errors.ModelNotAvailableError` at
once with the command that fetches it. ``model.safetensors`` is preferred, the published
``pytorch_model.bin`` is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from luma_rag.encoders.base import Modality, check_batch, check_texts, l2_normalize
from luma_rag.encoders.weights import check_weights_file, offline_hub, transformers_weights
from luma_rag.errors import (
    InvalidInputError,
    LumaError,
    MissingDependencyError,
    ModelNotAvailableError,
    UnsupportedMediaError,
)
from luma_rag.media.audio import AudioSource, load_audio

__all__ = ["CHECKPOINTS_DIR", "DEFAULT_MODEL", "ClapEncoder"]

logger = logging.getLogger(__name__)

#: Where shipped checkpoints live, one directory per name.
CHECKPOINTS_DIR: Final = Path(__file__).resolve().parent.parent / "checkpoints"
#: The checkpoint used when no model is named.
DEFAULT_MODEL: Final = "luma-tiny-clap"


def _require_torch_transformers() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError.for_extra("torch", "models") from e
    try:
        import transformers
    except ImportError as e:
        raise MissingDependencyError.for_extra("transformers", "models") from e
    return torch, transformers


class ClapEncoder:
    """Text and audio embeddings from a transformers CLAP model, float32 and unit-norm.

    Args:
        path_or_name: A registry name (``"luma-tiny-clap"``, ``"laion/clap-htsat-unfused"``)
            or a directory holding ``ClapModel`` and ``ClapProcessor`` files.
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.

    Raises:
        ModelNotAvailableError: The model is not available locally (never downloaded).
        MissingDependencyError: torch or transformers is not installed.
    """

    def __init__(
        self, path_or_name: str | os.PathLike[str] = DEFAULT_MODEL, device: str = "cpu"
    ) -> None:
        from luma_rag.encoders.catalog import resolve_model

        text = os.fspath(path_or_name)
        if not text.strip():
            raise InvalidInputError("path_or_name is empty; pass a directory or 'luma-tiny-clap'")
        found = resolve_model(text)
        if found.spec.kind != "audio":
            raise ModelNotAvailableError(
                f"{found.name} is a {found.spec.kind} model, not a CLAP audio model; pass a CLAP "
                "name ('laion/clap-htsat-unfused', 'luma-tiny-clap') or directory"
            )
        self._load(found.location, found.name, device)

    @classmethod
    def from_directory(
        cls, directory: str | os.PathLike[str], *, name: str | None = None, device: str = "cpu"
    ) -> ClapEncoder:
        """Load from a model directory the registry already found (no name resolution).

        Args:
            directory: Holds ``config.json``, the weights and the ``ClapProcessor`` files.
            name: Name reported by :attr:`name` (default: the directory's name).
            device: torch device string.
        """
        enc = cls.__new__(cls)
        path = Path(directory)
        enc._load(path, name or path.name, device)
        return enc

    def _load(self, location: Path, name: str, device: str) -> None:
        self._name = name
        torch, tf = _require_torch_transformers()
        self._torch = torch
        for weights in transformers_weights(location):
            check_weights_file(weights)
        try:
            with offline_hub():
                self._processor = tf.ClapProcessor.from_pretrained(
                    str(location), local_files_only=True
                )
                model = tf.ClapModel.from_pretrained(str(location), local_files_only=True)
        except LumaError:
            raise
        except Exception as e:  # missing processor files, bad config, unreadable weights
            raise ModelNotAvailableError(
                f"could not load a CLAP model from {location}: {type(e).__name__}: {e}; it must "
                "hold config.json, model.safetensors (or pytorch_model.bin) and the "
                "ClapProcessor files, as `hf download laion/clap-htsat-unfused` writes them"
            ) from e
        try:
            self._model = model.to(device).eval()
        except (RuntimeError, ValueError) as e:
            raise InvalidInputError(f"cannot move the model to device {device!r}: {e}") from e
        self._device = device
        extractor = self._processor.feature_extractor
        self._rate = int(extractor.sampling_rate)
        self._max_samples = int(extractor.nb_max_samples)
        self._dim = int(self._model.config.projection_dim)
        self._max_tokens = min(int(self._processor.tokenizer.model_max_length), 512)
        logger.debug("loaded CLAP %s (dim %d, %d Hz)", self._name, self._dim, self._rate)

    @property
    def name(self) -> str:
        """Name of the model: the shipped name, hub id, or checkpoint directory name."""
        return self._name

    @property
    def dim(self) -> int:
        """Embedding dimension ``d`` (the model's ``projection_dim``)."""
        return self._dim

    @property
    def modalities(self) -> frozenset[Modality]:
        """``{"text", "audio"}``."""
        return frozenset({"text", "audio"})

    @property
    def sampling_rate(self) -> int:
        """Sample rate in Hz that clips are resampled to."""
        return self._rate

    @property
    def max_seconds(self) -> float:
        """Clip length the model sees; longer clips are cut to their first ``max_seconds``."""
        return self._max_samples / self._rate

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed texts.

        Args:
            texts: Non-empty list of strings (captions, queries).
            batch_size: Texts per forward pass.

        Returns:
            float32 ``(len(texts), dim)``, unit-norm rows, in input order.

        Raises:
            InvalidInputError: Not a non-empty list of strings, or a bad ``batch_size``.
        """
        items = check_texts(texts)
        _check_batch_size(batch_size)
        tokenizer = self._processor.tokenizer
        out = []
        for start in range(0, len(items), batch_size):
            batch = tokenizer(
                items[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=self._max_tokens,
                return_tensors="pt",
            )
            with self._torch.inference_mode():
                features = self._model.get_text_features(
                    input_ids=batch["input_ids"].to(self._device),
                    attention_mask=batch["attention_mask"].to(self._device),
                )
            out.append(_to_numpy(features, self._torch))
        return l2_normalize(np.concatenate(out))

    def encode_image(self, images: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
        """CLAP has no image tower.

        Raises:
            UnsupportedMediaError: Always; embed images with a CLIP encoder.
        """
        raise UnsupportedMediaError(
            f"CLAP model {self._name!r} embeds text and audio only; use a CLIP encoder for images"
        )

    def encode_audio(self, clips: Sequence[AudioSource], *, batch_size: int = 16) -> np.ndarray:
        """Embed audio clips.

        Each clip is loaded by :func:`~luma_rag.media.audio.load_audio` (mono, resampled
        to :attr:`sampling_rate`) and cut to its first :attr:`max_seconds`; shorter clips are
        padded by the processor (repeated, then zero-padded).

        Args:
            clips: Non-empty list of WAV paths (other formats with ``soundfile``),
                ``(samples, sample_rate)`` tuples, or sample arrays at :attr:`sampling_rate`.
            batch_size: Clips per forward pass.

        Returns:
            float32 ``(len(clips), dim)``, unit-norm rows, in input order.

        Raises:
            InvalidInputError: An empty batch or a bad ``batch_size``.
            UnsupportedMediaError: A clip is missing, corrupt, unsupported, empty, silent or
                not finite (the whole batch fails; nothing is returned for the others).
        """
        items = check_batch(clips, "clips")
        _check_batch_size(batch_size)
        waves = [load_audio(clip, self._rate)[: self._max_samples] for clip in items]
        extractor = self._processor.feature_extractor
        out = []
        for start in range(0, len(waves), batch_size):
            inputs = extractor(
                waves[start : start + batch_size], sampling_rate=self._rate, return_tensors="pt"
            )
            # No clip is longer than the window, so none is "longer"; fused models would
            # otherwise mark one at random.
            is_longer = self._torch.zeros_like(inputs["is_longer"], dtype=self._torch.bool)
            features = inputs["input_features"].to(self._device, dtype=self._torch.float32)
            with self._torch.inference_mode():
                embedded = self._model.get_audio_features(
                    input_features=features, is_longer=is_longer.to(self._device)
                )
            out.append(_to_numpy(embedded, self._torch))
        return l2_normalize(np.concatenate(out))

    def __repr__(self) -> str:
        return f"ClapEncoder({self._name!r}, device={self._device!r}, dim={self._dim})"


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an int >= 1, got {batch_size!r}")


def _to_numpy(features: Any, torch: Any) -> np.ndarray:
    """Projected features as float64 numpy; transformers 5 wraps them in a model output."""
    tensor = features if isinstance(features, torch.Tensor) else features.pooler_output
    return np.asarray(tensor.detach().to("cpu", dtype=torch.float64).numpy())
