"""Where a hit's media lives: local paths as they are, remote URIs through a registered resolver.

A store keeps each item's ``source``: a local path by default, or a URI such as
``s3://bucket/key`` when its media went to object storage (:mod:`luma_rag.backends.s3`).
Readers of media (the LLaVA answerer, the app) call :func:`local_path` and get a file they can
open; the backend that writes a scheme registers how to fetch it (:func:`register_resolver`),
so this module never imports a storage client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from luma_rag.errors import UnsupportedMediaError

__all__ = ["local_path", "register_resolver", "scheme_of"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_resolvers: dict[str, Callable[[str], str]] = {}


def scheme_of(source: str) -> str | None:
    """The URI scheme of ``source`` (``"s3"`` for ``s3://b/k``), None for a plain path."""
    head, sep, _ = source.partition("://")
    return head.lower() if sep and head.isalnum() else None


def register_resolver(scheme: str, resolve: Callable[[str], str]) -> None:
    """Make ``scheme://...`` sources readable: ``resolve(uri)`` returns a local file path."""
    with _lock:
        _resolvers[scheme.lower()] = resolve


def local_path(source: str) -> str:
    """A local file for ``source``: the path itself, or the resolver's download of a URI.

    Raises:
        UnsupportedMediaError: a URI whose scheme no open store has registered.
    """
    scheme = scheme_of(source)
    if scheme is None:
        return source
    with _lock:
        resolve = _resolvers.get(scheme)
    if resolve is None:
        raise UnsupportedMediaError(
            f"cannot read {source!r}: no resolver for {scheme}:// media in this process; open "
            f"the store that wrote it (e.g. Luma.open('milvus://...?media=s3')) with the "
            f"LUMA_S3_* settings in the environment first"
        )
    return resolve(source)
