"""Targets (PASS / MISS / N/A computed from measured figures) and the printed table."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "Target",
    "evaluate_targets",
    "format_luma",
    "format_summary",
    "format_table",
    "format_targets",
    "markdown_report",
]

RECALL_MIN = 0.95
SPEEDUP_VS_SIMPLE = 100.0
SPEEDUP_VS_LANGCHAIN = 10.0
HNSW_P50_RATIO_MAX = 3.0  # LUMA p50 ≤ 3 × bare HNSW (issue #14)
CHROMA_P50_RATIO_MAX = 0.5  # LUMA p50 ≤ 0.5 × Chroma
CHROMA_INGEST_RATIO_MIN = 1.0  # LUMA ingest ≥ Chroma's
HNSW_INGEST_RATIO_MIN = 0.5  # LUMA ingest ≥ 0.5 × bare HNSW add rate (same efConstruction)
HOT_BYTES_PER_ITEM_MAX = 2400.0  # 2.4 KB at d = 512 (scaled by d / 512 for other widths)
WARM_OVERHEAD_MAX = 1.2  # × (code bytes + 8-byte id), stated for 1M items
WARM_TARGET_SIZE = 1_000_000
SPILL_P99_OVER_P50_MAX = 5.0
STALL_MAX_MS = 100.0


@dataclass(frozen=True)
class Target:
    """One goal: the measured value, the bound it is held to and the verdict."""

    name: str
    value: float | None
    bound: float | None
    op: str  # ">=" or "<="
    status: str  # "PASS", "MISS" or "N/A"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _judge(name: str, value: float | None, bound: float | None, op: str, why_na: str) -> Target:
    if value is None or bound is None:
        return Target(name, value, bound, op, "N/A", why_na)
    ok = value >= bound if op == ">=" else value <= bound
    return Target(name, value, bound, op, "PASS" if ok else "MISS")


def _method(res: dict[str, Any], name: str) -> dict[str, Any] | None:
    m = res["methods"].get(name)
    return m if m is not None and m.get("status") == "ok" else None


def _p50(m: dict[str, Any] | None) -> float | None:
    return _num(m["latency"]["p50_ms"]) if m is not None else None


def _rate(m: dict[str, Any] | None) -> float | None:
    return _num(m["build"]["items_per_s"]) if m is not None else None


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def evaluate_targets(res: dict[str, Any]) -> list[Target]:
    """Judge the size's measured figures against every target.

    Args:
        res: the per-size results dict built by ``bench.run`` (``methods``, ``luma``, ``k``).

    Returns:
        One :class:`Target` per goal; ``N/A`` (with the reason) where a figure is missing.
    """
    luma = _method(res, "luma")
    info: dict[str, Any] = res.get("luma") or {}
    luma_row = res["methods"].get("luma")
    if luma_row is None:
        no_luma = "LUMA not run (not in --methods)"
    else:
        no_luma = f"LUMA {luma_row.get('status')}: {luma_row.get('reason', '')}"
    k = res["k"]
    p50 = _p50(luma)

    def speed(base: str) -> tuple[float | None, str]:
        b = _method(res, base)
        why = no_luma if luma is None else f"{base} not measured"
        return _ratio(_p50(b), p50), why

    targets = [
        _judge(
            f"recall@{k} (merged tiers)",
            _num(luma["recall_at_k"]) if luma else None,
            RECALL_MIN,
            ">=",
            no_luma,
        ),
    ]
    vs_simple, why = speed("llamaindex-simple")
    targets.append(
        _judge("p50 speedup vs LlamaIndex simple", vs_simple, SPEEDUP_VS_SIMPLE, ">=", why)
    )
    vs_lc, why = speed("langchain-faiss")
    targets.append(_judge("p50 speedup vs LangChain FAISS", vs_lc, SPEEDUP_VS_LANGCHAIN, ">=", why))
    for base, bound in (("faiss-hnsw", HNSW_P50_RATIO_MAX), ("chroma", CHROMA_P50_RATIO_MAX)):
        targets.append(
            _judge(
                f"p50 LUMA / {base}",
                _ratio(p50, _p50(_method(res, base))),
                bound,
                "<=",
                no_luma if luma is None else f"{base} not measured",
            )
        )
    rate = _rate(luma)
    for base, bound in (("chroma", CHROMA_INGEST_RATIO_MIN), ("faiss-hnsw", HNSW_INGEST_RATIO_MIN)):
        targets.append(
            _judge(
                f"ingest LUMA / {base}",
                _ratio(rate, _rate(_method(res, base))),
                bound,
                ">=",
                no_luma if luma is None else f"{base} not measured",
            )
        )
    hot = _num(info.get("hot_bytes_per_item"))
    targets.append(
        _judge(
            "hot RAM bytes/item",
            hot,
            HOT_BYTES_PER_ITEM_MAX * res["dim"] / 512,
            "<=",
            no_luma if luma is None else "stats() lacks hot_bytes (or hot tier empty)",
        )
    )
    warm = _num(info.get("warm_bytes_per_item"))
    code = _num(info.get("warm_code_bytes"))
    warm_target = _judge(
        "warm RAM bytes/item",
        warm,
        WARM_OVERHEAD_MAX * (code + 8) if code is not None else None,
        "<=",
        no_luma
        if luma is None
        else "stats() lacks warm_bytes or warm_code_bytes (or warm tier empty)",
    )
    if res["size"] < WARM_TARGET_SIZE and warm_target.status != "N/A":
        warm_target = Target(
            warm_target.name,
            warm_target.value,
            warm_target.bound,
            warm_target.op,
            "N/A",
            f"stated for {WARM_TARGET_SIZE:,} items (would be {warm_target.status} here)",
        )
    targets.append(warm_target)
    spill = info.get("spill") or {}
    spill_p99 = _num((spill.get("latency") or {}).get("p99_ms"))
    why = no_luma if luma is None else str(spill.get("reason", "spill window not measured"))
    targets.append(
        _judge(
            "p99 during spill / quiet p50",
            _ratio(spill_p99, p50),
            SPILL_P99_OVER_P50_MAX,
            "<=",
            why,
        )
    )
    stall = _num((spill.get("latency") or {}).get("max_ms"))
    targets.append(_judge("longest query during spill (ms)", stall, STALL_MAX_MS, "<=", why))
    return targets


def _fmt(x: Any, spec: str) -> str:
    v = _num(x)
    return "-" if v is None else format(v, spec)


def _row(cells: list[str], widths: list[int]) -> str:
    first, *rest = cells
    return "  ".join(
        [first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
    )


def format_table(res: dict[str, Any]) -> str:
    """The per-size table: latency percentiles, QPS, recall, RAM per item, ingest rate."""
    k = res["k"]
    header = [
        "method",
        "queries",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "CPU p50",
        "QPS",
        f"recall@{k}",
        "RAM B/item",
        "ingest/s",
    ]
    rows: list[list[str]] = []
    for name, m in res["methods"].items():
        if m.get("status") != "ok":
            rows.append([name, f"{m.get('status')}: {m.get('reason', '')}"])
            continue
        lat = m["latency"]
        ram = _fmt(m.get("bytes_per_item"), ",.0f")
        if name == "luma":
            info = res.get("luma") or {}
            hot = _fmt(info.get("hot_bytes_per_item"), ",.0f")
            warm = _fmt(info.get("warm_bytes_per_item"), ",.0f")
            ram = f"h{hot}/w{warm}"
        rows.append(
            [
                name,
                str(lat["n"]),
                _fmt(lat["p50_ms"], ".3f"),
                _fmt(lat["p95_ms"], ".3f"),
                _fmt(lat["p99_ms"], ".3f"),
                _fmt(m.get("cpu_p50_ms"), ".3f"),
                _fmt(lat["qps"], ",.1f"),
                _fmt(m["recall_at_k"], ".4f"),
                ram,
                _fmt(m["build"]["items_per_s"], ",.0f"),
            ]
        )
    floor = res["scan_floor"]
    floor_ms = _fmt(floor["ms"], ".3f")
    floor_qps = _fmt(1000 / floor["ms"], ",.1f")
    scan_ram = str(res["dim"] * 4)
    rows.append(["scan floor", "-", floor_ms, "-", "-", floor_qps, "1.0000", scan_ram, "-"])
    full = [r for r in [header, *rows] if len(r) == len(header)]
    widths = [max(len(r[i]) for r in full) for i in range(len(header))]
    lines = [_row(header, widths), "  ".join("-" * w for w in widths)]
    for r in rows:
        lines.append(
            _row(r, widths) if len(r) == len(header) else f"{r[0].ljust(widths[0])}  {r[1]}"
        )
    return "\n".join(lines)


def _fmt_target(x: float | None) -> str:
    """Four decimals below 10 (so 0.9495 is not shown as 0.950), one above."""
    if x is None:
        return "-"
    return f"{x:.4f}" if abs(x) < 10 else f"{x:,.1f}"


def format_targets(targets: list[Target]) -> str:
    """One line per target: verdict, value, bound."""
    width = max(len(t.name) for t in targets)
    lines = []
    for t in targets:
        value, bound = _fmt_target(t.value), _fmt_target(t.bound)
        line = f"  [{t.status:4}] {t.name.ljust(width)}  {value} {t.op} {bound}"
        lines.append(line + (f"  ({t.note})" if t.note else ""))
    return "\n".join(lines)


def format_luma(res: dict[str, Any]) -> str:
    """Engine details under the table: tiers, ingest split, telemetry, the spill window."""
    info: dict[str, Any] = res.get("luma") or {}
    if not info:
        return ""
    stats = info.get("stats", {})
    ingest = info.get("ingest", {})
    tele = info.get("telemetry", {})
    share = ", ".join(f"{t} {v:.0%}" for t, v in tele.get("hit_tier_share", {}).items())
    settle = _fmt(ingest.get("settle_seconds"), ".1f")
    lines = [
        f"  luma: hot_budget {info['hot_budget']:,}; hot {stats.get('hot', '-')}, "
        f"warm {stats.get('warm', '-')}, warm code bytes {info.get('warm_code_bytes', '-')}",
        f"  luma ingest: add_vectors {_fmt(ingest.get('add_seconds'), '.1f')}s "
        f"(batches of {ingest.get('batch')}) + wait_idle {settle}s"
        f" -> {_fmt(ingest.get('items_per_s_incl_settle'), ',.0f')} items/s including settle",
        f"  luma telemetry: safe1 {_fmt(tele.get('safe1_rate'), '.2f')}, "
        f"complete {_fmt(tele.get('complete_rate'), '.2f')}, hits by tier: {share or '-'}",
    ]
    spill = info.get("spill") or {}
    lat = spill.get("latency") or {}
    if lat:
        lines.append(
            f"  luma spill window: {lat['n']} queries while adding {spill['rows_added']} rows "
            f"(warm +{spill['warm_growth']}) in {_fmt(spill['add_seconds'], '.1f')}s "
            f"+ {_fmt(spill['settle_seconds'], '.1f')}s settle: p50 {_fmt(lat['p50_ms'], '.3f')} "
            f"p99 {_fmt(lat['p99_ms'], '.3f')} max {_fmt(lat['max_ms'], '.3f')} ms"
        )
    elif spill.get("reason"):
        lines.append(f"  luma spill window: {spill['reason']}")
    return "\n".join(lines)


def format_summary(results: list[dict[str, Any]]) -> str:
    """One line per (distribution, size): LUMA against its peers, and the verdict counts."""
    lines = ["summary (p50 ms / recall@k / ingest items/s; PASS-MISS-N/A of the targets):"]
    for res in results:
        parts = []
        for name in ("luma", "faiss-hnsw", "chroma"):
            m = _method(res, name)
            if m is not None:
                parts.append(
                    f"{name} {_fmt(_p50(m), '.2f')}/{_fmt(m['recall_at_k'], '.3f')}/"
                    f"{_fmt(_rate(m), ',.0f')}"
                )
        verdicts = [t["status"] for t in res.get("targets", [])]
        counts = "-".join(str(verdicts.count(v)) for v in ("PASS", "MISS", "N/A"))
        lines.append(
            f"  {res['distribution']:>7} {res['size']:>9,}: {'; '.join(parts)}  [{counts}]"
        )
    return "\n".join(lines)


def markdown_report(results: list[dict[str, Any]]) -> str:
    """Markdown tables and target lists of a run (what the README's benchmark section shows)."""
    out: list[str] = []
    for res in results:
        load0 = res.get("load_avg_at_start") or [None]
        load1 = res.get("load_avg_at_end") or [None]
        out.append(
            f"#### {res['distribution']}, {res['size']:,} items ({res.get('description', '')}; "
            f"load {_fmt(load0[0], '.1f')} → {_fmt(load1[0], '.1f')})"
        )
        out.append("")
        out.append(
            "| method | p50 ms | p95 ms | p99 ms | CPU p50 ms | recall@10 | RAM B/item | ingest/s |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for name, m in res["methods"].items():
            if m.get("status") != "ok":
                out.append(f"| {name} | {m.get('status')}: {m.get('reason', '')} | | | | | | |")
                continue
            lat = m["latency"]
            ram = _fmt(m.get("bytes_per_item"), ",.0f")
            if name == "luma":
                info = res.get("luma") or {}
                ram = (
                    f"hot {_fmt(info.get('hot_bytes_per_item'), ',.0f')} / "
                    f"warm {_fmt(info.get('warm_bytes_per_item'), ',.0f')}"
                )
            out.append(
                f"| {name} | {_fmt(lat['p50_ms'], '.3f')} | {_fmt(lat['p95_ms'], '.3f')} | "
                f"{_fmt(lat['p99_ms'], '.3f')} | {_fmt(m.get('cpu_p50_ms'), '.3f')} | "
                f"{_fmt(m['recall_at_k'], '.4f')} | {ram} | "
                f"{_fmt(m['build']['items_per_s'], ',.0f')} |"
            )
        floor = res["scan_floor"]
        floor_ms = _fmt(floor["ms"], ".3f")
        out.append(f"| scan floor | {floor_ms} | | | | 1.0000 | {res['dim'] * 4} | |")
        out.append("")
        for t in res.get("targets", []):
            value, bound = _fmt_target(t["value"]), _fmt_target(t["bound"])
            note = f" ({t['note']})" if t.get("note") else ""
            out.append(f"- **{t['status']}** {t['name']}: {value} {t['op']} {bound}{note}")
        out.append("")
    return "\n".join(out).rstrip()
