"""What the three training commands share: the checks every run config needs, flags from a
config dataclass, the report's file digests and library versions, and the ``main`` skeleton
(print the config, train, print the figures, exit 2 with the message on a
:class:`~luma_rag.errors.LumaError`).

A training config is a frozen dataclass whose scalar fields (``int``, ``float``, ``str``,
optionally ``| None``) become ``--kebab-case`` flags with the dataclass default, and whose
docstring ``Attributes:`` section gives each flag its help text. Fields of other types (a
nested architecture spec) are left to the command.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib
import json
import logging
import platform
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from luma_rag.errors import ConfigError, LumaError

__all__ = [
    "add_config_flags",
    "check_run_config",
    "config_kwargs",
    "file_digests",
    "run_main",
    "versions",
]


def check_run_config(cfg: Any, *, at_least_one: Iterable[str], non_negative: Iterable[str]) -> None:
    """The checks every training config shares: counts ``>= 1`` and ``>= 0``, ``lr > 0``,
    ``weight_decay >= 0`` and a positive ``minutes`` budget when one is set.

    Raises:
        ConfigError: naming the first field out of range.
    """
    for name in at_least_one:
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    for name in non_negative:
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if not cfg.lr > 0 or cfg.weight_decay < 0:
        raise ConfigError(f"need lr > 0 and weight_decay >= 0, got {cfg.lr}, {cfg.weight_decay}")
    if cfg.minutes is not None and not cfg.minutes > 0:
        raise ConfigError(f"minutes must be > 0, got {cfg.minutes}")


def _optional_str(value: str) -> str | None:
    return None if value.lower() == "none" else value


#: Field annotation (as written, ``from __future__ import annotations``) -> argparse type.
_FLAG_TYPES: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "str": str,
    "float | None": float,
    "int | None": int,
    "str | None": _optional_str,
}


_SENTENCE_END: Final = re.compile(r"(?<!\be\.g)(?<!\bi\.e)\.\s")


def _attribute_help(config_type: type) -> dict[str, str]:
    """First sentence of each ``name: text`` entry of the class docstring's Attributes."""
    doc = config_type.__doc__ or ""
    out: dict[str, str] = {}
    for match in re.finditer(r"^\s{8}(\w+): (.+?)(?=\n\s{8}\w+: |\n\s*\n|\Z)", doc, re.M | re.S):
        text = " ".join(match.group(2).split())
        # A sentence ends at ". ", but not after "e.g" / "i.e" (help used to stop at "e.g.").
        out[match.group(1)] = _SENTENCE_END.split(text, maxsplit=1)[0].rstrip(".")
    return out


def add_config_flags(
    parser: argparse.ArgumentParser, config_type: type, *, exclude: Iterable[str] = ()
) -> None:
    """Add one ``--flag`` per scalar field of the dataclass ``config_type`` (a ``bool`` field
    gets ``--flag`` / ``--no-flag``)."""
    defaults = config_type()
    helps = _attribute_help(config_type)
    skip = set(exclude)
    for f in dataclasses.fields(config_type):
        if str(f.type) == "bool" and f.name not in skip:
            parser.add_argument(
                "--" + f.name.replace("_", "-"),
                action=argparse.BooleanOptionalAction,
                default=getattr(defaults, f.name),
                help=f"{helps.get(f.name, '')} (default: {getattr(defaults, f.name)})".lstrip(),
            )
            continue
        kind = _FLAG_TYPES.get(str(f.type))
        if f.name in skip or kind is None:
            continue
        default = getattr(defaults, f.name)
        help_text = helps.get(f.name, "")
        if "None" in str(f.type):
            help_text += " ('none' or omitted: unset)" if kind is _optional_str else ""
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=kind,
            default=default,
            help=f"{help_text} (default: {default})".lstrip(),
        )


def config_kwargs(config_type: type, args: argparse.Namespace) -> dict[str, Any]:
    """The dataclass fields that ``args`` carries, by name (for ``config_type(**kwargs)``)."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config_type)
        if hasattr(args, f.name)
    }


def file_digests(files: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """``{name: {bytes, sha256}}`` of each file, sorted by name."""
    return {
        p.name: {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in sorted(files, key=lambda p: p.name)
    }


def weights_record(path: str | Path | None, model: str) -> dict[str, Any]:
    """What a run started from: ``{model, file, bytes, sha256}`` of the weights file ``path``
    (None: ``{model, file: None}``, the registry's weights of ``model``)."""
    if path is None:
        return {"model": model, "file": None}
    p = Path(path)
    return {"model": model, "file": p.name} | file_digests([p])[p.name]


def autocast(bf16: bool, torch: Any) -> Any:
    """``torch.autocast("cpu", dtype=torch.bfloat16)`` when ``bf16``, else a no-op context.

    On CPUs with bfloat16 matrix instructions (AVX-512 BF16, AMX) this speeds up the tiny
    models' matmuls; the weights and the optimiser stay float32.
    """
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


def versions(*modules: str) -> dict[str, str]:
    """Python's version and each named module's ``__version__`` (those that import)."""
    out = {"python": platform.python_version()}
    for name in modules:
        try:
            out[name] = str(importlib.import_module(name).__version__)
        except (ImportError, AttributeError):
            continue
    return out


def run_main(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    train: Callable[[argparse.Namespace], Mapping[str, Any]],
    describe: Callable[[argparse.Namespace], Mapping[str, Any]],
) -> int:
    """Parse, print ``describe(args)`` as JSON, ``train(args)``, print its summary; exit code.

    ``train`` returns the report; its ``seconds`` (a dict, when present) and ``metrics`` are
    printed. A :class:`LumaError` (bad flags, missing data or dependencies) prints
    ``error: ...`` on stderr and returns 2.
    """
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(json.dumps(describe(args), default=str), flush=True)
        started = time.perf_counter()
        report = dict(train(args))
    except LumaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seconds = report.get("seconds")
    summary = dict(seconds) if isinstance(seconds, Mapping) else {}
    summary["total_wall"] = round(time.perf_counter() - started, 1)
    metrics = report.get("metrics", {})
    print(json.dumps({**summary, **metrics}, indent=2, default=str))
    return 0
