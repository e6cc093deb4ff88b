"""HTML fragments of the chat app: the decision badge, the telemetry panel, the memory summary.

Pure functions of plain values (no Gradio), styled inline so they render the same in any
theme. Every value that comes from the store or the user is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any, Final

from luma_rag.app.service import ChatReply, MemoryView

__all__ = [
    "BADGE_COLORS",
    "TELEMETRY_HELP",
    "TELEMETRY_LABELS",
    "badge_html",
    "citations_html",
    "empty_badge_html",
    "memory_html",
    "telemetry_html",
]

#: Background colour of the badge per decision.
BADGE_COLORS: Final = {
    "answer": "#15803d",
    "widen": "#b45309",
    "clarify": "#b91c1c",
    "not_in_memory": "#6d28d9",  # nothing in memory answers this: add material or rephrase
}

#: Telemetry panel rows: key in :attr:`ChatReply.telemetry` -> label.
TELEMETRY_LABELS: Final = {
    "margin_top2": "γ (margin_top2)",
    "delta_k": "δ_k",
    "epsilon": "ε (query drift)",
    "epsilon_items": "ε_i (item drift, max)",
    "zeta_mean": "ζ mean",
    "zeta_max": "ζ max",
    "rho": "ρ (encoder radius)",
    "rho_source": "ρ source",
    "safe1": "Safe@1",
    "safe_k": "Safe@k (smallest certified k′)",
    "complete": "complete",
    "n_candidates": "candidates",
    "k_used": "k used",
    "latency_ms": "latency (ms)",
    "answer_ms": "answerer (ms)",
}

#: One line per telemetry symbol, shown under the panel.
TELEMETRY_HELP: Final = {
    "γ": "how far the top hit's cosine leads the second's (margin_top2)",
    "δ_k": "the gap between the k-th and (k+1)-th cosine: how cleanly the top k stand apart",
    "ε": "drift of the CLAP→CLIP bridge since the query / item crossed it (audio only)",
    "ζ": "quantisation error of warm-tier (IVF-PQ) candidates; 0 for the hot tier",
    "ρ": "encoder radius: how far a paraphrase or re-encoding of the same thing can move",
    "ρ source": "calibrated (measured on this store's encoder), user (set by hand) or unset "
    "(nobody measured it: the certificate then only covers float rounding)",
    "Safe@k": "no perturbation within ρ, ε and ζ can change the top-k set",
}

_BADGE_STYLE: Final = (
    "display:inline-block;padding:4px 12px;border-radius:6px;color:#fff;font-weight:700;"
    "letter-spacing:0.06em;font-size:0.95rem;background:{color}"
)


_CELL: Final = "text-align:left;padding:3px 10px;"


def badge_html(decision: str, reason: str = "") -> str:
    """The decision badge: ``<span id="luma-badge" class="luma-badge ...">ANSWER</span>``.

    Args:
        decision: ``"answer"``, ``"widen"``, ``"clarify"`` or ``"not_in_memory"``.
        reason: The gate's one-sentence reason, shown beside the badge.
    """
    color = BADGE_COLORS.get(decision, "#475569")
    label = html.escape(decision.replace("_", " ").upper())
    badge = (
        f'<span id="luma-badge" class="luma-badge luma-badge-{html.escape(decision)}" '
        f'data-decision="{html.escape(decision)}" style="{_BADGE_STYLE.format(color=color)}">'
        f"{label}</span>"
    )
    note = (
        f'<span class="luma-reason" style="margin-left:10px;opacity:0.85">{html.escape(reason)}'
        "</span>"
        if reason
        else ""
    )
    return f'<div class="luma-decision">{badge}{note}</div>'


def empty_badge_html() -> str:
    """What the badge area shows before the first question."""
    return (
        '<div class="luma-decision"><span class="luma-reason" style="opacity:0.7">'
        "Ask a question: the gate answers, widens to a certified set, or asks to clarify."
        "</span></div>"
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def telemetry_html(telemetry: Mapping[str, Any]) -> str:
    """The telemetry panel: one row per number, in :data:`TELEMETRY_LABELS` order."""
    rows = []
    for key, label in TELEMETRY_LABELS.items():
        if key not in telemetry:
            continue
        value = telemetry[key]
        if key == "safe_k":
            value = "none" if value is None else f"k′ = {value}"
        rows.append(
            f'<tr data-key="{key}"><th style="{_CELL}font-weight:500">{html.escape(label)}</th>'
            f'<td style="{_CELL}font-family:monospace">{html.escape(_fmt(value))}</td></tr>'
        )
    legend = "".join(
        f"<li><b>{html.escape(symbol)}</b>: {html.escape(text)}</li>"
        for symbol, text in TELEMETRY_HELP.items()
    )
    return (
        f'<table id="luma-telemetry" class="luma-telemetry">{"".join(rows)}</table>'
        f'<ul id="luma-telemetry-help" style="font-size:0.8rem;margin:6px 0 0 0;'
        f'padding-left:1.1em">{legend}</ul>'
    )


def citations_html(reply: ChatReply) -> str:
    """The cited evidence as a numbered list (every modality, with scores)."""
    items = []
    for c in reply.answer.citations:
        what = html.escape(c.text or (c.source or c.id))
        items.append(
            f'<li data-id="{html.escape(c.id)}">[{c.rank}] <b>{html.escape(c.modality)}</b> '
            f"{what} <span style='opacity:0.7'>(score {c.score:.3f})</span></li>"
        )
    if not items:
        return '<p class="luma-citations">No evidence cited.</p>'
    style = "list-style:none;padding-left:0"
    return f'<ol class="luma-citations" style="{style}">{"".join(items)}</ol>'


def memory_html(view: MemoryView) -> str:
    """Tier counts against the hot budget, RAM per tier and the bridge state."""
    s = view.stats
    hot, warm, budget = int(s.get("hot", 0)), int(s.get("warm", 0)), int(s.get("hot_budget", 1))
    share = min(100.0, 100.0 * hot / max(budget, 1))
    bar = (
        '<div style="background:#e2e8f0;border-radius:4px;height:10px;width:100%;max-width:420px">'
        f'<div style="background:#2563eb;border-radius:4px;height:10px;width:{share:.1f}%"></div>'
        "</div>"
    )
    eps = s.get("bridge_epsilon")
    if not view.has_bridge:
        bridge = "no bridge (the store has no audio encoder)"
    elif not view.epsilon_history:
        bridge = "not fitted yet: the ε history starts at its first refresh"
    else:
        bridge = f"version {s.get('bridge_version')}, last ε = {_fmt(eps)}"
    rows = [
        ("hot (HNSW)", f"{hot} / {budget} budget", f"{int(s.get('hot_bytes', 0)) / 2**20:.2f} MB"),
        (
            "warm (IVF-PQ)" if s.get("warm_trained") else "warm (exact until trained)",
            f"{warm} (no budget: spills land here)",
            f"{int(s.get('warm_bytes', 0)) / 2**20:.2f} MB",
        ),
        ("total", str(int(s.get("total", hot + warm))), ""),
        ("bridge", html.escape(bridge), ""),
    ]
    body = "".join(
        f'<tr><th style="{_CELL}">{a}</th><td style="{_CELL}">{b}</td>'
        f'<td style="{_CELL}opacity:0.8">{c}</td></tr>'
        for a, b, c in rows
    )
    return (
        f'<div id="luma-memory">{bar}<p style="margin:4px 0">hot tier {share:.0f}% of its budget'
        f'</p><table class="luma-memory">{body}</table></div>'
    )
