"""Local servers (Milvus, SeaweedFS) start through a launcher, not a ``preexec_fn``: it sets the
server's library path only at exec and makes the server die with the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from luma_rag.backends.servers import _dying_with_parent

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
ROOT = Path(__file__).resolve().parents[2]


def test_launcher_execs_the_program_with_its_library_path_only() -> None:
    env = {**os.environ, "LUMA_EXEC_LD_LIBRARY_PATH": "/srv/lib", "LD_LIBRARY_PATH": "/usr/x"}
    script = 'printf "%s|%s" "$LD_LIBRARY_PATH" "${LUMA_EXEC_LD_LIBRARY_PATH-unset}"'
    out = subprocess.run(
        _dying_with_parent(["/bin/sh", "-c", script]), env=env, capture_output=True, check=True
    )
    assert out.stdout.decode() == "/srv/lib|unset"


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # killed, waiting for init to reap it


def test_server_dies_when_the_process_that_started_it_is_killed() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, time\n"
            "from luma_rag.backends.servers import _dying_with_parent\n"
            "p = subprocess.Popen(_dying_with_parent(['/bin/sleep', '120']))\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 20
        while b"sleep" not in Path(f"/proc/{child}/cmdline").read_bytes():  # until it has exec'd
            assert time.monotonic() < deadline, "the launcher never became the server"
            time.sleep(0.05)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while not _gone(child):
            assert time.monotonic() < deadline, "the server outlived the process that started it"
            time.sleep(0.05)
    finally:
        parent.kill()
        if not _gone(child):
            os.kill(child, signal.SIGKILL)
