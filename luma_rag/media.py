"""Safe media loading at the library boundary: images, video frames (audio: the CLAP backend).

Bad media raise :class:`~luma_rag.errors.UnsupportedMediaError` (or
:class:`~luma_rag.errors.MissingDependencyError`) before anything is written to a store.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from luma_rag.encoders._images import load_image
from luma_rag.errors import InvalidInputError, UnsupportedMediaError

__all__ = [
    "AUDIO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "guess_modality",
    "load_image",
    "sample_video_frames",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3"})
VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif"})


def guess_modality(path: str | os.PathLike[str]) -> str:
    """'image', 'audio' or 'video' from a file suffix; InvalidInputError if unknown."""
    suffix = Path(path).suffix.lower()
    for name, suffixes in (
        ("image", IMAGE_SUFFIXES),
        ("audio", AUDIO_SUFFIXES),
        ("video", VIDEO_SUFFIXES),
    ):
        if suffix in suffixes:
            return name
    raise InvalidInputError(
        f"cannot tell the modality of {os.fspath(path)!r} from its suffix {suffix!r}; "
        f"pass modality='image' | 'audio' | 'video'"
    )


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
    from luma_rag.datasets.video import read_video

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
