"""Start-up progress for the demo: one stamped line per phase and per batch, and the timings.

Every line goes to stderr as ``demo: [  12.3 s] ingest images 64/300`` — the seconds since
the demo started — so a start-up is never silent for long, with or without a terminal (plain
lines, no carriage returns). :meth:`Phases.table` gives the time each phase took (printed by
``--timings``): wall-clock seconds and CPU seconds (the process's threads and its children),
so a start-up timed on a busy shared machine can still be read — wall time there says more
about the neighbours than about the demo.

Example:
    >>> phases = Phases()
    >>> with phases.phase("load CLIP", "luma-tiny"):
    ...     encoder = get_encoder("luma-tiny")
    >>> print(phases.table())
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["Phases", "cpu_seconds"]

logger = logging.getLogger(__name__)


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process, all threads, and of its waited-for
    children (e.g. espeak-ng speaking the captions)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Phases:
    """Times named phases from one start and prints a stamped line as each begins and ends.

    Args:
        prefix: What every line starts with (``"demo"``).
        stream: Where lines go (default: ``sys.stderr`` at the time of each line).
        clock: Seconds, monotonic (``time.perf_counter``).
        cpu_clock: CPU seconds of this process and its finished children (:func:`cpu_seconds`).
    """

    def __init__(
        self,
        prefix: str = "demo",
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] | None = None,
    ) -> None:
        self.prefix = prefix
        self._stream = stream
        self._clock = clock
        self._cpu_clock = cpu_clock or cpu_seconds
        self.start = clock()
        self.cpu_start = self._cpu_clock()
        #: ``(phase, wall seconds, CPU seconds)`` in the order the phases ended.
        self.records: list[tuple[str, float, float]] = []

    @property
    def elapsed(self) -> float:
        """Seconds since this object was made."""
        return self._clock() - self.start

    def say(self, message: str) -> None:
        """Print ``<prefix>: [  t s] message`` and flush it."""
        stream = self._stream or sys.stderr
        print(f"{self.prefix}: [{self.elapsed:6.1f} s] {message}", file=stream, flush=True)

    @contextmanager
    def phase(self, name: str, detail: str = "") -> Iterator[None]:
        """Announce ``name`` (and ``detail``), time the block, report its seconds at the end.

        A phase that raises is recorded too (its line says it failed).
        """
        self.say(f"{name}{f' ({detail})' if detail else ''} ...")
        t0, c0 = self._clock(), self._cpu_clock()
        ok = False
        try:
            yield
            ok = True
        finally:
            seconds, cpu = self._clock() - t0, self._cpu_clock() - c0
            self.records.append((name, seconds, cpu))
            self.say(f"{name}: {'done' if ok else 'failed'} in {seconds:.1f} s (CPU {cpu:.1f} s)")

    @contextmanager
    def counter(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        """A progress counter: yields ``advance(n)``, which prints ``label done/total``."""
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            self.say(f"{label} {done}/{total}")

        yield advance

    def table(self) -> str:
        """The phases' timings: wall and CPU seconds each, the wall share, then the total."""
        total, cpu_total = self.elapsed, self._cpu_clock() - self.cpu_start
        lines = [f"{'phase':<28} {'wall s':>8} {'CPU s':>8} {'share':>6}"]
        for name, seconds, cpu in self.records:
            share = seconds / total if total > 0 else 0.0
            lines.append(f"{name:<28} {seconds:8.1f} {cpu:8.1f} {share:6.1%}")
        wall_in = sum(r[1] for r in self.records)
        cpu_in = sum(r[2] for r in self.records)
        lines.append(
            f"{'(between phases)':<28} {max(total - wall_in, 0.0):8.1f} "
            f"{max(cpu_total - cpu_in, 0.0):8.1f}"
        )
        lines.append(f"{'total until serving':<28} {total:8.1f} {cpu_total:8.1f}")
        return "\n".join(lines)
