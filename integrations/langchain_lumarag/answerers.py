"""Any LangChain chat model (or LLM) as the answer gate's answerer.

:class:`ChatModelAnswerer` sends the model the gate's prompt
(:func:`luma_rag.answer.build_prompt_text`: the decision's instructions — ANSWER from the
certified [1], WIDEN over the stable set, CLARIFY: ask, do not answer — the numbered
evidence and the question) and returns a :class:`luma_rag.answer.Answer` citing the evidence.
:func:`~langchain_lumarag.build_gated_chain` wraps a chat model passed as ``answerer=`` in it.

Example:
    >>> from langchain_core.language_models import FakeListChatModel
    >>> chain = build_gated_chain(retriever, answerer=FakeListChatModel(responses=["Red [1]."]))
    >>> chain.invoke("What color is the circle?")["answer"]
    'Red [1].'
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from luma_rag.answer import TextModelAnswerer
from luma_rag.errors import InvalidInputError

__all__ = ["ChatModelAnswerer"]


def _text(output: Any) -> str:
    if isinstance(output, BaseMessage):
        return output.text if isinstance(output.text, str) else str(output.content)
    if isinstance(output, str):
        return output
    raise InvalidInputError(
        f"the model returned {type(output).__name__}; a chat model returns a message and an "
        "LLM a string"
    )


class ChatModelAnswerer(TextModelAnswerer):
    """A LangChain chat model or LLM (any ``Runnable`` from a prompt string to a message or
    a string) behind the gate, streaming through the model's own ``stream``.

    Args:
        model: e.g. ``ChatOpenAI(...)``, ``ChatOllama(...)``, ``FakeListChatModel(...)``.
        name: What ``telemetry["answerer"]`` says (default: the model's class name).

    Raises:
        TypeError: ``model`` is not a LangChain Runnable.
    """

    def __init__(self, model: Runnable[Any, Any], *, name: str | None = None) -> None:
        if not isinstance(model, Runnable):
            raise TypeError(
                f"ChatModelAnswerer takes a LangChain chat model or LLM, got {type(model).__name__}"
            )
        self.model = model

        def generate(prompt: str) -> str:
            return _text(model.invoke(prompt))

        def stream(prompt: str) -> Iterator[str]:
            for chunk in model.stream(prompt):
                piece = _text(chunk)
                if piece:
                    yield piece

        super().__init__(generate, stream=stream, name=name or type(model).__name__)
