"""``luma calibrate``: measure the radii ρ (and warm-start the bridge) on the store's own items.

Opening a store with production models runs no calibration (queries report
``rho_source: unset``); this command runs :meth:`luma_rag.Luma.calibrate` on a sample of what
was ingested, with progress on stderr, and persists the radii for the encoders in use.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from luma_rag.cli._common import (
    DEFAULT_MODEL,
    pick_model,
    positive_int,
    print_json,
    recorded_encoders,
    require_store,
    store_path,
)

__all__ = ["add_parser", "cmd_calibrate"]


def add_parser(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``luma calibrate`` to the subcommands."""
    p = sub.add_parser(
        "calibrate", parents=parents, help="measure rho on the store's own items (with progress)"
    )
    p.add_argument(
        "--sample", type=positive_int, default=128, help="items drawn per stage (default 128)"
    )
    p.set_defaults(run=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``luma calibrate``: prints the radii measured (and stores them)."""
    from luma_rag.engine import Luma

    path = store_path(args)
    require_store(path)
    recorded = recorded_encoders(path)
    model = pick_model(args.model, recorded.get("model"), DEFAULT_MODEL, path)
    audio_model = args.audio_model or recorded.get("audio_model")

    def report(stage: str, done: int, total: int) -> None:
        if not args.quiet:
            print(f"calibrate: {stage} {done}/{total}", file=sys.stderr, flush=True)

    with Luma.open(path, encoder=model, audio_encoder=audio_model) as luma:
        measured = luma.calibrate(sample=max(2, args.sample), progress=report)
        rho, sources = dict(luma.rho), dict(luma.rho_source)
    if args.json:
        print_json({"measured": measured, "rho": rho, "rho_source": sources})
    else:
        for modality in sorted(rho):
            print(f"{modality:<6} rho {rho[modality]:.4f} ({sources.get(modality, 'unset')})")
        if not measured:
            print("nothing measured: ingest items first (texts, captioned images, audio)")
    return 0
