"""Unit tests of the CLAP → CLIP Procrustes bridge (luma_rag.bridge) and its file."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from safetensors import safe_open

from luma_rag.bridge import BridgeConfig, ProcrustesBridge
from luma_rag.errors import (
    ConfigError,
    DimensionMismatchError,
    InvalidInputError,
    StoreCorruptedError,
)
from luma_rag.store.bridge_file import load_bridge, save_bridge

SHAPES = [(16, 16), (12, 20), (20, 12)]  # square, source < target, source > target


def semi_orthogonal(rng: np.random.Generator, s: int, t: int) -> np.ndarray:
    """A random (s, t) matrix with orthonormal rows (s <= t) or columns (s > t)."""
    q, _ = np.linalg.qr(rng.standard_normal((max(s, t), min(s, t))))
    return q if s >= t else q.T


def make_pairs(
    rng: np.random.Generator, r: np.ndarray, n: int, noise: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """n pairs (x, y) with y = unit(x) @ r + Gaussian noise; x is not normalised."""
    x = rng.standard_normal((n, r.shape[0])) * rng.uniform(0.5, 3.0, (n, 1))
    y = x / np.linalg.norm(x, axis=1, keepdims=True) @ r
    return x, y + noise * rng.standard_normal(y.shape)


def unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def tmap(bridge: ProcrustesBridge) -> np.ndarray:
    """The bridge's current map T, asserting it exists."""
    t = bridge.transform
    assert t is not None
    return t


def fitted_bridge(seed: int = 0, s: int = 16, t: int = 16, n: int = 256) -> ProcrustesBridge:
    rng = np.random.default_rng(seed)
    bridge = ProcrustesBridge(BridgeConfig(s, t, refresh_every=64))
    bridge.add_pairs(*make_pairs(rng, semi_orthogonal(rng, s, t), n))
    return bridge


def assert_same_state(a: ProcrustesBridge, b: ProcrustesBridge, *, times: bool = True) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa.keys() - (set() if times else {"history_time"}):
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


# ---------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"source_dim": 0},
        {"source_dim": 16.0},
        {"target_dim": -1},
        {"target_dim": True},
        {"refresh_every": 0},
        {"forgetting": 0.0},
        {"forgetting": 1.5},
        {"forgetting": math.nan},
        {"forgetting": "0.9"},
        {"min_pairs": 0},
        {"min_pairs": 2.5},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"source_dim": 16, "target_dim": 16, **kwargs}
    with pytest.raises(ConfigError):
        BridgeConfig(**args)  # type: ignore[arg-type]


def test_config_defaults_and_json_round_trip() -> None:
    cfg = BridgeConfig(512, 768)
    assert cfg.refresh_every == 512 and cfg.forgetting == 1.0 and cfg.min_pairs is None
    assert cfg.resolved_min_pairs == 512
    assert BridgeConfig(512, 768, refresh_every=64).resolved_min_pairs == 512  # full rank first
    assert BridgeConfig(8, 8, refresh_every=64).resolved_min_pairs == 64
    assert BridgeConfig(8, 8, min_pairs=3).resolved_min_pairs == 3
    assert BridgeConfig(8, 8, forgetting=1).forgetting == 1.0
    cfg = BridgeConfig(8, 12, refresh_every=7, forgetting=0.99, min_pairs=30)
    assert BridgeConfig.from_json(cfg.to_json()) == cfg


# ---------------------------------------------------------------------- fitting


@pytest.mark.parametrize(("s", "t"), SHAPES)
def test_recovers_known_map(s: int, t: int) -> None:
    rng = np.random.default_rng(s * 100 + t)
    r = semi_orthogonal(rng, s, t)
    bridge = ProcrustesBridge(BridgeConfig(s, t, refresh_every=64))
    bridge.add_pairs(*make_pairs(rng, r, 1024, noise=0.05))

    x_test = rng.standard_normal((200, s))
    y = bridge.project(x_test)
    assert y.shape == (200, t) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(y * unit(x_test @ r), axis=1)
    assert cosine.mean() > 0.95 and cosine.min() > 0.9


@pytest.mark.parametrize(("s", "t"), SHAPES)
def test_transform_is_semi_orthogonal(s: int, t: int) -> None:
    bridge = fitted_bridge(seed=1, s=s, t=t)
    tm = bridge.transform
    assert tm is not None and tm.shape == (s, t) and tm.dtype == np.float64
    gram = tm @ tm.T if s <= t else tm.T @ tm
    np.testing.assert_allclose(gram, np.eye(min(s, t)), atol=1e-10)
    with pytest.raises(ValueError):
        tm[0, 0] = 1.0  # read-only: callers cannot corrupt the live map


def test_refresh_cadence_is_exact_however_the_stream_is_batched() -> None:
    rng = np.random.default_rng(2)
    x, y = make_pairs(rng, semi_orthogonal(rng, 8, 8), 137)
    cfg = BridgeConfig(8, 8, refresh_every=10, min_pairs=25, forgetting=0.97)

    whole = ProcrustesBridge(cfg)
    eps_whole = whole.add_pairs(x, y)

    chunked = ProcrustesBridge(cfg)
    eps_chunked: list[float] = []
    bounds = [0, 7, 20, 21, 24, 25, 26, 80, 137]
    for lo, hi in itertools.pairwise(bounds):
        eps_chunked += chunked.add_pairs(x[lo:hi], y[lo:hi])

    expected = [25, 35, 45, 55, 65, 75, 85, 95, 105, 115, 125, 135]
    for bridge in (whole, chunked):
        assert [h["pairs_seen"] for h in bridge.history] == expected
        assert [h["version"] for h in bridge.history] == list(range(1, 13))
        assert bridge.version == 12 and bridge.pairs_seen == 137
    np.testing.assert_allclose(eps_whole, eps_chunked, atol=1e-9)
    np.testing.assert_allclose(eps_whole, [h["epsilon"] for h in whole.history])
    sw, sc = whole.state_dict(), chunked.state_dict()
    np.testing.assert_allclose(sw["M"], sc["M"], rtol=1e-10)
    np.testing.assert_allclose(sw["T"], sc["T"], atol=1e-9)


def test_nothing_fitted_before_min_pairs() -> None:
    rng = np.random.default_rng(3)
    x, y = make_pairs(rng, semi_orthogonal(rng, 8, 8), 64)
    bridge = ProcrustesBridge(BridgeConfig(8, 8, refresh_every=32))
    assert bridge.add_pairs(x[:31], y[:31]) == []
    assert not bridge.fitted and bridge.version == 0 and math.isnan(bridge.epsilon)
    with pytest.raises(InvalidInputError, match=r"not fitted.*1 more.*add_pairs"):
        bridge.project(x[0])
    with pytest.raises(InvalidInputError, match="not fitted"):
        bridge.drift_since(1)
    assert bridge.add_pairs(x[31:33], y[31:33]) == [0.0]
    assert bridge.fitted and bridge.version == 1 and bridge.epsilon == 0.0
    assert bridge.history[0]["initial"] is True and bridge.history[0]["pairs_seen"] == 32


def test_epsilon_is_the_spectral_norm_of_the_change() -> None:
    rng = np.random.default_rng(4)
    r = semi_orthogonal(rng, 12, 20)
    bridge = ProcrustesBridge(BridgeConfig(12, 20, refresh_every=32))
    bridge.add_pairs(*make_pairs(rng, r, 32, noise=0.3))
    for _ in range(4):
        before = bridge.transform
        assert before is not None
        (eps,) = bridge.add_pairs(*make_pairs(rng, r, 32, noise=0.3))
        after = bridge.transform
        assert after is not None
        assert eps > 0
        assert eps == pytest.approx(np.linalg.norm(after - before, 2), rel=1e-9)
        assert bridge.epsilon == eps


@pytest.mark.parametrize(("s", "t"), [(16, 16), (12, 20)])
def test_drift_is_observable_after_a_caption_swap(s: int, t: int) -> None:
    rng = np.random.default_rng(5)
    r = semi_orthogonal(rng, s, t)
    bridge = ProcrustesBridge(BridgeConfig(s, t, refresh_every=64))
    bridge.add_pairs(*make_pairs(rng, r, 2048))
    converged = bridge.epsilon
    assert converged < 0.01
    # A batch whose captions went through a different map (swapped / mislabelled pairs).
    (corrupted,) = bridge.add_pairs(*make_pairs(rng, semi_orthogonal(rng, s, t), 64))
    assert corrupted > 5 * converged


def test_forced_refresh_restarts_the_cadence() -> None:
    rng = np.random.default_rng(6)
    x, y = make_pairs(rng, semi_orthogonal(rng, 8, 8), 60)
    bridge = ProcrustesBridge(BridgeConfig(8, 8, refresh_every=10, min_pairs=10))
    with pytest.raises(InvalidInputError, match="no pairs"):
        bridge.refresh()
    bridge.add_pairs(x[:25], y[:25])
    before = bridge.transform
    assert before is not None
    eps = bridge.refresh()
    assert eps == pytest.approx(np.linalg.norm(tmap(bridge) - before, 2), abs=1e-12)
    bridge.add_pairs(x[25:], y[25:])
    assert [h["pairs_seen"] for h in bridge.history] == [10, 20, 25, 35, 45, 55]


def test_forced_refresh_can_fit_early() -> None:
    rng = np.random.default_rng(7)
    bridge = ProcrustesBridge(BridgeConfig(8, 8, refresh_every=64))
    bridge.add_pairs(*make_pairs(rng, semi_orthogonal(rng, 8, 8), 20))
    assert bridge.refresh() == 0.0
    assert bridge.fitted and bridge.history[0]["pairs_seen"] == 20


def test_forgetting_tracks_a_changed_map_faster() -> None:
    rng = np.random.default_rng(8)
    r_old, r_new = semi_orthogonal(rng, 16, 16), semi_orthogonal(rng, 16, 16)
    old, new = make_pairs(rng, r_old, 1024), make_pairs(rng, r_new, 256)
    distance = {}
    for forgetting in (1.0, 0.99):
        bridge = ProcrustesBridge(BridgeConfig(16, 16, refresh_every=64, forgetting=forgetting))
        bridge.add_pairs(*old)
        bridge.add_pairs(*new)
        distance[forgetting] = np.linalg.norm(tmap(bridge) - r_new, 2)
    assert distance[0.99] < 0.5 and distance[1.0] > 1.0


def test_drift_since_sums_later_epsilons_and_bounds_the_change() -> None:
    rng = np.random.default_rng(9)
    r = semi_orthogonal(rng, 12, 12)
    bridge = ProcrustesBridge(BridgeConfig(12, 12, refresh_every=16))
    maps: dict[int, np.ndarray] = {}
    for _ in range(6):
        bridge.add_pairs(*make_pairs(rng, r, 16, noise=0.3))
        maps[bridge.version] = tmap(bridge)
    eps = [h["epsilon"] for h in bridge.history]
    assert bridge.version == 6
    for v in range(1, 7):
        assert bridge.drift_since(v) == pytest.approx(math.fsum(eps[v:]))
        assert np.linalg.norm(tmap(bridge) - maps[v], 2) <= bridge.drift_since(v) + 1e-12
    assert bridge.drift_since(6) == 0.0
    for bad in (0, 7, -1, 1.5, True, "1"):
        with pytest.raises(InvalidInputError):
            bridge.drift_since(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- projecting


def test_project_shapes_and_version() -> None:
    bridge = fitted_bridge(s=16, t=20)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5, 16)).astype(np.float32)
    one = bridge.project(x[0])
    assert one.shape == (20,) and one.dtype == np.float32
    batch, version = bridge.project_with_version(x)
    assert batch.shape == (5, 20) and version == bridge.version
    np.testing.assert_allclose(batch[0], one, atol=1e-6)
    np.testing.assert_allclose(
        batch, unit(unit(x.astype(np.float64)) @ bridge.transform), atol=1e-6
    )
    with pytest.raises(DimensionMismatchError, match="source_dim"):
        bridge.project(np.ones(20))
    with pytest.raises(InvalidInputError):
        bridge.project(np.zeros((2, 16)))


def test_project_rejects_rows_that_vanish_in_target_space() -> None:
    bridge = fitted_bridge(s=20, t=12)
    tm = bridge.transform
    assert tm is not None
    g = np.random.default_rng(11).standard_normal(20)
    null = g - tm @ (tm.T @ g)  # orthogonal to every column of T
    with pytest.raises(InvalidInputError, match="null space"):
        bridge.project(null)


# ---------------------------------------------------------------------- bad input


BAD_PAIRS = [
    (lambda x, y: (x[0], y[0]), InvalidInputError),  # 1-D
    (lambda x, y: (x[None], y[None]), InvalidInputError),  # 3-D
    (lambda x, y: (x[:0], y[:0]), InvalidInputError),  # empty
    (lambda x, y: (x, y[:-1]), InvalidInputError),  # row counts differ
    (lambda x, y: (x[:, :-1], y), DimensionMismatchError),
    (lambda x, y: (x, np.hstack([y, y])), DimensionMismatchError),
    (lambda x, y: (np.where(np.arange(len(x))[:, None] == 70, np.nan, x), y), InvalidInputError),
    (lambda x, y: (x, np.where(np.arange(len(y))[:, None] == 3, np.inf, y)), InvalidInputError),
    (lambda x, y: (np.vstack([x[:-1], np.zeros((1, x.shape[1]))]), y), InvalidInputError),
    (lambda x, y: (x.astype(str), y), InvalidInputError),
    (lambda x, y: (x.astype(complex), y), InvalidInputError),
    (lambda x, y: (x > 0, y), InvalidInputError),
    (lambda x, y: ([[1.0, 2.0], [3.0]], y), InvalidInputError),
]


@pytest.mark.parametrize(("corrupt", "error"), BAD_PAIRS)
def test_bad_pairs_raise_and_change_nothing(corrupt, error) -> None:  # type: ignore[no-untyped-def]
    bridge = fitted_bridge()
    before = bridge.state_dict()
    history = bridge.history
    rng = np.random.default_rng(12)
    x, y = make_pairs(rng, semi_orthogonal(rng, 16, 16), 80)  # would span a refresh
    with pytest.raises(error):
        bridge.add_pairs(*corrupt(x, y))
    after = bridge.state_dict()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    assert bridge.history == history


def test_pairs_that_cancel_out_raise_and_change_nothing() -> None:
    bridge = ProcrustesBridge(BridgeConfig(2, 2, refresh_every=2))
    x = np.array([[1.0, 0.0], [1.0, 0.0]])
    y = np.array([[1.0, 0.0], [-1.0, 0.0]])
    with pytest.raises(InvalidInputError, match="cancel out"):
        bridge.add_pairs(x, y)
    assert bridge.pairs_seen == 0 and not bridge.state_dict()["M"].any()


def test_rejects_a_non_config() -> None:
    with pytest.raises(InvalidInputError):
        ProcrustesBridge({"source_dim": 8, "target_dim": 8})  # type: ignore[arg-type]


# ---------------------------------------------------------------------- persistence


@pytest.mark.parametrize("n", [0, 40, 300])
def test_save_load_round_trip(tmp_path: Path, n: int) -> None:
    rng = np.random.default_rng(13)
    r = semi_orthogonal(rng, 12, 20)
    bridge = ProcrustesBridge(BridgeConfig(12, 20, refresh_every=64, forgetting=0.999))
    if n:
        bridge.add_pairs(*make_pairs(rng, r, n))
    path = tmp_path / "bridge.safetensors"
    save_bridge(bridge, path)
    save_bridge(bridge, path)  # overwrite in place
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind

    loaded = load_bridge(str(path))
    assert loaded.config == bridge.config
    assert_same_state(bridge, loaded)
    assert loaded.history == bridge.history
    assert loaded.version == bridge.version and loaded.pairs_seen == bridge.pairs_seen

    more = make_pairs(rng, r, 100)
    assert loaded.add_pairs(*more) == bridge.add_pairs(*more)  # continues identically
    assert_same_state(bridge, loaded, times=False)
    x = rng.standard_normal((3, 12))
    np.testing.assert_array_equal(loaded.project(x), bridge.project(x))


def test_state_dict_round_trip_is_a_copy() -> None:
    bridge = fitted_bridge()
    state = bridge.state_dict()
    restored = ProcrustesBridge.from_state_dict(bridge.config, state)
    state["M"][:] = 0.0
    assert restored.state_dict()["M"].any()
    assert_same_state(bridge, restored)


def _mutations() -> list[tuple[str, object]]:
    return [
        ("drop M", lambda s: s.pop("M")),
        ("extra key", lambda s: s.__setitem__("junk", np.zeros(1))),
        ("drop T", lambda s: s.pop("T")),
        ("M shape", lambda s: s.__setitem__("M", s["M"][:, :-1])),
        ("M nan", lambda s: s["M"].__setitem__((0, 0), np.nan)),
        ("T not orthogonal", lambda s: s["T"].__setitem__((0, 0), s["T"][0, 0] + 0.1)),
        ("history length", lambda s: s.__setitem__("history_time", s["history_time"][:-1])),
        ("pairs_seen shape", lambda s: s.__setitem__("pairs_seen", np.array([1, 2]))),
        ("pairs_seen float", lambda s: s.__setitem__("pairs_seen", np.array([256.0]))),
        ("pairs_seen behind", lambda s: s.__setitem__("pairs_seen", np.array([10]))),
        ("history order", lambda s: s["history_pairs_seen"].__setitem__(slice(None), [256, 1])),
        ("eps negative", lambda s: s["history_epsilon"].__setitem__(-1, -0.5)),
        ("not an array", lambda s: s.__setitem__("M", s["M"].tolist())),
    ]


@pytest.mark.parametrize(("name", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
def test_inconsistent_state_is_rejected(name: str, mutate) -> None:  # type: ignore[no-untyped-def]
    bridge = fitted_bridge(n=128)  # two refreshes
    state = bridge.state_dict()
    mutate(state)
    with pytest.raises(StoreCorruptedError):
        ProcrustesBridge.from_state_dict(bridge.config, state)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[ProcrustesBridge, Path]:
    bridge = fitted_bridge(n=200, s=8, t=6)
    path = tmp_path / "bridge.safetensors"
    save_bridge(bridge, path)
    return bridge, path


def test_truncated_files_raise_store_corrupted(saved: tuple[ProcrustesBridge, Path]) -> None:
    _, path = saved
    data = path.read_bytes()
    for cut in (0, 1, 7, 8, 9, 50, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(StoreCorruptedError):
            load_bridge(path)
    path.write_bytes(b"not a safetensors file at all" * 10)
    with pytest.raises(StoreCorruptedError):
        load_bridge(path)


def test_flipped_bytes_are_caught_or_harmless(saved: tuple[ProcrustesBridge, Path]) -> None:
    bridge, path = saved
    data = path.read_bytes()
    rng = np.random.default_rng(14)
    caught = 0
    for pos in rng.choice(len(data), size=150, replace=False):
        damaged = bytearray(data)
        damaged[pos] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(damaged))
        try:
            loaded = load_bridge(path)
        except StoreCorruptedError:
            caught += 1
        else:  # e.g. a flip inside the header's space padding
            assert_same_state(bridge, loaded)
    assert caught > 140


def _rewrite_metadata(path: Path, **changes: str) -> None:
    """Change header fields (or the tensor checksums) and re-seal the header checksum."""
    with safe_open(str(path), framework="np") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    header = json.loads(metadata["header"])
    for key, value in changes.items():
        if key == "sha256":
            metadata["sha256"] = json.dumps({k: value for k in tensors})
        else:
            header[key] = value
    metadata["header"] = json.dumps(header, sort_keys=True)
    metadata["header_sha256"] = hashlib.sha256(metadata["header"].encode()).hexdigest()
    path.write_bytes(safetensors.numpy.save(tensors, metadata=metadata))


@pytest.mark.parametrize(
    "changes",
    [
        {"format": "something.else"},
        {"format_version": "99"},
        {"sha256": "0" * 64},
        {"config": "{not json"},
        {"config": "{}"},
        {"config": "[8, 6]"},
        {"config": json.dumps({"source_dim": 8, "target_dim": 6, "forgetting": 2.0})},
        {"config": json.dumps({"source_dim": 9, "target_dim": 6})},
    ],
)
def test_bad_metadata_raises_store_corrupted(
    saved: tuple[ProcrustesBridge, Path], changes: dict[str, str]
) -> None:
    _, path = saved
    _rewrite_metadata(path, **changes)
    with pytest.raises(StoreCorruptedError):
        load_bridge(path)


def test_a_bridge_bound_elsewhere_is_refused(saved: tuple[ProcrustesBridge, Path]) -> None:
    bridge, path = saved
    save_bridge(bridge, path, {"store_id": "a", "generation": 3})
    assert load_bridge(path, {"store_id": "a", "generation": 3}).version == bridge.version
    for other in ({"store_id": "b", "generation": 3}, {"store_id": "a", "generation": 4}):
        with pytest.raises(StoreCorruptedError, match=r"another store|older state"):
            load_bridge(path, other)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_bridge(tmp_path / "nope.safetensors")


# ---------------------------------------------------------------------- threads


def test_concurrent_writers_and_readers_stay_consistent() -> None:
    rng = np.random.default_rng(15)
    r = semi_orthogonal(rng, 8, 8)
    bridge = ProcrustesBridge(BridgeConfig(8, 8, refresh_every=10))
    bridge.add_pairs(*make_pairs(rng, r, 10))
    batches = [make_pairs(rng, r, int(k)) for k in rng.integers(1, 15, size=40)]
    probe = rng.standard_normal((4, 8))
    errors: list[BaseException] = []

    def write(part: list[tuple[np.ndarray, np.ndarray]]) -> None:
        for x, y in part:
            bridge.add_pairs(x, y)

    def read() -> None:
        try:
            for _ in range(200):
                y, version = bridge.project_with_version(probe)
                assert version >= 1
                np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(batches[i::4],)) for i in range(4)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    total = 10 + sum(len(x) for x, _ in batches)
    assert bridge.pairs_seen == total
    assert [h["pairs_seen"] for h in bridge.history] == list(range(10, total + 1, 10))


def _subspace_stream(rank: int, dim: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs that live in a ``rank``-dim subspace, mapped by one fixed rotation."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, rank)))[0]  # (dim, rank)
    x = rng.normal(size=(n, rank)) @ basis.T
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t_true = np.linalg.qr(np.random.default_rng(99).normal(size=(dim, dim)))[0]
    return x, x @ t_true


@pytest.mark.parametrize("inertia", [0.0, 0.01])
def test_inertia_keeps_unvisited_directions_so_epsilon_measures_real_drift(
    inertia: float,
) -> None:
    # Every pair obeys one rotation, restricted to a 6-dim subspace of a 32-dim space: the
    # map of that subspace never changes. Plain Procrustes is free in the other 26
    # directions and its refits jump there (ε of order 1); with inertia they stay put and ε
    # reflects only the (tiny) change on the data.
    x, y = _subspace_stream(rank=6, dim=32, n=640, seed=3)
    bridge = ProcrustesBridge(
        BridgeConfig(source_dim=32, target_dim=32, refresh_every=64, min_pairs=64, inertia=inertia)
    )
    bridge.add_pairs(x, y)
    later = [h["epsilon"] for h in bridge.history[1:]]
    assert len(later) >= 8
    if inertia == 0.0:
        assert max(later) > 0.5
    else:
        assert max(later) < 1e-6
    # Either way the map is right on the data's subspace.
    np.testing.assert_allclose(bridge.project(x[:20]), y[:20], atol=1e-6)


def test_inertia_still_follows_a_real_change_of_the_map() -> None:
    # Full-rank pairs from one rotation, then from another: the refit must move to the new
    # one (the proximal term only breaks ties the data leave open).
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2048, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t1, t2 = (np.linalg.qr(rng.normal(size=(16, 16)))[0] for _ in range(2))
    bridge = ProcrustesBridge(
        BridgeConfig(source_dim=16, target_dim=16, refresh_every=256, forgetting=0.99)
    )
    bridge.add_pairs(x[:1024], x[:1024] @ t1)
    np.testing.assert_allclose(bridge.transform, t1, atol=1e-6)
    eps = bridge.add_pairs(x[1024:], x[1024:] @ t2)
    assert max(eps) > 0.5
    np.testing.assert_allclose(bridge.transform, t2, atol=0.05)


def test_inertia_must_be_in_unit_interval() -> None:
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ConfigError, match="inertia"):
            BridgeConfig(source_dim=4, target_dim=4, inertia=bad)
