"""Safe media loading at the library boundary: every decoder, resampler and guard.

* :mod:`luma_rag.media.image` — images: EXIF stripped, max side 1024, decompression-bomb guard.
* :mod:`luma_rag.media.audio` — audio: mono float32, resampled to what the encoder wants.
* :mod:`luma_rag.media.video` — video: decoding and 1–3 fps frame sampling.

Encoders and the synthetic corpus call this package, never the reverse. Bad media raise
:class:`~luma_rag.errors.UnsupportedMediaError` (or
:class:`~luma_rag.errors.MissingDependencyError`) before anything is written to a store.
"""

from __future__ import annotations

import os
from pathlib import Path

from luma_rag.errors import InvalidInputError
from luma_rag.media.audio import MAX_SECONDS, AudioSource, load_audio, resample
from luma_rag.media.image import MAX_PIXELS, MAX_SIDE, ImageInput, load_image
from luma_rag.media.video import read_video, sample_video_frames

__all__ = [
    "AUDIO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "MAX_SECONDS",
    "MAX_SIDE",
    "VIDEO_SUFFIXES",
    "AudioSource",
    "ImageInput",
    "guess_modality",
    "load_audio",
    "load_image",
    "read_video",
    "resample",
    "sample_video_frames",
]

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
