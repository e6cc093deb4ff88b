"""``python -m apps.server``: run the HTTP service (see :func:`apps.server.main.main`)."""

from __future__ import annotations

import sys

from apps.server.main import main

if __name__ == "__main__":
    sys.exit(main())
