"""Stores for the reliability tests: a closed store with a trained warm tier, and its answers."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from luma_rag import BridgeConfig, Luma, LumaConfig, WarmTierConfig
from tests.conftest import clustered_unit_vectors

DIM = 16
N = 700  # hot budget 200: ~500 warm items, so the warm tier trains (min_train 256)


def config(**overrides: object) -> LumaConfig:
    """Small tiers that train early and inline (deterministic)."""
    settings: dict[str, object] = {
        "dim": DIM,
        "hot_budget": 200,
        "warm": WarmTierConfig(min_train=256, background=False),
        "bridge": BridgeConfig(source_dim=8, target_dim=DIM, refresh_every=64),
    }
    settings.update(overrides)
    return LumaConfig(**settings)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Answers:
    """Top-5 ids and scores of fixed queries against a store."""

    ids: list[list[str]]
    scores: list[list[float]]


def answers(luma: Luma, queries: np.ndarray) -> Answers:
    """What ``luma`` returns for ``queries`` (k=5)."""
    results = [luma.search(q, k=5) for q in queries]
    return Answers([r.ids for r in results], [[h.score for h in r.hits] for r in results])


def build(path: Path, seed: int) -> Path:
    """A closed store: N items (trained warm tier), a fitted bridge, some bridged items."""
    vecs = clustered_unit_vectors(N, DIM, seed=seed)
    rng = np.random.default_rng(seed)
    with Luma.open(path, config()) as luma:
        luma.add_vectors(vecs, metadata=[{"n": i, "even": i % 2 == 0} for i in range(N)])
        x = rng.standard_normal((64, 8)).astype(np.float32)
        luma.add_bridge_pairs(x, np.concatenate([x, x], axis=1))
        luma.add_vectors(rng.standard_normal((5, 8)), bridged=True, modality="audio")
        assert luma.memory.warm.trained
    return path


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, Answers]:
    """(store A, store B of another seed, queries, A's answers after a clean reopen)."""
    root = tmp_path_factory.mktemp("reliability")
    a, b = build(root / "a", 1), build(root / "b", 2)
    queries = clustered_unit_vectors(20, DIM, seed=9)
    with Luma.open(a) as luma:
        want = answers(luma, queries)
    return a, b, queries, want


def copy_store(src: Path, dst: Path) -> Path:
    """A copy of a closed store directory."""
    shutil.copytree(src, dst)
    return dst
