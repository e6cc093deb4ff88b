"""transformers CLIP (``CLIPModel``) behind the :class:`~luma_rag.encoders.base.Encoder` protocol.

Used for CLIP checkpoints published in transformers' layout, e.g.
``openai/clip-vit-large-patch14``: ``get_encoder("openai/clip-vit-large-patch14")`` finds the
directory through the registry (``$LUMA_MODEL_DIR/openai/clip-vit-large-patch14`` or the
Hugging Face cache) and builds this encoder. torch and transformers are imported only here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.encoders.base import AudioInput, Modality, check_batch, check_texts, l2_normalize
from luma_rag.encoders.weights import check_weights_file, offline_hub, transformers_weights
from luma_rag.errors import (
    InvalidInputError,
    LumaError,
    MissingDependencyError,
    ModelNotAvailableError,
    UnsupportedMediaError,
)
from luma_rag.media.image import ImageInput, load_image

__all__ = ["HFClipEncoder"]

logger = logging.getLogger(__name__)


class HFClipEncoder:
    """Text and image embeddings from a transformers ``CLIPModel``, float32 and unit-norm.

    Args:
        directory: Holds ``config.json``, the weights and the ``CLIPProcessor`` files.
        name: Name reported by :attr:`name` (default: the directory's name).
        device: torch device string.

    Raises:
        ModelNotAvailableError: The directory does not hold a loadable CLIP model.
        MissingDependencyError: torch or transformers is not installed.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, name: str | None = None, device: str = "cpu"
    ) -> None:
        path = Path(directory)
        try:
            import torch
            import transformers as tf
        except ImportError as e:
            raise MissingDependencyError.for_extra("transformers", "models") from e
        self._torch = torch
        self._name = name or path.name
        for weights in transformers_weights(path):
            check_weights_file(weights)
        try:
            with offline_hub():
                self._processor = tf.CLIPProcessor.from_pretrained(str(path), local_files_only=True)
                model = tf.CLIPModel.from_pretrained(str(path), local_files_only=True)
        except LumaError:
            raise
        except Exception as e:  # missing processor files, bad config, unreadable weights
            raise ModelNotAvailableError(
                f"could not load a CLIP model from {path}: {type(e).__name__}: {e}; it must hold "
                "config.json, model.safetensors (or pytorch_model.bin) and the CLIPProcessor "
                "files, as `hf download openai/clip-vit-large-patch14` writes them"
            ) from e
        module: Any = model
        self._model = module.to(device).eval()
        self._device = device
        self._dim = int(module.config.projection_dim)
        text_config: Any = module.config.text_config
        self._max_tokens = int(text_config.max_position_embeddings)

    @property
    def name(self) -> str:
        """Registry name of the model."""
        return self._name

    @property
    def dim(self) -> int:
        """Embedding dimension (``projection_dim``)."""
        return self._dim

    @property
    def modalities(self) -> frozenset[Modality]:
        """``{"text", "image"}``."""
        return frozenset({"text", "image"})

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed texts; float32 ``(len(texts), dim)``, unit rows (long texts truncated)."""
        items = check_texts(texts)
        step = _check_batch_size(batch_size)
        out = []
        for i in range(0, len(items), step):
            batch = self._processor.tokenizer(
                items[i : i + step],
                padding=True,
                truncation=True,
                max_length=self._max_tokens,
                return_tensors="pt",
            ).to(self._device)
            with self._torch.inference_mode():
                out.append(_features(self._model.get_text_features(**batch)))
        return l2_normalize(np.concatenate(out))

    def encode_image(self, images: Sequence[ImageInput], *, batch_size: int = 64) -> np.ndarray:
        """Embed images (paths, bytes, Pillow); float32 ``(n, dim)``, unit rows.

        Raises:
            UnsupportedMediaError: An image is missing, corrupt or too large (checked first).
        """
        items = [load_image(x) for x in check_batch(images, "images")]
        step = _check_batch_size(batch_size)
        out = []
        for i in range(0, len(items), step):
            pixels = self._processor.image_processor(items[i : i + step], return_tensors="pt")
            with self._torch.inference_mode():
                out.append(
                    _features(
                        self._model.get_image_features(
                            pixel_values=pixels["pixel_values"].to(self._device)
                        )
                    )
                )
        return l2_normalize(np.concatenate(out))

    def encode_audio(self, clips: Sequence[AudioInput], *, batch_size: int = 16) -> np.ndarray:
        """CLIP has no audio tower.

        Raises:
            UnsupportedMediaError: Always; encode audio with a CLAP model through the bridge.
        """
        raise UnsupportedMediaError(
            f"{self._name} is a CLIP model and does not embed audio; attach a CLAP audio encoder"
        )

    def __repr__(self) -> str:
        return f"HFClipEncoder({self._name!r}, dim={self._dim}, device={self._device!r})"


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return batch_size


def _features(out: Any) -> np.ndarray:
    """Projected features as float64 numpy; transformers 5 may wrap them in a model output."""
    tensor = out if hasattr(out, "detach") else out.pooler_output
    return np.asarray(tensor.detach().float().cpu().numpy(), dtype=np.float64)
