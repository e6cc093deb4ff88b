"""Execute the notebooks top to bottom and store them WITH their outputs (so they render on
GitHub): ``python scripts/run_notebooks.py [notebooks/NAME.ipynb ...]``. The kernel runs in a
temporary directory; the tests execute them again from scratch."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]


def main(paths: list[str]) -> int:
    """Run and save each notebook; returns 0."""
    for path in [Path(p) for p in paths] or sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory(prefix="luma-nb-") as tmp:
            nbclient.NotebookClient(
                nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}}
            ).execute()
        nbformat.write(nb, path)
        print("executed and saved", path.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
