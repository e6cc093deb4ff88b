"""Any text generator as the gate's answerer, with the gate's decision in its prompt.

:class:`TextModelAnswerer` wraps a function ``generate(prompt) -> str`` (and, optionally,
``stream(prompt) -> Iterator[str]``): the prompt is :func:`~luma_rag.answer.prompts.
build_prompt_text` — the decision's instructions (ANSWER from [1], WIDEN over the stable set,
CLARIFY: ask, do not answer), the numbered evidence and the question — so a model that never
heard of Safe@k still answers only as far as the certificate allows. The framework adapters
build on it: ``langchain_lumarag.ChatModelAnswerer`` (any LangChain chat model or LLM) and
``llama_index.vector_stores.lumarag.LLMAnswerer`` (any LlamaIndex LLM).

Example:
    >>> bot = TextModelAnswerer(lambda prompt: my_model(prompt), name="my-model")
    >>> bot.answer("What color is the circle?", gated_query(luma, "a circle")).text
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from luma_rag.answer.base import Answer, Evidence
from luma_rag.answer.gate import GateDecision
from luma_rag.answer.prompts import build_prompt_text
from luma_rag.errors import InvalidInputError

__all__ = ["TextModelAnswerer"]


class TextModelAnswerer:
    """An :class:`~luma_rag.answer.base.Answerer` (and streaming one) over a text generator.

    Args:
        generate: ``prompt -> text``.
        stream: ``prompt -> text chunks`` (default: one chunk from ``generate``).
        name: What ``telemetry["answerer"]`` says.

    Raises:
        InvalidInputError: ``generate`` (or ``stream``) is not callable.
    """

    def __init__(
        self,
        generate: Callable[[str], str],
        *,
        stream: Callable[[str], Iterator[str]] | None = None,
        name: str = "text-model",
    ) -> None:
        if not callable(generate) or (stream is not None and not callable(stream)):
            raise InvalidInputError("generate (and stream, if given) must be callables")
        self._generate = generate
        self._stream = stream
        self.name = name

    def prompt(self, question: str, decision: GateDecision) -> str:
        """The prompt the model gets: instructions for the decision, evidence, question."""
        return build_prompt_text(question, decision, with_image=False)

    def answer(self, question: str, decision: GateDecision) -> Answer:
        """Ask the model under ``decision``; cites the decision's evidence.

        Raises:
            InvalidInputError: an empty question, or the model returned no text.
        """
        t0 = time.perf_counter()
        text = self._generate(self.prompt(question, decision))
        if not isinstance(text, str):
            raise InvalidInputError(f"{self.name} returned {type(text).__name__}, not text")
        return self._wrap(text.strip(), decision, t0)

    def stream(self, question: str, decision: GateDecision) -> Iterator[str]:
        """Yield the model's text in chunks (one chunk without a ``stream`` function)."""
        prompt = self.prompt(question, decision)
        if self._stream is None:
            yield self._generate(prompt).strip()
            return
        yield from self._stream(prompt)

    def _wrap(self, text: str, decision: GateDecision, t0: float) -> Answer:
        telemetry: dict[str, Any] = {
            "answerer": self.name,
            "decision": decision.decision,
            "k_used": decision.k_used,
            **decision.numbers.to_dict(),
            "latency_ms": (time.perf_counter() - t0) * 1000.0,
        }
        citations = list(Evidence.from_decision(decision).citations)
        return Answer(text, decision, citations, telemetry)
