"""The evaluation protocol (``luma eval``): files written, metrics in range, telemetry sane.

One quick protocol run (a generated 360-item corpus, the shipped tiny models) is shared by the
module; the other tests exercise the pieces on their own.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.eval.drift import DriftConfig, swap_targets
from luma_rag.eval.latency import STAGES
from luma_rag.eval.report import markdown_tables
from luma_rag.eval.run import ProtocolConfig, run_protocol
from luma_rag.eval.spill import SpillExperimentConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def protocol(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("eval-out")
    return out, run_protocol(out, config=ProtocolConfig.quick())


def test_protocol_writes_json_markdown_and_plots(protocol: tuple[Path, dict[str, Any]]) -> None:
    out, results = protocol
    written = json.loads((out / "metrics.json").read_text())
    assert written["mode"] == "quick"
    assert {"baseline", "spill", "spill_pq", "drift", "drift_swap", "failures"} <= set(written)
    md = (out / "results.md").read_text()
    for heading in ("Retrieval", "Memory spill", "Telemetry over time", "Failure injection"):
        assert f"## {heading}" in md
    assert "## Latency per stage" in md
    for name in ("epsilon_over_time.png", "retrieval.png", "latency.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        assert str(out / name) in results["files"]


def test_retrieval_metrics_are_in_range(protocol: tuple[Path, dict[str, Any]]) -> None:
    _, r = protocol
    for run in (r["baseline"], r["spill"]["group"], r["spill"]["attribute"]):
        for key in ("recall@10", "mrr@10", "ndcg@10"):
            assert 0.0 <= run[key] <= 1.0
        assert run["mrr@10"] <= run["recall@10"]
    for safe in r["spill"]["safe1"].values():
        assert 0.0 <= safe["coverage"] <= 1.0


def test_spill_overflows_the_hot_tier(protocol: tuple[Path, dict[str, Any]]) -> None:
    _, r = protocol
    cfg = ProtocolConfig.quick()
    for key, budget in (("spill", cfg.spill.hot_budget), ("spill_pq", cfg.spill_pq_hot_budget)):
        run = r[key]
        tiers = run["tiers_before"]
        assert run["n_gallery"] == cfg.spill.n_base * cfg.spill.copies
        assert tiers["hot"] + tiers["warm"] == run["n_gallery"]
        assert 0 < tiers["hot"] <= budget
        assert tiers["warm"] > 0
        if not tiers["warm_trained"]:  # an exact warm tier has no quantization error
            assert run["zeta_warm"] == {"mean": 0.0, "max": 0.0}
    pq = r["spill_pq"]
    assert pq["tiers_before"]["warm_trained"]  # 272 warm items >= min_train 256
    assert pq["zeta_warm"]["max"] > 0.0
    assert pq["tiers_before"]["warm_code_bytes"] < 4 * 128
    assert 0.0 < pq["warm_hit_share"] <= 1.0


def test_drift_stages_follow_the_cadence_and_eps_bounds_the_observed_shift(
    protocol: tuple[Path, dict[str, Any]],
) -> None:
    _, r = protocol
    cfg = ProtocolConfig.quick().drift
    for run in (r["drift"], r["drift_swap"]):
        stages = run["stages"]
        assert len(stages) == cfg.stages + 1
        for prev, cur in itertools.pairwise(stages):
            assert cur["version"] == prev["version"] + 1
            assert cur["pairs_seen"] - prev["pairs_seen"] == cfg.refresh_every
            assert 0.0 <= cur["epsilon"] <= 2.0 + 1e-6
            # ε is the spectral norm of the map's change: no unit query can move further
            assert cur["query_shift_max"] <= cur["epsilon"] + 1e-6
            assert 0.0 <= cur["safe1_rate_rho0"] <= 1.0
        assert len(run["history"]) == stages[-1]["version"]


def test_failure_injections_are_reported(protocol: tuple[Path, dict[str, Any]]) -> None:
    _, r = protocol
    f = r["failures"]
    swap = f["caption_swap"]
    assert swap["injection"].startswith("caption swap (50%")
    assert set(swap["baseline"]) == set(swap["injected"])
    pq = f["pq_overcompression"]
    assert [row["code_bytes"] for row in pq] == sorted(
        (row["code_bytes"] for row in pq), reverse=True
    )
    assert all(row["warm_trained"] and row["zeta_max"] > 0 for row in pq)
    out = f["outliers"]
    assert out["n_outliers"] == round(0.2 * r["baseline"]["n_gallery"])
    for run in (out["baseline"], out["injected"]):
        assert 0.0 <= run["outlier_top1_share"] <= 1.0
        assert run["margin_mean"] >= 0.0
    assert out["baseline"]["outlier_top1_share"] == 0.0  # nothing injected there


def test_latency_per_stage(protocol: tuple[Path, dict[str, Any]]) -> None:
    _, r = protocol
    lat = r["latency_ms"]
    for stage in STAGES:
        assert 0.0 <= lat[stage]["p50"] <= lat[stage]["p95"] <= lat[stage]["p99"]
        assert lat[stage]["n"] == r["spill"]["n_queries"]


def test_markdown_tables_skip_missing_parts() -> None:
    md = markdown_tables({"k": 10, "mode": "quick"})
    assert "# LUMA-RAG evaluation" in md
    assert "Failure injection" not in md


def test_swap_targets() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(40, dtype=np.float32).reshape(20, 2)
    assert np.array_equal(swap_targets(y, 0.0, rng), y)
    swapped = swap_targets(y, 1.0, rng)
    assert sorted(map(tuple, swapped.tolist())) == sorted(map(tuple, y.tolist()))  # a permutation
    assert (swapped != y).any(axis=1).all()  # every row got another caption's target
    assert np.array_equal(y, np.arange(40, dtype=np.float32).reshape(20, 2))  # input untouched


@pytest.mark.parametrize(
    "make",
    [
        lambda: SpillExperimentConfig(n_base=0),
        lambda: SpillExperimentConfig(warm_min_train=100),
        lambda: SpillExperimentConfig(queries_per_base=9),
        lambda: DriftConfig(swap_fraction=1.5),
        lambda: DriftConfig(stages=0),
        lambda: ProtocolConfig(outlier_fraction=0.0),
        lambda: ProtocolConfig(pq_dims_per_subquantizer=()),
    ],
)
def test_bad_configs_raise(make: Any) -> None:
    with pytest.raises(ConfigError):
        make()


def test_configs_round_trip_json() -> None:
    cfg = ProtocolConfig.quick()
    assert ProtocolConfig.from_json(cfg.to_json()) == cfg


def test_near_duplicates(tmp_path: Path) -> None:
    from PIL import Image

    from luma_rag.datasets.manifest import load_manifest
    from luma_rag.datasets.shapes import generate
    from luma_rag.eval.augment import write_near_duplicates

    items = load_manifest(generate(tmp_path / "c", 4, seed=1))
    dups = write_near_duplicates(items[:2], tmp_path / "aug", copies=3, seed=0)
    assert [d.copy for d in dups] == [0, 1, 2, 0, 1, 2]
    assert {d.base for d in dups} == {items[0].id, items[1].id}
    with Image.open(items[0].image_path) as a, Image.open(dups[0].path) as b:
        assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
    with Image.open(dups[1].path) as im:
        assert im.size == Image.open(items[0].image_path).size
    with pytest.raises(InvalidInputError):
        write_near_duplicates(items[:1], tmp_path / "x", copies=0)
    with pytest.raises(InvalidInputError):
        write_near_duplicates([], tmp_path / "x", copies=2)


def test_luma_eval_cli_help_and_bad_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from luma_rag.cli import main

    assert main(["eval", "--help"]) == 0
    assert "--quick" in capsys.readouterr().out
    assert main(["eval", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no manifest.jsonl" in capsys.readouterr().err


def test_latency_plot_labels_do_not_overlap() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from luma_rag.eval.report import STAGES, latency_figure

    lat: dict[str, object] = {s: {"p50": 1.0 + i, "p95": 2.0 + i} for i, s in enumerate(STAGES)}
    lat["n_items"] = 1000
    fig = latency_figure(lat, Figure)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # real text extents
    renderer = canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert len(boxes) == len(STAGES)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), "stage labels overlap"
