"""open_clip backend: any open_clip architecture with weights from a local file.

Used for the shipped ``luma-tiny-clip`` and for production models such as ``ViT-B-32`` /
``openai`` once their weights are on disk. Weights are always passed to open_clip as a file
path, so open_clip never reaches for the network. torch and open_clip are imported only when
an encoder is built.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.encoders.base import AudioInput, Modality, check_batch, check_texts, l2_normalize
from luma_rag.encoders.spec import OPEN_CLIP_FILES, PretrainedSpec
from luma_rag.encoders.weights import check_weights_file, offline_hub
from luma_rag.errors import (
    InvalidInputError,
    LumaError,
    MissingDependencyError,
    ModelNotAvailableError,
    UnsupportedMediaError,
)
from luma_rag.media.image import ImageInput, load_image

__all__ = ["OpenClipEncoder", "build_open_clip", "import_open_clip"]

logger = logging.getLogger(__name__)


def import_open_clip() -> tuple[Any, Any]:
    """Import and return ``(torch, open_clip)``.

    Raises:
        MissingDependencyError: One of them is not installed.
    """
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError.for_extra("torch", "models") from e
    try:
        import open_clip
    except ImportError as e:
        raise MissingDependencyError.for_extra("open_clip_torch", "models") from e
    return torch, open_clip


def build_open_clip(
    model_name: str, weights: Path, spec: PretrainedSpec, device: str = "cpu"
) -> OpenClipEncoder:
    """Build the registry's open_clip entry ``model_name`` from its weights file.

    Args:
        model_name: open_clip architecture name (``"ViT-B-32"``).
        weights: The weights file found by the registry; an ``open_clip_config.json`` beside
            it (the published layout) gives the architecture instead of the built-in config.
        spec: The registry entry (``quick_gelu``).
        device: torch device string.
    """
    return OpenClipEncoder(model_name, weights, device, quick_gelu=spec.quick_gelu, name=model_name)


class OpenClipEncoder:
    """An :class:`~luma_rag.encoders.base.Encoder` over an open_clip model (text and image).

    Setup:
        ``pip install 'luma-rag[models]'`` (torch, open_clip_torch, Pillow).

    Instantiate:
        >>> from luma_rag.encoders import get_encoder
        >>> enc = get_encoder("luma-tiny")  # the shipped tiny CLIP  # doctest: +SKIP
        >>> enc = OpenClipEncoder("ViT-B-32", "/models/vit-b-32.safetensors", quick_gelu=True)
        ... # doctest: +SKIP

    Encode:
        >>> enc.encode_text(["a red circle"]).shape  # doctest: +SKIP
        (1, 128)
        >>> enc.encode_image(["photo.png"]).dtype  # doctest: +SKIP
        dtype('float32')

    Args:
        model_name: An open_clip architecture name (built in, or registered with
            :func:`luma_rag.encoders.add_model_config`).
        pretrained: Path of a weights file (``.safetensors`` preferred), or ``None`` for a
            randomly initialised model (testing only).
        device: torch device string, e.g. ``"cpu"`` or ``"cuda"``.
        quick_gelu: The checkpoint was trained with QuickGELU (OpenAI weights were).
        preprocess: open_clip preprocessing overrides (``mean``, ``std``, ``interpolation``,
            ``resize_mode``) matching how the weights were trained.
        name: Name reported by :attr:`name` (default ``model_name``).

    Raises:
        ModelNotAvailableError: ``pretrained`` is not a file, or open_clip cannot build
            ``model_name`` from it.
        MissingDependencyError: torch or open_clip is not installed.
    """

    def __init__(
        self,
        model_name: str,
        pretrained: str | os.PathLike[str] | None,
        device: str = "cpu",
        *,
        quick_gelu: bool = False,
        preprocess: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        torch, open_clip = import_open_clip()
        from luma_rag.encoders.catalog import ensure_open_clip_configs

        ensure_open_clip_configs(open_clip)
        path = None if pretrained is None else Path(pretrained)
        if path is not None:
            if not path.is_file():
                raise ModelNotAvailableError(
                    f"weights for {model_name} not found at {path}; pass the path of an existing "
                    "open_clip checkpoint (.safetensors or .bin) or of its directory"
                )
            check_weights_file(path)
        # A published open_clip directory (hf-hub layout) carries its architecture with it.
        local = path is not None and (path.parent / "open_clip_config.json").is_file()
        arch = f"local-dir:{path.parent}" if local and path is not None else model_name
        # open_clip's own pick in such a directory is safetensors, then .bin: let it load
        # the file when that is the one found, else load it explicitly after building
        own_pick = local and path is not None and _open_clip_picks(path)
        extra = {f"image_{k}": v for k, v in (preprocess or {}).items()}
        try:
            with offline_hub():
                model, _, transform = open_clip.create_model_and_transforms(
                    arch,
                    pretrained=None if local or path is None else str(path),
                    load_weights=not local or own_pick,
                    device=device,
                    force_quick_gelu=quick_gelu,
                    **extra,
                )
                if local and not own_pick:
                    open_clip.load_checkpoint(model, str(path), weights_only=True)
                tokenizer = open_clip.get_tokenizer(arch)
        except LumaError:
            raise
        except Exception as e:  # open_clip reports bad configs and weights in many types
            raise ModelNotAvailableError(
                f"open_clip could not build {model_name} from {path}: {type(e).__name__}: {e}; "
                "check that the weights file belongs to this architecture (or its "
                "open_clip_config.json), or copy it again"
            ) from e
        self._setup(model, transform, tokenizer, name or model_name, torch.device(device))

    @classmethod
    def from_model(
        cls,
        model: Any,
        preprocess: Callable[[Any], Any],
        tokenizer: Callable[[list[str]], Any],
        name: str,
    ) -> OpenClipEncoder:
        """Wrap an open_clip model already in memory (e.g. during training).

        Args:
            model: An open_clip ``CLIP`` module; it is put in eval mode while encoding.
            preprocess: Its evaluation image transform (Pillow image -> (3, H, W) tensor).
            tokenizer: Its tokenizer (list of str -> (n, context_length) int tensor).
            name: Name reported by :attr:`name`.

        Returns:
            An encoder sharing ``model`` (not a copy).
        """
        import torch

        enc = cls.__new__(cls)
        device = next(model.parameters()).device
        enc._setup(model, preprocess, tokenizer, name, torch.device(device))
        return enc

    def _setup(self, model: Any, preprocess: Any, tokenizer: Any, name: str, device: Any) -> None:
        self._model = model
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        self._name = name
        self._device = device
        proj: Any = getattr(model, "text_projection", None)
        if getattr(proj, "ndim", 0) == 2:  # CLIP: (width, embed_dim)
            self._dim = int(proj.shape[1])
        else:  # other text towers: ask the model
            self._dim = int(self._encode_text_batch([""]).shape[1])

    @property
    def name(self) -> str:
        """Registry name of the model."""
        return self._name

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self._dim

    @property
    def modalities(self) -> frozenset[Modality]:
        """``{"text", "image"}``."""
        return frozenset({"text", "image"})

    @property
    def model(self) -> Any:
        """The underlying open_clip module (torch ``nn.Module``)."""
        return self._model

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed texts with the model's own tokenizer.

        Texts longer than the model's context are truncated by the tokenizer.

        Args:
            texts: Strings to embed.
            batch_size: Texts per forward pass.

        Returns:
            float32 ``(len(texts), dim)``, unit rows.

        Raises:
            InvalidInputError: Not a non-empty list of str, or a bad ``batch_size``.
        """
        items = check_texts(texts)
        step = _check_batch_size(batch_size)
        parts = [self._encode_text_batch(items[i : i + step]) for i in range(0, len(items), step)]
        return l2_normalize(np.concatenate(parts))

    def encode_image(self, images: Sequence[ImageInput], *, batch_size: int = 64) -> np.ndarray:
        """Embed images with the model's own preprocessing.

        Each image is loaded by :func:`~luma_rag.media.image.load_image` (EXIF stripped,
        bounded size, typed errors) before the first forward pass, so a bad file anywhere in
        the batch fails the call before any work is done.

        Args:
            images: Paths, file bytes or Pillow images.
            batch_size: Images per forward pass.

        Returns:
            float32 ``(len(images), dim)``, unit rows.

        Raises:
            InvalidInputError: Empty batch or bad ``batch_size``.
            UnsupportedMediaError: An image is missing, corrupt, truncated, of an unsupported
                format or too large (the message names it).
        """
        items = check_batch(images, "images")
        step = _check_batch_size(batch_size)
        loaded = [load_image(item) for item in items]
        parts = [
            self._encode_image_batch(loaded[i : i + step]) for i in range(0, len(loaded), step)
        ]
        return l2_normalize(np.concatenate(parts))

    def encode_audio(self, clips: Sequence[AudioInput], *, batch_size: int = 16) -> np.ndarray:
        """CLIP has no audio tower.

        Raises:
            UnsupportedMediaError: Always; use a CLAP encoder and the bridge for audio.
        """
        raise UnsupportedMediaError(
            f"{self._name} is a CLIP model and does not embed audio; encode audio with a CLAP "
            "encoder (e.g. get_encoder('laion/clap-htsat-unfused')) through the bridge"
        )

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self._tokenizer(texts).to(self._device)
        with torch.inference_mode(), _eval_mode(self._model):
            out = self._model.encode_text(tokens, normalize=True)
        return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        import torch

        pixels = torch.stack([self._preprocess(im) for im in images]).to(self._device)
        with torch.inference_mode(), _eval_mode(self._model):
            out = self._model.encode_image(pixels, normalize=True)
        return np.asarray(out.float().cpu().numpy(), dtype=np.float32)

    def __repr__(self) -> str:
        return (
            f"OpenClipEncoder(name={self._name!r}, dim={self._dim}, device={str(self._device)!r})"
        )


def _open_clip_picks(path: Path) -> bool:
    """Whether open_clip's ``local-dir:`` loader would choose ``path`` in its directory."""
    first, second = OPEN_CLIP_FILES
    return path.name == first or (path.name == second and not (path.parent / first).exists())


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return batch_size


@contextlib.contextmanager
def _eval_mode(module: Any) -> Iterator[None]:
    """Put a module in eval mode for a block and restore its previous mode after."""
    was_training = bool(module.training)
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)
