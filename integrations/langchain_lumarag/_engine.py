"""Opening, probing and releasing the engine behind a
:class:`~langchain_lumarag.LumaVectorStore`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings

from langchain_lumarag.embeddings import LumaEmbeddings
from luma_rag import Luma, LumaConfig
from luma_rag.errors import ConfigError, DimensionMismatchError, InvalidInputError

__all__ = ["embedding_dim", "open_engine", "release"]

_PROBE = "LUMA-RAG dimension probe"


def embedding_dim(embedding: Embeddings) -> int:
    if isinstance(embedding, LumaEmbeddings):
        return embedding.dim
    probe = embedding.embed_query(_PROBE)
    if not isinstance(probe, Sequence | np.ndarray) or len(probe) == 0:
        raise InvalidInputError(
            f"{type(embedding).__name__}.embed_query returned {type(probe).__name__}, "
            "not a non-empty list of floats"
        )
    return len(probe)


def open_engine(path: str | os.PathLike[str], config: LumaConfig | None, dim: int) -> Luma:
    """Open the store at ``path`` (its stored settings), or create it with ``dim``."""
    if config is not None:
        if config.dim != dim:
            raise DimensionMismatchError(
                f"config.dim={config.dim} but the embeddings give {dim}-d vectors; "
                f"pass LumaConfig(dim={dim}, ...)"
            )
        return Luma.open(path, config)
    try:
        luma = Luma.open(path)
    except ConfigError:  # no store there yet
        return Luma.open(path, LumaConfig(dim=dim))
    if luma.config.dim != dim:
        luma.close()
        raise DimensionMismatchError(
            f"the store at {path} holds {luma.config.dim}-d vectors but the embeddings give "
            f"{dim}-d; open it with the embeddings it was built with, or use another path"
        )
    return luma


def release(luma: Luma | None, tmpdir: str | None) -> None:
    if luma is not None:
        luma.close()
    if tmpdir is not None:
        shutil.rmtree(tmpdir, ignore_errors=True)
