"""JSON round trip shared by the frozen dataclass configs of every component."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Self

from luma_rag.errors import ConfigError

__all__ = ["ConfigBase"]


class ConfigBase:
    """Mixin for frozen dataclass configs: ``to_dict`` / ``from_dict`` / JSON, nested configs.

    Subclasses are ``@dataclass(frozen=True)`` and validate themselves in ``__post_init__``.
    """

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (nested configs become dicts)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        """Serialise to a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from :meth:`to_dict` output; unknown keys raise :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}.from_dict expects a dict, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - set(fields)
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} field(s) {sorted(unknown)}; valid fields: {sorted(fields)}"
            )
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            hint = hints.get(name)
            options = typing.get_args(hint) or (hint,)
            nested = [h for h in options if isinstance(h, type) and issubclass(h, ConfigBase)]
            if nested and isinstance(value, dict):
                value = nested[0].from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Parse a JSON string written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{cls.__name__}: invalid JSON ({e})") from e
        return cls.from_dict(data)


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)
