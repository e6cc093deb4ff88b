"""``python -m bench.readme DIR [--readme README.md]``: the README's benchmark section from a run.

Reads every ``bench-<distribution>-<size>.json`` under ``DIR`` (what ``bench.run`` writes),
renders the tables and PASS / MISS lists with :func:`bench.report.markdown_report`, and replaces
the text between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` in the README (or prints it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.methods import DISTRIBUTIONS
from bench.report import markdown_report

__all__ = ["load_results", "main", "replace_section"]

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def load_results(folder: Path) -> list[dict[str, Any]]:
    """Every run file in ``folder``, by size, then distribution in the order bench.run uses."""
    out = [json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("bench-*-*.json")]
    order = {d: i for i, d in enumerate(DISTRIBUTIONS)}
    return sorted(out, key=lambda r: (r["size"], order.get(r.get("distribution", ""), 99)))


def replace_section(text: str, body: str) -> str:
    """``text`` with the part between the bench markers replaced by ``body``."""
    if START not in text or END not in text:
        raise SystemExit(f"the README has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{body}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Render the section; write it into ``--readme`` when given."""
    p = argparse.ArgumentParser(prog="python -m bench.readme", description=__doc__)
    p.add_argument("folder", type=Path, help="where bench.run wrote its JSON files")
    p.add_argument("--readme", type=Path, default=None, help="README to update in place")
    a = p.parse_args(argv)
    results = load_results(a.folder)
    if not results:
        print(f"no bench-*-*.json in {a.folder}", file=sys.stderr)
        return 1
    body = markdown_report(results)
    if a.readme is None:
        print(body)
        return 0
    a.readme.write_text(replace_section(a.readme.read_text(encoding="utf-8"), body), "utf-8")
    print(f"updated {a.readme} from {len(results)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
