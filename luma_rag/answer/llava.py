"""LLaVA-1.5 as an answerer, through Hugging Face transformers (``pip install 'luma-rag[llava]'``).

The model is loaded lazily, on the first answer (or :meth:`LlavaAnswerer.load`), and only
from local files by default: a model id that is not in the local Hugging Face cache, or a
directory that does not hold a LLaVA checkpoint, raises
:class:`~luma_rag.errors.ModelNotAvailableError` at once, without touching the network.

Placement and precision:

* CUDA (the default when available): 4-bit NF4 weights through bitsandbytes
  (``BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
  bnb_4bit_compute_dtype=torch.float16)``) placed with ``device_map="auto"`` — a quantized
  model is never moved with ``.to()``. ``load_in_4bit=False`` loads float16 weights instead.
* CPU: full precision (float32), unless ``load_in_4bit=True`` forces 4-bit NF4 through
  bitsandbytes' CPU backend (compute in float32; needs bitsandbytes >= 0.48).

Offline, ``LlavaAnswerer("luma-tiny-llava")`` loads the shipped tiny LLaVA (see
:mod:`luma_rag.answer.tiny_llava`) from the package directory, through the same
``from_pretrained`` calls.

The prompt is built by :func:`~luma_rag.answer.prompts.build_messages` and rendered with the
processor's chat template; only the generated tokens are decoded (the prompt is sliced off).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from luma_rag.answer.base import Answer, Evidence
from luma_rag.answer.gate import GateDecision
from luma_rag.answer.prompts import build_messages
from luma_rag.answer.tiny_llava import TINY_LLAVA_DIR, TINY_LLAVA_MODEL
from luma_rag.errors import (
    InvalidInputError,
    MissingDependencyError,
    ModelNotAvailableError,
    UnsupportedMediaError,
)

__all__ = ["DEFAULT_LLAVA_MODEL", "NO_ANSWER_REPLY", "OFFLINE_LLAVA_MODEL", "LlavaAnswerer"]

logger = logging.getLogger(__name__)

DEFAULT_LLAVA_MODEL = "llava-hf/llava-1.5-7b-hf"
#: The shipped tiny LLaVA, resolved to its package directory (no hub involved).
OFFLINE_LLAVA_MODEL = TINY_LLAVA_MODEL
#: What an answer says when the model generated no visible text (never an empty string).
NO_ANSWER_REPLY = "I cannot tell from the image."


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError.for_extra("torch", "llava") from e
    return torch


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as e:
        raise MissingDependencyError.for_extra("transformers", "llava") from e
    return transformers


def _dtype_kwarg(transformers: Any) -> str:
    """``from_pretrained``'s dtype keyword: ``dtype`` since transformers 4.56."""
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


class LlavaAnswerer:
    """Answers with LLaVA-1.5 from the gate's evidence, showing it the top image.

    Args:
        model_id: A Hugging Face model id already in the local cache, a local directory
            holding a LLaVA checkpoint and its processor (``save_pretrained`` output), or
            ``"luma-tiny-llava"``: the tiny LLaVA shipped inside the package (offline).
        device: ``"cuda"``, ``"cuda:1"``, ``"cpu"``, ...; None: CUDA when available, else CPU.
        load_in_4bit: Load 4-bit NF4 weights (bitsandbytes). None: on CUDA only.
        max_new_tokens: Most tokens generated per answer; ``>= 1``.
        local_files_only: Never download (the default; tests and CI have no network).

    Example:
        >>> answerer = LlavaAnswerer("/models/llava-1.5-7b-hf")  # a local snapshot
        >>> answerer = LlavaAnswerer("luma-tiny-llava")  # the shipped tiny model
        >>> answer = answerer.answer("What colour is the circle?", gated_query(luma, "circle"))
        >>> answer.text, [c.id for c in answer.citations]
    """

    name = "llava"

    def __init__(
        self,
        model_id: str | os.PathLike[str] = DEFAULT_LLAVA_MODEL,
        *,
        device: str | None = None,
        load_in_4bit: bool | None = None,
        max_new_tokens: int = 64,
        local_files_only: bool = True,
    ) -> None:
        """Configure; nothing is imported or loaded until the first answer."""
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise InvalidInputError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
        if max_new_tokens < 1:
            raise InvalidInputError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
        model = os.fspath(model_id)
        if not model.strip():
            raise InvalidInputError("model_id must name a model or a local directory")
        self.model_id = model
        self.device = device
        self.load_in_4bit = load_in_4bit
        self.max_new_tokens = max_new_tokens
        self.local_files_only = local_files_only
        self._model: Any = None
        self._processor: Any = None
        self._quantized = False
        self._lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        """Whether the model and processor are loaded."""
        return self._model is not None

    def load(self) -> None:
        """Load the processor and the model (once; later calls return at once).

        Raises:
            ModelNotAvailableError: the model is not available locally.
            MissingDependencyError: transformers, torch or (for 4-bit) bitsandbytes missing.
        """
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        torch = _torch()
        transformers = _transformers()
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        cuda = device.startswith("cuda")
        quantize = cuda if self.load_in_4bit is None else bool(self.load_in_4bit)
        dtype_kw = _dtype_kwarg(transformers)
        kwargs: dict[str, Any] = {"local_files_only": self.local_files_only}
        if quantize:
            try:
                import bitsandbytes  # noqa: F401  (transformers needs it for 4-bit)
            except ImportError as e:
                raise MissingDependencyError(
                    "bitsandbytes is required to load LLaVA in 4 bits; install it with "
                    "`pip install bitsandbytes`, or pass load_in_4bit=False"
                ) from e
            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch.float16 if cuda else torch.float32,
            )
            kwargs["device_map"] = "auto" if cuda else "cpu"
            kwargs[dtype_kw] = torch.float16 if cuda else torch.float32
        elif device == "cpu":
            kwargs[dtype_kw] = torch.float32
        else:
            kwargs[dtype_kw] = torch.float16 if cuda else torch.float32
            kwargs["device_map"] = {"": device}
        source = self._source()
        try:
            processor = transformers.AutoProcessor.from_pretrained(
                source, local_files_only=self.local_files_only
            )
            model = transformers.LlavaForConditionalGeneration.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as e:  # missing files; HF id validation is a ValueError
            raise ModelNotAvailableError(self._missing_message(e)) from e
        model.eval()
        self._processor, self._model, self._quantized = processor, model, quantize
        logger.info(
            "loaded %s on %s (%s)",
            self.model_id,
            model.device,
            "4-bit NF4" if quantize else str(getattr(model, "dtype", "?")),
        )

    def _source(self) -> str:
        """What ``from_pretrained`` is given: the shipped directory for the tiny model's name."""
        return os.fspath(TINY_LLAVA_DIR) if self.model_id == TINY_LLAVA_MODEL else self.model_id

    def _missing_message(self, error: BaseException) -> str:
        if self.model_id == TINY_LLAVA_MODEL:
            return (
                f"the shipped tiny LLaVA is missing or incomplete at {TINY_LLAVA_DIR} ({error}); "
                "reinstall luma-rag, or rebuild it as its README.md describes "
                "(python -m luma_rag.training.train_llava)"
            )
        where = (
            "the directory exists but does not hold a LLaVA checkpoint and processor"
            if os.path.isdir(self._source())
            else "it is neither a local directory nor in the local Hugging Face cache"
        )
        return (
            f"LLaVA model {self.model_id!r} is not available offline: {where} ({error}). "
            f"On a machine with network, save it with `huggingface-cli download "
            f"{DEFAULT_LLAVA_MODEL} --local-dir DIR` (or model.save_pretrained(DIR) and "
            f"processor.save_pretrained(DIR)), copy DIR here and pass LlavaAnswerer(model_id=DIR)."
        )

    # -- answering -------------------------------------------------------------------------------
    def _inputs(self, question: str, decision: GateDecision) -> tuple[Any, dict[str, Any]]:
        """Processor outputs on the model's device, and what went into them."""
        self.load()
        evidence = Evidence.from_decision(decision)
        image, info = _evidence_image(evidence)
        conversation = build_messages(question, decision, with_image=image is not None)
        prompt = self._processor.apply_chat_template(conversation, add_generation_prompt=True)
        if image is not None:
            inputs = self._processor(images=image, text=prompt, return_tensors="pt")
        else:
            inputs = self._processor(text=prompt, return_tensors="pt")
        inputs = inputs.to(self._model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(_floating_dtype(self._model))
        info["prompt_tokens"] = int(inputs["input_ids"].shape[1])
        return inputs, info

    def _generate_kwargs(self) -> dict[str, Any]:
        """Greedy decoding that cannot stop before its first token, nor emit a special token
        other than the end of sequence (``skip_special_tokens`` would decode it to nothing)."""
        tokenizer = self._processor.tokenizer
        pad = tokenizer.pad_token_id
        eos = tokenizer.eos_token_id
        suppress = sorted({int(i) for i in tokenizer.all_special_ids} - {eos})
        return {
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": 1,
            "do_sample": False,
            "pad_token_id": pad if pad is not None else eos,
            **({"suppress_tokens": suppress} if suppress else {}),
        }

    def _telemetry(self, decision: GateDecision, info: dict[str, Any], t0: float) -> dict[str, Any]:
        return {
            "answerer": self.name,
            "model": self.model_id,
            "device": str(self._model.device),
            "quantized_4bit": self._quantized,
            "decision": decision.decision,
            "k_used": decision.k_used,
            "clarification": decision.clarification,
            **decision.numbers.to_dict(),
            **info,
            "latency_ms": (time.perf_counter() - t0) * 1000.0,
        }

    def answer(self, question: str, decision: GateDecision) -> Answer:
        """Generate an answer (greedy) to ``question`` from ``decision``'s evidence.

        Args:
            question: The user's question.
            decision: The gate's decision; ANSWER, WIDEN and CLARIFY get their own prompts.

        Returns:
            The :class:`~luma_rag.answer.base.Answer`: only the generated text (never the
            prompt; :data:`NO_ANSWER_REPLY` when it holds no word, so never empty), the
            evidence as citations, and telemetry with token counts.

        Raises:
            ModelNotAvailableError / MissingDependencyError: on the first call, see :meth:`load`.
            InvalidInputError: empty question.
        """
        t0 = time.perf_counter()
        torch = _torch()
        inputs, info = self._inputs(question, decision)
        with torch.inference_mode():
            out = self._model.generate(**inputs, **self._generate_kwargs())
        new_tokens = out[0, info["prompt_tokens"] :]
        text = self._processor.decode(new_tokens, skip_special_tokens=True).strip()
        info["new_tokens"] = int(new_tokens.shape[0])
        if not any(ch.isalnum() for ch in text):
            logger.info("the model generated no words (%r); answering %r", text, NO_ANSWER_REPLY)
            info["empty_generation"] = True
            text = NO_ANSWER_REPLY
        citations = list(Evidence.from_decision(decision).citations)
        return Answer(text, decision, citations, self._telemetry(decision, info, t0))

    def stream(self, question: str, decision: GateDecision) -> Iterator[str]:
        """Yield the generated text as it is produced (prompt excluded).

        Raises:
            The errors of :meth:`answer`; an error inside generation is re-raised here.
        """
        transformers = _transformers()
        torch = _torch()
        inputs, _ = self._inputs(question, decision)
        streamer = transformers.TextIteratorStreamer(
            self._processor.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self._model.generate(**inputs, **self._generate_kwargs(), streamer=streamer)
            except BaseException as e:  # re-raised in the caller's thread below
                failure.append(e)
                streamer.end()

        thread = threading.Thread(target=run, name="llava-generate", daemon=True)
        thread.start()
        said = ""
        try:
            for chunk in streamer:
                if chunk:
                    said += chunk
                    yield chunk
        finally:
            thread.join()
        if failure:
            raise failure[0]
        if not any(ch.isalnum() for ch in said):
            yield (" " if said else "") + NO_ANSWER_REPLY


def _floating_dtype(model: Any) -> Any:
    """dtype of the model's first floating-point parameter (what pixel values must match)."""
    for param in model.parameters():
        if param.is_floating_point():
            return param.dtype
    return None


def _evidence_image(evidence: Evidence) -> tuple[Any, dict[str, Any]]:
    """The evidence's image as an RGB PIL image (a middle frame for a video), or None.

    A file that cannot be read is logged and reported in the returned info; the answer then
    goes ahead on the text evidence.
    """
    hit = evidence.image
    info: dict[str, Any] = {"image": None}
    if hit is None or hit.source is None:
        return None, info
    from luma_rag.media.sources import local_path

    try:
        if hit.modality == "video":
            from PIL import Image

            from luma_rag.media import sample_video_frames

            frames = sample_video_frames(local_path(hit.source), fps=1.0, max_frames=3)
            image: Any = Image.fromarray(frames[len(frames) // 2])
        else:
            from luma_rag.media import load_image

            image = load_image(local_path(hit.source))
    except (UnsupportedMediaError, InvalidInputError) as e:
        logger.warning("evidence image %r could not be read (%s); answering from text", hit.id, e)
        info["image_error"] = str(e)
        return None, info
    info["image"] = hit.source
    return image, info
