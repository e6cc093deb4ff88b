"""``with obj:`` for every object with a ``close()``: one mixin instead of the same two methods in
each class that owns files or an engine (the store, conversation memory, the integrations)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["ClosesOnExit"]


class ClosesOnExit:
    """Mixin: ``with x as y`` gives ``y is x`` and calls ``x.close()`` on the way out, also when
    the block raises (the exception is not swallowed). Subclasses define ``close()``."""

    def close(self) -> None:
        """Release what the object holds; subclasses override it (and keep it idempotent)."""
        raise NotImplementedError(f"{type(self).__name__} must define close()")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
