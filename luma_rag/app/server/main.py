"""``luma serve`` / ``python -m luma_rag.app.server``: open a store and serve it over HTTP.

Example:
    $ python -m luma_rag.app.server --store luma-store --port 8000
    $ curl -s 127.0.0.1:8000/query -H 'content-type: application/json' -d '{"text": "a red circle"}'
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from luma_rag.app.server.app import ServerConfig
from luma_rag.errors import LumaError, MissingDependencyError

__all__ = ["main"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "luma-tiny"
#: File in the store where ``luma ingest`` records the encoders it used.
_ENCODERS_FILE: Final = "luma-cli.json"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="luma serve",
        description="Serve a LUMA store over HTTP (OpenAPI at /docs, Prometheus at /metrics).",
    )
    p.add_argument("--store", type=Path, default=Path("luma-store"), help="store directory")
    p.add_argument("--model", default=None, help="CLIP-space encoder (default: the store's)")
    p.add_argument("--audio-model", default=None, help="CLAP encoder for audio (optional)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument(
        "--max-body-mb", type=float, default=20.0, help="largest request body in MB (default 20)"
    )
    p.add_argument(
        "--answerer",
        choices=("evidence", "llava"),
        default="evidence",
        help="evidence: cited summary, no model (default); llava: the tiny offline LLaVA",
    )
    return p


def _recorded(store: Path) -> dict[str, Any]:
    try:
        data = json.loads((store / _ENCODERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the service until interrupted.

    Args:
        argv: Command-line arguments (default ``sys.argv[1:]``); ``--help`` lists them.

    Returns:
        The exit status: 0 after a clean stop, 1 when the store or a model cannot be opened,
        2 on a usage error.
    """
    args = _parser().parse_args(argv)
    try:
        import uvicorn

        from luma_rag.app.server.app import create_app
    except ImportError as e:
        err = MissingDependencyError.for_extra(getattr(e, "name", None) or "fastapi", "server")
        print(f"error: {err}", file=sys.stderr)
        return 1
    from luma_rag.engine import Luma

    try:
        cfg = ServerConfig(
            host=args.host, port=args.port, max_body_bytes=int(args.max_body_mb * 1024 * 1024)
        )
        recorded = _recorded(args.store)
        luma = Luma.open(
            args.store,
            encoder=args.model or recorded.get("model") or DEFAULT_MODEL,
            audio_encoder=args.audio_model or recorded.get("audio_model"),
        )
    except LumaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        answerer = None
        if args.answerer == "llava":
            from luma_rag.answer import OFFLINE_LLAVA_MODEL, LlavaAnswerer

            answerer = LlavaAnswerer(OFFLINE_LLAVA_MODEL)
        app = create_app(luma, answerer, cfg)
        if cfg.host not in ("127.0.0.1", "localhost", "::1"):
            logger.warning("serving on %s: reachable from other machines", cfg.host)
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info")
    finally:
        luma.close()
    return 0
