"""Encoders by name: architectures as JSON configs, weights in a pretrained table.

This is open_clip's pattern (``model_configs/*.json`` + ``pretrained.py``), scaled down:

* **Architectures** are JSON files in open_clip's schema (``embed_dim``, ``vision_cfg``,
  ``text_cfg``) under ``luma_rag/encoders/model_configs/``; :func:`add_model_config` adds
  more. They are handed to open_clip when an encoder is built, never at import.
* **Weights** are a table ``{model: {tag: PretrainedSpec}}`` in
  :mod:`luma_rag.encoders.pretrained` (re-exported here). Entries with a ``path`` ship
  inside the package (``luma-tiny-clip`` / ``luma-shapes``, checked against its sha256);
  the others (``ViT-B-32`` / ``openai``, ``openai/clip-vit-large-patch14``,
  ``laion/clap-htsat-unfused``) must be put on disk by the user. :func:`register_pretrained`
  adds entries.
* **Backends** build an encoder from a model name, its weights and its spec
  (:func:`register_backend`).

Nothing here downloads. Weights that are not packaged are looked up, in order, at an explicit
``pretrained=/path``, under ``$LUMA_MODEL_DIR/<model>/<tag>/`` (``/`` in the model name
becomes ``--``) and in the local Hugging Face hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub``
or ``~/.cache/huggingface/hub``). When none has them,
:class:`~luma_rag.errors.ModelNotAvailableError` says where to put them, at once.

>>> from luma_rag.encoders import get_encoder, list_models
>>> "luma-tiny-clip" in list_models()
True
>>> enc = get_encoder("luma-tiny")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from luma_rag.encoders.base import Encoder
from luma_rag.encoders.pretrained import (
    DEFAULT_MODEL,
    ENV_MODEL_DIR,
    Backend,
    PretrainedSpec,
    find_weights,
    hf_hub_cache,
    list_pretrained,
    pretrained_tags,
    register_pretrained,
)
from luma_rag.errors import ConfigError, ModelNotAvailableError

__all__ = [
    "DEFAULT_MODEL",
    "ENV_MODEL_DIR",
    "MODEL_CONFIG_DIR",
    "Backend",
    "BackendFactory",
    "PretrainedSpec",
    "add_model_config",
    "ensure_open_clip_configs",
    "find_weights",
    "get_encoder",
    "get_model_config",
    "hf_hub_cache",
    "list_models",
    "list_pretrained",
    "register_backend",
    "register_pretrained",
]

logger = logging.getLogger(__name__)

PACKAGE_DIR: Final = Path(__file__).resolve().parent
MODEL_CONFIG_DIR: Final = PACKAGE_DIR / "model_configs"

#: Short names: ``alias -> "model/tag"``.
_ALIASES: dict[str, str] = {"luma-tiny": "luma-tiny-clip/luma-shapes"}

#: ``factory(model_name, weights_path, spec, device) -> Encoder``.
BackendFactory = Callable[[str, Path, PretrainedSpec, str], Encoder]

_CONFIG_PATHS: list[Path] = [MODEL_CONFIG_DIR]
_BACKENDS: dict[str, BackendFactory] = {}
_LOCK = threading.RLock()
_OPEN_CLIP_PATHS: set[Path] = set()
_CONFIG_KEYS: Final = ("embed_dim", "vision_cfg", "text_cfg")


# ---------------------------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------------------------


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
    """Register a model architecture JSON file, or a directory of them.

    The file stem is the model name. Files must follow open_clip's schema (``embed_dim``,
    ``vision_cfg``, ``text_cfg``); a later registration of a name overrides an earlier one.

    Args:
        path: A ``.json`` file or a directory holding ``*.json`` files.

    Raises:
        ConfigError: The path does not exist or a file is not a valid config.
    """
    p = Path(path).resolve()
    if not p.exists():
        raise ConfigError(f"no model config at {p}")
    files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    if p.is_file() and p.suffix != ".json":
        raise ConfigError(f"model config {p} must be a .json file")
    for f in files:
        _read_config(f)
    with _LOCK:
        _CONFIG_PATHS.append(p)


def get_model_config(name: str) -> dict[str, Any] | None:
    """Return a copy of a registered architecture config, or ``None`` if unknown.

    Args:
        name: Architecture name (a config file stem), e.g. ``"luma-tiny-clip"``.
    """
    path = _config_files().get(name)
    return None if path is None else _read_config(path)


def list_models() -> list[str]:
    """Return the names of registered architectures and of models with known weights."""
    return sorted(set(_config_files()) | {n for n, _ in list_pretrained()}, key=str.lower)


def register_backend(backend: str, factory: BackendFactory) -> None:
    """Make :func:`get_encoder` build ``backend`` entries with ``factory``.

    Args:
        backend: Backend name as used in :attr:`PretrainedSpec.backend`.
        factory: ``factory(model_name, weights_path, spec, device) -> Encoder``.
    """
    with _LOCK:
        _BACKENDS[backend] = factory


# ---------------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------------


def _split_name(name: str) -> tuple[str, str | None]:
    name = _ALIASES.get(name, name)
    if pretrained_tags(name) or name in _config_files():
        return name, None
    head, sep, tail = name.rpartition("/")
    if sep and (pretrained_tags(head) or head in _config_files()):
        return head, tail
    return name, None


def _default_spec(name: str) -> PretrainedSpec:
    tags = pretrained_tags(name)
    if tags:
        return next(iter(tags.values()))
    return PretrainedSpec(backend="open_clip")


def _resolve(name: str, tag: str | None, pretrained: str | None) -> tuple[PretrainedSpec, Path]:
    tags = pretrained_tags(name)
    if pretrained is not None and pretrained not in tags:
        path = Path(pretrained).expanduser()
        if path.exists():
            spec = tags[tag] if tag in tags else _default_spec(name)
            return spec, path
        raise ModelNotAvailableError(
            f"pretrained={pretrained!r} is neither a weights tag of {name} "
            f"(known: {sorted(tags) or 'none'}) nor an existing file or directory"
        )
    tag = pretrained or tag or next(iter(tags), None)
    if tag is None or tag not in tags:
        known = [f"{n}/{t}" for n, t in list_pretrained()]
        raise ModelNotAvailableError(
            f"no weights known for {name}" + (f" with tag {tag!r}" if tag else "") + "; pass "
            f"pretrained='/path/to/weights', register them with register_pretrained(), or use "
            f"one of {known}"
        )
    spec = tags[tag]
    return spec, find_weights(name, tag, spec)


def get_encoder(
    name: str = DEFAULT_MODEL, pretrained: str | None = None, *, device: str = "cpu"
) -> Encoder:
    """Build an encoder by name, from local weights only.

    Args:
        name: A model name (``"luma-tiny-clip"``, ``"ViT-B-32"``,
            ``"openai/clip-vit-large-patch14"``), optionally with a tag
            (``"ViT-B-32/openai"``), or an alias (``"luma-tiny"``).
        pretrained: A weights tag of the table, or the path of a weights file (open_clip) or
            model directory (transformers). Default: the name's tag, else its first tag.
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.

    Returns:
        A ready :class:`~luma_rag.encoders.base.Encoder`.

    Raises:
        ModelNotAvailableError: The weights are not on this machine (the message says how to
            provide them), fail their checksum, or no backend can build the model.
        MissingDependencyError: The backend's packages (torch, open_clip, ...) are missing.
    """
    model, tag = _split_name(name)
    spec, weights = _resolve(model, tag, pretrained)
    with _LOCK:
        factory = _BACKENDS.get(spec.backend)
    if factory is None:
        raise ModelNotAvailableError(
            f"{model} needs the {spec.backend!r} backend, which this build of LUMA-RAG does not "
            f"register; available: {sorted(_BACKENDS)}"
        )
    logger.info("building %s encoder %s from %s on %s", spec.backend, model, weights, device)
    return factory(model, weights, spec, device)


def ensure_open_clip_configs(open_clip: Any) -> None:
    """Hand every registered config path to open_clip's own registry (idempotent).

    Args:
        open_clip: The imported ``open_clip`` module.
    """
    with _LOCK:
        for path in _CONFIG_PATHS:
            if path not in _OPEN_CLIP_PATHS:
                open_clip.add_model_config(path)
                _OPEN_CLIP_PATHS.add(path)


def _open_clip_factory(name: str, weights: Path, spec: PretrainedSpec, device: str) -> Encoder:
    from luma_rag.encoders.open_clip_backend import OpenClipEncoder, import_open_clip

    _, open_clip = import_open_clip()
    ensure_open_clip_configs(open_clip)
    return OpenClipEncoder(name, weights, device, quick_gelu=spec.quick_gelu, name=name)


_BACKENDS["open_clip"] = _open_clip_factory
