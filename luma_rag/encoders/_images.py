"""Compatibility re-export: image loading lives in :mod:`luma_rag.media.image`.

Kept because the training scripts import ``load_image`` from here; new code imports
:mod:`luma_rag.media`.
"""

from __future__ import annotations

from luma_rag.media.image import ALLOWED_FORMATS, MAX_PIXELS, MAX_SIDE, ImageInput, load_image

__all__ = ["ALLOWED_FORMATS", "MAX_PIXELS", "MAX_SIDE", "ImageInput", "load_image"]
