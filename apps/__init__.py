"""The LUMA-RAG chat app (Gradio): :func:`apps.chat.build_app` and ``python -m apps.demo``.

Nothing heavy is imported here: Gradio loads inside :func:`~apps.chat.build_app`.
"""

from __future__ import annotations

from apps.chat import build_app, launch_app
from apps.service import AppService, ChatReply, IngestReport, MemoryView

__all__ = ["AppService", "ChatReply", "IngestReport", "MemoryView", "build_app", "launch_app"]
