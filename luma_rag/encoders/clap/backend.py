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

A model is found, in this order, as a local directory (``save_pretrained`` output), as a
checkpoint shipped in ``luma_rag/encoders/checkpoints/`` (``"luma-tiny-clap"``), or in the local
Hugging Face cache. Nothing is downloaded: a production model such as
``laion/clap-htsat-unfused`` must be fetched on a machine with network access and passed as a
directory, and asking for it by name otherwise raises
:class:`~luma_rag.errors.ModelNotAvailableError` at once. Weights load from safetensors only.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from luma_rag.encoders.base import Modality, check_batch, check_texts, l2_normalize
from luma_rag.errors import (
    InvalidInputError,
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


def _not_available(name: str, cause: str | None = None) -> ModelNotAvailableError:
    why = f" ({cause})" if cause else ""
    return ModelNotAvailableError(
        f"CLAP model {name!r} is not available offline: it is not a local directory, a shipped "
        f"checkpoint ({', '.join(_shipped()) or 'none'}) or in the local Hugging Face cache{why}, "
        "and LUMA-RAG never downloads weights. On a machine with network access run "
        f"`hf download {name} --local-dir DIR` (`huggingface-cli download` with older "
        "huggingface_hub; safetensors weights are used), copy DIR here and pass "
        "ClapEncoder('DIR'); or use the shipped 'luma-tiny-clap'."
    )


def _shipped() -> list[str]:
    if not CHECKPOINTS_DIR.is_dir():
        return []
    return sorted(
        p.name
        for p in CHECKPOINTS_DIR.iterdir()
        if (p / "config.json").is_file() and _model_type(p) == "clap"
    )


def _model_type(path: Path) -> str | None:
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("model_type") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _resolve(path_or_name: str | os.PathLike[str]) -> tuple[str, str, bool]:
    """Return ``(location, display name, is_local_dir)`` for ``path_or_name``."""
    text = os.fspath(path_or_name)
    if not text:
        raise InvalidInputError("path_or_name is empty; pass a directory or 'luma-tiny-clap'")
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(
                f"{path} has no config.json; pass a directory written by "
                "ClapModel.save_pretrained and ClapProcessor.save_pretrained"
            )
        return str(path), path.name, True
    shipped = CHECKPOINTS_DIR / text
    if "/" not in text and "\\" not in text and (shipped / "config.json").is_file():
        return str(shipped), text, True
    if path.is_absolute() or text.startswith((".", "~")) or path.exists():
        raise ModelNotAvailableError(
            f"no CLAP checkpoint directory at {path}; pass a directory written by "
            "ClapModel.save_pretrained and ClapProcessor.save_pretrained, or 'luma-tiny-clap'"
        )
    if not _in_hf_cache(text):  # decided before torch is even imported: fails at once
        raise _not_available(text)
    return text, text, False


def _in_hf_cache(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds a ``config.json`` for ``repo_id`` (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError as e:
        raise MissingDependencyError.for_extra("transformers", "models") from e
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id
        return False
    return isinstance(found, str)


class ClapEncoder:
    """Text and audio embeddings from a transformers CLAP model, float32 and unit-norm.

    Args:
        path_or_name: A directory holding ``ClapModel`` and ``ClapProcessor`` files, the name
            of a shipped checkpoint (``"luma-tiny-clap"``), or a Hugging Face id already in the
            local cache (e.g. ``"laion/clap-htsat-unfused"``).
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.

    Raises:
        ModelNotAvailableError: The model is not available locally (never downloaded).
        MissingDependencyError: torch or transformers is not installed.
    """

    def __init__(
        self, path_or_name: str | os.PathLike[str] = DEFAULT_MODEL, device: str = "cpu"
    ) -> None:
        location, self._name, local = _resolve(path_or_name)
        torch, tf = _require_torch_transformers()
        self._torch = torch
        try:
            self._processor = tf.ClapProcessor.from_pretrained(location, local_files_only=True)
            model = tf.ClapModel.from_pretrained(
                location, local_files_only=True, use_safetensors=True
            )
        except (OSError, ValueError) as e:  # missing files, no safetensors, not in the cache
            if local:
                raise ModelNotAvailableError(
                    f"could not load a CLAP model from {location}: {e}; it must hold "
                    "config.json, model.safetensors and the ClapProcessor files"
                ) from e
            raise _not_available(self._name, f"{type(e).__name__}: {e}") from e
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
