"""The public names of ``langchain_lumarag`` are pinned."""

from __future__ import annotations

import langchain_lumarag

EXPECTED_ALL = [
    "ChatModelAnswerer",
    "LumaEmbeddings",
    "LumaRetriever",
    "LumaVectorStore",
    "build_gated_chain",
]


def test_all_imports() -> None:
    assert sorted(langchain_lumarag.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert getattr(langchain_lumarag, name).__name__ == name
