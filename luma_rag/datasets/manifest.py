"""The LUMA-Shapes manifest: one :class:`ShapeItem` per JSON line of ``manifest.jsonl``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from luma_rag.datasets.attributes import ShapeAttributes
from luma_rag.datasets.speech import SpeechParams
from luma_rag.datasets.splits import SPLITS, Split
from luma_rag.errors import InvalidInputError

__all__ = ["MANIFEST", "ShapeItem", "load_manifest"]

#: File name of the manifest inside a corpus directory.
MANIFEST: Final = "manifest.jsonl"


@dataclass(frozen=True)
class ShapeItem:
    """One manifest line.

    Attributes:
        id: "shape-000123".
        image: PNG path relative to the corpus directory.
        caption: Primary caption (the one spoken in ``audio``).
        captions: 3-5 paraphrases of the same content, ``captions[0] == caption``.
        audio: WAV path relative to the corpus directory, or ``None``.
        video: Clip path relative to the corpus directory, or ``None``.
        split: "train", "val" or "test".
        attributes: What the item shows.
        speech: espeak-ng voice, rate and pitch of ``audio``, or ``None``.
        audio_seconds: Length of ``audio`` in seconds, or ``None``.
        video_fps: Frame rate of ``video``, or ``None``.
        video_frames: Frame count of ``video``, or ``None``.
        root: Corpus directory the relative paths start from (not compared).
    """

    id: str
    image: str
    caption: str
    captions: tuple[str, ...]
    audio: str | None
    video: str | None
    split: Split
    attributes: ShapeAttributes
    speech: SpeechParams | None = None
    audio_seconds: float | None = None
    video_fps: int | None = None
    video_frames: int | None = None
    root: Path = field(default=Path("."), compare=False)

    @property
    def image_path(self) -> Path:
        """Absolute-or-root-relative path of the PNG."""
        return self.root / self.image

    @property
    def audio_path(self) -> Path | None:
        """Path of the WAV, or ``None``."""
        return None if self.audio is None else self.root / self.audio

    @property
    def video_path(self) -> Path | None:
        """Path of the clip, or ``None``."""
        return None if self.video is None else self.root / self.video

    def to_record(self) -> dict[str, Any]:
        """Return the manifest line as a dict (fixed key order)."""
        return {
            "id": self.id,
            "split": self.split,
            "image": self.image,
            "caption": self.caption,
            "captions": list(self.captions),
            "audio": self.audio,
            "video": self.video,
            "attributes": self.attributes.as_dict(),
            "speech": None if self.speech is None else dataclasses.asdict(self.speech),
            "audio_seconds": self.audio_seconds,
            "video_fps": self.video_fps,
            "video_frames": self.video_frames,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], root: Path = Path(".")) -> ShapeItem:
        """Build from a manifest line; raises :class:`InvalidInputError` on a bad schema."""
        required = ("id", "split", "image", "caption", "captions", "audio", "video", "attributes")
        missing = [k for k in required if k not in record]
        if missing:
            raise InvalidInputError(f"manifest record lacks {missing}")
        if record["split"] not in SPLITS:
            raise InvalidInputError(f"split {record['split']!r} is not one of {list(SPLITS)}")
        speech = record.get("speech")
        return cls(
            id=str(record["id"]),
            image=str(record["image"]),
            caption=str(record["caption"]),
            captions=tuple(str(c) for c in record["captions"]),
            audio=record["audio"],
            video=record["video"],
            split=record["split"],
            attributes=ShapeAttributes.from_dict(record["attributes"]),
            speech=None if speech is None else SpeechParams(**speech),
            audio_seconds=record.get("audio_seconds"),
            video_fps=record.get("video_fps"),
            video_frames=record.get("video_frames"),
            root=root,
        )


def load_manifest(path: str | Path) -> list[ShapeItem]:
    """Read a corpus written by :func:`luma_rag.datasets.shapes.generate`.

    Args:
        path: ``manifest.jsonl`` or the corpus directory holding it.

    Returns:
        Items in manifest order, their ``root`` set to the manifest's directory.

    Raises:
        InvalidInputError: The file is missing or a line is not a valid record.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST
    if not p.is_file():
        raise InvalidInputError(
            f"no LUMA-Shapes manifest at {p}; generate one with "
            "`python -m luma_rag.datasets.shapes --out DIR --n N`"
        )
    items = []
    with p.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                items.append(ShapeItem.from_record(json.loads(line), root=p.parent))
            except (json.JSONDecodeError, TypeError, InvalidInputError) as e:
                raise InvalidInputError(f"{p}:{number}: bad manifest line ({e})") from e
    return items
