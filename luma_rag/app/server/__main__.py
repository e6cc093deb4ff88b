"""``python -m luma_rag.app.server``: run the HTTP service (:func:`.main.main`)."""

from __future__ import annotations

import sys

from luma_rag.app.server.main import main

if __name__ == "__main__":
    sys.exit(main())
