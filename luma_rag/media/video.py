"""Safe video decoding: MP4/WebM/... through PyAV, animated GIF through Pillow; frame sampling.

:func:`read_video` decodes every frame of a clip; :func:`sample_video_frames` keeps frames at
about ``fps`` per second (1–3 fps is typical for CLIP over video). Bad media raise
:class:`~luma_rag.errors.UnsupportedMediaError`, a missing decoder
:class:`~luma_rag.errors.MissingDependencyError`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from luma_rag.errors import InvalidInputError, MissingDependencyError, UnsupportedMediaError

__all__ = ["read_video", "sample_video_frames"]

logger = logging.getLogger(__name__)


def _require(module: str, what: str) -> None:
    try:
        __import__(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"{what} is required to decode this clip; install it with "
            "`pip install 'luma-rag[datasets]'` (PyAV and Pillow)"
        ) from e


def read_video(path: str | os.PathLike[str]) -> tuple[float, np.ndarray]:
    """Decode a clip (MP4/WebM/... through PyAV, or GIF through Pillow, told apart by suffix).

    Args:
        path: Clip file.

    Returns:
        ``(fps, frames)`` with ``frames`` a ``(F, h, w, 3)`` uint8 RGB array.

    Raises:
        UnsupportedMediaError: The file cannot be decoded or has no frames.
        MissingDependencyError: PyAV (MP4) or Pillow (GIF) is not installed.
    """
    p = Path(path)
    if p.suffix.lower() == ".gif":
        _require("PIL", "Pillow")
        from PIL import Image, ImageSequence

        try:
            with Image.open(p) as im:
                duration = float(im.info.get("duration", 125)) or 125.0
                frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
        except OSError as e:
            raise UnsupportedMediaError(f"{p}: not a readable GIF ({e})") from e
        return 1000.0 / duration, np.stack(frames)
    _require("av", "PyAV")
    import av

    try:
        with av.open(str(p)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 0)
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except (av.FFmpegError, IndexError) as e:
        raise UnsupportedMediaError(f"{p}: not a readable video ({e})") from e
    if not decoded:
        raise UnsupportedMediaError(f"{p}: the video has no frames")
    return fps, np.stack(decoded)


def sample_video_frames(
    path: str | os.PathLike[str], *, fps: float = 2.0, max_frames: int = 16
) -> list[np.ndarray]:
    """Decode a clip and keep frames at about ``fps`` frames per second (1–3 fps is typical).

    Args:
        path: a video file (MP4/WebM/... through PyAV, or an animated GIF).
        fps: sampling rate; at least one frame is always kept.
        max_frames: cap on the frames returned (evenly spread).

    Returns:
        A list of (h, w, 3) uint8 RGB frames.

    Raises:
        UnsupportedMediaError: missing file, undecodable data, or no frames.
    """
    if not (0 < fps <= 30):
        raise InvalidInputError(f"fps must be in (0, 30], got {fps}")
    p = Path(path)
    if not p.is_file():
        raise UnsupportedMediaError(f"video {os.fspath(p)!r} does not exist or is not a file")
    if p.stat().st_size == 0:
        raise UnsupportedMediaError(f"video {os.fspath(p)!r} is empty")
    try:
        native_fps, frames = read_video(p)
    except UnsupportedMediaError:
        raise
    except (OSError, ValueError, RuntimeError) as e:
        raise UnsupportedMediaError(f"video {os.fspath(p)!r} could not be decoded: {e}") from e
    if len(frames) == 0:
        raise UnsupportedMediaError(f"video {os.fspath(p)!r} has no decodable frames")
    native = native_fps if native_fps and np.isfinite(native_fps) else 8.0
    step = max(1, round(native / fps))
    idx = np.arange(0, len(frames), step)
    if len(idx) > max_frames:
        idx = idx[np.linspace(0, len(idx) - 1, max_frames).round().astype(int)]
    return [np.ascontiguousarray(frames[i]) for i in idx]
