"""The bridge's drift bounds hold for renormalised projections (source_dim > target_dim).

A stored bridged item is ``x T_v / ‖x T_v‖``. When ``T`` drops dimensions, ``‖x T_v‖`` can be
small and the renormalisation magnifies a later change of ``T``: ``drift_since`` must bound
the move of the *stored unit vector*, not only ``‖T_now − T_v‖₂`` (issue #17: adversarial
source vectors moved 0.84 against a bound of 0.029).
"""

from __future__ import annotations

import numpy as np
import pytest

from luma_rag.bridge import BridgeConfig, ProcrustesBridge
from luma_rag.store.bridge_file import load_bridge, save_bridge


def _two_versions(source_dim: int, target_dim: int, seed: int) -> ProcrustesBridge:
    """A fitted bridge, about to be refitted on pairs from a somewhat different map."""
    rng = np.random.default_rng(seed)
    cfg = BridgeConfig(source_dim, target_dim, refresh_every=64, inertia=0.0)
    bridge = ProcrustesBridge(cfg)
    a = np.linalg.qr(rng.standard_normal((max(source_dim, target_dim),) * 2))[0]
    x = rng.standard_normal((64, source_dim))
    bridge.add_pairs(x, x @ a[:source_dim, :target_dim])
    return bridge


def _refit(bridge: ProcrustesBridge, seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = bridge.config
    b = np.linalg.qr(rng.standard_normal((max(c.source_dim, c.target_dim),) * 2))[0]
    x = rng.standard_normal((64, c.source_dim))
    bridge.add_pairs(x, x @ b[: c.source_dim, : c.target_dim])


def _adversarial(t: np.ndarray, n: int, rng: np.random.Generator, small: float) -> np.ndarray:
    """Source vectors almost in the null space of ``T`` (their projection has norm ~small)."""
    u, _, _ = np.linalg.svd(t, full_matrices=True)  # t: (s, d); null space = u[:, d:]
    d = t.shape[1]
    null = rng.standard_normal((n, t.shape[0] - d)) @ u[:, d:].T
    rng_part = rng.standard_normal((n, d)) @ u[:, :d].T
    null /= np.linalg.norm(null, axis=1, keepdims=True)
    rng_part /= np.linalg.norm(rng_part, axis=1, keepdims=True)
    return null + small * rng_part


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("small", [1.0, 0.1, 0.02])
def test_stored_items_move_at_most_drift_since(seed: int, small: float) -> None:
    bridge = _two_versions(24, 8, seed)
    assert bridge.version == 1
    rng = np.random.default_rng(100 + seed)
    t1 = np.array(bridge.transform)
    x = np.vstack([_adversarial(t1, 200, rng, small), rng.standard_normal((200, 24))])
    stored, version = bridge.project_with_version(x)
    _refit(bridge, 1000 + seed)
    assert bridge.version == 2 and bridge.epsilon > 0.01
    moved = np.linalg.norm(bridge.project(x).astype(np.float64) - stored, axis=1)
    bound = bridge.drift_since(version)
    assert moved.max() <= bound + 1e-6
    assert bound > bridge.epsilon or small == 1.0  # the renormalisation is charged


def test_the_plain_bound_fails_on_adversarial_items() -> None:
    """Without the renormalisation term the bound is violated: the test above can fail."""
    bridge = _two_versions(24, 8, 3)
    rng = np.random.default_rng(7)
    x = _adversarial(np.array(bridge.transform), 400, rng, 0.02)
    stored, _ = bridge.project_with_version(x)
    _refit(bridge, 1003)
    moved = np.linalg.norm(bridge.project(x).astype(np.float64) - stored, axis=1)
    assert moved.max() > bridge.epsilon  # ‖T_now − T_v‖₂ alone does not bound the move


def test_query_drift_accounts_for_renormalisation() -> None:
    """ε_q bounds the move of the renormalised query between the previous map and this one."""
    bridge = _two_versions(24, 8, 5)
    t_prev = np.array(bridge.transform)
    _refit(bridge, 2005)
    rng = np.random.default_rng(11)
    x = _adversarial(np.array(bridge.transform), 300, rng, 0.05)
    worst_plain = 0.0
    for row in x:
        y, eps_q = bridge.project_query(row)
        before = row / np.linalg.norm(row) @ t_prev
        moved = float(np.linalg.norm(y.astype(np.float64) - before / np.linalg.norm(before)))
        assert moved <= eps_q + 1e-6
        worst_plain = max(worst_plain, moved - bridge.epsilon)
    assert worst_plain > 0  # the last refresh's ε alone would not have bounded these queries


def test_equal_or_wider_target_keeps_the_plain_bound() -> None:
    bridge = _two_versions(8, 12, 2)
    x = np.random.default_rng(3).standard_normal((50, 8))
    stored, version = bridge.project_with_version(x)
    _refit(bridge, 77)
    moved = np.linalg.norm(bridge.project(x).astype(np.float64) - stored, axis=1)
    assert bridge.drift_since(version) == pytest.approx(bridge.epsilon)
    assert moved.max() <= bridge.drift_since(version) + 1e-6


def test_min_norm_survives_a_round_trip(tmp_path) -> None:
    bridge = _two_versions(24, 8, 4)
    x = _adversarial(np.array(bridge.transform), 10, np.random.default_rng(2), 0.05)
    _, version = bridge.project_with_version(x)
    _refit(bridge, 9)
    save_bridge(bridge, tmp_path / "b.safetensors")
    again = load_bridge(tmp_path / "b.safetensors")
    assert again.drift_since(version) == pytest.approx(bridge.drift_since(version))
    assert again.history[0]["min_norm"] < 0.1
