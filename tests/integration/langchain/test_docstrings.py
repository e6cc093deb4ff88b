"""The ```python examples in the public classes' docstrings run as written, in order."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import pytest
from langchain_lumarag import LumaEmbeddings, LumaRetriever, LumaVectorStore

NEEDS_TINY = {LumaEmbeddings, LumaRetriever}


def python_blocks(obj: type) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)]


@pytest.mark.parametrize(
    "cls", [LumaEmbeddings, LumaVectorStore, LumaRetriever], ids=lambda c: c.__name__
)
def test_docstring_examples_run(
    cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if cls in NEEDS_TINY and not request.getfixturevalue("tiny_available"):
        pytest.skip("the packaged luma-tiny weights are not built here")
    blocks = python_blocks(cls)
    assert len(blocks) >= 3, "Instantiate / Search / Use-as-retriever examples expected"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docstring"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"<{cls.__name__} docstring block {i}>", "exec"), namespace)
