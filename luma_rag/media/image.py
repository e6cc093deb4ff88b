"""Safe image loading: EXIF stripped, bounded size, typed errors.

Every image an encoder sees goes through :func:`load_image`, which

* opens only well-known raster formats (PNG, JPEG, GIF, BMP, WebP, TIFF), so Pillow never
  hands a file to a plugin that runs external programs (EPS) or parses exotic containers;
* checks the pixel count from the header before decoding anything (decompression-bomb guard:
  a 100 000 x 100 000 PNG of a few hundred bytes is refused without allocating it);
* decodes fully, so truncated and corrupt files fail here, as
  :class:`~luma_rag.errors.UnsupportedMediaError`, not later inside a model;
* applies the EXIF orientation, then drops every metadata chunk (EXIF, XMP, ICC, text);
* converts to RGB and shrinks so that the longer side is at most ``max_side`` pixels.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from luma_rag.errors import MissingDependencyError, UnsupportedMediaError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["ALLOWED_FORMATS", "MAX_PIXELS", "MAX_SIDE", "ImageInput", "load_image"]

logger = logging.getLogger(__name__)

#: Pillow format names :func:`load_image` opens (JPEG includes cameras' multi-picture MPO).
ALLOWED_FORMATS: Final = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
#: Longest side of a loaded image; larger images are shrunk (aspect ratio kept).
MAX_SIDE: Final = 1024
#: Largest pixel count (width x height) a file may declare before it is decoded.
MAX_PIXELS: Final = 40_000_000  # ~1.7x a 24 MP photo; a 7000x7000 PNG is refused before decoding

#: What the encoders accept as an image: a path, raw file bytes or a Pillow image.
ImageInput: TypeAlias = "str | os.PathLike[str] | bytes | PILImage.Image"


def _pil() -> Any:
    try:
        from PIL import Image, ImageOps
    except ImportError as e:  # pragma: no cover - Pillow ships with the models extra
        raise MissingDependencyError.for_extra("Pillow", "models") from e
    return Image, ImageOps


def _describe(source: object) -> str:
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return type(source).__name__


def load_image(
    source: ImageInput, *, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS
) -> PILImage.Image:
    """Load one image safely.

    Args:
        source: Path of an image file, the bytes of one, or a Pillow image (whose pixels are
            copied; the caller's object is not modified).
        max_side: Longest side of the result in pixels; larger images are shrunk.
        max_pixels: Refuse images that declare more pixels than this (before decoding).

    Returns:
        A new RGB Pillow image without metadata, longest side <= ``max_side``.

    Raises:
        UnsupportedMediaError: Missing or empty file, unknown or disallowed format, corrupt
            or truncated data, or more than ``max_pixels`` pixels.
        MissingDependencyError: Pillow is not installed.
    """
    image_mod, ops = _pil()
    what = _describe(source)
    if isinstance(source, str | bytes | os.PathLike):
        image = _open(source, what, max_pixels, max_side, image_mod)
    elif isinstance(source, image_mod.Image):
        _check_pixels(source.size, max_pixels, what)
        image = source.copy()
    else:
        raise UnsupportedMediaError(
            f"an image must be a path, bytes or a PIL.Image.Image, got {type(source).__name__}"
        )
    try:
        image = ops.exif_transpose(image)  # orientation first, then metadata goes
        rgb = image.convert("RGB")
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise UnsupportedMediaError(f"image {what} could not be decoded: {e}") from e
    clean = image_mod.new("RGB", rgb.size)  # a fresh image carries no info/EXIF/ICC
    clean.paste(rgb)
    if max(clean.size) > max_side:
        clean.thumbnail((max_side, max_side), image_mod.Resampling.BICUBIC)
    return clean


def _check_pixels(size: tuple[int, int], max_pixels: int, what: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise UnsupportedMediaError(f"image {what} has an empty size {width}x{height}")
    if width * height > max_pixels:
        raise UnsupportedMediaError(
            f"image {what} declares {width}x{height} = {width * height} pixels, more than "
            f"max_pixels={max_pixels} (decompression-bomb guard); shrink it first or raise "
            "max_pixels if you trust the file"
        )


def _open(
    source: str | os.PathLike[str] | bytes,
    what: str,
    max_pixels: int,
    max_side: int,
    image_mod: Any,
) -> Any:
    if isinstance(source, bytes):
        if not source:
            raise UnsupportedMediaError("image bytes are empty")
        stream: Any = io.BytesIO(source)
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise UnsupportedMediaError(f"no image file at {path}")
        if os.path.getsize(path) == 0:
            raise UnsupportedMediaError(f"image file {path} is empty")
        stream = path
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit and raises at twice it; both become errors here.
            warnings.simplefilter("error", image_mod.DecompressionBombWarning)
            image = image_mod.open(stream, formats=list(ALLOWED_FORMATS))
            _check_pixels(image.size, max_pixels, what)
            if image.format in ("JPEG", "MPO"):
                image.draft("RGB", (max_side, max_side))  # decode big JPEGs at reduced scale
            image.load()
    except UnsupportedMediaError:
        raise
    except (image_mod.DecompressionBombError, image_mod.DecompressionBombWarning) as e:
        raise UnsupportedMediaError(
            f"image {what} is too large to decode safely (decompression-bomb guard): {e}"
        ) from e
    except image_mod.UnidentifiedImageError as e:
        raise UnsupportedMediaError(
            f"{what} is not an image in a supported format ({', '.join(ALLOWED_FORMATS)})"
        ) from e
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
        raise UnsupportedMediaError(f"image {what} is corrupt or truncated: {e}") from e
    return image
