"""Production-model overheads: what LUMA adds around a ViT-B-32 (random weights), on this CPU.

Every figure is compared with its peer measured in the same run, on the same machine::

    python -m bench.production_models                 # ViT-B-32 widths (605 MB of random weights)
    python -m bench.production_models --tiny          # the 2-layer stand-in (quick smoke run)

1. ``Luma.open`` of a new store with the encoders already built (target < 5 s), and the model
   loads themselves (reported, not a target).
2. A text query end to end (``luma.query``) vs the CLIP text encode of the same text alone
   (target ratio <= 1.1; medians over ``--queries``).
3. Image ingest throughput (``luma.ingest_images``) vs the encoder's own batch throughput on
   the same files (target ratio >= 0.9).
4. ``luma query`` as a fresh process, minus the model load measured in another fresh process
   (target < 5 s).

Stand-ins of ``ViT-B-32/openai`` and ``laion/clap-htsat-unfused`` are written to a temporary
``$LUMA_MODEL_DIR`` (:mod:`luma_rag.encoders.standins`); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLIP = "ViT-B-32/openai"
CLAP = "laion/clap-htsat-unfused"
TEXTS = [
    "a small red circle on the left",
    "two blue squares at the top",
    "a large green triangle in the middle",
    "a yellow star at the bottom right",
    "three purple hexagons",
]


def _images(folder: Path, n: int) -> list[str]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        path = folder / f"img-{i:04d}.png"
        Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _fresh_process(code: str, env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"subprocess failed: {done.stderr[-2000:]}")
    return time.perf_counter() - t0, done.stdout


def run(args: argparse.Namespace) -> dict[str, Any]:
    from luma_rag import Luma
    from luma_rag.encoders import get_encoder
    from luma_rag.encoders.standins import write_standins

    root = Path(tempfile.mkdtemp(prefix="luma-prod-bench-"))
    models = root / "models"
    write_standins(models, full_clip=not args.tiny, models=(CLIP, CLAP))
    os.environ["LUMA_MODEL_DIR"] = str(models)
    out: dict[str, Any] = {"clip": "2-layer stand-in" if args.tiny else "ViT-B-32 widths"}

    clip, out["clip_load_s"] = _timed(lambda: get_encoder(CLIP))
    clap, out["clap_load_s"] = _timed(lambda: get_encoder(CLAP))
    luma, out["open_new_store_s"] = _timed(
        lambda: Luma.open(root / "store", encoder=clip, audio_encoder=clap)
    )
    luma.close()
    luma, out["reopen_s"] = _timed(
        lambda: Luma.open(root / "store", encoder=clip, audio_encoder=clap)
    )

    paths = _images(root / "images", args.images)
    clip.encode_image(paths[:4])  # warm both paths once
    _, encode_s = _timed(lambda: clip.encode_image(paths, batch_size=args.batch))
    ids: list[str] = []
    ingest_start = time.perf_counter()
    for i in range(0, len(paths), args.batch):
        ids += luma.ingest_images(paths[i : i + args.batch])
    ingest_s = time.perf_counter() - ingest_start
    out["encoder_images_per_s"] = len(paths) / encode_s
    out["ingest_images_per_s"] = len(ids) / ingest_s
    out["ingest_ratio"] = out["ingest_images_per_s"] / out["encoder_images_per_s"]

    encode_times, query_times, beyond = [], [], []
    for i in range(args.queries):
        text = TEXTS[i % len(TEXTS)] + f" #{i}"
        if i % 2:  # alternate the order, so neither call always runs second
            _, te = _timed(lambda: clip.encode_text([text]))  # noqa: B023
            res, tq = _timed(lambda: luma.query(text, k=10))  # noqa: B023
        else:
            res, tq = _timed(lambda: luma.query(text, k=10))  # noqa: B023
            _, te = _timed(lambda: clip.encode_text([text]))  # noqa: B023
        encode_times.append(te)
        query_times.append(tq)
        tel = res.telemetry  # the query's own split: its encode stage vs everything else
        beyond.append(tel.latency_ms - tel.stages_ms["encode"])
    out["text_encode_ms"] = statistics.median(encode_times) * 1000
    out["text_query_ms"] = statistics.median(query_times) * 1000
    out["query_ratio"] = out["text_query_ms"] / out["text_encode_ms"]
    out["query_beyond_encode_ms"] = statistics.median(beyond)
    luma.close()

    env = {**os.environ, "LUMA_MODEL_DIR": str(models)}
    load_code = (
        "import time; t=time.perf_counter(); from luma_rag.encoders import get_encoder; "
        f"get_encoder({CLIP!r}); get_encoder({CLAP!r}); print(time.perf_counter()-t)"
    )
    out["fresh_model_load_s"], _ = _fresh_process(load_code, env)
    cli_code = (
        "import sys; from luma_rag.cli import main; sys.exit(main(['query', '--store', "
        f"{str(root / 'store')!r}, '--model', {CLIP!r}, '--audio-model', {CLAP!r}, '--json', "
        "'a red circle']))"
    )
    out["cli_query_s"], _ = _fresh_process(cli_code, env)
    out["cli_beyond_load_s"] = out["cli_query_s"] - out["fresh_model_load_s"]
    return out


def _report(r: dict[str, Any]) -> None:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    print(f"CLIP: {r['clip']} ({CLIP}), audio: tiny stand-in ({CLAP}); cpus {os.cpu_count()}")
    print(f"load avg {os.getloadavg()[0]:.2f} (figures are medians; compare within this run)")
    print(f"model loads: CLIP {r['clip_load_s']:.2f} s, CLAP {r['clap_load_s']:.2f} s")
    rows = [
        (
            "Luma.open, new store",
            f"{r['open_new_store_s']:.3f} s (reopen {r['reopen_s']:.3f} s)",
            "< 5 s",
            verdict(r["open_new_store_s"] < 5),
        ),
        (
            "text query / CLIP text encode",
            f"{r['text_query_ms']:.1f} / {r['text_encode_ms']:.1f} ms = {r['query_ratio']:.2f}x",
            "<= 1.1x",
            verdict(r["query_ratio"] <= 1.1),
        ),
        (
            "  of which outside the encoder (telemetry)",
            f"{r['query_beyond_encode_ms']:.1f} ms per query",
            "-",
            "",
        ),
        (
            "image ingest / encoder batch",
            f"{r['ingest_images_per_s']:.1f} / {r['encoder_images_per_s']:.1f} img/s "
            f"= {r['ingest_ratio']:.2f}x",
            ">= 0.9x",
            verdict(r["ingest_ratio"] >= 0.9),
        ),
        (
            "luma query cold start - model load",
            f"{r['cli_query_s']:.2f} - {r['fresh_model_load_s']:.2f} = "
            f"{r['cli_beyond_load_s']:.2f} s",
            "< 5 s",
            verdict(r["cli_beyond_load_s"] < 5),
        ),
    ]
    width = max(len(row[0]) for row in rows)
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:<48} target {target:<8} {ok}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table (and JSON with ``--json``)."""
    p = argparse.ArgumentParser(prog="python -m bench.production_models", description=__doc__)
    p.add_argument("--tiny", action="store_true", help="2-layer CLIP stand-in (smoke run)")
    p.add_argument("--images", type=int, default=64, help="images ingested (default 64)")
    p.add_argument("--batch", type=int, default=16, help="ingest / encode batch (default 16)")
    p.add_argument("--queries", type=int, default=20, help="text queries timed (default 20)")
    p.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = p.parse_args(argv)
    result = run(args)
    _report(result)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
