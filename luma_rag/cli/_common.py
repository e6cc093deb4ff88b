"""What every ``luma`` subcommand shares: the store path, recorded encoders, output helpers."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from luma_rag._json import to_jsonable
from luma_rag.errors import InvalidInputError

__all__ = [
    "DEFAULT_AUDIO_MODEL",
    "DEFAULT_MODEL",
    "DEFAULT_STORE",
    "ENCODERS_FILE",
    "ENV_STORE",
    "Progress",
    "clip",
    "error",
    "human",
    "num",
    "pick_model",
    "positive_int",
    "print_json",
    "print_table",
    "record_encoders",
    "recorded_encoders",
    "require_store",
    "short_path",
    "status",
    "store_path",
    "yes",
]

#: Environment variable naming the default store.
ENV_STORE: Final = "LUMA_STORE"
DEFAULT_STORE: Final = "luma-store"
DEFAULT_MODEL: Final = "luma-tiny"
DEFAULT_AUDIO_MODEL: Final = "luma-tiny-clap"
#: File in the store where ``luma ingest`` records the encoders it used (the query default).
ENCODERS_FILE: Final = "luma-cli.json"


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


# -- store helpers -------------------------------------------------------------------------------
def store_path(args: argparse.Namespace) -> Path:
    """``--store``, else ``$LUMA_STORE``, else ``./luma-store``."""
    if args.store is not None:
        return Path(args.store)
    return Path(os.environ.get(ENV_STORE) or DEFAULT_STORE)


def require_store(path: Path) -> None:
    """Refuse a path that holds no store (Luma.open would create one)."""
    if not (path / "config.json").is_file():
        raise InvalidInputError(
            f"no LUMA store at {path}; create one with `luma ingest DIR --store {path}`, "
            f"or point --store (or ${ENV_STORE}) at an existing store"
        )


def recorded_encoders(path: Path) -> dict[str, str | None]:
    """The encoders ``luma ingest`` recorded in the store (empty when none)."""
    try:
        data = json.loads((path / ENCODERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_encoders(path: Path, model: str, audio_model: str | None) -> None:
    """Record the encoders an ingest used (atomically; unchanged records are not rewritten)."""
    recorded = recorded_encoders(path)
    data = {"model": model, "audio_model": audio_model or recorded.get("audio_model")}
    if data != recorded:
        tmp = path / (ENCODERS_FILE + ".tmp")
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, path / ENCODERS_FILE)


def pick_model(given: str | None, recorded: str | None, default: str, path: Path) -> str:
    """The model to use: given, else recorded, else default; warns when given != recorded."""
    if given and recorded and given != recorded:
        print(
            f"warning: the store at {path} was ingested with {recorded!r}; vectors from "
            f"{given!r} live in another space unless it is the same model",
            file=sys.stderr,
        )
    return given or recorded or default


# -- progress and status ---------------------------------------------------------------------------
#: Seconds between two plain progress lines when stderr is not a terminal.
PLAIN_EVERY_S: Final = 2.0
#: A phase that took longer than this gets a "done in N s" line.
SLOW_PHASE_S: Final = 1.0


class Progress:
    """Progress on stderr: a bar on a terminal (tqdm when installed, else one rewritten line),
    plain ``label done/total`` lines elsewhere (at most one per :data:`PLAIN_EVERY_S` seconds,
    and the last). Nothing with ``enabled=False`` (``--quiet``)."""

    def __init__(self, total: int, label: str, *, enabled: bool) -> None:
        self.total, self.label, self.done = total, label, 0
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self._bar: Any = None
        self._last = time.monotonic()
        if self.tty:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, desc=label, unit="file", file=sys.stderr, leave=False)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.tty and self.done:
            print(file=sys.stderr)

    def advance(self, n: int) -> None:
        """Count ``n`` more files as done."""
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
        elif self.tty:
            print(f"\r{self.label} {self.done}/{self.total}", end="", file=sys.stderr, flush=True)
        elif self.done >= self.total or time.monotonic() - self._last >= PLAIN_EVERY_S:
            self._last = time.monotonic()
            print(f"{self.label} {self.done}/{self.total}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def status(label: str, *, enabled: bool) -> Iterator[None]:
    """Say on stderr what is about to happen (``luma: LABEL ...``); when it took longer than
    :data:`SLOW_PHASE_S`, say how long. Nothing with ``enabled=False`` (``--quiet``)."""
    if enabled:
        print(f"luma: {label} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    if enabled and seconds > SLOW_PHASE_S:
        print(f"luma: {label}: done in {seconds:.1f} s", file=sys.stderr, flush=True)


# -- output helpers ------------------------------------------------------------------------------
def error(message: str) -> None:
    """``luma: error: MESSAGE`` on stderr."""
    print(f"luma: error: {message}", file=sys.stderr)


def print_json(value: Any) -> None:
    """One JSON document on stdout (NaN / inf as null, numpy values as Python values)."""
    print(json.dumps(to_jsonable(value), ensure_ascii=False, indent=2))


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain aligned table on stdout."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def clip(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def short_path(source: str) -> str:
    """``source`` relative to the working directory when it is under it."""
    try:
        return Path(source).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return source


def num(value: float | None) -> str:
    """A number with 4 decimals, or n/a."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def yes(flag: bool) -> str:
    """yes / no."""
    return "yes" if flag else "no"


def human(key: str, value: Any) -> str:
    """A stats value for people: sizes in KiB / MiB / GiB, numbers with 4 decimals."""
    if key.endswith("_bytes") and isinstance(value, int):
        size = float(value)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if size < 1024 or unit == "GiB":
                return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            size /= 1024
    if isinstance(value, float):
        return num(value)
    return "-" if value is None else str(value)
