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
