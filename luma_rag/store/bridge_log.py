"""The bridge's pairs, persisted incrementally: an append-only log plus periodic snapshots.

Rewriting the whole bridge state (``bridge.safetensors``, 4 MB at 512 × 512 + its
accumulators) after every captioned item cost ~0.1 s per item. Instead each batch of
(CLAP, CLIP) pairs is appended to ``bridge.pairs`` (one framed, checksummed record per batch,
fsynced before the write is acknowledged) and the snapshot is rewritten only every
``snapshot_every`` pairs and on close. The snapshot is bound to the store (its id and the
recorded ``bridge_generation``, which counts snapshots; see :mod:`luma_rag.store.bridge_file`)
and its header records how many bytes of the log it already contains; opening loads the
snapshot and replays the batches after that offset, batch by batch, so the bridge ends in
exactly the state it had (refits happen at the same points). A torn last record (a crash
during an append that was therefore never acknowledged) is cut off. On a clean close the log
is emptied after the final snapshot.

Record layout: ``u32 rows, u32 source_dim, u32 target_dim, u32 crc32(payload)`` then
``rows × (source_dim + target_dim)`` little-endian float32.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np

from luma_rag.bridge import BridgeConfig
from luma_rag.errors import StoreCorruptedError, StoreReadOnlyError
from luma_rag.store.bridge_file import open_bound_bridge, save_bridge
from luma_rag.store.records import RecordStore
from luma_rag.store.snapshot import read_snapshot

__all__ = ["BridgeLog"]

logger = logging.getLogger(__name__)

_HEAD: Final = struct.Struct("<IIII")
SNAPSHOT_FILE: Final = "bridge.safetensors"
LOG_FILE: Final = "bridge.pairs"


class BridgeLog:
    """A bridge whose pairs are appended to a log and snapshotted now and then.

    Args:
        directory: The store directory.
        config: The store's bridge config.
        store_id: The store's id (the snapshot is bound to it).
        records: The store's record (holds ``bridge_generation``).
        read_only: Replay only; write nothing.
        snapshot_every: Pairs between two snapshots (>= 1).
    """

    def __init__(
        self,
        directory: Path,
        config: BridgeConfig,
        store_id: str,
        records: RecordStore,
        *,
        read_only: bool = False,
        snapshot_every: int = 2048,
    ) -> None:
        self._snapshot = directory / SNAPSHOT_FILE
        self._log = directory / LOG_FILE
        self._every = max(1, int(snapshot_every))
        self._store_id, self._records, self._read_only = store_id, records, read_only
        # the snapshot is bound to the store and to the recorded bridge generation
        self.bridge = open_bound_bridge(self._snapshot, config, store_id, records, read_only)
        offset = 0
        if self._snapshot.exists():
            try:
                offset = int(read_snapshot(self._snapshot)[1].get("log_offset", 0))
            except (StoreCorruptedError, ValueError, TypeError):
                offset = 0  # an older file format: it has no log
        size = self._log.stat().st_size if self._log.exists() else 0
        self._since_snapshot = self._replay(offset)
        self._file: BinaryIO | None = None if read_only else self._log.open("ab")
        if offset > size and not read_only:  # a crash between emptying the log and the
            self.snapshot()  # final snapshot: re-anchor before new records pass the offset

    def _replay(self, offset: int) -> int:
        """Apply the log's batches after ``offset``; cut a torn tail. Returns pairs replayed."""
        if not self._log.exists():
            return 0
        data = self._log.read_bytes()
        pos, replayed = (offset if offset <= len(data) else len(data)), 0
        cfg = self.bridge.config
        while pos + _HEAD.size <= len(data):
            rows, ds, dt, crc = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + rows * (ds + dt) * 4
            if end > len(data):
                break
            payload = data[pos + _HEAD.size : end]
            if zlib.crc32(payload) != crc or (ds, dt) != (cfg.source_dim, cfg.target_dim):
                raise StoreCorruptedError(
                    f"{self._log} has a damaged record at byte {pos}; delete {self._log} to "
                    "lose the bridge pairs since the last snapshot, or restore a backup"
                )
            pairs = np.frombuffer(payload, dtype="<f4").reshape(rows, ds + dt)
            self.bridge.add_pairs(pairs[:, :ds], pairs[:, ds:])
            replayed += rows
            pos = end
        if pos < len(data) and not self._read_only:  # a torn append, never acknowledged
            logger.warning("dropping a torn bridge-log record at byte %d of %s", pos, self._log)
            with self._log.open("r+b") as f:
                f.truncate(pos)
        if replayed:
            logger.info("replayed %d bridge pairs from %s", replayed, self._log)
        return replayed

    def add_pairs(self, x_source: np.ndarray, y_target: np.ndarray) -> list[float]:
        """Log the pairs (fsynced), feed them to the bridge, snapshot when due.

        Args:
            x_source: float32 ``(n, source_dim)`` unit rows (CLAP space).
            y_target: float32 ``(n, target_dim)`` unit rows (CLIP space).

        Returns:
            ε of every refit the pairs caused (see :meth:`ProcrustesBridge.add_pairs`).
        """
        if self._file is None:
            raise StoreReadOnlyError("the bridge of a read-only store cannot learn pairs")
        eps = self.bridge.add_pairs(x_source, y_target)  # validates before anything is logged
        x = np.ascontiguousarray(x_source, dtype="<f4").reshape(len(x_source), -1)
        y = np.ascontiguousarray(y_target, dtype="<f4").reshape(len(y_target), -1)
        payload = np.hstack([x, y]).tobytes()
        self._file.write(_HEAD.pack(len(x), x.shape[1], y.shape[1], zlib.crc32(payload)))
        self._file.write(payload)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._since_snapshot += len(x)
        if self._since_snapshot >= self._every:
            self.snapshot()
        return eps

    def snapshot(self) -> None:
        """Write the bridge state, bound to the store, with the log offset it contains."""
        if self._file is None:
            return
        self._file.flush()
        self._save(self._file.tell())

    def _save(self, offset: int) -> None:
        gen = int(self._records.get_kv("bridge_generation") or 0) + 1
        binding = {"store_id": self._store_id, "bridge_generation": gen, "log_offset": offset}
        save_bridge(self.bridge, self._snapshot, binding)
        self._records.set_kv("bridge_generation", str(gen))
        self._since_snapshot = 0

    def close(self) -> None:
        """Final snapshot, then empty the log (the order keeps every crash recoverable)."""
        if self._file is None or self._file.closed:
            return
        if self._since_snapshot == 0 and self._file.tell() == 0:  # nothing new: no rewrite
            self._file.close()  # (the generation changes only when the bridge did)
            return
        self.snapshot()
        self._file.truncate(0)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._save(0)
