"""The HTTP service: a FastAPI app around an open :class:`~luma_rag.engine.Luma` store.

Routes (the OpenAPI schema is at ``/openapi.json``, interactive docs at ``/docs``):

* ``POST /ingest/texts`` — texts (+ metadata, ids) → ids.
* ``POST /ingest/media`` — one image / audio / video file (multipart; ``caption``,
  ``metadata`` as a JSON string, ``id``) → its id. The file is kept under the store's
  ``uploads/`` directory (``Hit.source`` points there).
* ``POST /query`` — a text query → hits with exact scores + the certificate's telemetry.
* ``POST /query/media`` — the same for an uploaded image / audio / video file.
* ``POST /answer`` — a question through the gate and the answerer → text, decision
  (answer / widen / clarify), citations, numbers; a CLARIFY is logged as a knowledge gap.
* ``GET /items/{id}``, ``DELETE /items/{id}``, ``POST /items/delete`` — read and delete.
* ``GET /stats``, ``GET /gaps``, ``GET /health``, ``GET /metrics`` (Prometheus).

Every request body is capped at ``ServerConfig.max_body_bytes`` (413 beyond it, checked on the
declared length and on the bytes actually received); sizes inside a body (k, batch, text
length) are capped by the schemas (422). Library errors map to statuses: unknown id → 404,
bad input → 422, any other :class:`~luma_rag.errors.LumaError` → 400; the body says what to
change (``{"error": "InvalidInputError", "detail": "..."}``).
"""

# No ``from __future__ import annotations``: FastAPI reads the route functions' annotations at
# runtime, and they name classes imported inside create_app.
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from luma_rag._config import ConfigBase
from luma_rag.answer import Answerer, EvidenceAnswerer, GateConfig, GatedRetriever
from luma_rag.app.server.limits import BodyLimitMiddleware
from luma_rag.app.server.metrics import ServiceMetrics
from luma_rag.app.server.schemas import (
    AnswerRequest,
    AnswerResponse,
    DeleteRequest,
    IngestResponse,
    IngestTextsRequest,
    QueryRequest,
    QueryResponse,
    query_response,
)
from luma_rag.errors import ConfigError, InvalidInputError, LumaError, NotFoundError
from luma_rag.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from luma_rag.results import QueryResult

if TYPE_CHECKING:
    from fastapi import FastAPI

    from luma_rag.engine import Luma

__all__ = ["ServerConfig", "create_app"]

logger = logging.getLogger(__name__)

#: Directory inside the store where uploaded media are kept.
UPLOADS_DIR: Final = "uploads"


@dataclass(frozen=True)
class ServerConfig(ConfigBase):
    """Settings of the HTTP service.

    Attributes:
        host: Interface to bind; ``127.0.0.1`` (this machine only) unless you mean to expose it.
        port: TCP port (0: any free port).
        max_body_bytes: Largest request body accepted (uploads included), in bytes.
        gaps_limit: Most knowledge gaps ``/gaps`` returns at once.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 20 * 1024 * 1024
    gaps_limit: int = 1000

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError("host must be an interface address such as '127.0.0.1'")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port!r}")
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1024:
            raise ConfigError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes!r}")
        if not isinstance(self.gaps_limit, int) or self.gaps_limit < 1:
            raise ConfigError(f"gaps_limit must be >= 1, got {self.gaps_limit!r}")


class _ObservedStore:
    """Stands in for the store inside the gate: every query it makes is recorded in metrics.

    Everything else (``encoder``, ``rho``, ``config``, ``record_gap``, ...) is the store's own.
    """

    def __init__(self, luma: "Luma", metrics: ServiceMetrics, kind: str) -> None:
        self._luma = luma
        self._metrics = metrics
        self._kind = kind

    def __getattr__(self, name: str) -> Any:
        return getattr(self._luma, name)

    def query(self, *args: Any, **kwargs: Any) -> QueryResult:
        result = self._luma.query(*args, **kwargs)
        self._metrics.observe_query(self._kind, result.telemetry)
        return result

    def search(self, *args: Any, **kwargs: Any) -> QueryResult:
        result = self._luma.search(*args, **kwargs)
        self._metrics.observe_query(self._kind, result.telemetry)
        return result


def _media_kind(filename: str | None) -> tuple[str, str]:
    suffix = Path(filename or "").suffix.lower()
    for kind, suffixes in (
        ("image", IMAGE_SUFFIXES),
        ("audio", AUDIO_SUFFIXES),
        ("video", VIDEO_SUFFIXES),
    ):
        if suffix in suffixes:
            return kind, suffix
    known = sorted(IMAGE_SUFFIXES | AUDIO_SUFFIXES | VIDEO_SUFFIXES)
    raise InvalidInputError(
        f"cannot tell the media kind of {filename!r}; upload a file named with one of {known}"
    )


def _metadata(raw: str | None) -> dict[str, Any] | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise InvalidInputError(f"metadata must be a JSON object ({e})") from e
    if not isinstance(value, dict):
        raise InvalidInputError('metadata must be a JSON object, e.g. {"color": "red"}')
    return value


def create_app(
    luma: "Luma", answerer: Answerer | None = None, config: ServerConfig | None = None
) -> "FastAPI":
    """Build the FastAPI app serving ``luma`` (the caller keeps it open and closes it).

    Args:
        luma: An open store, with an encoder attached for text and media routes.
        answerer: What turns a gate decision into text (default :class:`EvidenceAnswerer`).
        config: Service settings (default :class:`ServerConfig`).

    Returns:
        The app; run it with uvicorn (see :func:`luma_rag.app.server.main.main`).
    """
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.responses import JSONResponse, Response

    cfg = config if config is not None else ServerConfig()
    speaker: Answerer = answerer if answerer is not None else EvidenceAnswerer()
    metrics = ServiceMetrics(luma)
    uploads = luma.path / UPLOADS_DIR
    app = FastAPI(
        title="LUMA-RAG",
        summary="Multimodal retrieval with Safe@k certificates and a gated answerer.",
        version=_version(),
    )
    app.state.luma, app.state.metrics, app.state.config = luma, metrics, cfg
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_body_bytes)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.observe_request(route, response.status_code)
        return response

    @app.exception_handler(LumaError)
    async def luma_error(request: Request, exc: LumaError) -> JSONResponse:
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, InvalidInputError):
            status = 422
        else:
            status = 400
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness: the store answers and how many items it holds."""
        return {"status": "ok", "items": len(luma)}

    @app.post("/ingest/texts", response_model=IngestResponse, tags=["ingest"])
    def ingest_texts(body: IngestTextsRequest) -> IngestResponse:
        """Embed and store texts; durable when this returns."""
        return IngestResponse(ids=luma.ingest_texts(body.texts, body.metadatas, body.ids))

    @app.post("/ingest/media", response_model=IngestResponse, tags=["ingest"])
    def ingest_media(
        file: UploadFile = File(..., description="an image, audio or video file"),  # noqa: B008
        caption: str | None = Form(None, max_length=10_000),
        metadata: str | None = Form(None, description="a JSON object"),
        id: str | None = Form(None, max_length=512),
    ) -> IngestResponse:
        """Store one uploaded image / audio / video file (kept under the store's uploads/)."""
        kind, suffix = _media_kind(file.filename)
        meta = _metadata(metadata)
        uploads.mkdir(parents=True, exist_ok=True)
        path = uploads / f"{uuid.uuid4().hex}{suffix}"
        with path.open("wb") as out:
            while chunk := file.file.read(1 << 20):
                out.write(chunk)
        try:
            media: dict[str, Any] = {kind: path}
            item = luma.ingest(**media, caption=caption, metadata=meta, id=id)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return IngestResponse(ids=[item])

    @app.post("/query", response_model=QueryResponse, tags=["query"])
    def query(body: QueryRequest) -> QueryResponse:
        """Top-k for a text query, with exact scores and the Safe@k certificate."""
        res = luma.query(body.text, k=body.k, filters=body.filters, rho=body.rho)
        metrics.observe_query("text", res.telemetry)
        return query_response("text", res)

    @app.post("/query/media", response_model=QueryResponse, tags=["query"])
    def query_media(
        file: UploadFile = File(..., description="an image, audio or video query"),  # noqa: B008
        k: int = Form(10, ge=1, le=100),
        filters: str | None = Form(None, description="a JSON object"),
    ) -> QueryResponse:
        """Top-k for an uploaded image / audio / video query."""
        kind, suffix = _media_kind(file.filename)
        where = _metadata(filters)
        fd, name = tempfile.mkstemp(suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := file.file.read(1 << 20):
                    out.write(chunk)
            media: dict[str, Any] = {kind: name}
            res = luma.query(**media, k=k, filters=where)
        finally:
            os.unlink(name)
        metrics.observe_query(kind, res.telemetry)
        return query_response(kind, res)

    @app.post("/answer", response_model=AnswerResponse, tags=["answer"])
    def answer(body: AnswerRequest) -> AnswerResponse:
        """The gate (ANSWER / WIDEN / CLARIFY) and the answerer; CLARIFY logs a knowledge gap."""
        if body.k_max < body.k:
            raise InvalidInputError(f"k_max ({body.k_max}) must be >= k ({body.k})")
        gate = GatedRetriever(
            _ObservedStore(luma, metrics, "text"),  # type: ignore[arg-type]
            GateConfig(k=body.k, k_max=body.k_max),
        )
        t0 = time.perf_counter()
        decision = gate.query(body.question, filters=body.filters)
        reply = speaker.answer(body.question, decision).to_dict()
        metrics.observe_decision(decision.decision)
        metrics.stage_seconds.labels(stage="answer").observe(time.perf_counter() - t0)
        gate_part = reply["decision"]
        return AnswerResponse(
            text=reply["text"],
            decision=decision.decision,
            k_used=decision.k_used,
            reason=decision.reason,
            clarification=decision.clarification,
            gap_id=decision.gap_id,
            citations=reply["citations"],
            numbers=gate_part.get("numbers", {}),
            telemetry=reply["telemetry"],
        )

    @app.get("/items/{item_id}", tags=["items"])
    def get_item(item_id: str) -> dict[str, Any]:
        """One stored item (without its vector)."""
        found = luma.get([item_id])
        if not found:
            raise NotFoundError(f"unknown id {item_id!r}; list ids with /query or /stats")
        return {k: v for k, v in found[0].items() if k != "vector"}

    @app.delete("/items/{item_id}", tags=["items"])
    def delete_item(item_id: str) -> dict[str, Any]:
        """Delete one item (404 when unknown)."""
        luma.delete([item_id])
        return {"deleted": [item_id]}

    @app.post("/items/delete", tags=["items"])
    def delete_items(body: DeleteRequest) -> dict[str, Any]:
        """Delete several items; all must exist, else nothing is deleted (404)."""
        luma.delete(body.ids)
        return {"deleted": list(dict.fromkeys(body.ids))}

    @app.get("/stats", tags=["service"])
    def stats() -> dict[str, Any]:
        """Items per tier, RAM per tier, bridge state, ρ per modality."""
        return {**luma.stats(), "rho": dict(luma.rho)}

    @app.get("/gaps", tags=["service"])
    def gaps(limit: int = 50) -> list[dict[str, Any]]:
        """Recent knowledge gaps (CLARIFY decisions), newest first."""
        if not 1 <= limit <= cfg.gaps_limit:
            raise InvalidInputError(f"limit must be in 1..{cfg.gaps_limit}, got {limit}")
        return luma.knowledge_gaps(limit)

    @app.get("/metrics", tags=["service"], response_class=Response)
    def scrape() -> Response:
        """Prometheus metrics (text exposition format)."""
        body, content_type = metrics.render()
        return Response(content=body, media_type=content_type)

    return app


def _version() -> str:
    from luma_rag import __version__

    return str(__version__)
