"""``luma check PATH`` and ``luma repair PATH``: verify a store, rebuild its derived files.

Both are thin wrappers over :func:`luma_rag.store.check.check_store` and
:func:`luma_rag.store.check.repair_store`. ``check`` never changes anything (it is safe beside a
running writer); ``repair`` takes the writer lock, rewrites the snapshots from the durable record
and moves unaccounted vector rows aside (it never deletes). Exit status: 0 when the store is
sound, 1 when the report lists damage or files to rebuild.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from luma_rag.cli._common import print_json

__all__ = ["add_parsers", "cmd_check", "cmd_repair"]


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``luma check`` and ``luma repair`` to the subcommands."""
    p = sub.add_parser(
        "check",
        parents=[common],
        help="verify a store (checksums, record <-> vectors <-> snapshots); changes nothing",
    )
    p.add_argument("path", type=Path, help="the store directory")
    p.set_defaults(run=cmd_check)
    p = sub.add_parser(
        "repair",
        parents=[common],
        help="rebuild a store's derived files (snapshots) from its durable record",
    )
    p.add_argument("path", type=Path, help="the store directory")
    p.set_defaults(run=cmd_repair)


def cmd_check(args: argparse.Namespace) -> int:
    """``luma check PATH``."""
    from luma_rag.store.check import check_store

    return _print(check_store(args.path), args.json, "check")


def cmd_repair(args: argparse.Namespace) -> int:
    """``luma repair PATH``."""
    from luma_rag.store.check import repair_store

    return _print(repair_store(args.path), args.json, "repair")


def _print(report: Any, as_json: bool, verb: str) -> int:
    if as_json:
        print_json({"ok": report.ok, **report.__dict__})
        return 0 if report.ok else 1
    print(f"{verb} {report.path}: {'ok' if report.ok else 'PROBLEMS FOUND'}")
    for title, lines in (
        ("damage (restore from a backup)", report.errors),
        ("to rebuild (`luma repair PATH`)", report.rebuild),
        ("info", report.info),
    ):
        for line in lines:
            print(f"  {title}: {line}")
    return 0 if report.ok else 1
