"""Stand-ins for the production models: their architectures with random weights and tiny widths.

A machine without the real weights can still check that a deployment is wired right: these
files are laid out exactly like the published repositories (and are found by the same
registry lookup), only the numbers are random and the widths small.

* ``ViT-B-32/openai`` (``timm/vit_base_patch32_clip_224.openai``): ``open_clip_config.json``
  (ViT-B-32's shape: 224 px, patch 32, 77-token context, 49 408-token vocabulary, QuickGELU;
  2 layers of width 64, or the real widths with ``full_clip=True``) and
  ``open_clip_model.safetensors``.
* ``openai/clip-vit-large-patch14``: a tiny transformers ``CLIPConfig`` (224 px, patch 32,
  2 layers) in ``model.safetensors``, with a ``CLIPProcessor`` whose fast tokenizer has a
  character vocabulary (the real BPE vocabulary cannot be fetched here).
* ``laion/clap-htsat-unfused``: a tiny ``ClapConfig`` saved with ``pytorch_model.bin`` as the
  published repository ships it, plus the ``ClapProcessor`` files.
* ``llava-hf/llava-1.5-7b-hf``: a tiny ``LlavaConfig`` in sharded float16 safetensors
  (``model-0000i-of-0000n.safetensors`` + index), plus the processor and chat template.

Two layouts: ``$LUMA_MODEL_DIR/<name>/`` (:func:`write_standins`) and the Hugging Face hub
cache (``models--org--name/{blobs,snapshots,refs}``, ``hf_cache=True``).

Command line (writes under ``DIR``, e.g. ``$LUMA_MODEL_DIR``)::

    python -m luma_rag.encoders.standins --out DIR [--hf-cache] [--full-clip]

Tests and ``bench/production_models.py`` use these; nothing here runs at import.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from luma_rag.encoders.catalog import PACKAGE_DIR

__all__ = [
    "CLAP_NAME",
    "CLIP_NAME",
    "HF_CLIP_NAME",
    "LLAVA_NAME",
    "to_hf_cache",
    "write_clap_standin",
    "write_clip_standin",
    "write_hf_clip_standin",
    "write_llava_standin",
    "write_standins",
]

logger = logging.getLogger(__name__)

CLIP_NAME: Final = "ViT-B-32/openai"
HF_CLIP_NAME: Final = "openai/clip-vit-large-patch14"
CLAP_NAME: Final = "laion/clap-htsat-unfused"
LLAVA_NAME: Final = "llava-hf/llava-1.5-7b-hf"
_HUB_IDS: Final = {
    CLIP_NAME: "timm/vit_base_patch32_clip_224.openai",
    HF_CLIP_NAME: HF_CLIP_NAME,
    CLAP_NAME: CLAP_NAME,
    LLAVA_NAME: LLAVA_NAME,
}
_OPENAI_MEAN: Final = [0.48145466, 0.4578275, 0.40821073]
_OPENAI_STD: Final = [0.26862954, 0.26130258, 0.27577711]


def _clip_config(full: bool) -> dict[str, Any]:
    width, layers = (768, 12) if full else (64, 2)
    text_width, text_layers, heads = (512, 12, 8) if full else (64, 2, 2)
    return {
        "model_cfg": {
            "embed_dim": 512 if full else 64,
            "quick_gelu": True,
            "vision_cfg": {"image_size": 224, "layers": layers, "width": width, "patch_size": 32},
            "text_cfg": {
                "context_length": 77,
                "vocab_size": 49408,
                "width": text_width,
                "heads": heads,
                "layers": text_layers,
            },
        },
        "preprocess_cfg": {"mean": _OPENAI_MEAN, "std": _OPENAI_STD},
    }


def write_clip_standin(out: Path, *, full: bool = False, seed: int = 0, bin: bool = False) -> Path:
    """Write a ViT-B-32-shaped open_clip checkpoint with random weights into ``out``.

    Args:
        out: Model directory (created).
        full: Real ViT-B-32 widths and depths (151 M parameters, 605 MB) instead of 2 layers
            of width 64.
        seed: torch seed of the random weights.
        bin: Write ``open_clip_pytorch_model.bin`` (torch format) instead of safetensors.

    Returns:
        ``out``.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / "open_clip_config.json").write_text(json.dumps(_clip_config(full), indent=2))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{out}", load_weights=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if bin:
        torch.save(state, out / "open_clip_pytorch_model.bin")
    else:
        save_file(state, str(out / "open_clip_model.safetensors"))
    return out


def write_hf_clip_standin(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny transformers CLIP (text + vision towers) with random weights into ``out``."""
    import torch
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    bpe = models.BPE(vocab=vocab, merges=[], end_of_word_suffix="</w>", unk_token="<|endoftext|>")
    backend = Tokenizer(bpe)
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    lib: Any = tf  # transformers 5 exports the fast tokenizer lazily (invisible to mypy)
    tokenizer = lib.CLIPTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=77,
    )
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    config = tf.CLIPConfig(
        text_config={
            **tower,
            "num_attention_heads": 2,
            "vocab_size": len(vocab),
            "max_position_embeddings": 77,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={**tower, "num_attention_heads": 2, "image_size": 224, "patch_size": 32},
        projection_dim=16,
    )
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tf.CLIPModel(config).save_pretrained(str(out))
    processor = tf.CLIPProcessor(image_processor=tf.CLIPImageProcessor(), tokenizer=tokenizer)
    processor.save_pretrained(str(out))
    return out


def write_clap_standin(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny transformers CLAP with random weights, as ``pytorch_model.bin``.

    The configuration and processor are the shipped ``luma-tiny-clap``'s (a tiny
    ``ClapConfig``: HTS-AT audio tower, RoBERTa text tower); the weights are random.
    """
    import torch
    import transformers as tf

    source = PACKAGE_DIR / "checkpoints" / "luma-tiny-clap"
    out.mkdir(parents=True, exist_ok=True)
    config = tf.ClapConfig.from_pretrained(str(source))
    torch.manual_seed(seed)
    model = tf.ClapModel(config)
    config.save_pretrained(str(out))  # transformers 5 writes only safetensors: .bin by hand
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, out / "pytorch_model.bin")
    tf.ClapProcessor.from_pretrained(str(source)).save_pretrained(str(out))
    return out


def write_llava_standin(out: Path, *, seed: int = 0) -> Path:
    """Write a tiny LLaVA (CLIP vision tower + Llama) with random float16 weights, sharded."""
    import torch
    import transformers as tf

    source = PACKAGE_DIR / "checkpoints" / "luma-tiny-llava"
    out.mkdir(parents=True, exist_ok=True)
    config = tf.LlavaConfig.from_pretrained(str(source))
    torch.manual_seed(seed)
    model: Any = tf.LlavaForConditionalGeneration(config)
    model = model.to(torch.float16)
    model.save_pretrained(str(out), max_shard_size="1MB")
    tf.AutoProcessor.from_pretrained(str(source)).save_pretrained(str(out))
    for extra in ("generation_config.json", "chat_template.jinja"):
        if (source / extra).is_file() and not (out / extra).is_file():
            shutil.copy(source / extra, out / extra)
    return out


def to_hf_cache(model_dir: Path, cache: Path, repo: str, revision: str = "0" * 40) -> Path:
    """Move a model directory into the hub cache layout (blobs + snapshot symlinks + ref)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / revision
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for f in sorted(model_dir.iterdir()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        blob = root / "blobs" / digest
        if not blob.exists():
            shutil.move(str(f), blob)
        link = snapshot / f.name
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, snapshot))
    shutil.rmtree(model_dir, ignore_errors=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return snapshot


def write_standins(
    root: Path,
    *,
    hf_cache: bool = False,
    full_clip: bool = False,
    models: Sequence[str] = (CLIP_NAME, HF_CLIP_NAME, CLAP_NAME, LLAVA_NAME),
) -> dict[str, Path]:
    """Write the stand-ins of ``models`` under ``root``.

    Args:
        root: ``$LUMA_MODEL_DIR`` (models at ``root/<name>``), or a hub cache directory.
        hf_cache: Use the Hugging Face hub cache layout under ``root``.
        full_clip: Real ViT-B-32 widths for the CLIP stand-in.
        models: Which of :data:`CLIP_NAME`, :data:`HF_CLIP_NAME`, :data:`CLAP_NAME`,
            :data:`LLAVA_NAME`.

    Returns:
        ``{name: directory holding its files}``.
    """
    writers = {
        CLIP_NAME: lambda d: write_clip_standin(d, full=full_clip),
        HF_CLIP_NAME: write_hf_clip_standin,
        CLAP_NAME: write_clap_standin,
        LLAVA_NAME: write_llava_standin,
    }
    out: dict[str, Path] = {}
    for name in models:
        target = root / (f".tmp-{name.replace('/', '--')}" if hf_cache else name)
        writers[name](target)
        out[name] = to_hf_cache(target, root, _HUB_IDS[name]) if hf_cache else target
        logger.info("wrote the %s stand-in to %s", name, out[name])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write every stand-in under ``--out``."""
    p = argparse.ArgumentParser(prog="python -m luma_rag.encoders.standins", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="$LUMA_MODEL_DIR or a hub cache")
    p.add_argument("--hf-cache", action="store_true", help="Hugging Face hub cache layout")
    p.add_argument("--full-clip", action="store_true", help="real ViT-B-32 widths (605 MB)")
    args = p.parse_args(argv)
    for name, path in write_standins(
        args.out, hf_cache=args.hf_cache, full_clip=args.full_clip
    ).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
