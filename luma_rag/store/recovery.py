"""Opening a store directory: its config file, and rebuilding in-memory state after any stop.

:func:`read_config` / :func:`write_config` handle ``config.json`` (the settings and the store's
id). :func:`recover` reconciles the durable record (``records.sqlite``), the raw vectors
(``vectors.f32``) and the index snapshots, then loads the tiers:

* the store id (a uuid in ``config.json`` and in the record) must agree;
* vector rows the record does not account for are moved aside, never deleted; rows it needs
  that an aside file holds (an older record had been restored meanwhile) are taken back;
* a record older than the vector file's last compaction that references a reclaimed row is
  reported as such (restore both files from one backup), not as damage;
* a snapshot is used only when it verifies *and* carries this store's id and the record's
  current generation; otherwise the tier is rebuilt from the raw vectors with a WARNING (the
  warm tier deterministically, from the keys its index was trained on, so results are the
  same as before the damage).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag._rwlock import RWLock
from luma_rag.config import LumaConfig
from luma_rag.errors import ConfigError, StoreCorruptedError
from luma_rag.memory.tiered import TieredMemory
from luma_rag.store.records import RecordStore
from luma_rag.store.snapshot import read_snapshot, write_snapshot
from luma_rag.store.vectors import VectorFile

__all__ = [
    "CONFIG_FILE",
    "Recovered",
    "decode_keys",
    "encode_keys",
    "read_config",
    "recover",
    "write_config",
    "write_derived",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


def read_config(path: Path) -> tuple[LumaConfig | None, str | None]:
    """The config and store id in the directory ``path`` ((None, None): no store there yet).

    Raises:
        StoreCorruptedError: ``config.json`` exists but cannot be parsed.
    """
    cfg_file = path / CONFIG_FILE
    if not cfg_file.exists():
        return None, None
    try:
        data = json.loads(cfg_file.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ConfigError("config.json must hold a JSON object")
        store_id = data.pop("store_id", None)
        digest = data.pop("sha256", None)
        if store_id is not None and not isinstance(store_id, str):
            raise ConfigError(f"store_id must be a string, got {store_id!r}")
        if digest is not None and digest != _digest(store_id, data):
            raise ConfigError("the file fails its checksum (edited or damaged)")
        return LumaConfig.from_dict(data), store_id
    except (ConfigError, OSError, ValueError, TypeError, AttributeError, RecursionError) as e:
        # TypeError / AttributeError: a field missing or of the wrong JSON type
        raise StoreCorruptedError(
            f"{cfg_file}: unreadable store config ({e}); fix it, or delete it and reopen "
            "with LumaConfig(dim=<the store's dim>)"
        ) from e


def write_config(path: Path, config: LumaConfig, store_id: str) -> None:
    """Write ``config.json`` atomically (temp file, fsync, rename)."""
    cfg_file = path / CONFIG_FILE
    tmp = cfg_file.with_name(CONFIG_FILE + ".tmp")
    settings = json.loads(config.to_json())
    data = {"store_id": store_id, "sha256": _digest(store_id, settings), **settings}
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2, sort_keys=True))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, cfg_file)


def _digest(store_id: str | None, settings: dict[str, Any]) -> str:
    text = json.dumps([store_id, settings], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_keys(keys: np.ndarray) -> str:
    """int64 keys -> compact text for the record's settings table."""
    return base64.b64encode(np.asarray(keys, dtype="<i8").tobytes()).decode("ascii")


def decode_keys(text: str | None) -> np.ndarray | None:
    """Inverse of :func:`encode_keys` (None for absent or undecodable text)."""
    if not text:
        return None
    try:
        return np.frombuffer(base64.b64decode(text, validate=True), dtype="<i8").astype(np.int64)
    except ValueError:
        return None


@dataclass(frozen=True)
class Recovered:
    """In-memory state rebuilt from the record.

    Attributes:
        store_id: the store's id. generation: the record's commit count.
        next_key: the high-water mark of keys (= vector rows) ever handed out.
        ids: id -> key of every live item.
        bridge_versions: int32 (>= next_key,) the bridge version each key was projected with
            (-1: not bridged, or not a live key).
        moved: int64 keys whose tier changed while loading (to persist).
        notes: rebuilds that may change results; reported in query telemetry.
    """

    store_id: str
    generation: int
    next_key: int
    ids: dict[str, int]
    bridge_versions: np.ndarray
    moved: np.ndarray
    notes: tuple[str, ...]


def _bind_id(path: Path, records: RecordStore, store_id: str | None, read_only: bool) -> str:
    recorded = records.get_kv("store_id")
    if recorded is None:
        store_id = store_id or uuid.uuid4().hex
        if not read_only:
            records.set_kv("store_id", store_id)
        return store_id
    if store_id is not None and recorded != store_id:
        raise StoreCorruptedError(
            f"{path}: config.json belongs to store {store_id} but records.sqlite to store "
            f"{recorded}; one of them was copied from another store: put the matching file back"
        )
    return recorded


def recover(
    path: Path,
    records: RecordStore,
    vectors: VectorFile,
    memory: TieredMemory,
    lock: RWLock,
    *,
    store_id: str | None,
    read_only: bool = False,
) -> Recovered:
    """Check the record against the vectors, then load the tiers (snapshots where valid)."""
    recorded = records.get_kv("next_key")
    if recorded is None:  # a new store records its high-water mark before any write
        if vectors.rows:
            raise StoreCorruptedError(
                f"{path}: records.sqlite is missing or empty but vectors.f32 holds "
                f"{vectors.rows} rows; restore records.sqlite from a backup (no vector was "
                "changed)"
            )
        if not read_only:
            records.set_kv("next_key", "0")
    store_id = _bind_id(path, records, store_id, read_only)
    with records.consistent_read():
        table = records.load()
        next_key = int(records.get_kv("next_key") or 0)
        generation = int(records.get_kv("generation") or 0)
        train_keys = decode_keys(records.get_kv("warm_train_keys"))
    if table.keys.size and int(table.keys.max()) >= next_key:
        raise StoreCorruptedError(f"{path}: record keys exceed the recorded high-water mark")
    if not read_only and vectors.rows < next_key:
        vectors.take_back(
            next_key, dict(zip(table.keys.tolist(), table.crcs.tolist(), strict=True))
        )
    if vectors.rows < next_key:
        raise StoreCorruptedError(
            f"{path}: records reference {next_key} vector rows but vectors.f32 holds "
            f"{vectors.rows}; the vector file is truncated: restore it from a backup"
        )
    if not read_only and vectors.rows > next_key:
        vectors.set_aside(next_key)  # unaccounted rows: kept in an aside file, never deleted
    bad = vectors.verify(table.keys, table.crcs)
    if bad.size and generation < vectors.reclaimed_generation:
        raise StoreCorruptedError(
            f"{path}: records.sqlite (generation {generation}) is older than the compaction "
            f"of vectors.f32 (generation {vectors.reclaimed_generation}), which reclaimed rows "
            f"it still references (keys {bad[:5].tolist()}); restore vectors.f32 from the same "
            "backup as records.sqlite, or put the newer records.sqlite back"
        )
    if bad.size:
        raise StoreCorruptedError(
            f"{path}: {bad.size} raw vectors fail their checksum "
            f"(keys {bad[:5].tolist()}); restore vectors.f32 from a backup"
        )
    if (
        train_keys is not None
        and train_keys.size
        and (int(train_keys.min()) < 0 or int(train_keys.max()) >= next_key)
    ):
        logger.warning("%s: the warm tier's recorded training keys are out of range", path)
        train_keys = None
    versions = np.full(max(next_key, 1), -1, dtype=np.int32)
    versions[table.keys] = table.bridge_versions
    expect = {"store_id": store_id, "generation": generation}
    snaps: dict[str, Any] = {}
    fresh = generation == 0 and not table.keys.size
    for name in ("hot", "warm"):
        try:
            snaps[name] = read_snapshot(path / f"{name}.snapshot", expect)
        except FileNotFoundError:
            snaps[name] = None
            if not fresh:
                _report(read_only, "%s/%s.snapshot is missing; rebuilding that tier", path, name)
        except StoreCorruptedError as e:
            _report(read_only, "%s; rebuilding that tier from the raw vectors", e)
            snaps[name] = None
    with lock.write():
        notes = memory.load(
            table.keys,
            table.tiers,
            table.hits,
            table.last_hit,
            table.novelty,
            snaps,
            warm_train_keys=train_keys,
        )
        # A crash between a commit and its tier update leaves the hot tier over budget.
        moved = memory.spill(time.time()) if not read_only else np.zeros(0, np.int64)
    return Recovered(
        store_id=store_id,
        generation=generation,
        next_key=next_key,
        ids=dict(zip(table.ids, table.keys.tolist(), strict=True)),
        bridge_versions=versions,
        moved=moved,
        notes=tuple(notes),
    )


def _report(read_only: bool, message: str, *args: Any) -> None:
    """A writer warns (a derived file was lost or stale); a reader expects stale snapshots."""
    logger.log(logging.INFO if read_only else logging.WARNING, message, *args)


def write_derived(path: Path, records: RecordStore, memory: TieredMemory, store_id: str) -> None:
    """At a writer's close: snapshots bound to (store id, generation), the warm tier's training
    keys (for a deterministic rebuild), usage counters. Call under the write lock."""
    memory.warm.tighten_radii()
    binding = {"store_id": store_id, "generation": int(records.get_kv("generation") or 0)}
    for tier in (memory.hot, memory.warm):
        arrays, header = tier.snapshot()
        write_snapshot(path / f"{tier.name}.snapshot", arrays, {**header, **binding})
    train_keys = memory.warm.train_keys
    if train_keys is not None:
        records.set_kv("warm_train_keys", encode_keys(train_keys))
    keys = records.load().keys
    if keys.size:
        hits, last = memory.usage(keys)
        records.set_usage(keys, hits, last)
