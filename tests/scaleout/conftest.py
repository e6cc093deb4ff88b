"""Real servers for the scale-out tests: one Milvus standalone and one SeaweedFS S3 gateway.

Both start once per test session on 127.0.0.1 (free ports, data in a temporary directory) and
stop at the end. A server that cannot start FAILS the tests that need it, with its log: the
packages come with ``luma-rag[milvus,s3]``, which ``make setup`` installs.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from luma_rag.backends.servers import LocalServer, start_milvus, start_seaweedfs


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A Milvus standalone server for the whole session."""
    server = start_milvus(tmp_path_factory.mktemp("milvus"))  # raises with the log on failure
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A SeaweedFS server with an S3 gateway and the bucket ``luma-media``."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def milvus_uri(milvus_server: LocalServer) -> str:
    """A ``milvus://`` URI naming a fresh collection on the session's server."""
    return f"milvus://{milvus_server.endpoint}/t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def _milvus_free(milvus_server: LocalServer) -> dict[tuple[int, str], list[str]]:
    """Emptied collections ready for reuse, by (dim, index): creating one costs seconds."""
    return {}


@pytest.fixture
def milvus_collection(
    milvus_server: LocalServer, _milvus_free: dict[tuple[int, str], list[str]]
) -> Iterator[Any]:
    """``milvus_collection(dim, index="HNSW", media=False)`` -> the URI of an empty collection.

    Collections are emptied (items and state) after the test and handed out again.
    """
    from luma_rag.backends import MilvusBackend, MilvusConfig

    taken: list[tuple[tuple[int, str], str]] = []

    def take(dim: int, index: str = "HNSW", media: bool = False) -> str:
        free = _milvus_free.setdefault((dim, index), [])
        name = free.pop() if free else f"pool_{index.lower()}_{dim}_{uuid.uuid4().hex[:8]}"
        taken.append(((dim, index), name))
        query = f"?index={index}" + ("&media=s3" if media else "")
        return f"milvus://{milvus_server.endpoint}/{name}{query}"

    yield take
    for key, name in taken:
        backend = MilvusBackend(MilvusConfig(address=milvus_server.endpoint, collection=name))
        backend.clear()
        backend.close()
        _milvus_free[key].append(name)


@pytest.fixture
def s3_env(s3_server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The session's S3 settings, also exported to the environment for this test."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    return dict(s3_server.env)


HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> None:
    """Run LangChain's standard suites' unmarked coroutine tests here with pytest-asyncio."""
    if inspect.iscoroutinefunction(obj) and HERE in Path(str(collector.path)).parents:
        pytest.mark.asyncio(obj)
