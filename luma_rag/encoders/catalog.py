"""What the registry knows without building a model: names, architectures, the weights table.

Split from :mod:`luma_rag.encoders.registry` (which adds the backends and ``get_encoder``) so
that backends can resolve names without an import cycle. Everything here is re-exported by
the registry; see its docstring for the pattern.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Final

from luma_rag.encoders.spec import (
    HF_TAG,
    MODEL_TYPES,
    OPEN_CLIP_FILES,
    Backend,
    Kind,
    PretrainedSpec,
    Resolved,
    model_name,
)
from luma_rag.encoders.weights import find_weights
from luma_rag.errors import ConfigError, ModelNotAvailableError

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_CONFIG_DIR",
    "PACKAGE_DIR",
    "add_model_config",
    "ensure_open_clip_configs",
    "get_model_config",
    "is_packaged",
    "list_models",
    "list_pretrained",
    "model_kind",
    "register_pretrained",
    "resolve_model",
]

logger = logging.getLogger(__name__)

PACKAGE_DIR: Final = Path(__file__).resolve().parent
MODEL_CONFIG_DIR: Final = PACKAGE_DIR / "model_configs"
#: What :func:`get_encoder` builds when given no name: the shipped tiny CLIP.
DEFAULT_MODEL: Final = "luma-tiny"

_PRETRAINED: dict[str, dict[str, PretrainedSpec]] = {
    "luma-tiny-clip": {
        "luma-shapes": PretrainedSpec(
            backend="open_clip",
            path="checkpoints/luma-tiny-clip/open_clip_model.safetensors",
            sha256="0ef22b1d15773756dd7e9aea2023206d9d686531bbddd770a555ff99c2d44bd7",
            description="tiny CLIP trained on LUMA-Shapes (offline default)",
        ),
    },
    "luma-tiny-clap": {
        HF_TAG: PretrainedSpec(
            backend="transformers-clap",
            path="checkpoints/luma-tiny-clap",
            description="tiny CLAP trained on LUMA-Shapes speech (offline audio)",
        ),
    },
    "luma-tiny-llava": {
        HF_TAG: PretrainedSpec(
            backend="llava",
            path="checkpoints/luma-tiny-llava",
            description="tiny LLaVA trained on LUMA-Shapes questions (offline answerer)",
        ),
    },
    "ViT-B-32": {
        "openai": PretrainedSpec(
            backend="open_clip",
            hf_hub="timm/vit_base_patch32_clip_224.openai",
            files=OPEN_CLIP_FILES,
            quick_gelu=True,
            description="OpenAI CLIP ViT-B/32 through open_clip (production default)",
        ),
    },
    "openai/clip-vit-large-patch14": {
        HF_TAG: PretrainedSpec(
            backend="transformers-clip",
            hf_hub="openai/clip-vit-large-patch14",
            description="OpenAI CLIP ViT-L/14 through transformers",
        ),
    },
    "laion/clap-htsat-unfused": {
        HF_TAG: PretrainedSpec(
            backend="transformers-clap",
            hf_hub="laion/clap-htsat-unfused",
            description="LAION CLAP (HTS-AT, unfused) through transformers",
        ),
    },
    "llava-hf/llava-1.5-7b-hf": {
        HF_TAG: PretrainedSpec(
            backend="llava",
            hf_hub="llava-hf/llava-1.5-7b-hf",
            description="LLaVA-1.5 7B through transformers (answerer)",
        ),
    },
}

#: Short names: ``alias -> "model/tag"``.
_ALIASES: dict[str, str] = {"luma-tiny": "luma-tiny-clip/luma-shapes"}

#: ``factory(model_name, weights_path, spec, device) -> Encoder``.
_CONFIG_PATHS: list[Path] = [MODEL_CONFIG_DIR]
_LOCK = threading.RLock()
_OPEN_CLIP_PATHS: set[Path] = set()
_CONFIG_KEYS: Final = ("embed_dim", "vision_cfg", "text_cfg")


# -- architectures -------------------------------------------------------------------------------
def _config_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for base in _CONFIG_PATHS:  # later paths override earlier ones, as in open_clip
        files = sorted(base.glob("*.json")) if base.is_dir() else [base]
        for f in files:
            found[f.stem] = f
    return found


def _read_config(path: Path) -> dict[str, Any]:
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"model config {path} could not be read: {e}") from e
    if not isinstance(cfg, dict) or not all(k in cfg for k in _CONFIG_KEYS):
        raise ConfigError(
            f"model config {path} must be a JSON object with the keys {list(_CONFIG_KEYS)} "
            "(open_clip's schema)"
        )
    return cfg


def add_model_config(path: str | os.PathLike[str]) -> None:
    """Register an open_clip architecture JSON file, or a directory of them.

    The file stem is the model name; a later registration of a name overrides an earlier one.

    Raises:
        ConfigError: The path does not exist or a file is not a valid config.
    """
    p = Path(path).resolve()
    if not p.exists():
        raise ConfigError(f"no model config at {p}")
    if p.is_file() and p.suffix != ".json":
        raise ConfigError(f"model config {p} must be a .json file")
    for f in sorted(p.glob("*.json")) if p.is_dir() else [p]:
        _read_config(f)
    with _LOCK:
        _CONFIG_PATHS.append(p)


def get_model_config(name: str) -> dict[str, Any] | None:
    """A copy of a registered open_clip architecture config, or ``None`` if unknown."""
    path = _config_files().get(name)
    return None if path is None else _read_config(path)


def list_models() -> list[str]:
    """Names of registered architectures and of models with known weights."""
    return sorted(set(_config_files()) | set(_PRETRAINED), key=str.lower)


def list_pretrained() -> list[tuple[str, str]]:
    """Every ``(model, tag)`` of the table."""
    return [(name, tag) for name, tags in _PRETRAINED.items() for tag in tags]


def register_pretrained(name: str, tag: str, spec: PretrainedSpec) -> None:
    """Add (or replace) a table entry, e.g. ``("ViT-B-16", "my-finetune", spec)``."""
    with _LOCK:
        _PRETRAINED.setdefault(name, {})[tag] = spec


# -- names ---------------------------------------------------------------------------------------
def _split_name(name: str) -> tuple[str, str | None]:
    name = _ALIASES.get(name, name)
    if name in _PRETRAINED or name in _config_files():
        return name, None
    head, sep, tail = name.rpartition("/")
    if sep and (head in _PRETRAINED or head in _config_files()):
        return head, tail
    return name, None


def _directory_spec(path: Path) -> PretrainedSpec | None:
    """The spec of a model directory passed by path, from its own config files."""
    if (path / "open_clip_config.json").is_file():
        return PretrainedSpec(backend="open_clip")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    backend = MODEL_TYPES.get(str(config.get("model_type"))) if isinstance(config, dict) else None
    return None if backend is None else PretrainedSpec(backend=backend)


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "~", os.sep)) or Path(name).expanduser().exists()


def resolve_model(
    name: str,
    pretrained: str | os.PathLike[str] | None = None,
    *,
    default_backend: Backend | None = None,
) -> Resolved:
    """Resolve a model name (or a model directory) to its weights, without loading anything.

    Args:
        name: A table name, optionally with a tag (``"ViT-B-32/openai"``), an alias
            (``"luma-tiny"``), or the path of a model directory whose ``config.json`` /
            ``open_clip_config.json`` says what it is.
        pretrained: A weights tag of the table, or an explicit weights file / directory.
        default_backend: For a Hugging Face id that is not in the table
            (``"llava-hf/llava-1.5-13b-hf"``): the backend to assume; it is then looked up
            like a table entry. None: such names are unknown.

    Returns:
        The :class:`Resolved` model.

    Raises:
        ModelNotAvailableError: Unknown name, or weights not on this machine.
    """
    text = os.fspath(name)
    model, tag = _split_name(text)
    tags = _PRETRAINED.get(model, {})
    if not tags and model not in _config_files() and _looks_like_path(text):
        path = Path(text).expanduser()
        spec = _directory_spec(path) if path.is_dir() else None
        if spec is None:
            raise ModelNotAvailableError(
                f"{path} is not a model directory"
                + ("" if path.is_dir() else " (it does not exist)")
                + ": it needs a config.json whose model_type is "
                f"one of {sorted(MODEL_TYPES)} (save_pretrained output), or an "
                "open_clip_config.json with an open_clip weights file"
            )
        found = find_weights(path.name, HF_TAG, spec, explicit=path)
        return Resolved(path.name, path.name, spec, found)
    explicit = None
    if pretrained is not None and os.fspath(pretrained) not in tags:
        explicit = pretrained
    elif pretrained is not None:
        tag = os.fspath(pretrained)
    if not tags and default_backend is not None and "/" in text and explicit is None:
        spec = PretrainedSpec(backend=default_backend, hf_hub=text)
        return Resolved(text, text, spec, find_weights(text, HF_TAG, spec))
    tag = tag or next(iter(tags), None)
    if tag is None or tag not in tags:
        if explicit is not None and model in _config_files():  # an architecture + a file
            spec = PretrainedSpec(backend="open_clip")
            return Resolved(model, model, spec, find_weights(model, "file", spec, explicit))
        known = sorted(model_name(n, t) for n, t in list_pretrained())
        raise ModelNotAvailableError(
            f"no weights known for {text!r}; pass pretrained='/path/to/weights', register them "
            f"with register_pretrained(), or use one of {known}"
        )
    spec = tags[tag]
    return Resolved(model_name(model, tag), model, spec, find_weights(model, tag, spec, explicit))


def model_kind(name: str | os.PathLike[str]) -> Kind:
    """What a model is, from its table entry or its directory's config — no weights read.

    Raises:
        ModelNotAvailableError: Unknown name, or a directory that is not a model.
    """
    text = os.fspath(name)
    model, tag = _split_name(text)
    tags = _PRETRAINED.get(model)
    if tags:
        return tags.get(tag or "", next(iter(tags.values()))).kind
    if model in _config_files():
        return "clip"
    path = Path(text).expanduser()
    spec = _directory_spec(path) if path.is_dir() else None
    if spec is None:
        raise ModelNotAvailableError(
            f"unknown model {text!r}: not in the registry ({', '.join(list_models())}) and not "
            "a model directory; register it with register_pretrained() or pass its directory"
        )
    return spec.kind


def is_packaged(name: str) -> bool:
    """Whether ``name`` (an encoder's :attr:`name` or a registry name) ships in the package.

    Only packaged (tiny, LUMA-Shapes) models may be calibrated on the shipped synthetic inputs.
    """
    model, tag = _split_name(name)
    tags = _PRETRAINED.get(model, {})
    spec = tags.get(tag or "") or next(iter(tags.values()), None)
    return spec is not None and not spec.needs_download


def ensure_open_clip_configs(open_clip: Any) -> None:
    """Hand every registered config path to open_clip's own registry (idempotent)."""
    with _LOCK:
        for path in _CONFIG_PATHS:
            if path not in _OPEN_CLIP_PATHS:
                open_clip.add_model_config(path)
                _OPEN_CLIP_PATHS.add(path)
