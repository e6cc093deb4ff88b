"""Loading LLaVA: where its files are, which precision it gets, and how much memory that takes.

Kept apart from :mod:`luma_rag.answer.llava` (prompting and decoding). The model is found by
the registry like every model (:func:`luma_rag.encoders.registry.resolve_model`: a directory, the
shipped ``luma-tiny-llava``, ``$LUMA_MODEL_DIR/<name>``, the Hugging Face cache), its weights
files are checked first, and the load runs with the hub switched offline.

Precisions (memory for LLaVA-1.5-7B's 7.1 B parameters in brackets):

* ``"auto"``: ``"nf4"`` on CUDA, ``"bf16"`` on CPU.
* ``"nf4"``: 4-bit NF4 through bitsandbytes (≈ 3.9 GB); on CUDA with ``device_map="auto"``
  and float16 compute, on CPU through bitsandbytes' CPU backend (bfloat16 compute).
* ``"int8"``: 8-bit LLM.int8 through bitsandbytes (≈ 7 GB), where the installed build
  supports it on the device.
* ``"bf16"`` (≈ 14 GB), ``"fp16"``, ``"fp32"`` (≈ 28 GB): unquantized.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from luma_rag.errors import LumaError, MissingDependencyError, ModelNotAvailableError

__all__ = ["PRECISIONS", "LoadedLlava", "choose_precision", "load_llava"]

logger = logging.getLogger(__name__)

#: Accepted values of ``precision``.
PRECISIONS: Final = ("auto", "nf4", "int8", "bf16", "fp16", "fp32")
_PUBLISHED: Final = "llava-hf/llava-1.5-7b-hf"


@dataclass(frozen=True)
class LoadedLlava:
    """A loaded LLaVA and what was chosen for it.

    Attributes:
        processor: Its ``AutoProcessor``. model: ``LlavaForConditionalGeneration`` (eval mode).
        info: ``{"model", "path", "device", "precision", "memory_bytes"}``.
    """

    processor: Any
    model: Any
    info: dict[str, Any]


def choose_precision(precision: str, load_in_4bit: bool | None, cuda: bool) -> str:
    """The precision to load with (``load_in_4bit``, the older switch, wins when given)."""
    if load_in_4bit is not None:
        return "nf4" if load_in_4bit else ("fp16" if cuda else "bf16")
    if precision == "auto":
        return "nf4" if cuda else "bf16"
    return precision


def _dtype_kwarg(transformers: Any) -> str:
    """``from_pretrained``'s dtype keyword: ``dtype`` since transformers 4.56."""
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def _load_kwargs(torch: Any, transformers: Any, precision: str, device: str) -> dict[str, Any]:
    cuda = device.startswith("cuda")
    dtype_kw = _dtype_kwarg(transformers)
    kwargs: dict[str, Any] = {"local_files_only": True}
    if precision in {"nf4", "int8"}:
        try:
            import bitsandbytes  # noqa: F401  (transformers needs it to quantize)
        except ImportError as e:
            raise MissingDependencyError(
                f"bitsandbytes is required to load LLaVA in {precision}; install it with "
                "`pip install bitsandbytes`, or pass precision='bf16'"
            ) from e
        compute = torch.float16 if cuda else torch.bfloat16
        if precision == "nf4":
            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute
            )
        else:
            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = "auto" if cuda else "cpu"
        kwargs[dtype_kw] = compute
        return kwargs
    kwargs[dtype_kw] = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    kwargs["device_map"] = {"": device}
    return kwargs


def _missing(model_id: str, location: Any, error: BaseException) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"could not load LLaVA {model_id!r} from {location}: {type(error).__name__}: {error}. "
        "The directory must hold config.json, the weights (model*.safetensors or "
        f"pytorch_model*.bin) and the processor files, as `hf download {_PUBLISHED} "
        f"--local-dir $LUMA_MODEL_DIR/{_PUBLISHED}` writes them; copy them again if a file "
        "is damaged"
    )


def load_llava(
    model_id: str, *, device: str | None, precision: str, load_in_4bit: bool | None
) -> LoadedLlava:
    """Find, check and load a LLaVA checkpoint, offline.

    Args:
        model_id: A registry name, a Hugging Face id (looked up like a registry entry) or a
            directory.
        device: torch device; None: CUDA when available, else CPU.
        precision: One of :data:`PRECISIONS`.
        load_in_4bit: Older switch (see :func:`choose_precision`).

    Raises:
        ModelNotAvailableError: Not found, not LLaVA, or its files are damaged.
        MissingDependencyError: torch / transformers missing, or the bitsandbytes build cannot
            quantize on this device.
    """
    from luma_rag.encoders.registry import resolve_model
    from luma_rag.encoders.weights import check_weights_file, offline_hub, transformers_weights

    found = resolve_model(model_id, default_backend="llava")  # a typed error before torch loads
    if found.spec.kind != "answerer":
        raise ModelNotAvailableError(
            f"{found.name} is a {found.spec.kind} model, not LLaVA; pass a LLaVA name "
            f"({_PUBLISHED!r}, 'luma-tiny-llava') or directory"
        )
    for weights in transformers_weights(found.location):
        check_weights_file(weights)
    try:
        import torch
        import transformers
    except ImportError as e:
        raise MissingDependencyError.for_extra("transformers", "llava") from e
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    chosen = choose_precision(precision, load_in_4bit, device.startswith("cuda"))
    try:
        with offline_hub():  # bitsandbytes looks up hub kernels when first imported
            kwargs = _load_kwargs(torch, transformers, chosen, device)
            processor = transformers.AutoProcessor.from_pretrained(
                str(found.location), local_files_only=True
            )
            model = transformers.LlavaForConditionalGeneration.from_pretrained(
                str(found.location), **kwargs
            )
    except LumaError:
        raise
    except (ImportError, RuntimeError) as e:
        if chosen in {"nf4", "int8"}:  # the installed bitsandbytes cannot do it here
            raise MissingDependencyError(
                f"{chosen} LLaVA on {device} needs a bitsandbytes build that supports it "
                f"({type(e).__name__}: {e}); upgrade bitsandbytes, or pass precision='bf16'"
            ) from e
        raise _missing(model_id, found.location, e) from e
    except Exception as e:  # missing processor files, bad config, unreadable weights
        raise _missing(model_id, found.location, e) from e
    model.eval()
    info: dict[str, Any] = {
        "model": found.name,
        "path": str(found.location),
        "device": str(model.device),
        "precision": chosen,
        "memory_bytes": int(model.get_memory_footprint()),
    }
    logger.info(
        "loaded %s from %s on %s: %s, %.1f MiB",
        found.name,
        found.location,
        model.device,
        chosen,
        info["memory_bytes"] / 2**20,
    )
    return LoadedLlava(processor, model, info)
