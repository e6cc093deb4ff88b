"""The whole model kit from one command: corpora, then the trainers in dependency order.

Command line::

    python -m luma_rag.training.kit --data DATA --out OUT [--jobs 2] [--tiny]

What each trainer needs from which (the shipped recipes, each checkpoint's README):

* ``luma-tiny-clip`` (v4): the 16 000-item corpus (seed 0); nothing else.
* ``luma-tiny-llava``: the 16 000-item corpus and, as its frozen vision tower, the image tower
  of the CLIP this kit trained (``--llava-tower clip``, the default since v4's tower reads
  shape). ``--llava-tower v2`` trains the tiny CLIP **v2** recipe for it first (the tower of
  the LLaVA v3b, shipped before session 13); ``--llava-tower FILE`` uses given weights.
* ``luma-tiny-clap``: the three spoken corpora (seeds 0, 11, 12) and, for its anchor, the
  text tower of the tiny CLIP this kit trained (``--anchor-weights``).

Each corpus and each trainer is a task, run as its own process (``python -m ...``), up to
``jobs`` at once as their dependencies finish: one torch thread each while another task
runs, ``jobs`` threads for a task that runs alone (``--lone-threads`` overrides). A corpus
that already exists (its ``manifest.jsonl``) is not generated again. ``OUT/kit.json`` gets
each task's command, threads, start, wall and CPU seconds (the process and its children,
from ``os.wait4``) and the totals; ``OUT/logs/`` each task's output. ``--tiny`` runs every
task on a tiny corpus for a few steps: it checks the wiring, not the models.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from luma_rag.errors import ConfigError, LumaError

__all__ = ["RECIPES", "KitConfig", "Task", "main", "plan", "run_kit", "run_tasks"]

logger = logging.getLogger(__name__)

REPORT_NAME: Final = "kit.json"
_CLIP_FILE: Final = "open_clip_model.safetensors"


def _flags(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_CLIP_BASE: Final = _flags(
    "--seed 0 --epochs 14 --stop-after 11 --negatives 1 --referents 2 --referent-p 0.3 "
    "--aux-weight 1.5 --head-views 0.75 --head-pretrain 1000"
)
#: The tiny CLIP v2 recipe (``luma-tiny-clip/README.md``); v3 added ``--achromatic-p 0.25``.
_CLIP_V2: Final = (*_CLIP_BASE, "--eval-every", "4")
#: v4 (session 13): v3 (v2 + ``--achromatic-p 0.25``) with the shape head weighed 4x and the
#: background bound (a head, and hard negatives that swap it); no periodic evaluation.
_CLIP_V4: Final = (
    *_CLIP_BASE,
    *_flags("--eval-every 0 --achromatic-p 0.25 --shape-weight 4 --bind-background"),
)
_CLAP: Final = ("--seed", "0")
_LLAVA: Final = _flags(
    "--seed 0 --steps 3000 --verify-share 0.4 --verify-single 0.3 --verify-gate 0.5 "
    "--verify-reply pairs --eval-every 500"
)
#: The shipped recipes' flags per trainer, as the kit passes them (``--data``/``--out`` and the
#: wiring flags come on top); ``scripts/profile_training.py`` profiles these same recipes.
RECIPES: Final[dict[str, tuple[str, ...]]] = {
    "clip-v2": _CLIP_V2,
    "clip": _CLIP_V4,
    "clap": _CLAP,
    "llava": _LLAVA,
}
#: ``--tiny``: few steps, small batches, a small LLaVA; appended after the recipe's flags.
_TINY: Final[dict[str, tuple[str, ...]]] = {
    "clip": ("--epochs", "1", "--stop-after", "1", "--batch-size", "16", "--head-pretrain", "2",
             "--eval-every", "0", "--warmup-steps", "1"),
    "clap": ("--steps", "2", "--batch-size", "8", "--eval-items", "8", "--warmup-steps", "1"),
    "llava": ("--steps", "2", "--batch-size", "8", "--eval-every", "0", "--hidden-size", "32",
              "--layers", "1", "--heads", "2", "--intermediate-size", "64"),
}  # fmt: skip


@dataclass(frozen=True)
class KitConfig:
    """How the kit runs.

    Attributes:
        jobs: Tasks run at once (the machine's cores).
        lone_threads: torch threads of a task that runs alone; ``None``: ``jobs``.
        llava_tower: ``"clip"`` (the kit's CLIP, as shipped), ``"v2"`` (train the CLIP v2
            recipe for it, the tower of the LLaVA v3b) or an open_clip safetensors file.
        bf16: Pass ``--bf16`` (CPU bfloat16 autocast) to every trainer; not the shipped recipe.
        tiny: Tiny corpora and a few steps per trainer (a wiring check, minutes → seconds).
        extra: Extra flags per trainer (``clip``, ``clip-v2``, ``clap``, ``llava``), appended.
    """

    jobs: int = 2
    lone_threads: int | None = None
    llava_tower: str = "clip"
    bf16: bool = False
    tiny: bool = False
    extra: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.jobs < 1 or (self.lone_threads is not None and self.lone_threads < 1):
            raise ConfigError("jobs and lone_threads must be >= 1")
        if self.llava_tower not in ("v2", "clip") and not Path(self.llava_tower).is_file():
            raise ConfigError(
                f"llava_tower must be 'v2', 'clip' or an open_clip weights file, "
                f"got {self.llava_tower!r}"
            )


@dataclass(frozen=True)
class Task:
    """One process of the kit: a corpus or a trainer (``threads``: it takes ``--threads``)."""

    name: str
    argv: tuple[str, ...]
    deps: tuple[str, ...] = ()
    threads: bool = False


def _corpus(name: str, out: Path, n: int, seed: int, *flags: str) -> Task:
    argv = ("-m", "luma_rag.datasets.shapes", "--out", str(out), "--n", str(n), "--seed", str(seed))
    return Task(f"corpus:{name}", (*argv, *flags))


def plan(cfg: KitConfig, data: Path, out: Path) -> list[Task]:
    """The kit's tasks, each after the tasks it needs (corpora that exist are left out)."""
    if cfg.tiny:
        corpora = [_corpus("tiny", data / "tiny", 96, 5, "--audio")]
        images = audio = [data / "tiny"]
    else:
        corpora = [
            _corpus("clip_shapes16k", data / "clip_shapes16k", 16000, 0),
            _corpus("shapes2k", data / "shapes2k", 2000, 0, "--audio", "--video"),
            _corpus("clap_a", data / "clap_a", 4000, 11, "--audio"),
            _corpus("clap_b", data / "clap_b", 3000, 12, "--audio", "--video",
                    "--video-format", "gif"),
        ]  # fmt: skip
        images, audio = (
            [data / "clip_shapes16k"],
            [data / d for d in ("shapes2k", "clap_a", "clap_b")],
        )
    corpora = [t for t in corpora if not (Path(t.argv[3]) / "manifest.jsonl").is_file()]
    made = {Path(t.argv[3]): t.name for t in corpora}
    needs = lambda dirs: tuple(made[d] for d in dirs if d in made)  # noqa: E731

    def trainer(name: str, module: str, dirs: list[Path], dst: str, flags: Sequence[str],
                deps: tuple[str, ...] = ()) -> Task:  # fmt: skip
        argv = [
            "-m",
            f"luma_rag.training.{module}",
            "--data",
            *map(str, dirs),
            "--out",
            str(out / dst),
        ]
        argv += [*flags, *(_TINY[name.split("-")[0]] if cfg.tiny else ())]
        argv += [*(["--bf16"] if cfg.bf16 else []), *cfg.extra.get(name, ())]
        return Task(name, tuple(argv), (*needs(dirs), *deps), threads=True)

    # Order = priority among ready tasks: the image corpus, the CLIPs and the LLaVA (the long
    # chain) before the spoken corpora, which are only needed once the CLIP is done.
    clip_file = out / "luma-tiny-clip" / _CLIP_FILE
    first = [t for t in corpora if t.name == "corpus:clip_shapes16k"]
    tasks = [*first]
    tower, tower_deps = Path(cfg.llava_tower), tuple[str, ...]()
    if cfg.llava_tower == "v2":
        tasks.append(trainer("clip-v2", "train_clip", images, "clip-v2", _CLIP_V2))
        tower, tower_deps = out / "clip-v2" / _CLIP_FILE, ("clip-v2",)
    elif cfg.llava_tower == "clip":
        tower, tower_deps = clip_file, ("clip",)
    tasks.append(trainer("clip", "train_clip", images, "luma-tiny-clip", _CLIP_V4))
    llava = (*_LLAVA, "--clip-weights", str(tower))
    tasks.append(trainer("llava", "train_llava", images, "luma-tiny-llava", llava, tower_deps))
    tasks += [t for t in corpora if t not in first]
    anchor = ("--anchor-weights", str(clip_file))
    tasks.append(
        trainer("clap", "train_clap", audio, "luma-tiny-clap", (*_CLAP, *anchor), ("clip",))
    )
    return tasks


@dataclass
class _Running:
    task: Task
    proc: subprocess.Popen[bytes]
    threads: int
    started: float
    log: Any


def _launch(task: Task, threads: int, logs: Path, t0: float) -> _Running:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    argv = [sys.executable, *task.argv, *(["--threads", str(threads)] if task.threads else [])]
    log = (logs / f"{task.name.replace(':', '-')}.log").open("wb")
    logger.info("kit: start %s (%d thread(s)) at %.0f s", task.name, threads, time.time() - t0)
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    return _Running(task, proc, threads, time.time(), log)


def run_tasks(
    tasks: Sequence[Task], jobs: int, lone_threads: int | None, logs: Path
) -> tuple[dict[str, dict[str, Any]], list[Task]]:
    """Run ``tasks`` as processes, up to ``jobs`` at once, each once its ``deps`` are done.

    A task gets one thread while another runs or waits to run, ``lone_threads`` (default
    ``jobs``) when it runs alone. After a failure nothing new starts.

    Returns:
        ``(done, not run)``: per finished task its command, deps, threads, ``start_s``,
        ``wall_s``, ``cpu_s`` (``os.wait4``: the process and its reaped children),
        ``returncode`` and log; the tasks never started.
    """
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pending = list(tasks)
    running: dict[int, _Running] = {}
    done: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    while pending or running:
        ready = [t for t in pending if all(d in done for d in t.deps)] if not failed else []
        while ready and len(running) < jobs:
            task = ready.pop(0)
            pending.remove(task)
            alone = not running and not ready
            threads = (lone_threads or jobs) if alone else 1
            r = _launch(task, threads, logs, t0)
            running[r.proc.pid] = r
        if not running:
            break
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        r = running.pop(pid)
        r.log.close()
        code = os.waitstatus_to_exitcode(status)
        done[r.task.name] = {
            "command": ["python", *r.task.argv],
            "deps": list(r.task.deps),
            "threads": r.threads,
            "start_s": round(r.started - t0, 1),
            "wall_s": round(time.time() - r.started, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "returncode": code,
            "log": str(logs / f"{r.task.name.replace(':', '-')}.log"),
        }
        logger.info("kit: %s done: %s", r.task.name, json.dumps(done[r.task.name]))
        if code != 0:
            failed.append(r.task.name)
    return done, pending


def run_kit(data: str | Path, out: str | Path, cfg: KitConfig | None = None) -> dict[str, Any]:
    """Generate the missing corpora under ``data`` and train the kit into ``out``.

    Returns:
        The report written to ``out/kit.json``.

    Raises:
        LumaError: A task failed (its log is named; the report is written first).
    """
    cfg = cfg or KitConfig()
    data, out = Path(data), Path(out)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    tasks = plan(cfg, data, out)
    t0, load_start = time.time(), os.getloadavg()
    done, pending = run_tasks(tasks, cfg.jobs, cfg.lone_threads, logs)
    failed = [name for name, t in done.items() if t["returncode"] != 0]
    report = {
        "data": str(data),
        "out": str(out),
        "config": dataclasses.asdict(cfg),
        "machine": {"cpus": os.cpu_count(), "load_start": load_start, "load_end": os.getloadavg()},
        "tasks": done,
        "not_run": [t.name for t in pending],
        "total_wall_s": round(time.time() - t0, 1),
        "total_cpu_s": round(sum(float(t["cpu_s"]) for t in done.values()), 1),
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if failed or pending:
        names = failed or [t.name for t in pending]
        raise LumaError(f"kit task(s) {names} failed or never ran; see {logs}")
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m luma_rag.training.kit",
        description="Generate the corpora and train the whole tiny model kit (CPU).",
    )
    p.add_argument("--data", required=True, type=Path, help="corpus directory (made if missing)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--jobs", type=int, default=2, help="tasks at once (default 2)")
    p.add_argument("--lone-threads", type=int, default=None, help="threads of a lone task")
    p.add_argument(
        "--llava-tower",
        default=KitConfig.llava_tower,
        help=f"clip, v2, or a weights file (default {KitConfig.llava_tower})",
    )
    p.add_argument("--bf16", action="store_true", help="CPU bfloat16 autocast (not shipped)")
    p.add_argument("--tiny", action="store_true", help="tiny corpora, a few steps (wiring check)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = KitConfig(args.jobs, args.lone_threads, args.llava_tower, args.bf16, args.tiny)
        report = run_kit(args.data, args.out, cfg)
    except LumaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: report[k] for k in ("total_wall_s", "total_cpu_s")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
