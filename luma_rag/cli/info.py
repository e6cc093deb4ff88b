"""``luma stats``, ``luma gaps``, ``luma delete`` and ``luma generate``: inspect and edit a
store, make a corpus."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from luma_rag.cli._common import (
    clip,
    human,
    positive_int,
    print_json,
    print_table,
    recorded_encoders,
    require_store,
    store_path,
)
from luma_rag.errors import NotFoundError

__all__ = ["add_parsers", "cmd_delete", "cmd_gaps", "cmd_generate", "cmd_stats"]


def add_parsers(
    sub: Any,
    common: argparse.ArgumentParser,
    store: argparse.ArgumentParser,
) -> None:
    """Add ``luma stats``, ``luma gaps`` and ``luma generate`` to the subcommands."""
    p = sub.add_parser("stats", parents=[common, store], help="items, tiers, memory, bridge")
    p.set_defaults(run=cmd_stats)

    p = sub.add_parser("gaps", parents=[common, store], help="recent knowledge gaps")
    p.add_argument("--limit", type=positive_int, default=50, help="how many (default 50)")
    p.set_defaults(run=cmd_gaps)

    p = sub.add_parser("delete", parents=[common, store], help="delete items by id")
    p.add_argument("ids", nargs="+", metavar="ID", help="item ids (as `luma query` shows them)")
    p.add_argument(
        "--missing-ok", action="store_true", help="skip ids the store does not hold (no error)"
    )
    p.set_defaults(run=cmd_delete)

    p = sub.add_parser("generate", parents=[common], help="generate a LUMA-Shapes corpus")
    p.add_argument("--out", type=Path, required=True, help="corpus directory")
    p.add_argument("--n", type=positive_int, required=True, help="number of items")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    p.add_argument("--audio", action="store_true", help="speak captions (needs espeak-ng)")
    p.add_argument("--video", action="store_true", help="write clips of moving shapes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing corpus")
    p.set_defaults(run=cmd_generate)


def cmd_stats(args: argparse.Namespace) -> int:
    """``luma stats``: items, tiers, memory, bridge, recorded model."""
    from luma_rag.engine import Luma

    path = store_path(args)
    require_store(path)
    with Luma.open(path) as luma:
        stats = {"store": str(path), "dim": luma.config.dim, **luma.stats()}
    stats["model"] = recorded_encoders(path).get("model")
    if args.json:
        print_json(stats)
    else:
        print_table(("field", "value"), [(key, human(key, value)) for key, value in stats.items()])
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    """``luma gaps``: the queries the memory could not settle, newest first."""
    from luma_rag.engine import Luma

    path = store_path(args)
    require_store(path)
    with Luma.open(path) as luma:
        gaps = luma.knowledge_gaps(args.limit)
    if args.json:
        print_json(gaps)
    elif not gaps:
        print(f"no knowledge gaps recorded in {path}")
    else:
        rows = []
        for g in gaps:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(g["time"]))
            asked = g.get("clarification") or g.get("reason") or "-"
            rows.append((str(g["gap"]), when, clip(g["query"], 40), clip(str(asked), 70)))
        print_table(("gap", "time", "query", "clarifying question"), rows)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """``luma delete ID...``: all of them or none (unknown ids are an error unless skipped)."""
    from luma_rag.engine import Luma

    path = store_path(args)
    require_store(path)
    with Luma.open(path) as luma:
        wanted = list(dict.fromkeys(args.ids))
        missing = [i for i in wanted if i not in luma]
        if missing and not args.missing_ok:
            raise NotFoundError(
                f"{len(missing)} id(s) not in {path}: {missing[:5]!r}; nothing was deleted "
                "(pass --missing-ok to delete the others)"
            )
        present = [i for i in wanted if i not in missing]
        if present:
            luma.delete(present)
        left = len(luma)
    if args.json:
        print_json({"store": str(path), "deleted": present, "missing": missing, "items": left})
    else:
        skipped = f"; {len(missing)} not found" if missing else ""
        print(f"deleted {len(present)} item(s) from {path}{skipped}; {left} left")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """``luma generate``: a LUMA-Shapes corpus (:func:`luma_rag.datasets.generate`)."""
    from luma_rag.datasets import generate

    started = time.perf_counter()
    manifest = generate(
        args.out,
        n=args.n,
        seed=args.seed,
        audio=args.audio,
        video=args.video,
        size=args.size,
        overwrite=args.overwrite,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    seconds = time.perf_counter() - started
    if args.json:
        print_json({"manifest": str(manifest), "n": args.n, "seconds": round(seconds, 3)})
    else:
        print(f"generated {args.n} LUMA-Shapes item(s) in {seconds:.1f} s: {manifest}")
    return 0
