"""``check_store`` verifies a store directory; ``repair_store`` rebuilds its derived files.

The durable record is ``config.json`` + ``records.sqlite`` + ``vectors.f32``: damage there can
only be undone from a backup, and :func:`check_store` says which file and what to restore.
Derived files (``hot.snapshot``, ``warm.snapshot``) are verified against the record (checksums,
store id, generation) and :func:`repair_store` rewrites them, exactly as the next writer open
would. Nothing here deletes data; unaccounted vector rows are moved aside, not dropped.
These are the library side of ``luma check PATH`` / ``luma repair PATH``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from luma_rag.errors import StoreCorruptedError
from luma_rag.store.bridge_file import open_bound_bridge
from luma_rag.store.lock import holder_pid
from luma_rag.store.records import RecordStore
from luma_rag.store.recovery import read_config
from luma_rag.store.snapshot import read_snapshot
from luma_rag.store.vectors import VectorFile

__all__ = ["StoreReport", "check_store", "repair_store"]

logger = logging.getLogger(__name__)


@dataclass
class StoreReport:
    """What :func:`check_store` / :func:`repair_store` found.

    Attributes:
        path: the store directory.
        errors: damage to the durable record; each names the file and what to restore.
        rebuild: derived files that are missing, stale or damaged (``repair_store`` fixes them).
        info: facts worth knowing (items, generation, aside files, an active writer's pid).
    """

    path: str
    errors: list[str] = field(default_factory=list)
    rebuild: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No damage and nothing to rebuild."""
        return not self.errors and not self.rebuild

    def to_json(self) -> str:
        """The report as JSON (for the CLI)."""
        return json.dumps({"ok": self.ok, **self.__dict__}, indent=2)


def check_store(path: str | os.PathLike[str]) -> StoreReport:
    """Verify the store at ``path`` without changing anything (safe beside a writer).

    Checks the config, SQLite integrity and decoding of every record, the vector file's header,
    length and per-row checksums, the snapshots' checksums and binding, and the bridge file.
    """
    root = Path(path)
    report = StoreReport(str(root))
    try:
        config, store_id = read_config(root)
    except StoreCorruptedError as e:
        report.errors.append(str(e))
        return report
    if config is None:
        report.errors.append(f"{root} holds no store (no config.json)")
        return report
    pid = holder_pid(root)
    if pid is not None:
        report.info.append(f"open for writing by process {pid} (or it did not close cleanly)")
    records: RecordStore | None = None
    try:
        records = RecordStore(root / "records.sqlite", read_only=True)
        _check_record(root, records, config.dim, store_id, report)
        if config.bridge is not None and store_id is not None:
            open_bound_bridge(root / "bridge.safetensors", config.bridge, store_id, records, True)
    except StoreCorruptedError as e:
        report.errors.append(str(e))
    finally:
        if records is not None:
            records.close()
    asides = sorted(p.name for p in root.glob("vectors.aside-*.f32"))
    if asides:
        report.info.append(f"vector rows kept aside (recoverable): {asides}")
    return report


def _check_record(
    root: Path, records: RecordStore, dim: int, store_id: str | None, report: StoreReport
) -> None:
    with records.consistent_read():
        table = records.load()
        details = records.details(table.keys.tolist())  # decodes every id and metadata
        next_key = int(records.get_kv("next_key") or 0)
        generation = int(records.get_kv("generation") or 0)
        recorded_id = records.get_kv("store_id")
    if store_id is not None and recorded_id is not None and store_id != recorded_id:
        report.errors.append(
            f"{root}: config.json belongs to store {store_id} but records.sqlite to "
            f"{recorded_id}; put the matching file back"
        )
    report.info.append(f"{len(details)} items, generation {generation}, {next_key} vector rows")
    if table.keys.size and int(table.keys.max()) >= next_key:
        report.errors.append(
            f"{root}/records.sqlite: item keys exceed the recorded high-water mark "
            f"({int(table.keys.max())} >= {next_key}); restore records.sqlite from a backup"
        )
    vectors = VectorFile(root / "vectors.f32", dim, read_only=True)
    try:
        if vectors.rows < next_key:
            report.errors.append(
                f"{vectors.path}: holds {vectors.rows} rows but the record needs {next_key}; "
                "restore vectors.f32 from a backup"
            )
            return
        if vectors.rows > next_key:
            report.info.append(
                f"{vectors.path}: {vectors.rows - next_key} rows the record does not account "
                "for (an interrupted write, or an older records.sqlite); the next open moves "
                "them aside"
            )
        bad = vectors.verify(table.keys, table.crcs)
        if bad.size:
            report.errors.append(
                f"{vectors.path}: {bad.size} rows fail their checksum (keys "
                f"{bad[:5].tolist()}); restore vectors.f32 from a backup"
            )
    finally:
        vectors.close()
    expect = {"store_id": recorded_id or store_id, "generation": generation}
    for name in ("hot", "warm"):
        snap = root / f"{name}.snapshot"
        try:
            read_snapshot(snap, expect)
        except FileNotFoundError:
            if table.keys.size:
                report.rebuild.append(f"{snap} is missing")
        except StoreCorruptedError as e:
            report.rebuild.append(str(e))


def repair_store(path: str | os.PathLike[str]) -> StoreReport:
    """Rebuild the derived files of the store at ``path`` (takes the writer lock).

    Opens the store for writing (which reconciles the record, moves unaccounted vector rows
    aside and rebuilds every tier whose snapshot is missing, stale or damaged) and closes it,
    which writes fresh snapshots. Damage to the durable record is reported, not "repaired".

    Returns:
        The :func:`check_store` report after the repair (``errors`` if it could not open).

    Raises:
        StoreLockedError: another process has the store open for writing.
    """
    from luma_rag.store.local import LocalStore

    root = Path(path)
    before = check_store(root)
    if before.errors:
        return before
    config, store_id = read_config(root)
    if config is None:  # check_store reported it; keeps mypy informed
        return before
    try:
        LocalStore(root, config, store_id=store_id).close()
    except StoreCorruptedError as e:
        before.errors.append(str(e))
        return before
    after = check_store(root)
    after.info.append(f"rebuilt: {before.rebuild}" if before.rebuild else "nothing to rebuild")
    return after
