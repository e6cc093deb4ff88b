"""Durability: a writer killed with SIGKILL at random moments, and damaged files on open.

The writer runs in a subprocess and prints ``TRY`` before and ``ACK`` after every write
(flushed), so the parent knows which writes were acknowledged (they must survive) and which
were in flight (all or nothing). After reopening: no acknowledged id lost, no phantom id, every
vector exact. Damaged files must give a ``StoreCorruptedError`` or be recovered with the same
results, never a foreign exception or wrong results.
"""

from __future__ import annotations

import inspect
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag import Luma, LumaConfig, WarmTierConfig
from luma_rag.errors import ConfigError, StoreCorruptedError

DIM = 16
HOT_BUDGET = 100
KILLS = 24


def _batch(b: int) -> tuple[list[str], np.ndarray]:
    """Ids and unit vectors (float32) of the writer's batch ``b``: deterministic."""
    n = 10 + (b * 7) % 13
    rng = np.random.default_rng(10_000 + b)
    v = rng.standard_normal((n, 16))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [f"b{b}-{j}" for j in range(n)], v.astype(np.float32)


def _crash_config() -> LumaConfig:
    # nprobe over every list and fine 8-bit PQ codes: a self-query always finds its own item
    # (with the 4-bit default on 2-d sub-vectors, ζ ≈ 0.3 at d = 16 and a self-query can fall
    # outside the ADC top 512: this test is about durability, not about PQ recall).
    warm = WarmTierConfig(min_train=256, nprobe_fraction=1.0, dims_per_subquantizer=2, nbits=8)
    return LumaConfig(dim=16, hot_budget=100, warm=warm)


_WRITER_MAIN = """
import sys
from luma_rag import Luma
path, b = sys.argv[1], int(sys.argv[2])
luma = Luma.open(path, _crash_config())
print("READY", flush=True)
while True:
    if b % 9 == 8:  # close (writes snapshots) and reopen: kills also land in these
        luma.close()
        luma = Luma.open(path, _crash_config())
    if b % 4 == 3:
        victim = f"b{b - 2}-0"
        if victim in luma:
            print("TRYDEL", victim, flush=True)
            luma.delete([victim])
            print("ACKDEL", victim, flush=True)
    ids, vecs = _batch(b)
    print("TRY", b, flush=True)
    luma.add_vectors(vecs, ids=ids, metadata=[{"b": b}] * len(ids))
    print("ACK", b, flush=True)
    b += 1
"""

WRITER = "\n".join(
    [
        "import numpy as np",
        "from luma_rag import LumaConfig, WarmTierConfig",
        textwrap.dedent(inspect.getsource(_batch)),
        textwrap.dedent(inspect.getsource(_crash_config)),
        _WRITER_MAIN,
    ]
)


def _run_writer(path: Path, start: int, rng: random.Random) -> list[list[str]]:
    """Start the writer at batch ``start``, SIGKILL it at a random moment, return its lines."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[list[str]] = []
    pump = threading.Thread(target=lambda: lines.extend(ln.split() for ln in proc.stdout or []))
    pump.start()
    if rng.random() < 0.25:  # anywhere: startup, recovery on open, the first writes
        time.sleep(rng.uniform(0.05, 1.0))
    else:  # after a random number of acknowledged writes, a few ms into the next one
        # (counted from its TRY line, not from the last ACK: a fast write can be over before a
        # sleep counted from the ACK ends, and then the kill lands between writes)
        tries = rng.randint(1, 6)
        deadline = time.monotonic() + 30
        while sum(ln[:1] == ["TRY"] for ln in list(lines)) < tries and proc.poll() is None:
            assert time.monotonic() < deadline, "the writer made no progress"
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.005))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    pump.join(timeout=30)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL, f"the writer died on its own:\n{err}"
    assert "Traceback" not in err, err
    return lines


def _apply(lines: list[list[str]], expect: dict[str, str], vectors: dict[str, np.ndarray]) -> int:
    """Fold a writer's output into ``expect`` (id -> present/absent/either); return next batch."""
    last = -1
    for ln in lines:
        if len(ln) != 2:  # READY, or a line cut short by the kill
            continue
        if ln[0] == "TRY":
            b = int(ln[1])
            ids, vecs = _batch(b)
            for i, v in zip(ids, vecs, strict=True):
                expect[i], vectors[i] = "either", v
            last = b
        elif ln[0] == "ACK":
            for i in _batch(int(ln[1]))[0]:
                expect[i] = "present"
        elif ln[0] == "TRYDEL":
            expect[ln[1]] = "either"
        elif ln[0] == "ACKDEL":
            expect[ln[1]] = "absent"
    return last + 1


def _verify(
    path: Path,
    expect: dict[str, str],
    vectors: dict[str, np.ndarray],
    rng: random.Random,
    full: bool,
) -> None:
    """Reopen and check: no acked id lost, no phantom, exact vectors, batches all-or-nothing."""
    with Luma.open(path) as luma:
        stats = luma.stats()
        present = [i for i, s in expect.items() if s == "present"]
        either_in = [i for i, s in expect.items() if s == "either" and i in luma]
        lost = [i for i in present if i not in luma]
        assert not lost, f"{len(lost)} acknowledged ids lost, e.g. {lost[:3]}"
        resurrected = [i for i, s in expect.items() if s == "absent" and i in luma]
        assert not resurrected, f"acknowledged deletes undone: {resurrected[:3]}"
        assert stats["total"] == len(luma) == len(present) + len(either_in), "phantom ids"
        assert stats["hot"] + stats["warm"] == stats["total"]
        assert stats["hot"] <= HOT_BUDGET
        by_batch: dict[str, set[bool]] = {}
        for i, s in expect.items():
            if s == "either" and not i.endswith("-0"):  # "-0" ids are also the delete victims
                by_batch.setdefault(i.split("-")[0], set()).add(i in luma)
        for b, flags in by_batch.items():  # an in-flight batch is committed whole or not at all
            assert len(flags) == 1, f"batch {b} half committed"
        check = present + either_in
        if not full:
            check = rng.sample(check, min(60, len(check))) + either_in
        stored = {g["id"]: g["vector"] for g in luma.get(check)}
        for i in check:
            np.testing.assert_allclose(stored[i], vectors[i], atol=1e-6)
            hit = luma.search(vectors[i], k=1).hits[0]
            assert hit.id == i and hit.score == pytest.approx(1.0, abs=1e-5)
        for i in either_in:
            expect[i] = "present"
        for i, s in list(expect.items()):
            if s == "either":
                expect[i] = "absent"


@pytest.mark.timeout(300)
def test_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path):
    path = tmp_path / "store"
    rng = random.Random(20240611)
    expect: dict[str, str] = {}
    vectors: dict[str, np.ndarray] = {}
    Luma.open(path, _crash_config()).close()
    start = in_flight = 0
    for round_ in range(KILLS):
        lines = _run_writer(path, start, rng)
        in_flight += bool(lines) and lines[-1][0] in ("TRY", "TRYDEL")
        start = max(start, _apply(lines, expect, vectors))
        if round_ % 3 != 2:  # otherwise the next writer recovers the crashed store itself
            _verify(path, expect, vectors, rng, full=False)
    _verify(path, expect, vectors, rng, full=True)
    acked = sum(s == "present" for s in expect.values())
    assert acked > 300, f"only {acked} acknowledged items: the kills came too early to test much"
    assert in_flight >= 5, f"only {in_flight} kills landed during a write"


# -- damaged files on open -----------------------------------------------------------------------

N = 700


def _damage_config() -> LumaConfig:
    warm = WarmTierConfig(
        min_train=256, background=False, nprobe_fraction=1.0, dims_per_subquantizer=4
    )
    return LumaConfig(dim=32, hot_budget=100, rerank_depth=128, warm=warm)


@pytest.fixture(scope="module")
def damaged_base(tmp_path_factory, make_vectors) -> dict[str, Any]:
    """A closed store (hot + trained warm tier, snapshots) and its reference answers."""
    vecs = make_vectors(N, 32, seed=21)
    queries = np.vstack([vecs[::70], make_vectors(10, 32, seed=22)])
    path = tmp_path_factory.mktemp("damage") / "base"
    with Luma.open(path, _damage_config()) as luma:
        ids = luma.add_vectors(vecs, metadata=[{"n": i} for i in range(N)])
        luma.delete(ids[:3])
        assert luma.stats()["warm_trained"]
        ref = _answers(luma, queries)
    return {"path": path, "queries": queries, "ref": ref, "vecs": vecs}


def _answers(luma: Luma, queries: np.ndarray) -> tuple[Any, ...]:
    stats = luma.stats()
    hits = [
        [(h.id, round(h.score, 6), h.metadata["n"]) for h in luma.search(q, k=10)] for q in queries
    ]
    return stats["total"], stats["hot"], stats["warm"], hits


def _copy(base: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "store"
    shutil.copytree(base["path"], path)
    return path


def _truncate(name: str, size: int):
    def damage(path: Path) -> None:
        f = path / name
        with open(f, "r+b") as fh:
            fh.truncate(size if size >= 0 else f.stat().st_size + size)

    return damage


def _flip(name: str, offset: int):
    def damage(path: Path) -> None:
        f = path / name
        with open(f, "r+b") as fh:
            at = offset if offset >= 0 else f.stat().st_size + offset
            fh.seek(at)
            byte = fh.read(1)[0]
            fh.seek(at)
            fh.write(bytes([byte ^ 0x5A]))

    return damage


def _write(name: str, data: bytes):
    def damage(path: Path) -> None:
        (path / name).write_bytes(data)

    return damage


def _remove(*names: str):
    def damage(path: Path) -> None:
        for name in names:
            (path / name).unlink()

    return damage


def _swap_snapshots(path: Path) -> None:
    hot, warm = path / "hot.snapshot", path / "warm.snapshot"
    tmp = path / "swap"
    hot.rename(tmp)
    warm.rename(hot)
    tmp.rename(warm)


ROW = 4 * 32
FATAL = {
    "vectors one byte short": _truncate("vectors.f32", -1),
    "vectors one row short": _truncate("vectors.f32", -ROW),
    "vectors header only": _truncate("vectors.f32", 16),
    "vectors half a header": _truncate("vectors.f32", 7),
    "vectors empty": _truncate("vectors.f32", 0),
    "vectors missing": _remove("vectors.f32"),
    "vectors flipped row byte": _flip("vectors.f32", 16 + ROW * 500 + 5),
    "vectors flipped last byte": _flip("vectors.f32", -1),
    "vectors flipped magic": _flip("vectors.f32", 0),
    "vectors flipped dim": _flip("vectors.f32", 8),
    "records garbage": _write("records.sqlite", np.random.default_rng(0).bytes(16384)),
    "records empty": _write("records.sqlite", b""),
    "records missing": _remove("records.sqlite"),
    "records truncated": _truncate("records.sqlite", 4096),
}


@pytest.mark.parametrize("case", list(FATAL))
def test_unrecoverable_damage_raises_store_corrupted(damaged_base, tmp_path, case):
    path = _copy(damaged_base, tmp_path)
    FATAL[case](path)
    with pytest.raises(StoreCorruptedError):
        Luma.open(path)
    with pytest.raises(StoreCorruptedError):
        Luma.open(path, _damage_config())


SNAPSHOT_DAMAGE = {
    "hot garbage": _write("hot.snapshot", np.random.default_rng(1).bytes(4096)),
    "hot empty": _write("hot.snapshot", b""),
    "hot truncated": _truncate("hot.snapshot", -100),
    "hot flipped": _flip("hot.snapshot", -40),
    "warm garbage": _write("warm.snapshot", np.random.default_rng(2).bytes(4096)),
    "warm truncated": _truncate("warm.snapshot", 200),
    "warm flipped": _flip("warm.snapshot", -40),
    "warm flipped header": _flip("warm.snapshot", 20),
    "both missing": _remove("hot.snapshot", "warm.snapshot"),
    "swapped": _swap_snapshots,
    "stale tmp files": lambda p: (p / "hot.snapshot.tmp").write_bytes(b"half a snapshot"),
}


@pytest.mark.parametrize("case", list(SNAPSHOT_DAMAGE))
def test_damaged_snapshots_are_rebuilt_with_the_same_results(damaged_base, tmp_path, case):
    path = _copy(damaged_base, tmp_path)
    SNAPSHOT_DAMAGE[case](path)
    with Luma.open(path) as luma:
        assert _answers(luma, damaged_base["queries"]) == damaged_base["ref"]
    with Luma.open(path) as luma:  # the snapshots written on close are good again
        assert _answers(luma, damaged_base["queries"]) == damaged_base["ref"]


def test_uncommitted_vector_tail_is_dropped(damaged_base, tmp_path, make_vectors):
    path = _copy(damaged_base, tmp_path)
    with open(path / "vectors.f32", "ab") as fh:  # an append whose commit never happened
        fh.write(make_vectors(5, 32, seed=23).tobytes() + b"\x01\x02")
    with Luma.open(path) as luma:
        assert _answers(luma, damaged_base["queries"]) == damaged_base["ref"]
        extra = make_vectors(4, 32, seed=24)
        ids = luma.add_vectors(extra, metadata=[{"n": -1}] * 4)
        assert luma.search(extra[2], k=1).hits[0].id == ids[2]
        total = luma.stats()["total"]
    with Luma.open(path) as luma:
        assert luma.stats()["total"] == total == N - 3 + 4
        assert luma.search(extra[2], k=1).hits[0].id == ids[2]


BAD_CONFIGS = [
    b"",
    b"{",
    b"[]",
    b"null",
    b"\xff\xfe\x00",
    b"{}",
    b'{"dim": "32"}',
    b'{"dim": 32, "rerank_depth": "many"}',
    b'{"dim": 32, "hot": 5}',
    b'{"dim": 32, "hot": {"M": "x"}}',
    b'{"dim": 32, "bridge": [24, 32]}',
    b'{"dim": 32, "unknown_field": 1}',
    b'{"dim": 32, "safety": {"rho": -1}}',
]


@pytest.mark.parametrize("data", BAD_CONFIGS, ids=range(len(BAD_CONFIGS)))
def test_bad_config_json_raises_store_corrupted(damaged_base, tmp_path, data):
    path = _copy(damaged_base, tmp_path)
    (path / "config.json").write_bytes(data)
    for config in (None, _damage_config()):
        with pytest.raises(StoreCorruptedError):
            Luma.open(path, config)


def test_missing_config_json(damaged_base, tmp_path):
    path = _copy(damaged_base, tmp_path)
    (path / "config.json").unlink()
    with pytest.raises(ConfigError):
        Luma.open(path)
    with Luma.open(path, _damage_config()) as luma:  # recovery: the caller states the config
        assert _answers(luma, damaged_base["queries"]) == damaged_base["ref"]
    with pytest.raises(StoreCorruptedError):  # a config whose dim contradicts the vector file
        (path / "config.json").unlink()
        Luma.open(path, LumaConfig(dim=16))
