"""Where model weights are found on this machine, and how they are read: never over the network.

The registry (:mod:`luma_rag.encoders.registry`) holds names and configs; this module holds
the lookup, in one order for every backend:

1. an explicit path (``pretrained=`` / a directory passed as the name);
2. ``$LUMA_MODEL_DIR/<name>`` (``<name>`` as the registry spells it, slashes included:
   ``ViT-B-32/openai``, ``laion/clap-htsat-unfused``, ``llava-hf/llava-1.5-7b-hf``);
3. the local Hugging Face hub cache (``models--org--name/snapshots/<rev>/``).

Weights files are checked before a backend reads them (a truncated safetensors or ``.bin``
file is a :class:`~luma_rag.errors.ModelNotAvailableError` naming the file, not a
``SafetensorError`` from deep inside a loader). safetensors is preferred; ``.bin`` files are
read with ``torch.load(weights_only=True)`` (no code execution). Loads run inside
:func:`offline_hub`, which switches the Hugging Face libraries offline for their duration only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from luma_rag.encoders.spec import OPEN_CLIP_FILES, PretrainedSpec, model_name
from luma_rag.errors import ModelNotAvailableError

__all__ = [
    "ENV_MODEL_DIR",
    "TRANSFORMERS_WEIGHTS",
    "check_weights_file",
    "find_weights",
    "hf_hub_cache",
    "hf_snapshots",
    "load_state_dict",
    "model_dir",
    "offline_hub",
    "transformers_weights",
]

logger = logging.getLogger(__name__)

#: Environment variable naming a directory of user-provided weights.
ENV_MODEL_DIR: Final = "LUMA_MODEL_DIR"
#: Weights files of a transformers model directory, in order of preference.
TRANSFORMERS_WEIGHTS: Final = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_PACKAGE_DIR: Final = Path(__file__).resolve().parent
_OFFLINE_VARS: Final = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_OFFLINE_LOCK = threading.RLock()
_offline_depth = 0
_saved: dict[str, Any] = {}


def model_dir() -> Path | None:
    """``$LUMA_MODEL_DIR`` as a path, read at call time; None when unset or empty."""
    root = os.environ.get(ENV_MODEL_DIR)
    return Path(root).expanduser() if root else None


def hf_hub_cache() -> Path:
    """The local Hugging Face hub cache directory, as huggingface_hub would use it.

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


def hf_snapshots(repo: str) -> list[Path]:
    """Snapshot directories of ``repo`` in the hub cache, ``refs/main`` first (may be empty)."""
    root = hf_hub_cache() / f"models--{repo.replace('/', '--')}"
    snapshots = root / "snapshots"
    if not snapshots.is_dir():
        return []
    ref = root / "refs" / "main"
    preferred = []
    if ref.is_file():
        preferred.append(snapshots / ref.read_text(encoding="utf-8").strip())
    others = sorted(p for p in snapshots.iterdir() if p.is_dir())
    return [p for p in preferred if p.is_dir()] + [p for p in others if p not in preferred]


def transformers_weights(directory: Path) -> list[Path]:
    """The weights files a transformers model directory loads from (safetensors first).

    A sharded checkpoint (``*.index.json``) yields its shards. Returns ``[]`` when the
    directory holds none of :data:`TRANSFORMERS_WEIGHTS`.
    """
    for name in TRANSFORMERS_WEIGHTS:
        path = directory / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return [path]
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
            shards = sorted(set(index["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise _bad_file(path, f"unreadable shard index ({e})") from e
        return [directory / s for s in shards]
    return []


def _bad_file(path: Path, why: str) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"weights file {path} is damaged: {why}. Copy it again from its source (compare its "
        "size and sha256 with the published file), or delete its directory to use the next "
        "location the registry searches"
    )


def check_weights_file(path: Path) -> None:
    """Check that a weights file is complete before a loader reads it (cheap: headers only).

    safetensors: the JSON header parses and the file is as long as its tensors need.
    ``.bin`` / ``.pt`` (torch zip format): the zip directory at the end of the file is there.

    Args:
        path: The file.

    Raises:
        ModelNotAvailableError: The file is missing, truncated or not in its format; the
            message names it and says how to fix it.
    """
    if not path.is_file():
        raise ModelNotAvailableError(
            f"weights file {path} does not exist; copy the model's weights there"
        )
    size = path.stat().st_size
    if path.suffix == ".safetensors":
        try:
            with path.open("rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                if n > size - 8:
                    raise _bad_file(path, f"header of {n} bytes but the file has {size}")
                header = json.loads(f.read(n))
            ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        except (struct.error, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            raise _bad_file(path, f"not a safetensors file ({type(e).__name__}: {e})") from e
        need = 8 + n + max(ends, default=0)
        if size < need:
            raise _bad_file(path, f"truncated: {size} bytes, its header needs {need}")
    elif path.suffix in {".bin", ".pt", ".pth"}:
        try:
            with zipfile.ZipFile(path) as z:
                z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise _bad_file(path, f"not a complete torch checkpoint ({e})") from e


def load_state_dict(path: Path) -> dict[str, Any]:
    """Read a checked weights file into a ``{name: tensor}`` dict on the CPU.

    Args:
        path: ``.safetensors`` (preferred) or a torch ``.bin`` / ``.pt`` file, read with
            ``torch.load(weights_only=True)``.

    Returns:
        The state dict (a ``{"state_dict": ...}`` wrapper is unwrapped).

    Raises:
        ModelNotAvailableError: The file is missing, damaged or holds something else than
            tensors.
    """
    import torch

    check_weights_file(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # any reader failure (SafetensorError, UnpicklingError, ...)
        raise _bad_file(path, f"{type(e).__name__}: {e}") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise _bad_file(path, f"it holds a {type(state).__name__}, not a state dict")
    return state


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Switch the Hugging Face libraries offline for the duration of a load; restore after.

    Sets ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` and huggingface_hub's already-read
    constant, so neither a download nor a metadata request (a DNS lookup) is attempted, then
    puts back what was there. Re-entrant and thread-safe (nested loads share one switch).
    """
    global _offline_depth
    with _OFFLINE_LOCK:
        if _offline_depth == 0:
            constants = _hub_constants()  # imported before the switch: it reads the env once
            _saved.clear()
            _saved.update({var: os.environ.get(var) for var in _OFFLINE_VARS})
            for var in _OFFLINE_VARS:
                os.environ[var] = "1"
            if constants is not None:
                _saved["constant"] = constants.HF_HUB_OFFLINE
                constants.HF_HUB_OFFLINE = True
        _offline_depth += 1
    try:
        yield
    finally:
        with _OFFLINE_LOCK:
            _offline_depth -= 1
            if _offline_depth == 0:
                for var in _OFFLINE_VARS:
                    old = _saved.get(var)
                    if old is None:
                        os.environ.pop(var, None)
                    else:
                        os.environ[var] = old
                constants = _hub_constants()
                if constants is not None and "constant" in _saved:
                    constants.HF_HUB_OFFLINE = _saved["constant"]


def _hub_constants() -> Any:
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    return constants


# -- lookup --------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _packaged(name: str, spec: PretrainedSpec) -> Path:
    path = _PACKAGE_DIR / str(spec.path)
    if not path.exists():
        raise ModelNotAvailableError(
            f"the packaged weights of {name} are missing ({path}); reinstall luma-rag, or "
            f"rebuild them as described in the checkpoint's README.md"
        )
    if spec.sha256 is not None and _sha256(path) != spec.sha256:
        raise ModelNotAvailableError(
            f"the packaged weights of {name} at {path} do not match their sha256 "
            f"{spec.sha256}; reinstall luma-rag (or update the registry after retraining)"
        )
    return path


def _in_dir(directory: Path, spec: PretrainedSpec) -> tuple[Path | None, str | None]:
    """``(what loads, None)``, or ``(None, why not)`` when the directory is there but incomplete."""
    if not directory.is_dir():
        return None, None
    if spec.backend == "open_clip":
        for f in spec.files or OPEN_CLIP_FILES:
            if (directory / f).is_file():
                return directory / f, None
        found = sorted(directory.glob("*.safetensors"))
        if len(found) == 1:
            return found[0], None
        return None, f"{directory} holds none of {' / '.join(spec.files or OPEN_CLIP_FILES)}"
    if not (directory / "config.json").is_file():
        return None, f"{directory} has no config.json"
    if not transformers_weights(directory):
        return None, f"{directory} has config.json but no model.safetensors / pytorch_model.bin"
    return directory, None


def find_weights(
    name: str, tag: str, spec: PretrainedSpec, explicit: str | os.PathLike[str] | None = None
) -> Path:
    """Locate the weights of ``(name, tag)``: explicit path, ``$LUMA_MODEL_DIR``, HF cache.

    Args:
        name: Model name of the table.
        tag: Weights tag.
        spec: Its table entry.
        explicit: A weights file or model directory given by the caller; searched first.

    Returns:
        A weights file (open_clip) or a model directory (transformers).

    Raises:
        ModelNotAvailableError: Found nowhere (or incomplete everywhere); the message says
            how to provide them.
    """
    full = model_name(name, tag)
    problems: list[str] = []
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise ModelNotAvailableError(
                f"pretrained={os.fspath(explicit)!r} is neither a weights tag of {name} nor an "
                "existing file or directory; pass the path of the weights file or of the "
                "directory that holds them"
            )
        if path.is_file() and spec.backend == "open_clip":
            return path
        found, why = _in_dir(path, spec)
        if found is not None:
            return found
        raise ModelNotAvailableError(
            f"pretrained={os.fspath(explicit)!r} for {full}: "
            + (why or "no such file or directory")
            + f". {_layout(full, spec)}"
        )
    if not spec.needs_download:
        return _packaged(full, spec)
    root = model_dir()
    if root is not None:
        found, why = _in_dir(root / full, spec)
        if found is not None:
            return found
        problems.append(why or f"{root / full} does not exist")
    else:
        problems.append(f"${ENV_MODEL_DIR} is unset")
    for snapshot in hf_snapshots(spec.hf_hub) if spec.hf_hub else []:
        found, why = _in_dir(snapshot, spec)
        if found is not None:
            return found
        problems.append(f"the Hugging Face cache: {why}")
    if spec.hf_hub and len(problems) < 2:
        problems.append(f"the Hugging Face cache {hf_hub_cache()} has no {spec.hf_hub}")
    raise ModelNotAvailableError(
        f"model {full} is not available offline ({'; '.join(problems)}). LUMA-RAG never "
        f"downloads weights. {_layout(full, spec)}"
    )


def _layout(full: str, spec: PretrainedSpec) -> str:
    holds = (
        " or ".join(spec.files or OPEN_CLIP_FILES)
        if spec.backend == "open_clip"
        else "config.json, model.safetensors (or pytorch_model.bin) and the processor files"
    )
    fetch = (
        f"On a machine with internet run `hf download {spec.hf_hub} --local-dir "
        f"$LUMA_MODEL_DIR/{full}` (it must hold {holds}), copy that directory here to the same "
        f"place under ${ENV_MODEL_DIR}"
        if spec.hf_hub
        else f"Put the weights at $LUMA_MODEL_DIR/{full}/ (it must hold {holds})"
    )
    return (
        f"{fetch} and set {ENV_MODEL_DIR}; or pass its path "
        "(pretrained='/path/to/it', or the directory itself as the model name). Offline, use "
        f"{_offline_alternative(spec)!r}."
    )


def _offline_alternative(spec: PretrainedSpec) -> str:
    return {"clip": "luma-tiny", "audio": "luma-tiny-clap", "answerer": "luma-tiny-llava"}[
        spec.kind
    ]
