"""A small readers-writer lock: many concurrent searches, one writer, no starvation either way.

Writers are preferred (a waiting writer holds back new readers), but when a writer releases
the lock, the readers that were waiting at that moment go first, before the next writer: a
writer that takes the lock again and again (a spill in chunks) cannot starve queries.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["RWLock"]


class RWLock:
    """Readers share the lock; a writer waits for readers to drain and blocks new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None
        self._writer_depth = 0
        self._waiting_writers = 0
        self._waiting_readers = 0
        self._turn = 0  # readers let in ahead of waiting writers (those waiting at a release)

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock for reading (re-entrant for the thread that holds it for writing)."""
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._writer_depth += 1
                nested = True
            else:
                self._waiting_readers += 1
                try:
                    while self._writer is not None or (self._waiting_writers and not self._turn):
                        self._cond.wait()
                except BaseException:  # interrupted while waiting: give back a turn it held
                    self._waiting_readers -= 1
                    self._turn = min(self._turn, self._waiting_readers)
                    self._cond.notify_all()
                    raise
                self._waiting_readers -= 1
                if self._turn:
                    self._turn -= 1
                    if not self._turn:
                        self._cond.notify_all()
                self._readers += 1
                nested = False
        try:
            yield
        finally:
            with self._cond:
                if nested:
                    self._writer_depth -= 1
                else:
                    self._readers -= 1
                    if self._readers == 0:
                        self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusively (re-entrant)."""
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._writer_depth += 1
            else:
                self._waiting_writers += 1
                try:
                    while self._writer is not None or self._readers or self._turn:
                        self._cond.wait()
                except BaseException:  # interrupted while waiting: stop holding readers back
                    self._waiting_writers -= 1
                    self._cond.notify_all()
                    raise
                self._waiting_writers -= 1
                self._writer = me
                self._writer_depth = 1
        try:
            yield
        finally:
            with self._cond:
                self._writer_depth -= 1
                if self._writer_depth == 0:
                    self._writer = None
                    self._turn = self._waiting_readers  # they go before the next writer
                    self._cond.notify_all()
