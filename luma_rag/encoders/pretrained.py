"""Weights by ``(model, tag)``: the pretrained table, and where on disk each entry's weights are.

open_clip's ``pretrained.py`` pattern. Entries with a ``path`` ship inside the package
(``luma-tiny-clip`` / ``luma-shapes``, checked against its sha256); the others
(``ViT-B-32`` / ``openai``, ``openai/clip-vit-large-patch14``, ``laion/clap-htsat-unfused``)
must be put on disk by the user. Nothing here downloads: :func:`find_weights` looks under
``$LUMA_MODEL_DIR/<model>/<tag>/`` and in the local Hugging Face hub cache, and says where to
put the weights when they are missing. Architectures and backends are
:mod:`luma_rag.encoders.registry`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from luma_rag.errors import ModelNotAvailableError

__all__ = [
    "DEFAULT_MODEL",
    "ENV_MODEL_DIR",
    "Backend",
    "PretrainedSpec",
    "find_weights",
    "hf_hub_cache",
    "list_pretrained",
    "pretrained_tags",
    "register_pretrained",
]

logger = logging.getLogger(__name__)

PACKAGE_DIR: Final = Path(__file__).resolve().parent
#: Environment variable naming a directory of user-provided weights.
ENV_MODEL_DIR: Final = "LUMA_MODEL_DIR"
#: What :func:`~luma_rag.encoders.registry.get_encoder` builds when given no name.
DEFAULT_MODEL: Final = "luma-tiny"
_LOCK = threading.RLock()

Backend = Literal["open_clip", "transformers-clip", "transformers-clap"]


@dataclass(frozen=True)
class PretrainedSpec:
    """Where the weights of one ``(model, tag)`` come from.

    Attributes:
        backend: Which backend builds the encoder.
        path: Packaged weights file, relative to ``luma_rag/encoders/``; ``None`` when the
            user must provide the weights.
        sha256: Hex digest the packaged file must have.
        hf_hub: Hugging Face repo id the weights are published under (where to get them on
            a machine with internet, and where the local hub cache is searched).
        files: File names to look for in a weights directory, first match wins. For the
            transformers backends, the file that marks a model directory (``config.json``).
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


_OPEN_CLIP_FILES: Final = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

_PRETRAINED: dict[str, dict[str, PretrainedSpec]] = {
    "luma-tiny-clip": {
        "luma-shapes": PretrainedSpec(
            backend="open_clip",
            path="checkpoints/luma-tiny-clip/open_clip_model.safetensors",
            sha256="8d5f9a2275731fed6a5e299900cea9d0c843c0f8458e5e9167b3711a55b7fbc6",
            description="tiny CLIP trained on LUMA-Shapes (offline default)",
        ),
    },
    "ViT-B-32": {
        "openai": PretrainedSpec(
            backend="open_clip",
            hf_hub="timm/vit_base_patch32_clip_224.openai",
            files=_OPEN_CLIP_FILES,
            quick_gelu=True,
            description="OpenAI CLIP ViT-B/32 through open_clip (production default)",
        ),
    },
    "openai/clip-vit-large-patch14": {
        "hf": PretrainedSpec(
            backend="transformers-clip",
            hf_hub="openai/clip-vit-large-patch14",
            files=("config.json",),
            description="OpenAI CLIP ViT-L/14 through transformers",
        ),
    },
    "laion/clap-htsat-unfused": {
        "hf": PretrainedSpec(
            backend="transformers-clap",
            hf_hub="laion/clap-htsat-unfused",
            files=("config.json",),
            description="LAION CLAP (HTS-AT, unfused) through transformers",
        ),
    },
}


def pretrained_tags(name: str) -> dict[str, PretrainedSpec]:
    """The ``{tag: spec}`` entries of model ``name`` (empty when it has none)."""
    with _LOCK:
        return dict(_PRETRAINED.get(name, {}))


def list_pretrained() -> list[tuple[str, str]]:
    """Return every ``(model, tag)`` of the pretrained table."""
    return [(name, tag) for name, tags in _PRETRAINED.items() for tag in tags]


def register_pretrained(name: str, tag: str, spec: PretrainedSpec) -> None:
    """Add (or replace) a pretrained table entry.

    Args:
        name: Model name, e.g. ``"ViT-B-16"``.
        tag: Weights tag, e.g. ``"my-finetune"``.
        spec: Where the weights come from.
    """
    with _LOCK:
        _PRETRAINED.setdefault(name, {})[tag] = spec


def hf_hub_cache() -> Path:
    """Return the local Hugging Face hub cache directory, as huggingface_hub would use it.

    Read from the environment at call time: ``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``,
    ``HF_HOME/hub``, ``XDG_CACHE_HOME/huggingface/hub``, then ``~/.cache/huggingface/hub``.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _safe_name(name: str) -> str:
    return name.replace("/", "--")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _packaged(name: str, tag: str, spec: PretrainedSpec) -> Path:
    path = PACKAGE_DIR / str(spec.path)
    if not path.is_file():
        raise ModelNotAvailableError(
            f"the packaged weights of {name}/{tag} are missing ({path}); reinstall luma-rag, "
            f"or rebuild them as described in {path.parent / 'README.md'}"
        )
    if spec.sha256 is not None and _sha256(path) != spec.sha256:
        raise ModelNotAvailableError(
            f"the packaged weights of {name}/{tag} at {path} do not match their sha256 "
            f"{spec.sha256}; reinstall luma-rag (or update the registry after retraining)"
        )
    return path


def _in_dir(directory: Path, spec: PretrainedSpec) -> Path | None:
    if not directory.is_dir():
        return None
    if spec.backend != "open_clip":  # transformers: the directory itself is the model
        return directory if all((directory / f).is_file() for f in spec.files) else None
    for f in spec.files:
        if (directory / f).is_file():
            return directory / f
    candidates = sorted(directory.glob("*.safetensors"))
    return candidates[0] if len(candidates) == 1 else None


def _hf_snapshots(repo: str) -> list[Path]:
    root = hf_hub_cache() / f"models--{_safe_name(repo)}"
    if not root.is_dir():
        return []
    snapshots = root / "snapshots"
    ref = root / "refs" / "main"
    preferred = []
    if ref.is_file():
        preferred.append(snapshots / ref.read_text(encoding="utf-8").strip())
    others = sorted(snapshots.iterdir()) if snapshots.is_dir() else []
    return preferred + [p for p in others if p not in preferred]


def find_weights(name: str, tag: str, spec: PretrainedSpec) -> Path:
    """Locate the weights of ``(name, tag)`` on this machine, never over the network.

    Args:
        name: Model name of the pretrained table.
        tag: Weights tag.
        spec: Its table entry.

    Returns:
        A weights file (open_clip) or a model directory (transformers).

    Raises:
        ModelNotAvailableError: Not packaged and not found under ``$LUMA_MODEL_DIR`` or in
            the Hugging Face cache; the message says how to provide them.
    """
    if not spec.needs_download:
        return _packaged(name, tag, spec)
    user_root = os.environ.get(ENV_MODEL_DIR)
    user_dir = Path(user_root).expanduser() / _safe_name(name) / tag if user_root else None
    if user_dir is not None and (found := _in_dir(user_dir, spec)) is not None:
        return found
    for snapshot in _hf_snapshots(spec.hf_hub) if spec.hf_hub else []:
        if (found := _in_dir(snapshot, spec)) is not None:
            return found
    raise ModelNotAvailableError(_not_available_message(name, tag, spec, user_dir))


def _not_available_message(name: str, tag: str, spec: PretrainedSpec, user_dir: Path | None) -> str:
    target = f"${ENV_MODEL_DIR}/{_safe_name(name)}/{tag}/"
    searched = f"{user_dir}" if user_dir is not None else f"{target} (${ENV_MODEL_DIR} is unset)"
    holds = (
        f"{', '.join(spec.files)} and the weights"
        if spec.backend != "open_clip"
        else " or ".join(spec.files) or "one .safetensors file"
    )
    fetch = (
        f"`huggingface-cli download {spec.hf_hub} --local-dir DIR`"
        if spec.hf_hub
        else "the publisher's download"
    )
    return (
        f"model {name} (pretrained {tag!r}) is not available offline: searched {searched} and "
        f"the Hugging Face cache {hf_hub_cache()}. LUMA-RAG never downloads weights. On a "
        f"machine with internet run {fetch}, copy DIR here as {target} (it must hold {holds}) "
        f"and set {ENV_MODEL_DIR}; or pass pretrained='/path/to/weights'. Offline, use "
        f"get_encoder({DEFAULT_MODEL!r})."
    )
