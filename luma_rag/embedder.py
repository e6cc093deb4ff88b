"""Turning media into store vectors: which encoder embeds what, and what crosses the bridge.

The engine stores CLIP-space vectors. Text, images and video go through the CLIP encoder
(video: sampled frames, pooled); audio goes through the CLAP encoder and is marked
``bridged`` so the engine projects it with the CLAP→CLIP bridge. Captions that come with an
item give the bridge its training pairs: (CLAP-text(caption), CLIP-text(caption)) as in the
paper, and (CLAP-audio(clip), CLIP-text(caption)) when the item is audio.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from luma_rag.encoders.base import Encoder
from luma_rag.errors import ConfigError, InvalidInputError, UnsupportedMediaError

__all__ = ["Embedded", "MediaEmbedder"]

logger = logging.getLogger(__name__)

MediaPath = str | os.PathLike[str]


@dataclass(frozen=True)
class Embedded:
    """One item or query, embedded.

    Attributes:
        vector: float32 (d,) unit vector, in CLIP space, or in CLAP space when ``bridged``.
        modality: "text" | "image" | "audio" | "video".
        source: the media file it came from (None for text).
        bridged: True when ``vector`` is in the CLAP space and must cross the bridge.
        pairs: (clap, clip) float32 arrays (n, d_clap), (n, d_clip) for the bridge; may be empty.
    """

    vector: np.ndarray
    modality: str
    source: str | None
    bridged: bool
    pairs: tuple[np.ndarray, np.ndarray] | None


class MediaEmbedder:
    """Embeds one input of any supported modality with the attached encoders."""

    def __init__(
        self,
        encoder: Encoder,
        audio_encoder: Encoder | None = None,
        *,
        video_fps: float = 2.0,
    ) -> None:
        self.encoder = encoder
        self.audio_encoder = audio_encoder
        self.video_fps = video_fps

    @property
    def dim(self) -> int:
        """Dimension of the store space (the CLIP encoder's)."""
        return int(self.encoder.dim)

    def embed(
        self,
        *,
        text: str | None = None,
        image: MediaPath | None = None,
        audio: MediaPath | None = None,
        video: MediaPath | None = None,
        caption: str | None = None,
        with_pairs: bool = False,
    ) -> Embedded:
        """Embed exactly one of text / image / audio / video (``caption`` feeds the bridge).

        One pass per encoder: by default (queries) only the encoder the input needs runs;
        ``with_pairs=True`` (ingest) adds the caption's bridge pairs, and a text item's own CLIP
        vector is its bridge target (it is not encoded twice).
        """
        given = {
            k: v
            for k, v in (("text", text), ("image", image), ("audio", audio), ("video", video))
            if v is not None
        }
        if len(given) != 1:
            raise InvalidInputError(
                f"pass exactly one of text=, image=, audio=, video= (got {sorted(given) or 'none'})"
            )
        if caption is not None and (not isinstance(caption, str) or not caption.strip()):
            raise InvalidInputError("caption must be a non-empty string")
        modality, value = next(iter(given.items()))
        if modality == "text":
            if not isinstance(value, str) or not value.strip():
                raise InvalidInputError("text must be a non-empty string")
            vec = self.encoder.encode_text([value])[0]
            if not with_pairs or self.audio_encoder is None:
                return Embedded(vec, "text", None, False, None)
            if caption is None or caption == value:  # the item's vector is the CLIP side
                clap_text = self.audio_encoder.encode_text([value])
                return Embedded(vec, "text", None, False, (clap_text, vec[None, :]))
            return Embedded(vec, "text", None, False, self._caption_pairs(caption))
        path = _existing_file(value, modality)
        if modality == "image":
            vec = self.encoder.encode_image([path])[0]
            pairs = self._caption_pairs(caption) if with_pairs else None
            return Embedded(vec, "image", str(path), False, pairs)
        if modality == "video":
            from luma_rag.encoders.video import encode_video

            vec = encode_video(self.encoder, [path], fps=self.video_fps)[0]
            pairs = self._caption_pairs(caption) if with_pairs else None
            return Embedded(vec, "video", str(path), False, pairs)
        clap = self._need_audio()
        vec = clap.encode_audio([path])[0]
        pairs = self._caption_pairs(caption) if with_pairs else None
        if caption is not None and pairs is not None:
            clip_caption = pairs[1][:1]
            pairs = (np.vstack([pairs[0], vec[None, :]]), np.vstack([pairs[1], clip_caption]))
        return Embedded(vec, "audio", str(path), True, pairs)

    def _caption_pairs(self, caption: str | None) -> tuple[np.ndarray, np.ndarray] | None:
        if caption is None or self.audio_encoder is None:
            return None
        return self.audio_encoder.encode_text([caption]), self.encoder.encode_text([caption])

    def _need_audio(self) -> Encoder:
        if self.audio_encoder is None:
            raise ConfigError(
                "audio needs an audio encoder: open the store with audio_encoder='luma-tiny-clap' "
                "(or the production 'laion/clap-htsat-unfused')"
            )
        return self.audio_encoder


def _existing_file(value: object, modality: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidInputError(f"{modality}= takes a file path, got {type(value).__name__}")
    path = Path(value)
    if not path.is_file():
        raise UnsupportedMediaError(f"{modality} file {os.fspath(path)!r} does not exist")
    return path
