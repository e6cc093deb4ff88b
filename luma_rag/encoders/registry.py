"""Every model by name: CLIP encoders, CLAP audio encoders and LLaVA answerers, in one table.

This is open_clip's pattern (``model_configs/*.json`` + ``pretrained.py``):

* **Architectures** of open_clip models are JSON files in open_clip's schema under
  ``luma_rag/encoders/model_configs/`` (:func:`add_model_config` adds more); transformers
  models carry theirs in their own ``config.json``.
* **Weights** are a table ``{model: {tag: PretrainedSpec}}`` (:func:`register_pretrained`
  adds entries). A spec names its backend, and the backend says what the model is
  (:attr:`PretrainedSpec.kind`: a CLIP-space encoder, an audio encoder that crosses the
  bridge, or an answerer) — never a substring of its name.
* **Lookup** lives in :mod:`luma_rag.encoders.weights`: an explicit path, then
  ``$LUMA_MODEL_DIR/<name>``, then the Hugging Face cache. Nothing here downloads; when no
  location has the weights, :class:`~luma_rag.errors.ModelNotAvailableError` says where to
  put them, in the layout that loads.

A model's *name* (what ``$LUMA_MODEL_DIR/<name>`` and the messages use) is ``model/tag`` for
open_clip models (``ViT-B-32/openai``) and the Hugging Face id for transformers models
(``laion/clap-htsat-unfused``, tag ``"hf"``).

>>> from luma_rag.encoders import list_models
>>> "luma-tiny-clip" in list_models()
True
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from luma_rag.encoders.base import Encoder
from luma_rag.encoders.catalog import (
    _PRETRAINED,  # noqa: F401  (re-exported: tests and users extend the table through it)
    DEFAULT_MODEL,
    MODEL_CONFIG_DIR,
    PACKAGE_DIR,
    add_model_config,
    ensure_open_clip_configs,
    get_model_config,
    is_packaged,
    list_models,
    list_pretrained,
    model_kind,
    register_pretrained,
    resolve_model,
)
from luma_rag.encoders.spec import HF_TAG, Backend, Kind, PretrainedSpec, Resolved
from luma_rag.encoders.weights import ENV_MODEL_DIR, find_weights, hf_hub_cache
from luma_rag.errors import ModelNotAvailableError

__all__ = [
    "DEFAULT_MODEL",
    "ENV_MODEL_DIR",
    "HF_TAG",
    "MODEL_CONFIG_DIR",
    "PACKAGE_DIR",
    "Backend",
    "BackendFactory",
    "Kind",
    "PretrainedSpec",
    "Resolved",
    "add_model_config",
    "ensure_open_clip_configs",
    "find_weights",
    "get_encoder",
    "get_model_config",
    "hf_hub_cache",
    "is_packaged",
    "list_models",
    "list_pretrained",
    "model_kind",
    "register_backend",
    "register_pretrained",
    "resolve_model",
]

logger = logging.getLogger(__name__)

BackendFactory = Callable[[str, Path, PretrainedSpec, str], Encoder]
_BACKENDS: dict[str, BackendFactory] = {}
_LOCK = threading.RLock()


def register_backend(backend: str, factory: BackendFactory) -> None:
    """Make :func:`get_encoder` build ``backend`` entries with ``factory``."""
    with _LOCK:
        _BACKENDS[backend] = factory


# -- encoders ------------------------------------------------------------------------------------
def get_encoder(
    name: str = DEFAULT_MODEL, pretrained: str | None = None, *, device: str = "cpu"
) -> Encoder:
    """Build an encoder (CLIP or audio) by name, from local weights only.

    Args:
        name: See :func:`resolve_model`.
        pretrained: A weights tag, or an explicit weights file / model directory.
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.

    Raises:
        ModelNotAvailableError: Weights missing or damaged (the message says how to provide
            them), the name is an answerer, or no backend can build it.
        MissingDependencyError: The backend's packages (torch, open_clip, ...) are missing.
    """
    found = resolve_model(name, pretrained)
    if found.spec.kind == "answerer":
        raise ModelNotAvailableError(
            f"{found.name} is an answerer, not an encoder; use LlavaAnswerer({found.name!r})"
        )
    with _LOCK:
        factory = _BACKENDS.get(found.spec.backend)
    if factory is None:
        raise ModelNotAvailableError(
            f"{found.name} needs the {found.spec.backend!r} backend, which is not registered; "
            f"available: {sorted(_BACKENDS)}"
        )
    logger.info("building %s encoder %s from %s", found.spec.backend, found.name, found.location)
    return factory(found.model, found.location, found.spec, device)


def _open_clip_factory(name: str, weights: Path, spec: PretrainedSpec, device: str) -> Encoder:
    from luma_rag.encoders.open_clip_backend import build_open_clip

    return build_open_clip(name, weights, spec, device)


def _clap_factory(name: str, weights: Path, spec: PretrainedSpec, device: str) -> Encoder:
    from luma_rag.encoders.clap.backend import ClapEncoder

    return ClapEncoder.from_directory(weights, name=name, device=device)


def _hf_clip_factory(name: str, weights: Path, spec: PretrainedSpec, device: str) -> Encoder:
    from luma_rag.encoders.hf_clip_backend import HFClipEncoder

    return HFClipEncoder(weights, name=name, device=device)


_BACKENDS.update(
    {
        "open_clip": _open_clip_factory,
        "transformers-clap": _clap_factory,
        "transformers-clip": _hf_clip_factory,
    }
)
