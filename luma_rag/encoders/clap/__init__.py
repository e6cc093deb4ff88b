"""CLAP (audio + text) backend: transformers ``ClapModel`` behind the :class:`Encoder` protocol.

``from luma_rag.encoders.clap import ClapEncoder`` loads nothing heavy: torch and transformers
are imported when an encoder is built. ``luma-tiny-clap``, the checkpoint LUMA-RAG trains on
LUMA-Shapes and ships (see :mod:`luma_rag.training.train_clap`), is built by
:mod:`luma_rag.encoders.clap.tiny`.
"""

from __future__ import annotations

from luma_rag.encoders.clap.backend import ClapEncoder

__all__ = ["ClapEncoder"]
