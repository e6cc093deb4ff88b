"""``python -m luma_rag``: the ``luma`` command line (see :mod:`luma_rag.cli`)."""

from __future__ import annotations

from luma_rag.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
