"""``python -m luma_rag.app.time_to_serve``: seconds from ``make demo`` to its first HTTP 200.

Starts the demo (``python -m luma_rag.app.demo``) as a child process on a free
``127.0.0.1`` port, with a fresh store in a temporary directory unless ``--store`` names one
(``--store stores/demo`` times a second start), polls ``http://127.0.0.1:<port>/`` until
it answers 200, then stops the demo with SIGTERM (it closes its store) and prints::

    first HTTP 200 after 58.3 s wall, 17.9 CPU-s (demo process and its children)

CPU seconds are read from ``/proc/<pid>/stat`` at the first 200 (user + system of the demo's
threads and of its waited-for children, e.g. espeak-ng), so they are the demo's own work,
whatever else the machine runs. The demo's progress lines pass through on stderr. Arguments
after ``--`` go to the demo (default ``--threads 1``).

Exit status: 0 when the demo served, 1 when it exited first or ``--timeout`` passed.

Example::

    nice -n 19 python -m luma_rag.app.time_to_serve              # fresh store, --threads 1
    python -m luma_rag.app.time_to_serve --store stores/demo     # a second start
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Final

__all__ = ["free_port", "main", "process_cpu_seconds", "wait_for_200"]

logger = logging.getLogger(__name__)

_POLL_S: Final = 0.25


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` and its waited-for children (Linux
    ``/proc/<pid>/stat``); None where ``/proc`` is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def wait_for_200(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Poll ``url`` until it answers 200 (True), or ``proc`` exits / ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(_POLL_S)
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Time the demo's first HTTP 200 (module docstring); returns the exit status."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    demo_args = ["--threads", "1"]
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, demo_args = args_in[:cut], args_in[cut + 1 :]
    p = argparse.ArgumentParser(prog="python -m luma_rag.app.time_to_serve")
    p.add_argument("--store", type=Path, default=None, help="store (default: a fresh temp dir)")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after (600 s)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(args_in)
    with tempfile.TemporaryDirectory(prefix="luma-demo-time-") as tmp:
        store = args.store or Path(tmp) / "store"
        port = free_port()
        cmd = [sys.executable, "-m", "luma_rag.app.demo", "--store", os.fspath(store)]
        cmd += ["--host", "127.0.0.1", "--port", str(port), *demo_args]
        print(f"time_to_serve: {' '.join(cmd)}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd)
        try:
            served = wait_for_200(f"http://127.0.0.1:{port}/", proc, args.timeout)
            wall = time.monotonic() - t0
            cpu = process_cpu_seconds(proc.pid) if served else None
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    if not served:
        print(f"time_to_serve: no HTTP 200 after {wall:.1f} s (demo exit {proc.returncode})")
        return 1
    cpu_text = "n/a" if cpu is None else f"{cpu:.1f}"
    print(
        f"first HTTP 200 after {wall:.1f} s wall, {cpu_text} CPU-s (demo process and its "
        f"children); store {'fresh' if args.store is None else args.store}"
    )
    if args.json is not None:
        figures = {"wall_s": wall, "cpu_s": cpu, "fresh": args.store is None, "args": demo_args}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
