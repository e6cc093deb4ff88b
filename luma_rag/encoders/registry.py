"""Encoders by name: architectures as JSON configs, weights in a pretrained table.

This is open_clip's pattern (``model_configs/*.json`` + ``pretrained.py``), scaled down:

* **Architectures** are JSON files in open_clip's schema (``embed_dim``, ``vision_cfg``,
  ``text_cfg``) under ``luma_rag/encoders/model_configs/``; :func:`add_model_config` adds
  more. They are handed to open_clip when an encoder is built, never at import.
* **Weights** are a table ``{model: {tag: PretrainedSpec}}``. Entries with a ``path`` ship
  inside the package (``luma-tiny-clip`` / ``luma-shapes``, checked against its sha256);
  the others (``ViT-B-32`` / ``openai``, ``openai/clip-vit-large-patch14``,
  ``laion/clap-htsat-unfused``) must be put on disk by the user. :func:`register_pretrained`
  adds entries.

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

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from luma_rag.encoders.base import Encoder
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
#: Environment variable naming a directory of user-provided weights.
ENV_MODEL_DIR: Final = "LUMA_MODEL_DIR"
#: What :func:`get_encoder` builds when given no name: the shipped tiny CLIP.
DEFAULT_MODEL: Final = "luma-tiny"

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
    return sorted(set(_config_files()) | set(_PRETRAINED), key=str.lower)


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


def register_backend(backend: str, factory: BackendFactory) -> None:
    """Make :func:`get_encoder` build ``backend`` entries with ``factory``.

    Args:
        backend: Backend name as used in :attr:`PretrainedSpec.backend`.
        factory: ``factory(model_name, weights_path, spec, device) -> Encoder``.
    """
    with _LOCK:
        _BACKENDS[backend] = factory


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------------


def _split_name(name: str) -> tuple[str, str | None]:
    name = _ALIASES.get(name, name)
    if name in _PRETRAINED or name in _config_files():
        return name, None
    head, sep, tail = name.rpartition("/")
    if sep and (head in _PRETRAINED or head in _config_files()):
        return head, tail
    return name, None


def _default_spec(name: str) -> PretrainedSpec:
    tags = _PRETRAINED.get(name)
    if tags:
        return next(iter(tags.values()))
    return PretrainedSpec(backend="open_clip")


def _resolve(name: str, tag: str | None, pretrained: str | None) -> tuple[PretrainedSpec, Path]:
    tags = _PRETRAINED.get(name, {})
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
