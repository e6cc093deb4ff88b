"""Short clips: MP4 (H.264 through PyAV's bundled FFmpeg) or animated GIF (Pillow).

MP4 is written with x264 on one thread, without macroblock-tree rate control, with explicit
timestamps and FFmpeg's ``bitexact`` flag, so the same frames give the same bytes with the same
PyAV build. PyAV (``pip install av``) ships its own FFmpeg and
libx264 in the wheel; no system FFmpeg is needed. GIF needs only Pillow and is lossless up to
its 256-colour palette, but stores frame delays in whole centiseconds (8 fps reads back as
8.33); the manifest keeps the nominal rate. Decoding lives in :mod:`luma_rag.media.video`
(``read_video`` is re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

import numpy as np

from luma_rag.errors import InvalidInputError, MissingDependencyError
from luma_rag.media.video import read_video

__all__ = ["VIDEO_FORMATS", "VideoFormat", "read_video", "require_av", "write_video"]

VideoFormat = Literal["mp4", "gif"]
VIDEO_FORMATS: Final[tuple[VideoFormat, ...]] = ("mp4", "gif")
# x264 gave different bytes for the same frames (same process, one thread) unless all of:
# its own thread pool off, explicit timestamps, and macroblock-tree rate control and lookahead
# off. Measured with PyAV 18.1 / x264 core 165; tests/unit/test_shapes_dataset.py checks it.
_X264_OPTIONS: Final = {
    "crf": "18",
    "preset": "veryfast",
    "threads": "1",
    "x264-params": "mbtree=0:rc-lookahead=0:sync-lookahead=0",
}


def require_av() -> None:
    """Raise :class:`MissingDependencyError` unless PyAV can be imported."""
    try:
        import av  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(
            "PyAV is required to write MP4 clips; install it with "
            "`pip install 'luma-rag[datasets]'` (or `pip install av`), "
            "or pass video_format='gif' (--video-format gif)"
        ) from e


def _check_frames(frames: Sequence[np.ndarray]) -> tuple[int, int]:
    if not frames:
        raise InvalidInputError("a clip needs at least one frame")
    shape = frames[0].shape
    if len(shape) != 3 or shape[2] != 3 or any(f.shape != shape for f in frames):
        raise InvalidInputError(f"frames must all be (h, w, 3) uint8; got {shape} first")
    return int(shape[0]), int(shape[1])


def write_video(
    path: str | Path, frames: Sequence[np.ndarray], fps: int, fmt: VideoFormat = "mp4"
) -> None:
    """Write ``frames`` as a clip.

    Args:
        path: Destination file (its suffix is not checked).
        frames: ``F`` arrays of shape ``(h, w, 3)`` uint8 RGB; ``h`` and ``w`` even for MP4.
        fps: Frames per second.
        fmt: "mp4" (H.264, yuv420p, CRF 18) or "gif".

    Raises:
        InvalidInputError: No frames, ragged frames, or odd sizes for MP4.
        MissingDependencyError: PyAV (MP4) or Pillow (GIF) is not installed.
    """
    h, w = _check_frames(frames)
    if fmt == "mp4":
        if h % 2 or w % 2:
            raise InvalidInputError(f"MP4 (yuv420p) needs even frame sizes, got {w}x{h}")
        _write_mp4(Path(path), frames, fps, w, h)
    elif fmt == "gif":
        _write_gif(Path(path), frames, fps)
    else:
        raise InvalidInputError(f"video format must be one of {list(VIDEO_FORMATS)}, got {fmt!r}")


def _write_mp4(path: Path, frames: Sequence[np.ndarray], fps: int, w: int, h: int) -> None:
    require_av()
    import av

    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.codec_context.options = dict(_X264_OPTIONS)
        for pts, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            frame.pts = pts
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _write_gif(path: Path, frames: Sequence[np.ndarray], fps: int) -> None:
    from luma_rag.datasets.render import require_pillow

    require_pillow()
    from PIL import Image

    images = [Image.fromarray(np.ascontiguousarray(f, dtype=np.uint8)) for f in frames]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
        optimize=False,
    )
