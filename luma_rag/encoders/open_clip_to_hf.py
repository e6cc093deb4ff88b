"""Convert an open_clip ViT image tower into a transformers ``CLIPVisionModel``.

LLaVA takes its vision tower as a transformers ``CLIPVisionModel``; LUMA-RAG's tiny CLIP is an
open_clip model. The two compute the same function with different parameter names:

open_clip ``visual.*`` -> transformers ``CLIPVisionTransformer``:

* ``conv1`` -> ``embeddings.patch_embedding``; ``class_embedding`` ->
  ``embeddings.class_embedding``; ``positional_embedding`` -> ``embeddings.position_embedding``;
* ``ln_pre`` -> ``pre_layrnorm``; ``ln_post`` -> ``post_layernorm``;
* per block ``transformer.resblocks.i`` -> ``encoder.layers.i``: ``attn.in_proj_*`` split
  into ``self_attn.{q,k,v}_proj``, ``attn.out_proj`` -> ``self_attn.out_proj``, ``ln_1`` /
  ``ln_2`` -> ``layer_norm1`` / ``layer_norm2``, ``mlp.c_fc`` / ``mlp.c_proj`` ->
  ``mlp.fc1`` / ``mlp.fc2``.

The projection ``proj`` is not part of ``CLIPVisionModel`` and is left out. transformers 5
builds ``CLIPVisionModel`` as the transformer itself; older releases wrap it in
``.vision_model``: :func:`load_visual_weights` handles both.

Only the plain open_clip ViT is supported: CLS-token pooling, LayerNorm before the
transformer, no attention pooling, no layer scale, exact GELU (or QuickGELU, when the weights
were trained with it). Anything else raises :class:`~luma_rag.errors.ConfigError`. The
``pooler_output`` of the converted model equals open_clip's image feature before its
projection (``ln_post`` of the CLS token).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from luma_rag.errors import ConfigError

__all__ = ["clip_vision_config", "convert_visual_state_dict", "load_visual_weights"]

_LAYER = re.compile(r"^transformer\.resblocks\.(\d+)\.(.+)$")
_LAYER_NAMES: Final = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}
_TOP_NAMES: Final = {
    "conv1.weight": "embeddings.patch_embedding.weight",
    "class_embedding": "embeddings.class_embedding",
    "positional_embedding": "embeddings.position_embedding.weight",
    "ln_pre.weight": "pre_layrnorm.weight",
    "ln_pre.bias": "pre_layrnorm.bias",
    "ln_post.weight": "post_layernorm.weight",
    "ln_post.bias": "post_layernorm.bias",
}
#: open_clip vision_cfg keys this converter understands; anything else set is refused.
_SUPPORTED_KEYS: Final = frozenset(
    {"image_size", "layers", "width", "head_width", "patch_size", "mlp_ratio"}
)


def clip_vision_config(model_config: Mapping[str, Any], *, quick_gelu: bool = False) -> Any:
    """The ``CLIPVisionConfig`` of an open_clip model config (its ``vision_cfg``).

    Args:
        model_config: An open_clip model config (``embed_dim``, ``vision_cfg``, ...), e.g.
            :func:`luma_rag.encoders.registry.get_model_config`.
        quick_gelu: The weights were trained with QuickGELU.

    Returns:
        A ``transformers.CLIPVisionConfig`` (``projection_dim`` = ``embed_dim``).

    Raises:
        ConfigError: The vision tower is not a plain ViT this converter handles.
    """
    from transformers import CLIPVisionConfig

    vision = dict(model_config.get("vision_cfg", {}))
    extra = {k for k, v in vision.items() if k not in _SUPPORTED_KEYS and v not in (None, False)}
    if extra or isinstance(vision.get("layers"), (list, tuple)) or "width" not in vision:
        raise ConfigError(
            f"only plain open_clip ViTs (keys {sorted(_SUPPORTED_KEYS)}) convert to "
            f"CLIPVisionModel; this vision_cfg also sets {sorted(extra) or 'a ResNet tower'}"
        )
    width = int(vision["width"])
    head_width = int(vision.get("head_width", 64))
    if width % head_width:
        raise ConfigError(f"vision width {width} is not a multiple of head_width {head_width}")
    return CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=int(width * float(vision.get("mlp_ratio", 4.0))),
        num_hidden_layers=int(vision["layers"]),
        num_attention_heads=width // head_width,
        image_size=int(vision["image_size"]),
        patch_size=int(vision["patch_size"]),
        projection_dim=int(model_config["embed_dim"]),
        hidden_act="quick_gelu" if quick_gelu else "gelu",
        layer_norm_eps=1e-5,
    )


def convert_visual_state_dict(
    state: Mapping[str, Any], *, prefix: str = "visual."
) -> dict[str, Any]:
    """Rename (and split) an open_clip ViT state dict for transformers' CLIP vision transformer.

    Args:
        state: An open_clip model's state dict (tensors), or its ``visual`` part.
        prefix: Prefix of the image tower's keys in ``state`` (``""`` for ``visual``'s own).

    Returns:
        ``{name: tensor}`` with ``CLIPVisionTransformer`` keys (``embeddings.*``,
        ``encoder.layers.*``, ...); see :func:`load_visual_weights`.

    Raises:
        ConfigError: ``state`` holds no ViT under ``prefix`` or keys the converter does not
            know (e.g. attention pooling).
    """
    visual = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if "conv1.weight" not in visual:
        raise ConfigError(f"no open_clip ViT image tower under prefix {prefix!r}")
    out: dict[str, Any] = {}
    for key, value in visual.items():
        if key in _TOP_NAMES:
            out[_TOP_NAMES[key]] = value
            continue
        if key == "proj":
            continue
        match = _LAYER.match(key)
        if match is None:
            raise ConfigError(f"open_clip key {prefix}{key} has no CLIPVisionModel counterpart")
        index, rest = match.groups()
        base = f"encoder.layers.{index}."
        if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
            kind = rest.rsplit("_", 1)[1]
            for name, chunk in zip("qkv", value.chunk(3, dim=0), strict=True):
                out[f"{base}self_attn.{name}_proj.{kind}"] = chunk.contiguous()
        elif rest in _LAYER_NAMES:
            out[base + _LAYER_NAMES[rest]] = value
        else:
            raise ConfigError(f"open_clip key {prefix}{key} has no CLIPVisionModel counterpart")
    return out


def load_visual_weights(
    vision_model: Any, state: Mapping[str, Any], *, prefix: str = "visual."
) -> None:
    """Load an open_clip ViT's weights into a ``CLIPVisionModel`` (strictly, every key).

    Args:
        vision_model: A ``transformers.CLIPVisionModel`` built from :func:`clip_vision_config`.
        state: The open_clip state dict (see :func:`convert_visual_state_dict`).
        prefix: Prefix of the image tower's keys in ``state``.

    Raises:
        ConfigError: The shapes or keys do not match (wrong config for these weights).
    """
    target = getattr(vision_model, "vision_model", vision_model)
    converted = convert_visual_state_dict(state, prefix=prefix)
    try:
        target.load_state_dict(converted, strict=True)
    except RuntimeError as e:
        raise ConfigError(f"open_clip weights do not fit this CLIPVisionModel: {e}") from e
