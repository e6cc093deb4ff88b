"""#11 "Done when": seeded file fuzzing of a closed store with a trained warm tier.

Each case copies the store, damages one file (a flipped bit, truncation, a zero-filled range,
appended bytes, deletion, or the same file of another store), opens it and runs the fixed
queries. Allowed outcomes: a typed ``LumaError``, or the pristine answers, or different answers
announced (a WARNING about a rebuild, or telemetry notes). Anything else — a foreign exception,
a crash, a hang, silently different answers — fails the test.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from luma_rag import Luma
from luma_rag.errors import LumaError
from tests.reliability.conftest import answers, copy_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FILES = [
    "config.json",
    "records.sqlite",
    "vectors.f32",
    "hot.snapshot",
    "warm.snapshot",
    "bridge.safetensors",
]
KINDS = ["flip", "truncate", "zero", "append", "delete", "swap"]
CASES_PER_PAIR = {"flip": 28, "truncate": 12, "zero": 12, "append": 6, "delete": 1, "swap": 1}
SEED = 20_251_205


def _mutate(path: Path, other: Path, kind: str, rng: np.random.Generator) -> None:
    data = bytearray(path.read_bytes())
    if kind == "delete":
        path.unlink()
    elif kind == "swap":
        shutil.copyfile(other, path)
    elif kind == "flip":
        pos = int(rng.integers(len(data)))
        data[pos] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(data))
    elif kind == "truncate":
        path.write_bytes(bytes(data[: int(rng.integers(len(data)))]))
    elif kind == "zero":
        start = int(rng.integers(len(data)))
        size = int(rng.integers(1, 4096))
        data[start : start + size] = bytes(len(data[start : start + size]))
        path.write_bytes(bytes(data))
    else:  # append
        path.write_bytes(bytes(data) + rng.bytes(int(rng.integers(1, 512))))


def test_fuzzed_store_files(pristine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, b, queries, want = pristine
    rng = np.random.default_rng(SEED)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    slowest = 0.0
    case = 0
    for name in FILES:
        for kind in KINDS:
            for _ in range(CASES_PER_PAIR[kind]):
                case += 1
                store = copy_store(a, tmp_path / f"c{case}")
                _mutate(store / name, b / name, kind, rng)
                label = f"case {case}: {kind} {name}"
                caplog.clear()
                t0 = time.perf_counter()
                try:
                    with caplog.at_level(logging.WARNING), Luma.open(store) as luma:
                        got = answers(luma, queries)
                        notes = luma.search(queries[0], k=5).telemetry.notes
                        luma.search(queries[0], k=5, filters={"even": True})
                except LumaError:
                    outcomes["typed error"] += 1
                except Exception as e:  # the very thing this test looks for
                    failures.append(f"{label}: raw {type(e).__name__}: {e}")
                else:
                    warned = any(r.levelno >= logging.WARNING for r in caplog.records)
                    if got == want:
                        outcomes["identical" + (" (rebuilt, warned)" if warned else "")] += 1
                    elif notes or warned:
                        outcomes["different, announced"] += 1
                    else:
                        failures.append(f"{label}: silently different answers")
                elapsed = time.perf_counter() - t0
                slowest = max(slowest, elapsed)
                if elapsed > 30:
                    failures.append(f"{label}: took {elapsed:.1f} s (a hang?)")
                shutil.rmtree(store, ignore_errors=True)
    print(f"\n{case} mutated stores: {dict(outcomes)}; slowest case {slowest:.2f} s")
    assert not failures, "\n".join(failures)
    assert case >= 360 and outcomes["typed error"] > 0
