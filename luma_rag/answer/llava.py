"""LLaVA-1.5 as an answerer, through Hugging Face transformers (``pip install 'luma-rag[llava]'``).

The model is loaded lazily, on the first answer (or :meth:`LlavaAnswerer.load`), and only
from local files by default: a model id that is not in the local Hugging Face cache, or a
directory that does not hold a LLaVA checkpoint, raises
:class:`~luma_rag.errors.ModelNotAvailableError` at once, without touching the network.

Where the model comes from: the registry's lookup, like every model
(:func:`luma_rag.encoders.registry.resolve_model`): a directory, the shipped ``luma-tiny-llava``,
``$LUMA_MODEL_DIR/<name>`` (``$LUMA_MODEL_DIR/llava-hf/llava-1.5-7b-hf``), the local Hugging
Face cache; never the network.

Precision (``precision=``): ``"auto"`` (NF4 on CUDA, bf16 on CPU), ``"nf4"``, ``"int8"``,
``"bf16"``, ``"fp16"``, ``"fp32"``; see :mod:`luma_rag.answer.llava_load`. The chosen
precision and the loaded model's memory are logged and reported by
:attr:`LlavaAnswerer.load_info` and in every answer's telemetry. ``load_in_4bit=True/False``
(older API) means ``"nf4"`` / the device's unquantized default.

The prompt is built by :func:`~luma_rag.answer.prompts.build_messages` and rendered with the
processor's chat template; only the generated tokens are decoded (the prompt is sliced off).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from luma_rag.answer.base import Answer, Evidence
from luma_rag.answer.confidence import CONFIDENCE_KEY, generation_confidences
from luma_rag.answer.gate import GateDecision
from luma_rag.answer.llava_load import PRECISIONS, load_llava
from luma_rag.answer.prompts import build_messages
from luma_rag.answer.tiny_llava import TINY_LLAVA_MODEL
from luma_rag.answer.verdict import VERDICT_KEY, verdict_probabilities
from luma_rag.errors import InvalidInputError, MissingDependencyError, UnsupportedMediaError

__all__ = [
    "DEFAULT_LLAVA_MODEL",
    "NO_ANSWER_REPLY",
    "OFFLINE_LLAVA_MODEL",
    "PRECISIONS",
    "LlavaAnswerer",
]

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


class LlavaAnswerer:
    """Answers with LLaVA-1.5 from the gate's evidence, showing it the top image.

    Args:
        model_id: A Hugging Face model id already in the local cache, a local directory
            holding a LLaVA checkpoint and its processor (``save_pretrained`` output), or
            ``"luma-tiny-llava"``: the tiny LLaVA shipped inside the package (offline).
        device: ``"cuda"``, ``"cuda:1"``, ``"cpu"``, ...; None: CUDA when available, else CPU.
        load_in_4bit: Older switch: True means ``precision="nf4"``, False the device's
            unquantized default (bf16 on CPU, fp16 on CUDA). None: use ``precision``.
        precision: ``"auto"``, ``"nf4"``, ``"int8"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``
            (see the module docstring).
        max_new_tokens: Most tokens generated per answer; ``>= 1``.
        local_files_only: Kept for compatibility; models are only ever read from local files.

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
        precision: str = "auto",
        max_new_tokens: int = 64,
        local_files_only: bool = True,
    ) -> None:
        """Configure; nothing is imported or loaded until the first answer."""
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise InvalidInputError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
        if max_new_tokens < 1:
            raise InvalidInputError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
        if precision not in PRECISIONS:
            raise InvalidInputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        model = os.fspath(model_id)
        if not model.strip():
            raise InvalidInputError("model_id must name a model or a local directory")
        self.model_id = model
        self.device = device
        self.load_in_4bit = load_in_4bit
        self.precision = precision
        self.max_new_tokens = max_new_tokens
        self.local_files_only = local_files_only
        self._model: Any = None
        self._processor: Any = None
        self._info: dict[str, Any] = {}
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

    @property
    def load_info(self) -> dict[str, Any]:
        """After loading: ``{"model", "path", "device", "precision", "memory_bytes"}``."""
        return dict(self._info)

    def _load(self) -> None:
        loaded = load_llava(
            self.model_id,
            device=self.device,
            precision=self.precision,
            load_in_4bit=self.load_in_4bit,
        )
        self._processor, self._model, self._info = loaded.processor, loaded.model, loaded.info

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
            "quantized_4bit": self._info.get("precision") == "nf4",
            "precision": self._info.get("precision"),
            "memory_bytes": self._info.get("memory_bytes"),
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
            gen = self._model.generate(
                **inputs,
                **self._generate_kwargs(),
                output_scores=True,
                return_dict_in_generate=True,
            )
        width, tok = info["prompt_tokens"], self._processor.tokenizer
        out, conf = generation_confidences(gen, width, tok)
        info[CONFIDENCE_KEY], info[VERDICT_KEY] = conf[0], verdict_probabilities(gen, width, tok)[0]
        new_tokens = out[0, info["prompt_tokens"] :]
        text = self._processor.decode(new_tokens, skip_special_tokens=True).strip()
        info["new_tokens"] = int(new_tokens.shape[0])
        if not any(ch.isalnum() for ch in text):
            logger.info("the model generated no words (%r); answering %r", text, NO_ANSWER_REPLY)
            info["empty_generation"] = True
            text = NO_ANSWER_REPLY
        citations = list(Evidence.from_decision(decision).citations)
        return Answer(text, decision, citations, self._telemetry(decision, info, t0))

    def answer_many(
        self, requests: Sequence[tuple[str, GateDecision]], *, batch_size: int = 16
    ) -> list[Answer]:
        """:meth:`answer` for each ``(question, decision)``, generated in left-padded batches.

        Requests whose evidence has an image are batched ``batch_size`` at a time; the others
        are answered one by one. Greedy decoding, so each text is what :meth:`answer` gives
        (up to floating-point differences of batched kernels).

        Returns:
            One :class:`~luma_rag.answer.base.Answer` per request, in order.
        """
        out: list[Answer | None] = [None] * len(requests)
        staged: list[tuple[int, Any, Any, dict[str, Any]]] = []
        for i, (question, decision) in enumerate(requests):
            self.load()
            image, info = _evidence_image(Evidence.from_decision(decision))
            if image is None:
                out[i] = self.answer(question, decision)
                continue
            conversation = build_messages(question, decision, with_image=True)
            prompt = self._processor.apply_chat_template(conversation, add_generation_prompt=True)
            staged.append((i, prompt, image, info))
        for start in range(0, len(staged), max(1, batch_size)):
            chunk = staged[start : start + max(1, batch_size)]
            for (i, _, _, info), text, t0 in self._generate_batch(chunk):
                decision = requests[i][1]
                citations = list(Evidence.from_decision(decision).citations)
                out[i] = Answer(text, decision, citations, self._telemetry(decision, info, t0))
        return [a for a in out if a is not None]

    def _generate_batch(
        self, chunk: list[tuple[int, Any, Any, dict[str, Any]]]
    ) -> list[tuple[tuple[int, Any, Any, dict[str, Any]], str, float]]:
        torch = _torch()
        t0 = time.perf_counter()
        tokenizer = self._processor.tokenizer
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        try:
            inputs = self._processor(
                images=[c[2] for c in chunk],
                text=[c[1] for c in chunk],
                return_tensors="pt",
                padding=True,
            )
        finally:
            tokenizer.padding_side = side
        inputs = inputs.to(self._model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(_floating_dtype(self._model))
        with torch.inference_mode():
            gen = self._model.generate(
                **inputs,
                **self._generate_kwargs(),
                output_scores=True,
                return_dict_in_generate=True,
            )
        width = int(inputs["input_ids"].shape[1])
        generated, confidence = generation_confidences(gen, width, self._processor.tokenizer)
        verdicts = verdict_probabilities(gen, width, self._processor.tokenizer)
        results = []
        for row, staged in enumerate(chunk):
            new_tokens = generated[row, width:]
            text = self._processor.decode(new_tokens, skip_special_tokens=True).strip()
            staged[3]["prompt_tokens"] = int(inputs["attention_mask"][row].sum())
            staged[3]["batched"] = len(chunk)
            staged[3][CONFIDENCE_KEY] = confidence[row]
            staged[3][VERDICT_KEY] = verdicts[row]
            if not any(ch.isalnum() for ch in text):
                staged[3]["empty_generation"] = True
                text = NO_ANSWER_REPLY
            results.append((staged, text, t0))
        return results

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
