"""Markdown tables and matplotlib plots from the protocol's metrics dict (:mod:`.run`).

matplotlib is imported inside :func:`write_plots` (``pip install 'luma-rag[eval]'``) and used
through ``matplotlib.figure.Figure`` only: no pyplot, no global backend switch.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from luma_rag.errors import MissingDependencyError
from luma_rag.eval.latency import STAGES

__all__ = ["latency_figure", "markdown_tables", "write_plots"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_f(v) for v in row) + " |" for row in rows]
    return [*out, ""]


def _retrieval_rows(res: dict[str, Any], k: int) -> list[list[Any]]:
    rows = []
    for key in ("baseline", "video", "audio"):
        r = res.get(key)
        if r:
            cal = r["safe1"].get("calibrated") or r["safe1"].get("store_default") or {}
            rows.append(
                [
                    r["experiment"],
                    r["n_gallery"],
                    r["n_queries"],
                    r[f"recall@{k}"],
                    r[f"mrr@{k}"],
                    r[f"ndcg@{k}"],
                    r["top1_accuracy"],
                    cal.get("coverage"),
                    cal.get("precision"),
                ]
            )
    for key in ("spill", "spill_pq"):
        r = res.get(key)
        if r:
            cal = r["safe1"]["calibrated"]
            name = f"spill, hot_budget={r['config']['hot_budget']} (group)"
            rows.append(
                [
                    name,
                    r["n_gallery"],
                    r["n_queries"],
                    r["group"][f"recall@{k}"],
                    r["group"][f"mrr@{k}"],
                    r["group"][f"ndcg@{k}"],
                    r["attribute"]["top1_accuracy"],
                    cal["coverage"],
                    cal["precision"],
                ]
            )
    return rows


def markdown_tables(results: dict[str, Any]) -> str:
    """The results as markdown: retrieval, spill, telemetry over time, failures, latency."""
    k = int(results.get("k", 10))
    lines = ["# LUMA-RAG evaluation", ""]
    lines += [f"Mode: {results.get('mode', 'full')}; k = {k}.", ""]
    lines += ["## Retrieval and Safe@1 (calibrated ρ)", ""]
    lines += _table(
        [
            "experiment",
            "gallery",
            "queries",
            f"Recall@{k}",
            "MRR",
            f"nDCG@{k}",
            "top-1 acc",
            "Safe@1 coverage",
            "Safe@1 precision",
        ],
        _retrieval_rows(results, k),
    )
    spill_rows = []
    for key in ("spill", "spill_pq"):
        r = results.get(key)
        if r:
            spill_rows.append(
                [
                    r["config"]["hot_budget"],
                    r["n_gallery"],
                    r["tiers_before"]["hot"],
                    r["tiers_before"]["warm"],
                    "IVF-PQ" if r["tiers_before"]["warm_trained"] else "exact",
                    r["tiers_before"]["warm_code_bytes"],
                    r["zeta_warm"]["mean"],
                    r["zeta_warm"]["max"],
                    r["warm_hit_share"],
                    r["attribute"][f"recall@{k}"],
                    r["group"][f"recall@{k}"],
                    r["safek_coverage"],
                ]
            )
    if spill_rows:
        lines += ["## Memory spill (near-duplicates)", ""]
        lines += _table(
            [
                "hot_budget",
                "items",
                "hot",
                "warm",
                "warm index",
                "bytes/vector",
                "ζ mean",
                "ζ max",
                "hits from warm",
                f"attr. Recall@{k}",
                f"group Recall@{k}",
                "Safe@k coverage",
            ],
            spill_rows,
        )
    drift = results.get("drift")
    if drift:
        lines += ["## Telemetry over time (caption pairs streamed into the bridge)", ""]
        lines += _table(
            [
                "stage",
                "pairs",
                "version",
                "ε",
                "query shift max",
                "γ mean",
                "Safe@1 (ρ=0)",
                "Safe@1 (ρ audio)",
                "top-1 acc",
            ],
            [
                [
                    s["stage"],
                    s["pairs_seen"],
                    s["version"],
                    s["epsilon"],
                    s["query_shift_max"],
                    s["margin_mean"],
                    s["safe1_rate_rho0"],
                    s["safe1_rate_calibrated"],
                    s["top1_accuracy"],
                ]
                for s in drift["stages"]
            ],
        )
    lines += _failure_lines(results)
    lat = results.get("latency_ms")
    if lat:
        lines += [f"## Latency per stage (ms, {lat.get('n_items')} items)", ""]
        lines += _table(
            ["stage", "p50", "p95", "p99"],
            [[s, lat[s]["p50"], lat[s]["p95"], lat[s]["p99"]] for s in STAGES if s in lat],
        )
    return "\n".join(lines)


def _failure_lines(results: dict[str, Any]) -> list[str]:
    fail = results.get("failures")
    if not fail:
        return []
    rows: list[list[Any]] = []
    swap = fail.get("caption_swap")
    if swap:
        b, i = swap["baseline"], swap["injected"]
        rows.append([swap["injection"], "ε mean", b["epsilon_mean"], i["epsilon_mean"]])
        rows.append(
            [
                swap["injection"],
                "query shift max (mean)",
                b["query_shift_max_mean"],
                i["query_shift_max_mean"],
            ]
        )
    pq = fail.get("pq_overcompression")
    if pq:
        first, last = pq[0], pq[-1]
        name = f"PQ {first['code_bytes']} → {last['code_bytes']} bytes/vector"
        rows.append([name, "ζ mean (warm)", first["zeta_mean"], last["zeta_mean"]])
        rows.append([name, "ζ max (warm)", first["zeta_max"], last["zeta_max"]])
    out = fail.get("outliers")
    if out:
        name = f"{out['n_outliers']} outlier embeddings ({out['fraction']:.0%})"
        b, i = out["baseline"], out["injected"]
        rows.append([name, "γ mean", b["margin_mean"], i["margin_mean"]])
        rows.append([name, "γ std", b["margin_std"], i["margin_std"]])
        rows.append([name, "Safe@1 coverage", b["safe1"]["coverage"], i["safe1"]["coverage"]])
        rows.append([name, "top-1 accuracy", b["top1_accuracy"], i["top1_accuracy"]])
    lines = ["## Failure injection", ""]
    lines += _table(["injection", "watched", "baseline", "injected"], rows)
    if pq:
        lines += _table(
            ["bytes/vector", "ζ mean", "ζ max", "query ζ mean", "group Recall", "Safe@k coverage"],
            [
                [
                    r["code_bytes"],
                    r["zeta_mean"],
                    r["zeta_max"],
                    r["query_zeta_mean"],
                    next(v for key, v in r.items() if key.startswith("group_recall")),
                    r["safek_coverage"],
                ]
                for r in pq
            ],
        )
    return lines


def write_plots(results: dict[str, Any], out_dir: PathLike) -> list[Path]:
    """Write ``epsilon_over_time.png``, ``retrieval.png`` and ``latency.png`` (what applies).

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise MissingDependencyError.for_extra("matplotlib", "eval") from e
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    k = int(results.get("k", 10))

    drift = results.get("drift")
    if drift:
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
        runs = [("clean", drift), ("caption swap", results.get("drift_swap"))]
        for label, run in runs:
            if run:
                stages = run["stages"]
                ax.plot(
                    [s["pairs_seen"] for s in stages],
                    [s["epsilon"] for s in stages],
                    marker="o",
                    label=f"ε, {label}",
                )
                ax.plot(
                    [s["pairs_seen"] for s in stages],
                    [s["query_shift_max"] for s in stages],
                    marker="x",
                    linestyle="--",
                    label=f"query shift max, {label}",
                )
        ax.set_xlabel("bridge pairs seen")
        ax.set_ylabel("drift")
        ax.set_title("Bridge drift as caption pairs stream in")
        ax.legend(fontsize=8)
        written.append(out / "epsilon_over_time.png")
        fig.savefig(written[-1], dpi=110)

    rows = _retrieval_rows(results, k)
    if rows:
        fig = Figure(figsize=(8, 4), layout="constrained")
        ax = fig.add_subplot()
        names = [r[0] for r in rows]
        x = range(len(rows))
        series = [(f"Recall@{k}", 3), ("Safe@1 coverage", 7), ("Safe@1 precision", 8)]
        width = 0.8 / len(series)
        for j, (label, col) in enumerate(series):
            vals = [
                r[col] if isinstance(r[col], float) and math.isfinite(r[col]) else 0.0 for r in rows
            ]
            ax.bar([i + j * width for i in x], vals, width, label=label)
        ax.set_xticks([i + width for i in x], names, rotation=15, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title("Retrieval and Safe@1 (calibrated ρ)")
        ax.legend(fontsize=8)
        written.append(out / "retrieval.png")
        fig.savefig(written[-1], dpi=110)

    lat = results.get("latency_ms")
    if lat:
        written.append(out / "latency.png")
        latency_figure(lat, Figure).savefig(written[-1], dpi=110)
    logger.info("wrote plots %s", [p.name for p in written])
    return written


def latency_figure(lat: dict[str, Any], figure: Any) -> Any:
    """p50 / p95 per stage as horizontal bars: stage names on the y axis never overlap.

    Args:
        lat: ``{stage: {"p50", "p95", ...}, "n_items": n}`` (the protocol's ``latency_ms``).
        figure: ``matplotlib.figure.Figure`` (passed in: matplotlib is imported lazily).

    Returns:
        The figure.
    """
    stages = [s for s in STAGES if s in lat]
    fig = figure(figsize=(6.5, 1.2 + 0.45 * len(stages)), layout="constrained")
    ax = fig.add_subplot()
    for j, p in enumerate(("p50", "p95")):
        ax.barh(
            [i + j * 0.4 for i in range(len(stages))], [lat[s][p] for s in stages], 0.4, label=p
        )
    ax.set_yticks([i + 0.2 for i in range(len(stages))], stages)
    ax.invert_yaxis()  # stages top to bottom in pipeline order
    ax.set_xlabel("ms")
    ax.set_title(f"Latency per stage ({lat.get('n_items')} items)")
    ax.legend(loc="lower right")
    return fig
