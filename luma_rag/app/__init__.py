"""The LUMA-RAG chat app (Gradio): :func:`luma_rag.app.chat.build_app`, and the demo
``python -m luma_rag.app.demo`` (``luma demo``, ``make demo``). Needs ``luma-rag[app]``.

The app points inward like the CLI: the core never imports it.

Nothing heavy is imported here: Gradio loads inside :func:`~luma_rag.app.chat.build_app`.
"""

from __future__ import annotations

from luma_rag.app.chat import build_app, launch_app
from luma_rag.app.service import AppService, ChatReply, IngestReport, MemoryView

__all__ = ["AppService", "ChatReply", "IngestReport", "MemoryView", "build_app", "launch_app"]
