"""Fixtures for the LangChain integration tests; makes ``langchain_lumarag`` importable."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    import langchain_lumarag  # noqa: F401
except ImportError:  # not installed yet: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "integrations"))

from langchain_core.embeddings import DeterministicFakeEmbedding

from luma_rag import Luma
from luma_rag.errors import ModelNotAvailableError

HERE = Path(__file__).resolve().parent

SHAPES = [
    ("a red circle", {"shape": "circle", "color": "red", "size": 3}),
    ("a blue square", {"shape": "square", "color": "blue", "size": 5}),
    ("a green triangle", {"shape": "triangle", "color": "green", "size": 1}),
    ("a yellow star", {"shape": "star", "color": "yellow", "size": 7}),
    ("a purple hexagon", {"shape": "hexagon", "color": "purple", "size": 2}),
]


@pytest.fixture(scope="session")
def shapes() -> list[tuple[str, dict[str, Any]]]:
    """(text, metadata) of the five items in :func:`tiny_luma` and :func:`fake_luma`."""
    return [(text, dict(meta)) for text, meta in SHAPES]


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> None:
    """Run this directory's coroutine tests (the standard suites' included) with pytest-asyncio.

    LangChain's standard suites leave their async tests unmarked (their packages run
    ``asyncio_mode = "auto"``); marking them here keeps the project's strict mode elsewhere.
    """
    if inspect.iscoroutinefunction(obj) and HERE in Path(str(collector.path)).parents:
        pytest.mark.asyncio(obj)


@pytest.fixture(scope="session")
def tiny_available() -> bool:
    """Whether the shipped tiny CLIP (``"luma-tiny"``) can be built here."""
    try:
        from luma_rag.encoders import get_encoder

        get_encoder("luma-tiny")
    except ModelNotAvailableError:
        return False
    return True


@pytest.fixture(scope="session")
def tiny_luma(tmp_path_factory: pytest.TempPathFactory, tiny_available: bool) -> Iterator[Luma]:
    """A session store with the tiny CLIP and the five :data:`SHAPES` ingested (read-only use)."""
    if not tiny_available:
        pytest.skip("the packaged luma-tiny weights are not built here")
    luma = Luma.open(tmp_path_factory.mktemp("tiny") / "store", encoder="luma-tiny")
    luma.ingest_texts([t for t, _ in SHAPES], metadatas=[m for _, m in SHAPES])
    yield luma
    luma.close()


@pytest.fixture(scope="session")
def fake_embeddings() -> DeterministicFakeEmbedding:
    """LangChain's seeded fake embeddings, 16-d."""
    return DeterministicFakeEmbedding(size=16)


@pytest.fixture(scope="session")
def fake_luma(
    tmp_path_factory: pytest.TempPathFactory, fake_embeddings: DeterministicFakeEmbedding
) -> Iterator[Luma]:
    """A session store of the five :data:`SHAPES` embedded by :func:`fake_embeddings`
    (no encoder; read-only use)."""
    from langchain_lumarag import LumaVectorStore

    path = tmp_path_factory.mktemp("fake") / "store"
    with LumaVectorStore(fake_embeddings, path=path) as store:
        store.add_texts([t for t, _ in SHAPES], [m for _, m in SHAPES])
    luma = Luma.open(path)
    yield luma
    luma.close()
