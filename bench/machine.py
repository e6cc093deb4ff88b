"""Machine description, memory bandwidth and resident-set size, for the results JSON."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["last_level_cache_bytes", "machine_info", "measure_bandwidth", "rss_bytes"]

_PACKAGES = (
    "numpy",
    "faiss-cpu",
    "langchain-community",
    "langchain-core",
    "llama-index-core",
    "luma-rag",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _parse_size(text: str) -> int | None:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip()
    try:
        if text and text[-1].upper() in units:
            return int(text[:-1]) * units[text[-1].upper()]
        return int(text)
    except ValueError:
        return None


def last_level_cache_bytes() -> int | None:
    """Size of the largest CPU cache seen by cpu0 (Linux sysfs), or ``None`` if unknown."""
    best: int | None = None
    for size_file in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            size = _parse_size(size_file.read_text(encoding="ascii"))
        except OSError:
            continue
        if size is not None and (best is None or size > best):
            best = size
    return best


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU, memory, OS and package versions of the machine the bench runs on."""
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    mem_total: int | None = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(affinity) if affinity is not None else None,
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "mem_total_bytes": mem_total,
        "llc_bytes": last_level_cache_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in _PACKAGES},
        "blas_threads_env": {
            key: os.environ[key]
            for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            if key in os.environ
        },
    }


def measure_bandwidth(megabytes: int = 512, repeats: int = 5) -> dict[str, float]:
    """Best-of-``repeats`` memory bandwidth over a buffer much larger than the caches.

    ``read`` times ``a.sum()`` (bytes read / s); ``copy`` times ``np.copyto(b, a)`` (bytes read
    plus written / s). ``bytes_per_s`` is the larger of the two, so the flat-scan floor derived
    from it is the lowest (most demanding) one.

    Args:
        megabytes: size of the source buffer in MiB.
        repeats: timed passes; the fastest counts.

    Returns:
        ``{"read_bytes_per_s", "copy_bytes_per_s", "bytes_per_s", "buffer_bytes"}``.
    """
    n = megabytes * (1 << 20) // 4
    a = np.ones(n, dtype=np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)  # fault every page in before timing
    read_s = copy_s = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a.sum()
        read_s = min(read_s, time.perf_counter() - t0)
        t0 = time.perf_counter()
        np.copyto(b, a)
        copy_s = min(copy_s, time.perf_counter() - t0)
    read_bw = a.nbytes / read_s
    copy_bw = 2 * a.nbytes / copy_s
    return {
        "read_bytes_per_s": read_bw,
        "copy_bytes_per_s": copy_bw,
        "bytes_per_s": max(read_bw, copy_bw),
        "buffer_bytes": float(a.nbytes),
    }


def rss_bytes() -> int | None:
    """Current resident-set size of this process (Linux ``/proc``), or ``None`` elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")
