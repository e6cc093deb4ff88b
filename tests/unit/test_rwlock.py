"""The store's readers-writer lock: exclusive writes, shared reads, and no starvation of readers
by a writer that takes the lock again and again (a spill in chunks)."""

from __future__ import annotations

import threading
import time

import pytest

from luma_rag._rwlock import RWLock

pytestmark = pytest.mark.timeout(60)


def test_a_writer_taking_the_lock_repeatedly_lets_a_waiting_reader_in_between():
    lock = RWLock()
    rounds, done, got_in_at = 60, [0], []
    started = threading.Event()

    def writer() -> None:
        for _ in range(rounds):
            with lock.write():
                started.set()
                time.sleep(0.003)
                done[0] += 1  # released and taken again at once, as migrate() does

    def reader() -> None:
        with lock.read():
            got_in_at.append(done[0])

    w = threading.Thread(target=writer)
    w.start()
    started.wait(5)
    r = threading.Thread(target=reader)
    r.start()
    r.join(10)
    w.join(10)
    assert got_in_at and got_in_at[0] < rounds // 2, f"reader waited for {got_in_at} writes"


def test_reads_share_writes_exclude_and_nesting_works():
    lock = RWLock()
    shared, torn, stop = [0], [], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            with lock.read():
                before = shared[0]
                time.sleep(0.0002)
                if shared[0] != before:
                    torn.append(before)

    def writer() -> None:
        for _ in range(100):
            with lock.write(), lock.write(), lock.read():  # re-entrant for the writer
                shared[0] += 1
                time.sleep(0.0005)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    writers = [threading.Thread(target=writer) for _ in range(2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(30)
    stop.set()
    for t in readers:
        t.join(10)
    assert shared[0] == 200 and not torn
    assert not any(t.is_alive() for t in readers + writers)


def test_a_reader_interrupted_while_waiting_does_not_block_writers() -> None:
    """A reader whose wait is interrupted (an exception raised inside ``Condition.wait``)
    gives back the turn it was counted for, so the next writer is not held back forever."""
    lock = RWLock()
    calls = {"n": 0}
    real_wait = lock._cond.wait

    def interrupted_wait(timeout: float | None = None) -> bool:
        calls["n"] += 1
        raise KeyboardInterrupt

    with lock.write():
        lock._cond.wait = interrupted_wait  # type: ignore[method-assign]
        try:
            with lock.read():  # nested under our own write: no wait, must still work
                pass
        finally:
            lock._cond.wait = real_wait  # type: ignore[method-assign]
    # Now a reader that must wait (another thread holds the write lock) and is interrupted.
    import threading

    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with lock.write():
            holding.set()
            release.wait(5)

    t = threading.Thread(target=writer)
    t.start()
    holding.wait(5)
    lock._cond.wait = interrupted_wait  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt), lock.read():
            pass
    finally:
        lock._cond.wait = real_wait  # type: ignore[method-assign]
    release.set()
    t.join(5)
    assert calls["n"] == 1
    assert lock._waiting_readers == 0 and lock._turn == 0
    done = threading.Event()

    def next_writer() -> None:
        with lock.write():
            done.set()

    t2 = threading.Thread(target=next_writer)
    t2.start()
    t2.join(5)
    assert done.is_set(), "a writer was held back by a reader that never came"
