"""The one exception tree of LUMA-RAG.

Every error the library raises on purpose is a :class:`LumaError`. Foreign exceptions
(FAISS, SQLite, OS) are converted at the boundary with ``raise ... from e``. Messages say
what to change, not only what went wrong.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DimensionMismatchError",
    "InvalidInputError",
    "LumaError",
    "MissingDependencyError",
    "ModelNotAvailableError",
    "NotFoundError",
    "StoreClosedError",
    "StoreCorruptedError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "UnsupportedMediaError",
]


class LumaError(Exception):
    """Base class of every error LUMA-RAG raises on purpose."""


class InvalidInputError(LumaError, ValueError):
    """An argument has a bad value: NaN, zero vector, empty batch, bad filter, k <= 0, ..."""


class DimensionMismatchError(InvalidInputError):
    """Vectors do not have the dimension the store was created with."""


class NotFoundError(LumaError, KeyError):
    """An id that the store does not hold."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ConfigError(InvalidInputError):
    """A configuration value is out of range or inconsistent."""


class UnsupportedMediaError(InvalidInputError):
    """A media file that cannot be decoded, is empty, corrupt, too large, or of a known-bad kind."""


class StoreCorruptedError(LumaError):
    """A store file fails its checksum, is truncated, or disagrees with the durable record."""


class StoreClosedError(LumaError):
    """An operation on a store that has been closed."""


class MissingDependencyError(LumaError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    @classmethod
    def for_extra(cls, package: str, extra: str) -> MissingDependencyError:
        """Build the error for ``package`` that ships in the ``extra`` extra."""
        return cls(
            f"{package} is required for this feature; install it with "
            f"`pip install 'luma-rag[{extra}]'`"
        )


class ModelNotAvailableError(LumaError):
    """A model that is not available offline was asked for; the message says how to provide it."""


class StoreLockedError(LumaError):
    """Another process holds the store's writer lock; the message names its pid."""


class StoreReadOnlyError(LumaError):
    """A write on a store opened with ``read_only=True``."""
