"""Opening the engine behind :class:`~llama_index.vector_stores.lumarag.LumaVectorStore`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from luma_rag import Luma, LumaConfig
from luma_rag.encoders import Encoder

__all__ = ["check_local_fs", "open_engine"]


def open_engine(
    path: str | os.PathLike[str],
    *,
    dim: int | None,
    encoder: Encoder | str | None,
    config: LumaConfig | None,
) -> Luma:
    if config is not None and dim is not None and config.dim != dim:
        raise ValueError(f"dim={dim} disagrees with config.dim={config.dim}; pass one of them")
    """Open (or create) the store at ``path``; ``dim`` or ``config`` for a new one."""
    is_new = not (Path(path) / "config.json").is_file()
    if is_new and dim is None and config is None and encoder is None:
        raise ValueError(
            f"there is no store at {os.fspath(path)!r} yet: pass dim= (the embedding size, e.g. "
            "LumaVectorStore(path, dim=384)) or encoder= (e.g. encoder='luma-tiny') to create it"
        )
    if config is None and dim is not None:
        config = LumaConfig(dim=dim)
    return Luma.open(path, config, encoder=encoder)


def check_local_fs(fs: Any) -> None:
    """Refuse a non-local fsspec file system (the store is a local directory)."""
    if fs is None:
        return
    protocol = getattr(fs, "protocol", None)
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol or ())
    if "file" not in protocols and "local" not in protocols:
        raise ValueError(
            f"LumaVectorStore lives in a local directory; got a {type(fs).__name__} file system"
        )
