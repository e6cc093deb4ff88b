"""Item records and metadata in SQLite (WAL, synchronous=FULL).

One row per live item: its string id, its integer key (= its row in the vector file), the
CRC32 of that row, its tier, its metadata as JSON, and the bookkeeping the spill policy
uses. A batch is committed in one transaction; once :meth:`RecordStore.commit` returns the
records survive a crash (SQLite's WAL with full sync). Each commit also bumps the record's
``generation`` (kv), which derived files are bound to.

Every SQLite or decoding failure (a damaged page, a non-UTF-8 id, malformed metadata JSON) is
a :class:`~luma_rag.errors.StoreCorruptedError` naming the file. ``read_only=True`` opens the
database with ``mode=ro`` (a reader beside the writer: WAL gives it a consistent snapshot).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from luma_rag.errors import StoreCorruptedError
from luma_rag.store.rowsum import rowsum as _rowsum

__all__ = ["ItemDetails", "NewRecord", "RecordStore", "RecordTable"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    crc INTEGER NOT NULL,
    tier INTEGER NOT NULL,
    modality TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created REAL NOT NULL,
    bridge_version INTEGER NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    last_hit REAL NOT NULL,
    novelty REAL NOT NULL,
    text TEXT,
    source TEXT,
    rowsum INTEGER
);
CREATE TABLE IF NOT EXISTS meta_keys (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gaps (
    gap INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    query TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


_READER_MMAP_BYTES = 1 << 30  # the query connection maps up to this much of the file
_SEP = "\x1f"  # kv values are stored as value + _SEP + crc32 hex


def _seal(value: str) -> str:
    return f"{value}{_SEP}{zlib.crc32(value.encode('utf-8', 'surrogatepass')):08x}"


def _unseal(name: str, stored: str) -> str:
    value, sep, crc = stored.rpartition(_SEP)
    if not sep:
        return stored  # written before values were sealed
    if f"{zlib.crc32(value.encode('utf-8', 'surrogatepass')):08x}" != crc:
        raise ValueError(f"setting {name!r} fails its checksum")
    return value


@dataclass(frozen=True)
class NewRecord:
    """One item to insert. ``key`` is its vector row; ``tier`` 0 = hot, 1 = warm."""

    key: int
    id: str
    crc: int
    tier: int
    modality: str
    metadata: dict[str, Any]
    created: float
    bridge_version: int
    novelty: float
    text: str | None = None
    source: str | None = None


class ItemDetails(NamedTuple):
    """What a search result shows of an item."""

    id: str
    modality: str
    metadata: dict[str, Any]
    text: str | None
    source: str | None


@dataclass(frozen=True)
class RecordTable:
    """Every live record, column-wise, as loaded on open (arrays indexed like ``keys``)."""

    keys: np.ndarray  # int64 (n,)
    ids: list[str]
    crcs: np.ndarray  # int64 (n,)
    tiers: np.ndarray  # int8 (n,)
    bridge_versions: np.ndarray  # int32 (n,)
    hits: np.ndarray  # int32 (n,)
    last_hit: np.ndarray  # float64 (n,)
    novelty: np.ndarray  # float32 (n,)


class RecordStore:
    """SQLite-backed records. Thread-safe: one connection behind a mutex, and (writable stores) a
    second one, behind its own, for the query path's reads: in WAL mode a writer's commit and
    its fsync do not block that one, so an ingest does not stall queries."""

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.Lock()
        try:
            if read_only:
                if not self.path.exists():
                    raise StoreCorruptedError(
                        f"{self.path} is missing; a read-only open needs an existing store"
                    )
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._db = sqlite3.connect(
                    uri, uri=True, check_same_thread=False, isolation_level=None
                )
            else:
                self._db = sqlite3.connect(
                    str(self.path), check_same_thread=False, isolation_level=None
                )
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            row = self._db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise StoreCorruptedError(f"{self.path}: SQLite integrity check failed: {row}")
            if not read_only:
                self._db.executescript(_SCHEMA)
                self._db.create_function("luma_rowsum", 9, _rowsum, deterministic=True)
                columns = {r[1] for r in self._db.execute("PRAGMA table_info(items)")}
                if "rowsum" not in columns:  # a store written before rows were checksummed
                    self._db.execute("ALTER TABLE items ADD COLUMN rowsum INTEGER")
            self._rdb, self._rlock = self._db, self._lock
            if not read_only:
                self._rdb = sqlite3.connect(
                    str(self.path), check_same_thread=False, isolation_level=None
                )
                self._rdb.execute("PRAGMA query_only=ON")
                self._rlock = threading.Lock()
            # The query path reads ~10 random rows per search: through a memory map a page not
            # in SQLite's own cache costs a page fault, not a read() and a copy (~120 -> ~80 µs
            # per 10 rows at 100k items). Address space only; WAL frames are still read.
            self._rdb.execute(f"PRAGMA mmap_size={_READER_MMAP_BYTES}")
        except sqlite3.DatabaseError as e:
            raise StoreCorruptedError(
                f"{self.path}: record store is unreadable ({e}); restore records.sqlite from "
                "a backup"
            ) from e

    @contextlib.contextmanager
    def _guard(self, what: str, *, reader: bool = False) -> Iterator[None]:
        """Hold the (``reader``: query) connection's mutex; turn SQLite / decoding failures into
        StoreCorruptedError."""
        with self._rlock if reader else self._lock:
            try:
                yield
            except StoreCorruptedError:
                raise
            except (sqlite3.Error, UnicodeDecodeError, ValueError, TypeError) as e:
                raise StoreCorruptedError(
                    f"{self.path}: {what} failed ({type(e).__name__}: {e}); the record store "
                    "is damaged: restore records.sqlite from a backup (check_store(path) lists "
                    "what is affected)"
                ) from e

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer connection: committed, or rolled back on error."""
        with self._guard(what):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def consistent_read(self) -> Iterator[None]:
        """Reads inside see one committed state (a read transaction; WAL keeps writers going)."""
        with self._guard("starting a read"):
            self._db.execute("BEGIN")
        try:
            yield
        finally:
            with self._guard("ending a read"):
                self._db.execute("COMMIT")

    # -- key/value -------------------------------------------------------------------------
    def get_kv(self, name: str) -> str | None:
        """Value stored under ``name``, or None."""
        with self._guard(f"reading setting {name!r}"):
            row = self._db.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone()
            return None if row is None else _unseal(name, str(row[0]))

    def set_kv(self, name: str, value: str) -> None:
        """Store ``value`` under ``name`` (committed)."""
        with self._guard(f"writing setting {name!r}"):
            self._db.execute(
                "INSERT OR REPLACE INTO kv(name, value) VALUES (?, ?)", (name, _seal(value))
            )

    # -- writes ------------------------------------------------------------------------------
    def commit(
        self, inserts: Sequence[NewRecord], delete_keys: Iterable[int], next_key: int
    ) -> None:
        """Insert and delete in one durable transaction, recording the key high-water mark."""
        rows = []
        for r in inserts:
            meta = json.dumps(r.metadata, sort_keys=True)
            rowsum = _rowsum(
                r.key, r.id, r.crc, r.tier, r.modality, meta, r.bridge_version, r.text, r.source
            )
            rows.append(
                (
                    r.key,
                    r.id,
                    r.crc,
                    r.tier,
                    r.modality,
                    meta,
                    r.created,
                    r.bridge_version,
                    r.created,
                    r.novelty,
                    r.text,
                    r.source,
                    rowsum,
                )
            )
        names = sorted({k for r in inserts for k in r.metadata})
        dels = [(int(k),) for k in delete_keys]
        with self._write("committing records") as db:
            if dels:
                db.executemany("DELETE FROM items WHERE key = ?", dels)
            db.executemany(
                "INSERT INTO items(key, id, crc, tier, modality, metadata, created, "
                "bridge_version, last_hit, novelty, text, source, rowsum) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            db.executemany(
                "INSERT OR IGNORE INTO meta_keys(name) VALUES (?)", [(n,) for n in names]
            )
            row = db.execute("SELECT value FROM kv WHERE name = 'generation'").fetchone()
            generation = int(_unseal("generation", str(row[0]))) + 1 if row else 1
            db.executemany(
                "INSERT OR REPLACE INTO kv(name, value) VALUES (?, ?)",
                [("next_key", _seal(str(next_key))), ("generation", _seal(str(generation)))],
            )

    def set_tiers(self, keys: np.ndarray, tier: int) -> None:
        """Record that ``keys`` moved to ``tier`` (0 hot, 1 warm), one UPDATE per 900 keys; SQLite
        recomputes each row checksum itself (:func:`~luma_rag.store.rowsum.rowsum`, registered)."""
        keys_ = [int(k) for k in keys]
        if not keys_:
            return
        with self._write("moving records") as db:
            for start in range(0, len(keys_), 900):
                chunk = keys_[start : start + 900]
                db.execute(
                    "UPDATE items SET tier = ?, rowsum = luma_rowsum(key, id, crc, ?, "
                    "modality, metadata, bridge_version, text, source) "
                    f"WHERE key IN ({','.join('?' * len(chunk))})",
                    [int(tier), int(tier), *chunk],
                )

    def set_usage(self, keys: np.ndarray, hits: np.ndarray, last_hit: np.ndarray) -> None:
        """Persist hit counts and last-access times (best effort, not part of durability)."""
        rows = [(int(h), float(t), int(k)) for k, h, t in zip(keys, hits, last_hit, strict=True)]
        with self._write("updating records") as db:
            db.executemany("UPDATE items SET hits = ?, last_hit = ? WHERE key = ?", rows)

    # -- reads -------------------------------------------------------------------------------
    def load(self) -> RecordTable:
        """Every live record, ordered by key."""
        with self._guard("loading the records"):
            rows = self._db.execute(
                "SELECT key, id, crc, tier, bridge_version, hits, last_hit, novelty, "
                "modality, metadata, text, source, rowsum FROM items ORDER BY key"
            ).fetchall()
            for k, i, c, tier, bv, _, _, _, m, md, t, src, rs in rows:
                if rs is not None and rs != _rowsum(k, i, c, tier, m, md, bv, t, src):
                    raise ValueError(f"the record of key {k} fails its checksum")
                if not isinstance(json.loads(md), dict):
                    raise ValueError(f"the metadata of key {k} is not a JSON object")
        cols: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in range(13)]
        return RecordTable(
            keys=np.array(cols[0], dtype=np.int64),
            ids=[str(x) for x in cols[1]],
            crcs=np.array(cols[2], dtype=np.int64),
            tiers=np.array(cols[3], dtype=np.int8),
            bridge_versions=np.array(cols[4], dtype=np.int32),
            hits=np.array(cols[5], dtype=np.int32),
            last_hit=np.array(cols[6], dtype=np.float64),
            novelty=np.array(cols[7], dtype=np.float32),
        )

    def details(self, keys: Sequence[int]) -> dict[int, ItemDetails]:
        """``key -> ItemDetails`` for the given keys (missing keys are omitted)."""
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        with self._guard("reading item details", reader=True):
            rows = self._rdb.execute(
                "SELECT key, id, modality, metadata, text, source, crc, tier, bridge_version, "
                f"rowsum FROM items WHERE key IN ({marks})",
                [int(k) for k in keys],
            ).fetchall()
            for k, i, m, md, t, src, c, tier, bv, rs in rows:
                if rs is not None and rs != _rowsum(k, i, c, tier, m, md, bv, t, src):
                    raise ValueError(f"the record of key {k} fails its checksum")
            out = {
                int(k): ItemDetails(str(i), str(m), {} if md == "{}" else json.loads(md), t, src)
                for k, i, m, md, t, src, *_ in rows
            }
            if not all(isinstance(d.metadata, dict) for d in out.values()):
                raise ValueError("an item's metadata is not a JSON object")
        return out

    def meta_keys(self) -> set[str]:
        """Every metadata key any stored item has used."""
        with self._guard("reading metadata keys", reader=True):
            return {str(r[0]) for r in self._rdb.execute("SELECT name FROM meta_keys")}

    def select_keys(self, where_sql: str, params: Sequence[Any]) -> np.ndarray:
        """Keys of the items whose metadata satisfy a compiled filter expression."""
        with self._guard("filtering by metadata", reader=True):
            rows = self._rdb.execute(
                f"SELECT key FROM items WHERE {where_sql}", list(params)
            ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def add_gap(self, when: float, query: str, detail: dict[str, Any]) -> int:
        """Record a knowledge gap (a query the memory could not settle); returns its number."""
        detail_json = json.dumps(detail, sort_keys=True, allow_nan=False)  # TypeError: caller's
        with self._guard("recording a knowledge gap"):
            cur = self._db.execute(
                "INSERT INTO gaps(time, query, detail) VALUES (?, ?, ?)",
                (float(when), query, detail_json),
            )
            return int(cur.lastrowid or 0)

    def gaps(self, limit: int) -> list[dict[str, Any]]:
        """The most recent knowledge gaps, newest first."""
        with self._guard("reading knowledge gaps"):
            rows = self._db.execute(
                "SELECT gap, time, query, detail FROM gaps ORDER BY gap DESC LIMIT ?", (int(limit),)
            ).fetchall()
            return [{"gap": g, "time": t, "query": q, **json.loads(d)} for g, t, q, d in rows]

    def count(self) -> int:
        """Number of live items."""
        with self._guard("counting items"):
            return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def close(self) -> None:
        """Checkpoint the WAL (writers only) and close."""
        with self._lock:
            try:
                if not self.read_only:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:
                logger.warning("%s: WAL checkpoint at close failed (%s)", self.path, e)
            finally:
                self._db.close()
                if self._rdb is not self._db:
                    with self._rlock:
                        self._rdb.close()
