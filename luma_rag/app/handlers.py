"""The chat app's event handlers: plain functions of plain values (paths, strings).

The Gradio callbacks in :mod:`luma_rag.app.chat` call these, and so do the tests, without a browser.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from luma_rag.app.render import badge_html, citations_html, memory_html, telemetry_html
from luma_rag.app.service import AppService, ChatReply
from luma_rag.errors import LumaError

__all__ = ["Message", "ask_handler", "ingest_handler", "memory_handler", "status_html"]

Message = dict[str, Any]


def ask_handler(
    service: AppService,
    question: str | None,
    image: str | None,
    audio: str | None,
    history: list[Message] | None,
) -> tuple[list[Message], str, str, list[tuple[str, str]], str, str | None, ChatReply]:
    """Answer one query and extend the chat history.

    Returns:
        ``(history, badge_html, telemetry_html, gallery, citations_html, audio_path, reply)``:
        the history with the question and the answer appended, the decision badge, the
        telemetry panel, ``(path, caption)`` of cited images / videos, the citation list, the
        best cited audio clip (or None) and the :class:`~luma_rag.app.service.ChatReply` itself.

    Raises:
        LumaError: a bad query (nothing asked, a bad file) or a store error.
    """
    reply = service.ask(question, image=image, audio=audio)
    messages = list(history or [])
    if reply.query_kind == "text":
        messages.append({"role": "user", "content": reply.question})
    else:
        media = image if reply.query_kind == "image" else audio
        if question and question.strip():
            messages.append({"role": "user", "content": question.strip()})
        messages.append({"role": "user", "content": {"path": media}})
    label = reply.decision.replace("_", " ").upper()  # e.g. NOT IN MEMORY
    messages.append({"role": "assistant", "content": f"**{label}** · {reply.answer.text}"})
    reason = reply.answer.decision.reason
    return (
        messages,
        badge_html(reply.decision, reason),
        telemetry_html(reply.telemetry),
        reply.visual,
        citations_html(reply),
        reply.audio[0][0] if reply.audio else None,
        reply,
    )


def ingest_handler(
    service: AppService,
    files: Sequence[str] | None,
    caption: str | None,
    text: str | None,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[str, bool]:
    """Ingest uploads; returns ``(status_html, ok)``. A bad upload stores nothing."""
    try:
        report = service.ingest(list(files or []), caption=caption, text=text, progress=progress)
    except LumaError as e:
        return status_html(f"Not stored: {e}", ok=False), False
    return status_html(report.message, ok=True), True


def memory_handler(
    service: AppService,
) -> tuple[str, list[dict[str, Any]], list[list[str]]]:
    """The Memory tab: ``(summary_html, epsilon_rows, gap_rows)``.

    ``epsilon_rows`` has one dict per bridge refresh (``refresh``, ``epsilon``, ``pairs``);
    ``gap_rows`` is ``[time, query, clarifying question]`` per recent knowledge gap.
    """
    view = service.memory()
    eps = [
        {"refresh": int(h["version"]), "epsilon": float(h["epsilon"]), "pairs": h["pairs_seen"]}
        for h in view.epsilon_history
    ]
    gaps = [[g["time"], g["query"], g["clarification"]] for g in view.gaps]
    return memory_html(view), eps, gaps


def status_html(message: str, *, ok: bool) -> str:
    color = "#15803d" if ok else "#b91c1c"
    cls = "luma-ok" if ok else "luma-error"
    return (
        f'<div id="luma-ingest-result" class="{cls}" style="color:{color};font-weight:500">'
        f"{html.escape(message)}</div>"
    )
