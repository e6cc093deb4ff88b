"""#11.1: one writer per store (an OS lock, tested with real processes); readers beside it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from luma_rag import Luma
from luma_rag.errors import StoreLockedError, StoreReadOnlyError
from tests.reliability.conftest import DIM, copy_store

REPO = Path(__file__).resolve().parents[2]


def run(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with this checkout first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "integrations")])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


SECOND_WRITER = """
    import sys, numpy as np
    from luma_rag import Luma
    from luma_rag.errors import StoreLockedError
    try:
        with Luma.open(sys.argv[1]) as luma:
            luma.add_vectors(np.ones((5, 16), np.float32))
    except StoreLockedError as e:
        print("LOCKED", e)
        sys.exit(3)
"""


def test_a_second_writer_is_refused_and_names_the_holder(pristine, tmp_path: Path) -> None:
    store = copy_store(pristine[0], tmp_path / "s")
    vecs = np.random.default_rng(0).standard_normal((5, DIM)).astype(np.float32)
    with Luma.open(store) as a:
        n = len(a)
        out = run(SECOND_WRITER, str(store))
        assert out.returncode == 3, out.stderr
        assert f"process {os.getpid()}" in out.stdout and "read_only=True" in out.stdout
        a.add_vectors(vecs)  # A's writes still work: nothing was corrupted
        assert len(a) == n + 5
    with Luma.open(store) as again:  # the lock is gone with the writer; the store is intact
        assert len(again) == n + 5


def test_a_reader_sees_committed_data_beside_the_writer_and_refreshes(pristine, tmp_path) -> None:
    store = copy_store(pristine[0], tmp_path / "s")
    reader_code = """
        import sys, json
        from luma_rag import Luma
        with Luma.open(sys.argv[1], read_only=True) as r:
            before = len(r)
            print("opened", flush=True)
            input()  # wait for the writer to commit more
            r.refresh()
            print(json.dumps([before, len(r), "extra-0" in r]))
    """
    vecs = np.random.default_rng(1).standard_normal((7, DIM)).astype(np.float32)
    with Luma.open(store) as writer:
        n = len(writer)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(reader_code), str(store)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "opened"
        writer.add_vectors(vecs, ids=[f"extra-{i}" for i in range(7)])
        out, err = proc.communicate("go\n", timeout=120)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == f"[{n}, {n + 7}, true]"


def test_a_reader_cannot_write(pristine, tmp_path: Path) -> None:
    store = copy_store(pristine[0], tmp_path / "s")

    def contents() -> dict[str, bytes]:  # SQLite may add its -wal / -shm index files
        return {p.name: p.read_bytes() for p in store.iterdir() if "sqlite-" not in p.name}

    before = contents()
    with Luma.open(store, read_only=True) as r:
        hits = r.search(np.ones(DIM, np.float32), k=3)
        assert len(hits) == 3
        with pytest.raises(StoreReadOnlyError):
            r.add_vectors(np.ones((1, DIM), np.float32))
        with pytest.raises(StoreReadOnlyError):
            r.delete([hits.ids[0]])
    assert contents() == before


def test_a_killed_writer_leaves_no_stale_lock(pristine, tmp_path: Path) -> None:
    store = copy_store(pristine[0], tmp_path / "s")
    code = """
        import sys, time
        from luma_rag import Luma
        luma = Luma.open(sys.argv[1])
        print("open", flush=True)
        time.sleep(60)
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(store)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    with pytest.raises(StoreLockedError, match=str(proc.pid)):
        Luma.open(store)
    proc.kill()
    proc.wait(timeout=30)
    with Luma.open(store) as luma:  # the kernel dropped the lock with the process
        assert len(luma) > 0
