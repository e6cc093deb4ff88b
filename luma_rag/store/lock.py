"""One writer per store: an OS file lock (``fcntl.flock``) on ``<store>/LOCK``.

The writer takes an exclusive, non-blocking lock when it opens the store and holds it until
:meth:`WriterLock.release` (or until the process dies: the kernel drops flock locks with the
file descriptor, so a crashed writer never leaves a stale lock). The holder's pid is written
into the file so that a second writer's :class:`~luma_rag.errors.StoreLockedError` can name it.
Readers (``Luma.open(path, read_only=True)``) take no lock: SQLite's WAL gives them a
consistent snapshot while the writer works.

Two ``Luma.open`` calls in one process also exclude each other (flock locks belong to the open
file description, so a second descriptor conflicts).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from luma_rag.errors import StoreLockedError

__all__ = ["LOCK_FILE", "WriterLock", "holder_pid"]

logger = logging.getLogger(__name__)

LOCK_FILE = "LOCK"


def holder_pid(path: Path) -> int | None:
    """The pid recorded in ``path/LOCK`` (None when absent or unreadable)."""
    try:
        text = (path / LOCK_FILE).read_text(encoding="ascii").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class WriterLock:
    """The exclusive writer lock of one store directory."""

    def __init__(self, path: Path) -> None:
        """Take the lock on ``path/LOCK``.

        Raises:
            StoreLockedError: another writer holds it (the message names its pid).
        """
        import fcntl

        self.path = path / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(fd)
            pid = holder_pid(path)
            who = f"process {pid}" if pid is not None else "another process"
            raise StoreLockedError(
                f"{path} is open for writing by {who}; close it there first, or open this "
                "store with Luma.open(path, read_only=True) to read it meanwhile"
            ) from e
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        os.fsync(fd)
        self._fd: int | None = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        import fcntl

        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
