"""Video as CLIP over sampled frames: 1–3 fps through the image tower, pooled mean + max."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from luma_rag.encoders.base import Encoder
from luma_rag.errors import InvalidInputError

__all__ = ["encode_video"]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def encode_video(
    encoder: Encoder,
    clips: Sequence[str | os.PathLike[str]],
    *,
    fps: float = 2.0,
    max_frames: int = 16,
) -> np.ndarray:
    """Embed clips with an image encoder.

    Each clip's frames (sampled at ``fps``) go through ``encoder.encode_image``; the clip
    vector is the normalised sum of the normalised mean and the normalised element-wise max
    of the frame embeddings (mean keeps the content, max keeps what appears only briefly).

    Returns:
        float32 (len(clips), encoder.dim), unit rows.
    """
    from PIL import Image

    from luma_rag.media import sample_video_frames

    if isinstance(clips, (str, os.PathLike)) or len(clips) == 0:
        raise InvalidInputError("encode_video takes a non-empty list of clip paths")
    out = np.empty((len(clips), encoder.dim), dtype=np.float32)
    for i, clip in enumerate(clips):
        frames = sample_video_frames(clip, fps=fps, max_frames=max_frames)
        emb = encoder.encode_image([Image.fromarray(f) for f in frames])
        out[i] = _unit(_unit(emb.mean(axis=0)) + _unit(emb.max(axis=0)))
    return np.ascontiguousarray(out, dtype=np.float32)
