"""Append-only file of raw float32 vectors, fsync'd on write, memory-mapped for reading.

Layout: a 16-byte header (magic ``LUMAVEC1``, little-endian uint32 dim, uint32 generation of
the last compaction, 0 if none) followed by rows of ``dim`` float32; row ``r`` is the vector
of the item whose key is ``r``.
A CRC32 of every row is returned on append and kept in the record store, so a flipped or
truncated file is detected on open instead of silently returning wrong scores.

Rows the record does not account for are never deleted: :meth:`VectorFile.set_aside` moves
them to ``vectors.aside-<first_row>-<time>.f32`` (same layout) and :meth:`VectorFile.take_back`
appends such rows again when a record that references them is put back.

Deleted rows can be reclaimed in place (:meth:`VectorFile.compact`): the file-system blocks that
lie wholly inside deleted rows are punched out (Linux ``fallocate(PUNCH_HOLE | KEEP_SIZE)``), so
the disk space comes back while every live row keeps its offset — keys never move, nothing is
rewritten, and a crash at any point leaves live rows untouched (a punched range reads as zeros
and is never read again: the record store forgot those keys before the punch). Before punching,
the record's generation is written into the header (fsync'd), so a records.sqlite restored later
from a backup older than the compaction — which may reference rows that are now zeros — is told
apart from damage (:func:`luma_rag.store.recovery.recover` names both files to restore together).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.errors import StoreCorruptedError

__all__ = ["VectorFile", "row_crc"]

logger = logging.getLogger(__name__)

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_MAGIC = b"LUMAVEC1"
_HEADER = struct.Struct("<8sII")


def row_crc(rows: np.ndarray) -> list[int]:
    """CRC32 of each float32 row. ``rows``: (n, d) float32 -> list of n ints."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    return [zlib.crc32(r.tobytes()) for r in rows]


class VectorFile:
    """Raw vectors on disk. Thread-safe; appends are durable when :meth:`append` returns."""

    def __init__(self, path: str | os.PathLike[str], dim: int, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.dim = dim
        self.read_only = read_only
        self._row_bytes = 4 * dim
        self._lock = threading.Lock()
        self._appending = threading.Lock()  # one append at a time (readers never take it)
        self._map: np.ndarray | None = None
        if read_only and not self.path.exists():
            raise StoreCorruptedError(f"{self.path} is missing; restore it from a backup")
        if not self.path.exists():
            with open(self.path, "wb") as f:
                f.write(_HEADER.pack(_MAGIC, dim, 0))
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(self.path.parent)
        self.reclaimed_generation = self._check_header()
        mode = "rb" if read_only else "r+b"
        self._fh = open(self.path, mode)  # noqa: SIM115 - kept open for the store's lifetime
        size = os.fstat(self._fh.fileno()).st_size - _HEADER.size
        self._rows = size // self._row_bytes

    def _check_header(self) -> int:
        """Check magic and width; returns the generation of the last compaction (0: none)."""
        with open(self.path, "rb") as f:
            head = f.read(_HEADER.size)
        if len(head) < _HEADER.size:
            raise StoreCorruptedError(f"{self.path}: vector file header is truncated")
        magic, dim, reclaimed = _HEADER.unpack(head)
        if magic != _MAGIC:
            raise StoreCorruptedError(f"{self.path}: not a LUMA vector file (bad magic)")
        if dim != self.dim:
            raise StoreCorruptedError(
                f"{self.path}: vector file holds {dim}-d rows but the store says {self.dim}-d"
            )
        return int(reclaimed)

    @property
    def rows(self) -> int:
        """Number of complete rows in the file."""
        return self._rows

    def set_aside(self, rows: int) -> Path | None:
        """Move every row after ``rows`` to an aside file (never deleted); returns its path."""
        with self._lock:
            if rows > self._rows:
                raise StoreCorruptedError(
                    f"{self.path}: the record store references {rows} vector rows "
                    f"but the file holds only {self._rows}; the vector file was truncated"
                )
            tail_bytes = self._tail_bytes(rows)
            aside = None
            if tail_bytes:
                aside = self.path.with_name(f"vectors.aside-{rows}-{time.time_ns()}.f32")
                with open(aside, "wb") as f:
                    f.write(_HEADER.pack(_MAGIC, self.dim, 0))
                    f.write(tail_bytes)
                    f.flush()
                    os.fsync(f.fileno())
                _fsync_dir(self.path.parent)
                logger.warning(
                    "%s: %d bytes after row %d are not in the record; moved to %s",
                    self.path,
                    len(tail_bytes),
                    rows,
                    aside.name,
                )
            self._fh.truncate(_HEADER.size + rows * self._row_bytes)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._rows = rows
            self._map = None
            return aside

    def _tail_bytes(self, rows: int) -> bytes:
        self._fh.seek(_HEADER.size + rows * self._row_bytes)
        return self._fh.read()

    def take_back(self, rows: int, crcs: Mapping[int, int]) -> list[Path]:
        """Append rows from aside files that start where this file ends, up to ``rows`` rows.

        A file is used only when every row it would give back that the record knows (``crcs``:
        key -> CRC32) matches; newest first. Aside files stay on disk. Returns those used.
        """
        used = []
        progress = True
        while self._rows < rows and progress:
            progress = False
            start = self._rows
            for aside in sorted(self.path.parent.glob(f"vectors.aside-{start}-*.f32"))[::-1]:
                data = aside.read_bytes()[_HEADER.size :]
                take = min(len(data) // self._row_bytes, rows - start)
                if take <= 0:
                    continue
                block = np.frombuffer(data[: take * self._row_bytes], dtype=np.float32)
                block = block.reshape(take, self.dim)
                got = row_crc(block)
                if any(crcs.get(start + i, c) != c for i, c in enumerate(got)):
                    continue
                self.append(block, start)
                used.append(aside)
                progress = True
                logger.warning("%s: took %d rows back from %s", self.path, take, aside.name)
                break
        return used

    def append(self, vectors: np.ndarray, first_row: int) -> None:
        """Write ``vectors`` (n, dim) float32 at ``first_row`` and fsync before returning.

        The write and its fsync happen past the rows readers may map, without the readers'
        lock (an fsync can take long on a busy disk; queries go on); only the new row count
        is published under it."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.read_only:
            raise StoreCorruptedError(f"{self.path} is open read-only")
        with self._appending:
            if first_row != self._rows:
                with self._lock:  # an earlier failed write left a tail: overwrite from the row
                    self._fh.truncate(_HEADER.size + first_row * self._row_bytes)
                    if first_row < self._rows:
                        self._rows, self._map = first_row, None
            self._fh.seek(_HEADER.size + first_row * self._row_bytes)
            self._fh.write(vectors.tobytes())
            self._fh.flush()
            os.fsync(self._fh.fileno())
            with self._lock:
                self._rows = first_row + len(vectors)

    def _mapped(self, needed: int) -> np.ndarray:
        m = self._map
        if m is None or m.shape[0] < needed:
            self._fh.flush()
            m = np.memmap(
                self.path,
                dtype=np.float32,
                mode="r",
                offset=_HEADER.size,
                shape=(self._rows, self.dim),
            ).view(np.ndarray)  # a plain view (it keeps the mapping alive): no memmap wrapping
            self._map = m
        return m

    def _mapping_for(self, keys: np.ndarray) -> np.ndarray:
        """The mapping covering every row of non-empty ``keys``; bad rows are corruption."""
        with self._lock:
            hi = int(keys.max()) + 1
            if hi > self._rows or int(keys.min()) < 0:
                raise StoreCorruptedError(
                    f"{self.path}: asked for row {hi - 1} but the file holds {self._rows} rows"
                )
            return self._mapped(hi)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """Rows for ``keys`` (m,) int64 -> (m, dim) float32 (a copy)."""
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        m = self._mapping_for(keys)
        # One gather straight out of the mapping (no memmap-subclass intermediate copy).
        return np.take(m, keys, axis=0)

    def scores(self, keys: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Inner products of rows ``keys`` (m,) int64 with ``query`` (dim,) float32: (m,) float32.

        Read straight from the mapping (no (m, dim) copy, one pass over the rows), so an exact
        rerank costs one read of each row; same float32 products as ``get(keys) @ query`` up to
        summation order.
        """
        import faiss

        keys = np.ascontiguousarray(keys, dtype=np.int64)
        out = np.empty(len(keys), dtype=np.float32)
        if keys.size == 0:
            return out
        m = self._mapping_for(keys)
        q = np.ascontiguousarray(query, dtype=np.float32)
        faiss.fvec_inner_products_by_idx(
            faiss.swig_ptr(out),
            faiss.swig_ptr(q),
            faiss.swig_ptr(m),
            faiss.swig_ptr(keys),
            self.dim,
            1,
            len(keys),
        )
        return out

    def compact(self, live: np.ndarray, rows: int, generation: int) -> int:
        """Reclaim the disk blocks of every row below ``rows`` that is not in ``live``.

        The record's ``generation`` goes into the header (fsync'd) *before* anything is
        punched, so a crash in between only leaves a stricter marker. Call it after the record
        store committed the deletions (at ``generation``) and while nothing reads dead rows
        (no background retrain). Returns the bytes freed (0 without hole punching).

        Args:
            live: int64 (m,) keys the record still references. rows: the record's high-water
                mark (rows past it are not touched). generation: the record's generation.
        """
        if self.read_only:
            raise StoreCorruptedError(f"{self.path} is open read-only")
        alive = np.zeros(min(rows, self._rows), dtype=bool)
        live = np.asarray(live, dtype=np.int64)
        alive[live[live < len(alive)]] = True
        dead = np.flatnonzero(~alive)
        if dead.size == 0:
            return 0
        if generation > self.reclaimed_generation:
            with self._lock:
                self._fh.seek(0)
                self._fh.write(_HEADER.pack(_MAGIC, self.dim, int(generation)))
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self.reclaimed_generation = int(generation)
        return self.reclaim(dead)

    def reclaim(self, keys: np.ndarray) -> int:
        """Give back the disk blocks of deleted rows; returns the bytes punched out.

        Only whole file-system blocks inside runs of consecutive deleted rows are freed (live
        neighbours are never touched). Call it after the record store committed the deletion
        and the memory tiers dropped the keys. A file system without hole punching (or a
        platform without ``fallocate``) reclaims nothing and returns 0.

        Args:
            keys: int64 (m,) deleted keys (rows); duplicates and out-of-range keys are ignored.
        """
        keys = np.unique(np.asarray(keys, dtype=np.int64))
        keys = keys[(keys >= 0) & (keys < self._rows)]
        if keys.size == 0:
            return 0
        punch = _fallocate()
        if punch is None:
            return 0
        block = max(4096, os.fstat(self._fh.fileno()).st_blksize)
        breaks = np.flatnonzero(np.diff(keys) != 1) + 1
        freed = 0
        with self._lock:
            fd = self._fh.fileno()
            for run in np.split(keys, breaks):
                start = _HEADER.size + int(run[0]) * self._row_bytes
                stop = _HEADER.size + (int(run[-1]) + 1) * self._row_bytes
                lo = -(-start // block) * block  # round inward to whole blocks
                hi = stop // block * block
                if hi <= lo:
                    continue
                mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
                if punch(fd, mode, ctypes.c_int64(lo), ctypes.c_int64(hi - lo)) != 0:
                    err = ctypes.get_errno()
                    logger.info("%s: hole punching unsupported (%s)", self.path, os.strerror(err))
                    return freed
                freed += hi - lo
        return freed

    def verify(self, keys: np.ndarray, crcs: np.ndarray) -> np.ndarray:
        """Return the keys whose stored CRC32 does not match the bytes on disk."""
        bad: list[int] = []
        chunk = 8192
        for start in range(0, len(keys), chunk):
            ks = keys[start : start + chunk]
            rows = self.get(ks)
            got = np.array(row_crc(rows), dtype=np.int64)
            bad.extend(ks[got != crcs[start : start + chunk]].tolist())
        return np.array(bad, dtype=np.int64)

    def close(self) -> None:
        """Close the file handle and drop the mapping."""
        with self._lock:
            self._map = None
            self._fh.close()


def _fallocate() -> Any:
    """libc's ``fallocate(fd, mode, offset, len)`` where it exists (Linux), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


def _fsync_dir(path: Path) -> None:
    """fsync a directory so a new or renamed file's entry is durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
