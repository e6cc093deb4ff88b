"""What a registry entry says about a model: its backend, its kind, where its weights come from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "HF_TAG",
    "MODEL_TYPES",
    "OPEN_CLIP_FILES",
    "Backend",
    "Kind",
    "PretrainedSpec",
    "Resolved",
    "model_name",
]

#: The tag of transformers models, whose registry name is their Hugging Face id.
HF_TAG: Final = "hf"
#: open_clip weights files of a published model directory, in order of preference.
OPEN_CLIP_FILES: Final = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

Backend = Literal["open_clip", "transformers-clip", "transformers-clap", "llava"]
#: What a model is: ``"clip"`` embeds text and images into the store space, ``"audio"``
#: embeds audio (and text) into its own space, crossing the bridge; ``"answerer"`` generates.
Kind = Literal["clip", "audio", "answerer"]
_KINDS: Final[dict[str, Kind]] = {
    "open_clip": "clip",
    "transformers-clip": "clip",
    "transformers-clap": "audio",
    "llava": "answerer",
}
#: transformers ``config.json`` ``model_type`` -> backend, for directories passed by path.
MODEL_TYPES: Final[dict[str, Backend]] = {
    "clip": "transformers-clip",
    "clap": "transformers-clap",
    "llava": "llava",
}


@dataclass(frozen=True)
class PretrainedSpec:
    """Where the weights of one ``(model, tag)`` come from, and which backend builds them.

    Attributes:
        backend: Which backend builds the model; it decides :attr:`kind`.
        path: Packaged weights (a file, or a model directory for transformers), relative to
            ``luma_rag/encoders/``; ``None`` when the user must provide the weights.
        sha256: Hex digest a packaged weights file must have.
        hf_hub: Hugging Face repo id the weights are published under (what to download on a
            machine with internet, and where the local hub cache is searched).
        files: open_clip: weights file names to look for, first match wins (safetensors
            first). transformers: ignored (``config.json`` + weights).
        quick_gelu: The weights were trained with QuickGELU (open_clip only).
        description: One line for listings.
    """

    backend: Backend
    path: str | None = None
    sha256: str | None = None
    hf_hub: str | None = None
    files: tuple[str, ...] = ()
    quick_gelu: bool = False
    description: str = ""

    @property
    def needs_download(self) -> bool:
        """True when the weights are not shipped inside the package."""
        return self.path is None

    @property
    def kind(self) -> Kind:
        """``"clip"``, ``"audio"`` or ``"answerer"``, from the backend."""
        return _KINDS[self.backend]


@dataclass(frozen=True)
class Resolved:
    """A model name resolved to its weights on this machine.

    Attributes:
        name: The model's registry name (``"ViT-B-32/openai"``), or the directory's name.
        model: Architecture / table name (``"ViT-B-32"``).
        spec: Its table entry.
        location: Weights file (open_clip) or model directory (transformers).
    """

    name: str
    model: str
    spec: PretrainedSpec
    location: Path


def model_name(model: str, tag: str) -> str:
    """The registry name of ``(model, tag)``: the path under ``$LUMA_MODEL_DIR``."""
    return model if tag == HF_TAG else f"{model}/{tag}"
