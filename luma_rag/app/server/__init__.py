"""The LUMA-RAG HTTP service (FastAPI + a Prometheus ``/metrics`` endpoint): ``luma serve``.

:func:`create_app` builds the app around an open store; :func:`main` (``luma serve``, or
``python -m luma_rag.app.server``) opens a store and runs it with uvicorn on 127.0.0.1.
FastAPI, uvicorn and prometheus_client are imported only when an app is built or served.
"""

from __future__ import annotations

from luma_rag.app.server.app import ServerConfig, create_app
from luma_rag.app.server.main import main

__all__ = ["ServerConfig", "create_app", "main"]
