"""The measuring loop behind ``python -m bench.run``: every size, every contender, the report."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.baselines import BASELINES, MissingBaselineError, extra_baselines
from bench.data import Dataset, exact_topk
from bench.distributions import load_distribution
from bench.luma_bench import LumaMethod, luma_available, measure_spill, telemetry_summary
from bench.machine import machine_info, measure_bandwidth, rss_bytes
from bench.measure import BuildResult, Method, build_method, time_queries
from bench.methods import FULL_SLOW_MAX, METHODS, SIMPLE
from bench.report import (
    evaluate_targets,
    format_luma,
    format_summary,
    format_table,
    format_targets,
    markdown_report,
)
from luma_rag._json import to_jsonable

__all__ = ["run_all"]

if set(METHODS) != {*BASELINES, "luma"}:
    raise RuntimeError(f"bench.methods.METHODS {METHODS} is out of date with {sorted(BASELINES)}")


def _measure(
    method: Method,
    build: Callable[[], BuildResult],
    ds: Dataset,
    truth: np.ndarray,
    n_queries: int,
    args: argparse.Namespace,
    on_result: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Build, time ``n_queries`` single queries, and collect the figures of one method."""
    built = build()
    run = time_queries(
        method, ds.queries[:n_queries], args.k, warmup=args.warmup, on_result=on_result
    )
    n = ds.corpus.shape[0]
    index_bytes, source = method.index_bytes()
    if index_bytes is None and built.rss_delta_bytes is not None:
        per_item, source = built.rss_delta_bytes / n, "rss delta over build"
    else:
        per_item = index_bytes / n if index_bytes is not None else None
    return {
        "status": "ok",
        "build": dataclasses.asdict(built),
        "latency": dataclasses.asdict(run.summary()),
        "cpu_p50_ms": float(np.median(run.extras["cpu_ms"])),
        "recall_at_k": run.recall(truth, args.k),
        "index_bytes": index_bytes,
        "bytes_per_item": per_item,
        "bytes_per_item_source": source,
    }


def run_baseline(
    name: str, ds: Dataset, truth: np.ndarray, args: argparse.Namespace, cls: Any = None
) -> dict[str, Any]:
    """Measure one baseline, or say why it was skipped."""
    n = ds.corpus.shape[0]
    n_queries = args.queries
    note = ""
    if name == SIMPLE:
        if n > args.simple_max:
            return {"status": "skipped", "reason": f"size > --simple-max {args.simple_max}"}
        if n > FULL_SLOW_MAX:
            n_queries = min(args.slow_queries, args.queries)
            note = f"timed on {n_queries} queries only (Python loop per query)"
    method = (cls or BASELINES[name])()
    try:
        out = _measure(method, lambda: build_method(method, ds.corpus), ds, truth, n_queries, args)
    except MissingBaselineError as e:
        return {"status": "skipped", "reason": str(e)}
    finally:
        method.close()
    if note:
        out["note"] = note
    return out


def _per_item(stats: dict[str, Any], bytes_key: str, count_key: str) -> float | None:
    if bytes_key not in stats or not stats.get(count_key):
        return None
    return float(stats[bytes_key]) / float(stats[count_key])


def run_luma(
    ds: Dataset, truth: np.ndarray, args: argparse.Namespace, store_parent: Path | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure the engine: ingest, quiet queries, RAM per tier, then queries during a spill."""
    ok, why = luma_available()
    if not ok:
        return {"status": "skipped", "reason": why}, {}
    n = ds.corpus.shape[0]
    hot_budget = max(args.hot_min, int(n * args.hot_fraction))
    if store_parent is not None:  # --store-dir need not exist yet (it used to fail here, late)
        Path(store_parent).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="luma-bench-", dir=store_parent) as tmp:
        method = LumaMethod(Path(tmp) / "store", hot_budget, args.ingest_batch)
        results: list[Any] = []
        try:

            def build() -> BuildResult:
                b = build_method(method, ds.corpus)
                return BuildResult(method.add_seconds, n / method.add_seconds, b.rss_delta_bytes)

            row = _measure(method, build, ds, truth, args.queries, args, results.append)
            stats = method.stats()
            info: dict[str, Any] = {
                "hot_budget": hot_budget,
                "stats": stats,
                "hot_bytes_per_item": _per_item(stats, "hot_bytes", "hot"),
                "warm_bytes_per_item": _per_item(stats, "warm_bytes", "warm"),
                "warm_code_bytes": stats.get("warm_code_bytes"),
                "telemetry": telemetry_summary(results),
                "ingest": {
                    "batch": args.ingest_batch,
                    "add_seconds": method.add_seconds,
                    "settle_seconds": method.settle_seconds,
                    "wait_idle_available": method.has_wait_idle,
                    "items_per_s_incl_settle": n / (method.add_seconds + method.settle_seconds),
                },
            }
            results.clear()
            info["spill"] = _spill(method, ds, args, hot_budget)
        finally:
            method.close()
    return row, info


def _spill(
    method: LumaMethod, ds: Dataset, args: argparse.Namespace, hot_budget: int
) -> dict[str, Any]:
    batch = max(100, hot_budget // 10)
    if ds.extra.shape[0] == 0:
        return {"reason": "no spare rows (--spill-batches 0)"}
    window = measure_spill(method, ds.queries, ds.extra, args.k, batch)
    out: dict[str, Any] = {
        "batch": batch,
        "rows_added": window.rows_added,
        "add_seconds": window.add_seconds,
        "settle_seconds": window.settle_seconds,
        "warm_growth": window.spilled,
        "stats_before": window.stats_before,
        "stats_after": window.stats_after,
        "latency": dataclasses.asdict(window.summary()),
    }
    if window.spilled is not None and window.spilled <= 0:
        out["latency"] = {}
        out["reason"] = f"no spill observed (warm tier grew by {window.spilled})"
    elif window.summary().n < 20:
        out["reason_note"] = f"only {window.summary().n} queries fell inside the window"
    return out


def run_size(
    n: int,
    dist: str,
    args: argparse.Namespace,
    machine: dict[str, Any],
    bandwidth: dict[str, float],
) -> tuple[dict[str, Any], bool]:
    """Every selected method at corpus size ``n`` on distribution ``dist``.

    Returns the results and whether any contender errored.
    """
    hot_budget = max(args.hot_min, int(n * args.hot_fraction))
    n_extra = args.spill_batches * max(100, hot_budget // 10) if "luma" in args.methods else 0
    t0 = time.perf_counter()
    loaded = load_distribution(dist, n, args.queries, n_extra, args)
    ds, n = loaded.dataset, loaded.size
    dim = ds.dim
    truth = exact_topk(ds.corpus, ds.queries, args.k)
    setup_s = time.perf_counter() - t0
    print(
        f"\n== {dist} at {n:,}  ({loaded.description}; {args.queries} queries; "
        f"data + ground truth {setup_s:.1f}s; load {os.getloadavg()[0]:.1f})"
    )
    scan_bytes = n * dim * 4
    res: dict[str, Any] = {
        "size": n,
        "distribution": dist,
        "description": loaded.description,
        "k": args.k,
        "dim": dim,
        "params": vars(args),
        "machine": machine,
        "load_avg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "bandwidth": bandwidth,
        "scan_floor": {
            "bytes": scan_bytes,
            "ms": 1000 * scan_bytes / bandwidth["bytes_per_s"],
            "fits_in_llc": bool(machine["llc_bytes"] and scan_bytes <= machine["llc_bytes"]),
        },
        "methods": {},
        "luma": {},
    }
    extras = {} if args.no_extra_baselines else extra_baselines()
    names = [m for m in METHODS if m in args.methods] + sorted(extras)
    failed = False
    for name in names:
        print(f"  {name} ...", end="", flush=True)
        t1 = time.perf_counter()
        try:
            if name == "luma":
                row, info = run_luma(ds, truth, args, args.store_dir)
                res["luma"] = info
            else:
                row = run_baseline(name, ds, truth, args, extras.get(name))
        except Exception as e:  # recorded, printed and turned into a non-zero exit
            traceback.print_exc()
            row = {"status": "error", "reason": f"{type(e).__name__}: {e}"}
            failed = True
        res["methods"][name] = row
        gc.collect()
        print(f" {row['status']} ({time.perf_counter() - t1:.1f}s)", flush=True)
    res["load_avg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return res, failed


def _faiss_threads() -> int:
    import faiss

    return int(faiss.omp_get_max_threads())


def run_all(args: argparse.Namespace) -> int:
    """Run every size, print the tables and targets, write the JSON files; the exit status."""
    if args.threads:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    machine = machine_info()
    machine["threads_flag"] = args.threads
    machine["faiss_omp_max_threads"] = _faiss_threads()
    print(
        f"machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs "
        f"(affinity {machine['cpu_affinity']}), load {machine['load_avg']}; "
        f"threads per query: {args.threads or 'library default'}"
    )
    llc = machine["llc_bytes"] or 0
    bandwidth = measure_bandwidth(args.bandwidth_mb or max(512, 4 * llc >> 20))
    print(
        f"memory bandwidth: read {bandwidth['read_bytes_per_s'] / 1e9:.1f} GB/s, "
        f"copy {bandwidth['copy_bytes_per_s'] / 1e9:.1f} GB/s"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    any_failed = any_miss = False
    all_results: list[dict[str, Any]] = []
    for n, dist in [(n, d) for n in args.sizes for d in args.distributions]:
        if dist == "minilm" and n > args.minilm_max:
            print(f"\n== minilm at {n:,}: skipped (--minilm-max {args.minilm_max:,})")
            continue
        res, failed = run_size(n, dist, args, machine, bandwidth)
        all_results.append(res)
        any_failed |= failed
        print()
        print(format_table(res))
        if res["luma"]:
            print(format_luma(res))
        for name, m in res["methods"].items():
            if m.get("note"):
                print(f"  note: {name} {m['note']}")
        if res["scan_floor"]["fits_in_llc"]:
            llc_mib = machine["llc_bytes"] >> 20
            print(f"  note: the corpus fits in the {llc_mib} MiB last-level cache, so scans can")
            print("        beat the DRAM scan floor at this size")
        print(f"\ntargets, {dist} at {res['size']:,}:")
        targets = evaluate_targets(res)
        res["targets"] = [t.to_dict() for t in targets]
        print(format_targets(targets))
        any_miss |= any(t.status == "MISS" for t in targets)
        path = args.out / f"bench-{dist}-{res['size']}.json"
        path.write_text(json.dumps(to_jsonable(res), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")
        rss = rss_bytes()
        if rss is not None:
            print(f"(bench process RSS {rss / 2**30:.2f} GiB)")
    if all_results:
        print()
        print(format_summary(all_results))
        summary = args.out / "summary.md"
        summary.write_text(markdown_report(all_results) + "\n", encoding="utf-8")
        print(f"wrote {summary}")
    if any_failed:
        return 1
    return 1 if args.fail_on_miss and any_miss else 0
