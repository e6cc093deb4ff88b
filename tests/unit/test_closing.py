"""``luma_rag.closing.ClosesOnExit``: ``with`` returns the object and closes it, also on errors."""

from __future__ import annotations

import pytest

from luma_rag.closing import ClosesOnExit


class _Owner(ClosesOnExit):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_with_returns_the_object_and_closes_it() -> None:
    owner = _Owner()
    with owner as got:
        assert got is owner and owner.closed == 0
    assert owner.closed == 1


def test_close_runs_when_the_block_raises_and_the_error_propagates() -> None:
    owner = _Owner()
    with pytest.raises(KeyError), owner:
        raise KeyError("boom")
    assert owner.closed == 1


def test_a_class_without_close_says_so() -> None:
    with pytest.raises(NotImplementedError, match="must define close"), ClosesOnExit():
        pass


def test_the_engine_and_the_integrations_use_it() -> None:
    from langchain_lumarag import LumaRetriever, LumaVectorStore
    from llama_index.vector_stores.lumarag import LumaVectorStore as LlamaStore

    from luma_rag import Luma
    from luma_rag.conversation import Conversation, TurnMemory

    for cls in (Luma, TurnMemory, Conversation, LumaRetriever, LumaVectorStore, LlamaStore):
        assert issubclass(cls, ClosesOnExit), cls
