"""Opening a store directory: its config file, and rebuilding in-memory state after any stop.

:func:`read_config` / :func:`write_config` handle ``config.json``. :func:`recover` reconciles the
durable record (``records.sqlite``), the raw vectors (``vectors.f32``) and the index snapshots,
and loads the tiers: snapshots are used where they verify, anything the record holds that a
snapshot lacks is re-added from the raw vectors, anything the record does not hold is removed.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag._rwlock import RWLock
from luma_rag.config import LumaConfig
from luma_rag.errors import ConfigError, StoreCorruptedError
from luma_rag.memory.tiered import TieredMemory
from luma_rag.store.records import RecordStore
from luma_rag.store.snapshot import read_snapshot
from luma_rag.store.vectors import VectorFile

__all__ = ["CONFIG_FILE", "Recovered", "read_config", "recover", "write_config"]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


def read_config(path: Path) -> LumaConfig | None:
    """The config stored in the directory ``path`` (None: no store there yet).

    Raises:
        StoreCorruptedError: ``config.json`` exists but cannot be parsed.
    """
    cfg_file = path / CONFIG_FILE
    if not cfg_file.exists():
        return None
    try:
        return LumaConfig.from_json(cfg_file.read_text())
    except (ConfigError, OSError, UnicodeDecodeError, TypeError, AttributeError) as e:
        # TypeError / AttributeError: a field missing or of the wrong JSON type
        raise StoreCorruptedError(
            f"{cfg_file}: unreadable store config ({e}); fix it, or delete it and reopen "
            "with LumaConfig(dim=<the store's dim>)"
        ) from e


def write_config(path: Path, config: LumaConfig) -> None:
    """Write ``config.json`` atomically (temp file, rename)."""
    cfg_file = path / CONFIG_FILE
    tmp = cfg_file.with_name(CONFIG_FILE + ".tmp")
    tmp.write_text(config.to_json())
    os.replace(tmp, cfg_file)


@dataclass(frozen=True)
class Recovered:
    """In-memory state rebuilt from the record.

    Attributes:
        next_key: the high-water mark of keys (= vector rows) ever handed out.
        ids: id -> key of every live item.
        bridge_versions: int32 (>= next_key,) the bridge version each key was projected with
            (-1: not bridged, or not a live key).
        moved: int64 keys whose tier changed while loading (to persist).
    """

    next_key: int
    ids: dict[str, int]
    bridge_versions: np.ndarray
    moved: np.ndarray


def recover(
    path: Path,
    records: RecordStore,
    vectors: VectorFile,
    memory: TieredMemory,
    lock: RWLock,
) -> Recovered:
    """Check the record against the vectors, then load the tiers (snapshots where valid)."""
    recorded = records.get_kv("next_key")
    if recorded is None:  # a new store records its high-water mark before any write
        if vectors.rows:
            raise StoreCorruptedError(
                f"{path}: records.sqlite is missing or empty but vectors.f32 holds "
                f"{vectors.rows} rows; restore records.sqlite from a backup"
            )
        records.set_kv("next_key", "0")
    table = records.load()
    next_key = int(recorded or 0)
    if table.keys.size and int(table.keys.max()) >= next_key:
        raise StoreCorruptedError(f"{path}: record keys exceed the recorded high-water mark")
    if vectors.rows < next_key:
        raise StoreCorruptedError(
            f"{path}: records reference {next_key} vector rows but vectors.f32 holds "
            f"{vectors.rows}; the vector file is truncated"
        )
    vectors.truncate(next_key)  # drop the tail of an append that never committed
    bad = vectors.verify(table.keys, table.crcs)
    if bad.size:
        raise StoreCorruptedError(
            f"{path}: {bad.size} raw vectors fail their checksum "
            f"(keys {bad[:5].tolist()}); "
            "restore vectors.f32 from a backup"
        )
    versions = np.full(max(next_key, 1), -1, dtype=np.int32)
    versions[table.keys] = table.bridge_versions
    snaps: dict[str, Any] = {}
    for name in ("hot", "warm"):
        try:
            snaps[name] = read_snapshot(path / f"{name}.snapshot")
        except FileNotFoundError:
            snaps[name] = None
        except StoreCorruptedError as e:
            logger.warning("%s; rebuilding that tier from the raw vectors", e)
            snaps[name] = None
    with lock.write():
        memory.load(table.keys, table.tiers, table.hits, table.last_hit, table.novelty, snaps)
        # A crash between a commit and its tier update leaves the hot tier over budget.
        moved = memory.spill(time.time())
    return Recovered(
        next_key=next_key,
        ids=dict(zip(table.ids, table.keys.tolist(), strict=True)),
        bridge_versions=versions,
        moved=moved,
    )
