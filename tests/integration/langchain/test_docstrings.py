"""The ```python examples in the public classes' docstrings run as written, in order."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import pytest
from langchain_lumarag import LumaEmbeddings, LumaRetriever, LumaVectorStore

NEEDS_TINY = {LumaEmbeddings, LumaRetriever}

#: What each example prints, checked here (the examples print rather than assert): per class,
#: block index -> expressions evaluated in the examples' namespace right after that block.
CHECKS: dict[type, dict[int, tuple[str, ...]]] = {
    LumaEmbeddings: {1: ("len(vector) == embeddings.dim and len(vectors) == 2",)},
    LumaRetriever: {
        1: (
            'len(docs) == 2 and top.id == top.metadata["luma"]["id"]',
            'squares[0].metadata["shape"] == "square"',
        ),
        3: ('answer == "A red circle."',),
    },
    LumaVectorStore: {
        4: ('results[0].id == "1" and results[0].page_content == "a large red circle"',),
        5: ('{doc.id for doc in results} == {"1", "2"}',),
        6: ('doc.id == "1" and score > 0.99',),
        7: ('doc.metadata["luma"]["rank"] == 0 and "safe1" in doc.metadata',),
        8: ('results[0].id == "2"',),
        9: ('found[0].id == "2"',),
    },
}


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
    checks = CHECKS[cls]
    assert max(checks) < len(blocks), "a checked example block is gone"
    for i, block in enumerate(blocks):
        exec(compile(block, f"<{cls.__name__} docstring block {i}>", "exec"), namespace)
        for expr in checks.get(i, ()):
            assert eval(expr, namespace), f"{cls.__name__} block {i}: {expr}"
