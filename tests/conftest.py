"""Shared fixtures: seeded clustered unit vectors and a factory of temporary stores."""

from __future__ import annotations

import os

# FAISS's OpenMP pool spins; on a small shared CI machine that makes every call on tiny test
# data several times slower. Set before FAISS loads so background threads (warm retrains) and
# writer subprocesses inherit it too; the session fixture below covers an already-loaded FAISS.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag import Luma, LumaConfig, WarmTierConfig

VectorFactory = Callable[..., np.ndarray]


@pytest.fixture(scope="session", autouse=True)
def _single_threaded_faiss() -> Iterator[None]:
    """Run FAISS on one OpenMP thread in the main thread during the tests (see above)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


StoreFactory = Callable[..., Luma]


def clustered_unit_vectors(
    n: int, dim: int, *, seed: int = 0, clusters: int = 16, spread: float = 0.5
) -> np.ndarray:
    """``n`` unit vectors around ``clusters`` random centres: float32 (n, dim), seeded.

    Clustered rather than isotropic so that IVF lists, PQ codes and near neighbours look like
    real embeddings; ``spread`` is the norm of the noise around a centre, which keeps every
    vector distinct (no exact ties between items).
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n, dim)) * (spread / np.sqrt(dim))
    x = centres[rng.integers(0, clusters, n)] + noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


@pytest.fixture(scope="session")
def make_vectors() -> VectorFactory:
    """``make_vectors(n, dim, seed=0, clusters=16, spread=0.35)`` -> float32 (n, dim) unit rows."""
    return clustered_unit_vectors


def quick_warm(**overrides: Any) -> WarmTierConfig:
    """A warm tier that trains early (256 items) and inline, so tests are quick and repeatable."""
    settings: dict[str, Any] = {"min_train": 256, "background": False}
    settings.update(overrides)
    return WarmTierConfig(**settings)


@pytest.fixture(scope="session")
def quick_warm_config() -> Callable[..., WarmTierConfig]:
    """``quick_warm_config(**overrides)`` -> WarmTierConfig(min_train=256, background=False)."""
    return quick_warm


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[StoreFactory]:
    """``make_store(dim=32, name="store", **LumaConfig fields)`` opens a store under tmp_path.

    Unless given, the warm tier is :func:`quick_warm`. Every store opened through the factory
    is closed at teardown (closing twice is fine).
    """
    opened: list[Luma] = []

    def factory(dim: int = 32, *, name: str = "store", **fields: Any) -> Luma:
        fields.setdefault("warm", quick_warm())
        luma = Luma.open(tmp_path / name, LumaConfig(dim=dim, **fields))
        opened.append(luma)
        return luma

    yield factory
    for luma in opened:
        luma.close()
