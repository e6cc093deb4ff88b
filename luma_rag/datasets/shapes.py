"""LUMA-Shapes: a seeded synthetic corpus of shapes with captions, spoken captions and clips.

Each item is one shape, or two copies of the same shape in the same colour and size
("two red circles"), on a grey background, with 3-5 caption paraphrases, optionally the first
caption spoken by espeak-ng and a clip of the shape(s) moving. Splits hold out (shape, colour)
combinations (see :mod:`luma_rag.datasets.splits`).

Layout written by :func:`generate`::

    DIR/manifest.jsonl   one JSON object per item, in id order
    DIR/info.json        parameters, held-out combinations and split counts
    DIR/images/shape-000000.png       RGB, size x size
    DIR/audio/shape-000000.wav        16 kHz mono 16-bit (with audio=True)
    DIR/video/shape-000000.mp4|.gif   fps x 1-3 s, size x size (with video=True)

The same arguments give the same bytes (with the same Pillow, espeak-ng and PyAV builds).

Command line::

    python -m luma_rag.datasets.shapes --out DIR --n 2000 --seed 0 --audio --video

Python::

    >>> from luma_rag.datasets import generate, load_manifest, parse_query_attributes, relevant
    >>> items = load_manifest(generate("data/shapes", n=24, seed=0))  # doctest: +SKIP
    >>> query = parse_query_attributes("a red circle")
    >>> [it.id for it in items if relevant(query, it.attributes)]  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from luma_rag.datasets.attributes import ShapeAttributes, relevant
from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.datasets.manifest import MANIFEST, ShapeItem, load_manifest
from luma_rag.datasets.render import background_array, render_frame, require_pillow
from luma_rag.datasets.sampling import ItemPlan, plan_item
from luma_rag.datasets.speech import SAMPLE_RATE, find_espeak, synthesize, write_wav
from luma_rag.datasets.splits import SPLITS, Split, held_out_combos
from luma_rag.datasets.video import VIDEO_FORMATS, VideoFormat, require_av, write_video
from luma_rag.errors import InvalidInputError, LumaError

__all__ = [
    "ShapeAttributes",
    "ShapeItem",
    "generate",
    "load_manifest",
    "main",
    "parse_query_attributes",
    "relevant",
]

logger = logging.getLogger(__name__)

INFO: Final = "info.json"
FORMAT_VERSION: Final = 1
_PREFIX = "shape-"
_MEDIA_DIRS: Final = ("images", "audio", "video")


@dataclass(frozen=True)
class _Job:
    out: Path
    seed: int
    size: int
    fps: int
    split_seed: int
    audio: bool
    video: bool
    video_format: VideoFormat
    espeak: str | None


def _make_item(job: _Job, index: int) -> tuple[ShapeItem, dict[str, float]]:
    """Render, speak and film item ``index``; return its manifest item and timings."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    plan: ItemPlan = plan_item(
        job.seed, index, size=job.size, fps=job.fps, video=job.video, split_seed=job.split_seed
    )
    item_id = f"{_PREFIX}{index:06d}"
    bg = background_array(plan.background, job.size)
    image = f"images/{item_id}.png"
    render_frame(bg, plan.scene).save(job.out / image, format="PNG")
    timings["image"] = time.perf_counter() - t0

    audio = audio_seconds = None
    if job.audio:
        t0 = time.perf_counter()
        samples = synthesize(plan.captions[0], plan.speech, job.espeak)
        audio = f"audio/{item_id}.wav"
        write_wav(job.out / audio, samples, SAMPLE_RATE)
        audio_seconds = round(samples.size / SAMPLE_RATE, 3)
        timings["audio"] = time.perf_counter() - t0

    video = None
    if job.video:
        t0 = time.perf_counter()
        frames = [np.asarray(render_frame(bg, plan.clip_scene(f))) for f in range(plan.clip_frames)]
        video = f"video/{item_id}.{job.video_format}"
        write_video(job.out / video, frames, job.fps, job.video_format)
        timings["video"] = time.perf_counter() - t0

    item = ShapeItem(
        id=item_id,
        image=image,
        caption=plan.captions[0],
        captions=plan.captions,
        audio=audio,
        video=video,
        split=plan.split,
        attributes=plan.attributes,
        speech=plan.speech if job.audio else None,
        audio_seconds=audio_seconds,
        video_fps=job.fps if job.video else None,
        video_frames=plan.clip_frames if job.video else None,
        root=job.out,
    )
    return item, timings


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInputError(f"{name} must be an int, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise InvalidInputError(f"{name} must be {bound}, got {value}")
    return int(value)


def _prepare_dir(out: Path, overwrite: bool) -> None:
    if (out / MANIFEST).exists():
        if not overwrite:
            raise InvalidInputError(
                f"{out / MANIFEST} exists; pass overwrite=True (--overwrite) or another --out"
            )
        for sub in _MEDIA_DIRS:  # remove only files this generator writes
            for stale in sorted((out / sub).glob(f"{_PREFIX}*")):
                stale.unlink()
    out.mkdir(parents=True, exist_ok=True)


class _Progress:
    """A stderr counter: rewritten in place on a terminal, a line per 10 % otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.step = max(1, total // 10)

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if self.tty:
            end = "\n" if done == self.total else ""
            print(f"\rLUMA-Shapes {done}/{self.total}", end=end, file=sys.stderr, flush=True)
        elif done % self.step == 0 or done == self.total:
            print(f"LUMA-Shapes {done}/{self.total}", file=sys.stderr, flush=True)


def _write_items(
    job: _Job, n: int, workers: int, progress: bool
) -> tuple[dict[Split, int], dict[str, float]]:
    """Write the media of items ``0..n-1`` and the manifest to ``.manifest.jsonl.tmp``.

    Returns:
        Items per split, and seconds spent per modality summed over items.
    """
    totals = {"image": 0.0, "audio": 0.0, "video": 0.0}
    counts = dict.fromkeys(SPLITS, 0)
    counter = _Progress(n, progress)
    tmp = job.out / f".{MANIFEST}.tmp"
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="luma-shapes")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            results = pool.map(lambda i: _make_item(job, i), range(n))
            for done, (item, timings) in enumerate(results, start=1):
                f.write(json.dumps(item.to_record()) + "\n")
                counts[item.split] += 1
                for key, seconds in timings.items():
                    totals[key] += seconds
                counter.update(done)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        tmp.unlink(missing_ok=True)
        raise
    pool.shutdown()
    return counts, totals


def generate(
    out_dir: str | Path,
    n: int,
    seed: int,
    audio: bool = False,
    video: bool = False,
    size: int = 96,
    *,
    fps: int = 8,
    video_format: VideoFormat = "mp4",
    split_seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Generate a LUMA-Shapes corpus.

    Args:
        out_dir: Corpus directory (created).
        n: Number of items, >= 1.
        seed: Corpus seed, >= 0. Item ``i`` depends only on ``(seed, i)`` and the options.
        audio: Speak each primary caption with espeak-ng into ``audio/*.wav``.
        video: Add a direction of motion to every item and write ``video/*``.
        size: Image (and clip) side in pixels, 32-1024; even for MP4 clips.
        fps: Clip frame rate; clips last 1-3 s.
        video_format: "mp4" (needs PyAV) or "gif" (Pillow only).
        split_seed: Seed of the held-out (shape, colour) combinations; keep the default so
            corpora with different seeds share their held-out set.
        workers: Threads rendering items (default ``min(4, cpu_count)``); the output does not
            depend on it.
        overwrite: Replace an existing corpus in ``out_dir``.
        progress: Print a counter on stderr.

    Returns:
        Path of ``manifest.jsonl``.

    Raises:
        InvalidInputError: A bad argument, or an existing corpus without ``overwrite``.
        MissingDependencyError: Pillow, espeak-ng (audio) or PyAV (MP4) is missing.
    """
    n = _check_int("n", n, 1)
    seed = _check_int("seed", seed, 0)
    size = _check_int("size", size, 32, 1024)
    fps = _check_int("fps", fps, 1, 60)
    split_seed = _check_int("split_seed", split_seed, 0)
    if video_format not in VIDEO_FORMATS:
        raise InvalidInputError(f"video_format must be one of {list(VIDEO_FORMATS)}")
    if video and video_format == "mp4" and size % 2:
        raise InvalidInputError(f"MP4 clips need an even size, got {size}; use {size + 1}")
    n_workers = _check_int("workers", workers or min(4, os.cpu_count() or 1), 1)
    require_pillow()
    if video and video_format == "mp4":
        require_av()
    job = _Job(
        out=Path(out_dir),
        seed=seed,
        size=size,
        fps=fps,
        split_seed=split_seed,
        audio=audio,
        video=video,
        video_format=video_format,
        espeak=find_espeak() if audio else None,
    )
    _prepare_dir(job.out, overwrite)
    for sub, wanted in zip(_MEDIA_DIRS, (True, audio, video), strict=True):
        if wanted:
            (job.out / sub).mkdir(exist_ok=True)

    started = time.perf_counter()
    counts, totals = _write_items(job, n, n_workers, progress)
    _write_info(job, n, counts)
    manifest = job.out / MANIFEST
    (job.out / f".{MANIFEST}.tmp").replace(manifest)
    wall = time.perf_counter() - started
    per_item = ", ".join(
        f"{key} {1000 * totals[key] / n:.1f} ms/item"
        for key, on in (("image", True), ("audio", audio), ("video", video))
        if on
    )
    logger.info(
        "LUMA-Shapes: %d items in %s in %.1f s with %d worker(s) (%.1f ms/item wall; %s)",
        n,
        job.out,
        wall,
        n_workers,
        1000 * wall / n,
        per_item,
    )
    return manifest


def _write_info(job: _Job, n: int, counts: dict[Split, int]) -> None:
    combos = held_out_combos(job.split_seed)
    info = {
        "name": "LUMA-Shapes",
        "format_version": FORMAT_VERSION,
        "n": n,
        "seed": job.seed,
        "size": job.size,
        "audio": job.audio,
        "sample_rate": SAMPLE_RATE if job.audio else None,
        "video": job.video,
        "video_format": job.video_format if job.video else None,
        "fps": job.fps if job.video else None,
        "split_seed": job.split_seed,
        "held_out": {split: sorted(map(list, combos[split])) for split in ("val", "test")},
        "split_counts": counts,
    }
    (job.out / INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m luma_rag.datasets.shapes",
        description="Generate the LUMA-Shapes synthetic corpus (images, captions, audio, video).",
    )
    parser.add_argument("--out", required=True, type=Path, help="corpus directory")
    parser.add_argument("--n", type=int, required=True, help="number of items")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--audio", action="store_true", help="speak captions (needs espeak-ng)")
    parser.add_argument("--video", action="store_true", help="write clips of moving shapes")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    parser.add_argument("--fps", type=int, default=8, help="clip frame rate (default 8)")
    parser.add_argument("--video-format", choices=VIDEO_FORMATS, default="mp4")
    parser.add_argument("--split-seed", type=int, default=0, help="held-out combos seed")
    parser.add_argument("--workers", type=int, default=None, help="threads (default min(4, cpus))")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing corpus")
    parser.add_argument("--quiet", action="store_true", help="no progress or summary")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        manifest = generate(
            args.out,
            n=args.n,
            seed=args.seed,
            audio=args.audio,
            video=args.video,
            size=args.size,
            fps=args.fps,
            video_format=args.video_format,
            split_seed=args.split_seed,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except LumaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
