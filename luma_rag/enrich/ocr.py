"""Words written in images, read with RapidOCR (PP-OCR ONNX models shipped in its wheel).

``rapidocr-onnxruntime`` carries its detection / recognition models inside the package, so
reading works offline; a missing package raises
:class:`~luma_rag.errors.MissingDependencyError` naming the ``ocr`` extra.

Example:
    >>> RapidOcrReader().read("sign.png")
    'harbor'
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luma_rag._config import ConfigBase, check
from luma_rag.errors import MissingDependencyError, UnsupportedMediaError

__all__ = ["OcrConfig", "RapidOcrReader"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OcrConfig(ConfigBase):
    """Settings of :class:`RapidOcrReader`.

    Attributes:
        min_confidence: Text boxes recognised with less confidence are dropped.
        threads: ONNX Runtime intra-op threads.
    """

    min_confidence: float = 0.5
    threads: int = 1

    def __post_init__(self) -> None:
        check(0.0 <= self.min_confidence <= 1.0, "min_confidence must be in [0, 1]")
        check(isinstance(self.threads, int) and self.threads >= 1, "threads must be >= 1")


class RapidOcrReader:
    """Reads the text in an image file; thread-safe."""

    name = "rapidocr"

    def __init__(self, config: OcrConfig | None = None) -> None:
        """Configure; the models load on the first :meth:`read`."""
        self.config = config if config is not None else OcrConfig()
        self._engine: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as e:
                raise MissingDependencyError.for_extra("rapidocr-onnxruntime", "ocr") from e
            n = self.config.threads
            self._engine = RapidOCR(intra_op_num_threads=n, inter_op_num_threads=n)
        return self._engine

    def extract(self, path: str | os.PathLike[str]) -> str:
        """Alias of :meth:`read` (the :class:`~luma_rag.enrich.TextExtractor` protocol)."""
        return self.read(path)

    def read(self, path: str | os.PathLike[str]) -> str:
        """The words in the image, in reading order of the detector ("" when none).

        Raises:
            UnsupportedMediaError: the file is missing or not an image.
        """
        p = Path(path)
        if not p.is_file():
            raise UnsupportedMediaError(f"image file {os.fspath(p)!r} does not exist")
        from luma_rag.media import load_image

        image = load_image(p)  # the library's safe loader: size and bomb checks
        import numpy as np

        with self._lock:
            engine = self._load()
            boxes, _ = engine(np.asarray(image.convert("RGB"))[:, :, ::-1])  # BGR, as OpenCV
        words = [
            str(text)
            for _box, text, conf in boxes or []
            if float(conf) >= self.config.min_confidence
        ]
        return " ".join(" ".join(words).split())
