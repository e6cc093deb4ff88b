"""Any LlamaIndex LLM as the answer gate's answerer.

:class:`LLMAnswerer` sends the LLM the gate's prompt
(:func:`luma_rag.answer.build_prompt_text`: the decision's instructions — ANSWER from the
certified [1], WIDEN over the stable set, CLARIFY: ask, do not answer — the numbered
evidence and the question) through ``complete`` / ``stream_complete``.
:class:`~llama_index.vector_stores.lumarag.LumaGatedQueryEngine` wraps an LLM passed as
``answerer=`` in it.

Example:
    >>> from llama_index.core.llms import MockLLM
    >>> engine = LumaGatedQueryEngine(store, answerer=MockLLM())
"""

from __future__ import annotations

from collections.abc import Iterator

from llama_index.core.llms import LLM

from luma_rag.answer import TextModelAnswerer

__all__ = ["LLMAnswerer"]


class LLMAnswerer(TextModelAnswerer):
    """A LlamaIndex LLM behind the gate (``complete``; ``stream_complete`` for streaming).

    Args:
        llm: Any :class:`llama_index.core.llms.LLM` (OpenAI, Ollama, MockLLM, ...).
        name: What ``telemetry["answerer"]`` says (default: the LLM's class name).

    Raises:
        TypeError: ``llm`` is not a LlamaIndex LLM.
    """

    def __init__(self, llm: LLM, *, name: str | None = None) -> None:
        if not isinstance(llm, LLM):
            raise TypeError(f"LLMAnswerer takes a LlamaIndex LLM, got {type(llm).__name__}")
        self.llm = llm

        def generate(prompt: str) -> str:
            return str(llm.complete(prompt).text)

        def stream(prompt: str) -> Iterator[str]:
            for response in llm.stream_complete(prompt):
                if response.delta:
                    yield response.delta

        super().__init__(generate, stream=stream, name=name or type(llm).__name__)
