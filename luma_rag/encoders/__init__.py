"""Encoders: text, images and audio into one embedding space, chosen by name.

``get_encoder("luma-tiny")`` builds the tiny CLIP shipped with the package (trained on
LUMA-Shapes, no download); production models (``ViT-B-32`` / ``openai``, ...) are one name
away once their weights are on disk (see :mod:`luma_rag.encoders.registry`). Importing this
package does not import torch: backends load it when an encoder is built.
"""

from __future__ import annotations

from luma_rag.encoders.base import AudioInput, Encoder, ImageInput, Modality
from luma_rag.encoders.open_clip_backend import OpenClipEncoder
from luma_rag.encoders.registry import (
    DEFAULT_MODEL,
    PretrainedSpec,
    Resolved,
    add_model_config,
    find_weights,
    get_encoder,
    get_model_config,
    list_models,
    list_pretrained,
    model_kind,
    register_backend,
    register_pretrained,
    resolve_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "AudioInput",
    "Encoder",
    "ImageInput",
    "Modality",
    "OpenClipEncoder",
    "PretrainedSpec",
    "Resolved",
    "add_model_config",
    "find_weights",
    "get_encoder",
    "get_model_config",
    "list_models",
    "list_pretrained",
    "model_kind",
    "register_backend",
    "register_pretrained",
    "resolve_model",
]
