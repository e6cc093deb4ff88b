"""The evaluation protocol behind ``luma eval`` and ``make eval``.

Runs, on held-out LUMA-Shapes data with the shipped offline models:

* (A) text → image baseline, text → video and audio → image when their corpora are given
  (:mod:`luma_rag.eval.experiments`);
* (B) memory spill on near-duplicates, with the paper's hot budget and with one small enough
  for the warm tier to be PQ-coded (:mod:`luma_rag.eval.spill`);
* telemetry over time: ε as caption pairs stream into the bridge (:mod:`luma_rag.eval.drift`);
* failure injection: caption swap, PQ over-compression, outlier embeddings
  (:mod:`luma_rag.eval.failures`);
* latency per stage (:mod:`luma_rag.eval.latency`).

It writes ``metrics.json``, ``results.md`` and PNG plots into ``--out``. Without ``--data`` it
generates a corpus in a temporary directory. ``--quick`` shrinks every part (well under a
minute; what the tests and the notebook run).

Usage::

    luma eval --quick --out /tmp/eval
    python -m luma_rag.eval.run --data data/eval-images --video-data data/eval-video \\
        --out data/eval-results
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luma_rag._config import ConfigBase, check
from luma_rag._json import to_jsonable
from luma_rag.eval.drift import DriftConfig
from luma_rag.eval.spill import SpillExperimentConfig

__all__ = ["ProtocolConfig", "main", "run_protocol"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ProtocolConfig(ConfigBase):
    """What the protocol runs and at which sizes. :meth:`quick` is the small preset.

    Attributes:
        mode: a label written with the results ("full" or "quick").
        k: cut-off of every ranking metric.
        corpus_n / corpus_seed: size and seed of the corpus generated when none is given.
        spill: experiment (B) at the paper's hot budget.
        spill_pq_hot_budget: a second spill run with this hot budget (so the warm tier holds
            enough items to be PQ-coded); 0 skips it.
        drift: the telemetry-over-time run (its ``swap_fraction`` is ignored: clean).
        swap_fraction: share of swapped caption pairs in the caption-swap injection.
        pq_dims_per_subquantizer: PQ settings of the over-compression sweep (bytes = dim / v).
        pq_hot_budget: hot budget of the sweep's stores.
        outlier_fraction / outlier_noise: outlier embeddings added, relative to the gallery,
            and the norm of the noise that corrupts them.
        latency: measure latency per stage.
        plots: write PNG plots (needs matplotlib).
    """

    mode: str = "full"
    k: int = 10
    corpus_n: int = 1200
    corpus_seed: int = 7
    spill: SpillExperimentConfig = field(default_factory=SpillExperimentConfig)
    spill_pq_hot_budget: int = 250
    drift: DriftConfig = field(default_factory=DriftConfig)
    swap_fraction: float = 0.5
    pq_dims_per_subquantizer: tuple[int, ...] = (4, 8, 32, 64)
    pq_hot_budget: int = 100
    outlier_fraction: float = 0.2
    outlier_noise: float = 0.3
    latency: bool = True
    plots: bool = True

    def __post_init__(self) -> None:
        check(isinstance(self.k, int) and self.k >= 1, f"ProtocolConfig.k must be >= 1: {self.k!r}")
        check(self.corpus_n >= 50, f"ProtocolConfig.corpus_n must be >= 50, got {self.corpus_n}")
        check(self.spill_pq_hot_budget >= 0, "ProtocolConfig.spill_pq_hot_budget must be >= 0")
        check(self.pq_hot_budget >= 1, "ProtocolConfig.pq_hot_budget must be >= 1")
        check(
            0.0 < self.swap_fraction <= 1.0,
            f"ProtocolConfig.swap_fraction must be in (0, 1], got {self.swap_fraction}",
        )
        check(
            0.0 < self.outlier_fraction <= 1.0,
            f"ProtocolConfig.outlier_fraction must be in (0, 1], got {self.outlier_fraction}",
        )
        check(self.outlier_noise > 0, "ProtocolConfig.outlier_noise must be > 0")
        check(
            len(self.pq_dims_per_subquantizer) > 0
            and all(isinstance(v, int) and v >= 1 for v in self.pq_dims_per_subquantizer),
            "ProtocolConfig.pq_dims_per_subquantizer must be a non-empty tuple of ints >= 1",
        )

    @classmethod
    def quick(cls) -> ProtocolConfig:
        """A small preset: 360-item corpus, 16 × 20 spill, 5 bridge stages of 128 pairs."""
        return cls(
            mode="quick",
            corpus_n=360,
            spill=SpillExperimentConfig(n_base=16, copies=20, hot_budget=250, queries_per_base=2),
            spill_pq_hot_budget=50,
            drift=DriftConfig(refresh_every=128, stages=4, n_queries=24),
            pq_dims_per_subquantizer=(8, 64),
            pq_hot_budget=50,
        )


def _generate(out: Path, n: int, seed: int, *, video: bool = False) -> Path:
    from luma_rag.datasets.shapes import generate

    print(f"luma eval: generating a {n}-item LUMA-Shapes corpus in {out}", file=sys.stderr)
    generate(out, n, seed, video=video)
    return out


def run_protocol(
    out_dir: PathLike,
    data_dir: PathLike | None = None,
    *,
    config: ProtocolConfig | None = None,
    video_data: PathLike | None = None,
    audio_data: PathLike | None = None,
) -> dict[str, Any]:
    """Run the protocol; write ``metrics.json``, ``results.md`` and the plots to ``out_dir``.

    Args:
        out_dir: output directory (created).
        data_dir: a LUMA-Shapes image corpus; None generates one (``config.corpus_n`` items)
            in a temporary directory.
        config: sizes and switches (default: the full protocol).
        video_data / audio_data: corpora generated with ``--video`` / ``--audio`` for the
            text → video and audio → image runs (skipped when None).

    Returns:
        The metrics dict written to ``metrics.json`` (also ``files``: what was written).
    """
    from luma_rag.encoders.clap.backend import ClapEncoder
    from luma_rag.encoders.registry import get_encoder
    from luma_rag.eval import drift, experiments, failures, report, spill

    cfg = config or ProtocolConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {"mode": cfg.mode, "k": cfg.k, "config": cfg.to_dict()}
    with tempfile.TemporaryDirectory(prefix="luma-eval-") as tmp_name:
        tmp = Path(tmp_name)
        data = (
            Path(data_dir) if data_dir else _generate(tmp / "corpus", cfg.corpus_n, cfg.corpus_seed)
        )
        results["data"] = str(data_dir) if data_dir else f"generated n={cfg.corpus_n}"
        clip, clap = get_encoder("luma-tiny"), ClapEncoder("luma-tiny-clap")

        logger.info("(A) text -> image baseline")
        results["baseline"] = experiments.run_baseline(tmp / "baseline", data, cfg.k)
        if video_data:
            results["video"] = experiments.run_video(tmp / "video", video_data, cfg.k)
        if audio_data:
            results["audio"] = experiments.run_audio(tmp / "audio", audio_data, cfg.k)

        logger.info("(B) memory spill")
        sp = dataclasses.replace(cfg.spill, k=cfg.k)
        corpus = spill.build_spill_corpus(data, tmp / "near-duplicates", sp, clip)
        results["spill"] = spill.run_spill(tmp / "spill", corpus, sp, clip, latency=cfg.latency)
        if "latency_ms" in results["spill"]:
            results["latency_ms"] = results["spill"].pop("latency_ms")
        if cfg.spill_pq_hot_budget:
            sp_pq = dataclasses.replace(sp, hot_budget=cfg.spill_pq_hot_budget)
            results["spill_pq"] = spill.run_spill(
                tmp / "spill-pq", corpus, sp_pq, clip, latency=False
            )
        rho_text = results["baseline"]["rho_store"].get("text", 0.0)

        logger.info("telemetry over time and caption swap")
        dc = dataclasses.replace(cfg.drift, k=cfg.k, swap_fraction=0.0)
        results["drift"] = drift.run_drift(tmp / "drift", data, dc, clip, clap)
        ds = dataclasses.replace(dc, swap_fraction=cfg.swap_fraction)
        results["drift_swap"] = drift.run_drift(tmp / "drift-swap", data, ds, clip, clap)

        logger.info("failure injection")
        gallery = failures.embed_test_gallery(data, clip)
        results["failures"] = {
            "caption_swap": failures.caption_swap_row(results["drift"], results["drift_swap"]),
            "pq_overcompression": failures.pq_overcompression(
                tmp / "pq",
                corpus,
                cfg.pq_dims_per_subquantizer,
                hot_budget=cfg.pq_hot_budget,
                rho=rho_text,
                k=cfg.k,
            ),
            "outliers": failures.outlier_injection(
                tmp / "outliers",
                gallery,
                fraction=cfg.outlier_fraction,
                noise=cfg.outlier_noise,
                rho=rho_text,
                k=cfg.k,
            ),
        }
    results["seconds"] = time.perf_counter() - started
    files = [out / "metrics.json", out / "results.md"]
    (out / "results.md").write_text(report.markdown_tables(results) + "\n")
    if cfg.plots:
        files += report.write_plots(results, out)
    results["files"] = [str(p) for p in files]
    (out / "metrics.json").write_text(
        json.dumps(to_jsonable(results), indent=2, default=str) + "\n"
    )
    return results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="luma eval",
        description="Run the LUMA-RAG evaluation protocol on LUMA-Shapes and write metrics.json, "
        "results.md and PNG plots.",
    )
    p.add_argument("--data", type=Path, help="image corpus (default: generate one in a temp dir)")
    p.add_argument("--video-data", type=Path, help="corpus generated with --video")
    p.add_argument("--audio-data", type=Path, help="corpus generated with --audio")
    p.add_argument(
        "--out", type=Path, default=Path("eval-results"), help="output dir (./eval-results)"
    )
    p.add_argument("--quick", action="store_true", help="small sizes (well under a minute)")
    p.add_argument("--k", type=int, default=10, help="cut-off (default 10)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--json", action="store_true", help="print metrics.json on stdout")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry (``luma eval ...`` / ``python -m luma_rag.eval.run ...``)."""
    args = _parser().parse_args(argv)
    base = ProtocolConfig.quick() if args.quick else ProtocolConfig()
    try:
        cfg = dataclasses.replace(base, k=args.k, plots=not args.no_plots)
    except ValueError as e:
        _parser().error(str(e))
    for name in ("data", "video_data", "audio_data"):
        path = getattr(args, name)
        if path is not None and not (path / "manifest.jsonl").is_file():
            _parser().error(f"--{name.replace('_', '-')} {path}: no manifest.jsonl there")
    results = run_protocol(
        args.out,
        args.data,
        config=cfg,
        video_data=args.video_data,
        audio_data=args.audio_data,
    )
    if args.json:
        sys.stdout.write((args.out / "metrics.json").read_text())
    else:
        sys.stdout.write((args.out / "results.md").read_text())
        print(f"\nwrote {', '.join(results['files'])} in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
