"""``luma-tiny-llava``: a tiny LLaVA built offline from the shipped tiny CLIP.

The model is a plain transformers ``LlavaForConditionalGeneration`` with

* a ``CLIPVisionModel`` whose configuration and weights are the image tower of
  ``luma-tiny-clip`` (converted by :mod:`luma_rag.encoders.open_clip_to_hf`; frozen while
  training, so it keeps computing exactly the tiny CLIP's image features);
* a 2-layer GELU projector and a small ``LlamaForCausalLM`` trained from scratch;
* a word-level tokenizer built here with ``tokenizers`` over the LUMA-Shapes question vocabulary
  (lower-cased; every other word is ``<unk>``), with an ``<image>`` token;
* a ``LlavaProcessor``: ``CLIPImageProcessor`` at the tiny CLIP's 64 px with open_clip's
  mean / std, the CLIP patch size, all 65 vision tokens (``"full"``: CLS + 8x8 patches).

A 4-layer model cannot follow LLaVA-1.5's long instructions, so its *chat template* keeps only
what it was trained on: the image placeholder and the question (the text after the last
``"Question:"`` of :func:`~luma_rag.answer.prompts.build_prompt_text`). A CLARIFY prompt
(recognised by :data:`CLARIFY_MARKER`) is rendered with a ``clarify:`` prefix, to which the
model was trained to reply :data:`CLARIFY_REPLY` instead of answering. The answerer code is the
production one: :class:`~luma_rag.answer.llava.LlavaAnswerer` loads the saved directory with
``from_pretrained`` and renders prompts with ``apply_chat_template``.

Everything here imports torch / transformers lazily; nothing downloads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from luma_rag.errors import ConfigError, MissingDependencyError

__all__ = [
    "CHAT_TEMPLATE",
    "CLARIFY_MARKER",
    "CLARIFY_REPLY",
    "SPECIAL_TOKENS",
    "TINY_LLAVA_DIR",
    "TINY_LLAVA_MODEL",
    "TinyLlavaSpec",
    "build_model",
    "build_processor",
    "build_tokenizer",
    "image_token_count",
]

logger = logging.getLogger(__name__)

#: Name :class:`~luma_rag.answer.llava.LlavaAnswerer` resolves to the shipped checkpoint.
TINY_LLAVA_MODEL: Final = "luma-tiny-llava"
#: The shipped checkpoint directory (``save_pretrained`` output, safetensors).
TINY_LLAVA_DIR: Final = (
    Path(__file__).resolve().parent.parent / "encoders" / "checkpoints" / (TINY_LLAVA_MODEL)
)

#: ``(token, id)``; pad 0, bos 1, eos 2, unk 3, image 4.
SPECIAL_TOKENS: Final = (("<pad>", 0), ("<s>", 1), ("</s>", 2), ("<unk>", 3), ("<image>", 4))
#: Text only the CLARIFY instructions of :data:`luma_rag.answer.prompts.INSTRUCTIONS` contain.
CLARIFY_MARKER: Final = "Do not answer the question"
#: What the tiny model says instead of answering a CLARIFY prompt.
CLARIFY_REPLY: Final = "which one do you mean?"

#: open_clip's (OpenAI CLIP's) normalisation, which the tiny CLIP was trained with.
CLIP_MEAN: Final = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: Final = (0.26862954, 0.26130258, 0.27577711)

#: Keeps the image placeholder(s) and the question of each user turn; see the module docstring.
CHAT_TEMPLATE: Final = (
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}"
    "{%- set parts = [{'type': 'text', 'text': message['content']}] -%}"
    "{%- else -%}{%- set parts = message['content'] -%}{%- endif -%}"
    "{{- message['role'] | upper + ':' -}}"
    "{%- for part in parts if part['type'] == 'image' -%}{{- ' <image>' -}}{%- endfor -%}"
    "{%- for part in parts if part['type'] == 'text' -%}"
    "{%- if '" + CLARIFY_MARKER + "' in part['text'] -%}{{- ' clarify:' -}}{%- endif -%}"
    "{{- ' ' + part['text'].split('Question:')[-1] | trim -}}"
    "{%- endfor -%}"
    "{%- if message['role'] == 'assistant' -%}{{- '</s>' -}}{%- endif -%}"
    "{{- ' ' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)

#: Words the tokenizer knows besides the question vocabulary.
_EXTRA_WORDS: Final = (
    "user",
    "assistant",
    "clarify",
    "which",
    "one",
    "do",
    "you",
    "mean",
    "what",
    "where",
    "how",
    "many",
    "image",
    "picture",
    "photo",
    "of",
    "in",
    "on",
    "at",
    "near",
    "and",
    "or",
    "it",
    "this",
    "that",
    "there",
    "shape",
    "object",
)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as e:
        raise MissingDependencyError.for_extra("transformers", "llava") from e
    return transformers


@dataclass(frozen=True)
class TinyLlavaSpec:
    """Architecture of the tiny LLaVA's trained parts (the vision tower is the tiny CLIP's).

    Attributes:
        clip_model: Registry name of the open_clip model whose image tower is used.
        hidden_size: Width of the language model.
        layers: Decoder layers.
        heads: Attention heads (``hidden_size`` must divide by it).
        intermediate_size: Width of the language model's MLP.
        max_positions: Position budget of the language model.
        vision_feature_layer: Vision hidden state fed to the projector (-1: the last).
        vision_feature_select_strategy: ``"full"`` (CLS + patches) or ``"default"`` (patches).
    """

    clip_model: str = "luma-tiny-clip"
    hidden_size: int = 128
    layers: int = 3
    heads: int = 4
    intermediate_size: int = 384
    max_positions: int = 512
    vision_feature_layer: int = -1
    vision_feature_select_strategy: str = "full"

    def __post_init__(self) -> None:
        for name in ("hidden_size", "layers", "heads", "intermediate_size", "max_positions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TinyLlavaSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} must be a multiple of heads {self.heads}"
            )
        if self.vision_feature_select_strategy not in ("full", "default"):
            raise ConfigError(
                "vision_feature_select_strategy must be 'full' or 'default', got "
                f"{self.vision_feature_select_strategy!r}"
            )


def build_tokenizer(words: Iterable[str]) -> Any:
    """A word-level ``PreTrainedTokenizerFast`` over ``words`` (lower-cased) and punctuation.

    Text is NFKC-normalised and lower-cased; words and runs of punctuation are tokens; an
    unknown word is ``<unk>``. Decoding joins tokens with spaces and removes the space before
    punctuation. No special token is added around sequences (the chat template writes them).

    Args:
        words: The vocabulary (e.g. :func:`luma_rag.datasets.questions.question_words`);
            duplicates are ignored, order does not matter.

    Returns:
        The tokenizer, with the :data:`SPECIAL_TOKENS` and an ``image_token`` attribute.
    """
    import tokenizers as tk

    tf = _transformers()
    known = {token for token, _ in SPECIAL_TOKENS}
    vocab_words = sorted({w.lower() for w in (*words, *_EXTRA_WORDS)} - known)
    punctuation = [".", ",", "?", "!", ":", ";", "'", '"', "(", ")", "-", "[", "]"]
    vocab = dict(SPECIAL_TOKENS)
    for token in (*vocab_words, *punctuation):
        vocab.setdefault(token, len(vocab))
    backend = tk.Tokenizer(tk.models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = tk.normalizers.Sequence(
        [tk.normalizers.NFKC(), tk.normalizers.Lowercase()]
    )
    backend.pre_tokenizer = tk.pre_tokenizers.Sequence(
        [tk.pre_tokenizers.Whitespace(), tk.pre_tokenizers.Punctuation("isolated")]
    )
    backend.decoder = tk.decoders.WordPiece(prefix="##", cleanup=True)
    backend.add_special_tokens([token for token, _ in SPECIAL_TOKENS])
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
        model_max_length=512,
        padding_side="left",
    )


def image_token_count(vision_config: Any, strategy: str) -> int:
    """Vision tokens per image: patches, plus the CLS token for ``"full"``."""
    patches = (int(vision_config.image_size) // int(vision_config.patch_size)) ** 2
    return patches + (1 if strategy == "full" else 0)


def build_processor(spec: TinyLlavaSpec, tokenizer: Any, vision_config: Any) -> Any:
    """The ``LlavaProcessor``: tiny-CLIP image preprocessing, ``tokenizer``, the chat template.

    Args:
        spec: The architecture.
        tokenizer: From :func:`build_tokenizer`.
        vision_config: The ``CLIPVisionConfig`` (image and patch size).

    Returns:
        A ``transformers.LlavaProcessor``.
    """
    tf = _transformers()
    side = int(vision_config.image_size)
    image_processor = tf.CLIPImageProcessor(
        size={"shortest_edge": side},
        crop_size={"height": side, "width": side},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
        resample=3,  # bicubic, as open_clip's transform
        do_convert_rgb=True,
    )
    return tf.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=int(vision_config.patch_size),
        vision_feature_select_strategy=spec.vision_feature_select_strategy,
        num_additional_image_tokens=1,  # CLIP's CLS token
        chat_template=CHAT_TEMPLATE,
    )


def build_model(
    spec: TinyLlavaSpec, tokenizer: Any, *, clip_weights: str | Path | None = None
) -> Any:
    """A ``LlavaForConditionalGeneration`` with the tiny CLIP's image tower loaded.

    The language model and projector are freshly initialised (seed torch before calling).

    Args:
        spec: The architecture.
        tokenizer: From :func:`build_tokenizer` (vocabulary size and special ids).
        clip_weights: open_clip weights file of ``spec.clip_model``; None: the registry's
            weights of that model (packaged for ``luma-tiny-clip``, checked by sha256).

    Returns:
        The model, in float32, in eval mode.

    Raises:
        ConfigError: The CLIP model is not a plain ViT.
        ModelNotAvailableError: Its weights are not on this machine.
    """
    tf = _transformers()
    from luma_rag.encoders.open_clip_to_hf import clip_vision_config, load_visual_weights
    from luma_rag.encoders.registry import get_encoder, get_model_config

    pretrained = None if clip_weights is None else str(clip_weights)
    clip = get_encoder(spec.clip_model, pretrained, device="cpu")
    clip_model = getattr(clip, "model", None)
    config_dict = get_model_config(spec.clip_model)
    if clip_model is None or config_dict is None:
        raise ConfigError(f"{spec.clip_model} is not an open_clip model with a JSON config")
    vision_config = clip_vision_config(config_dict)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token, _ in SPECIAL_TOKENS}
    text_config = tf.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
        tie_word_embeddings=True,
    )
    config = tf.LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=ids["<image>"],
        projector_hidden_act="gelu",
        vision_feature_select_strategy=spec.vision_feature_select_strategy,
        vision_feature_layer=spec.vision_feature_layer,
        image_seq_length=image_token_count(vision_config, spec.vision_feature_select_strategy),
        tie_word_embeddings=True,
    )
    model = tf.LlavaForConditionalGeneration(config)
    state = {k: v.detach().float() for k, v in clip_model.state_dict().items()}
    load_visual_weights(model.model.vision_tower, state)
    model.generation_config.pad_token_id = ids["<pad>"]
    model.generation_config.eos_token_id = ids["</s>"]
    model.generation_config.bos_token_id = ids["<s>"]
    return model.eval()
