"""Request and response bodies of the HTTP service (pydantic: they make the OpenAPI schema).

Limits on sizes live here too (``k``, batch sizes, text lengths), so an oversized request is
refused by validation (422) before it reaches the engine; the byte limit on whole bodies is the
app's middleware (413).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from luma_rag.results import Hit, QueryResult

__all__ = [
    "MAX_BATCH",
    "MAX_K",
    "MAX_TEXT_CHARS",
    "AnswerRequest",
    "AnswerResponse",
    "DeleteRequest",
    "HitOut",
    "IngestResponse",
    "IngestTextsRequest",
    "QueryRequest",
    "QueryResponse",
    "hits_out",
    "query_response",
]

#: Most hits one query may ask for.
MAX_K: Final = 100
#: Most texts one ingest request may carry.
MAX_BATCH: Final = 1000
#: Longest text (query, question or item) accepted, in characters.
MAX_TEXT_CHARS: Final = 10_000

Text = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestTextsRequest(_Body):
    """Texts to embed and store (one encoder call)."""

    texts: list[str] = Field(min_length=1, max_length=MAX_BATCH, description="non-empty texts")
    metadatas: list[dict[str, Any]] | None = Field(
        default=None, description="one JSON object per text"
    )
    ids: list[str] | None = Field(default=None, description="one id per text (upsert); None: new")


class IngestResponse(_Body):
    """The ids of what was stored, in order."""

    ids: list[str]


class QueryRequest(_Body):
    """A text query (media queries go to ``/query/media`` as a file upload)."""

    text: str = Text
    k: int = Field(default=10, ge=1, le=MAX_K)
    filters: dict[str, Any] | None = Field(default=None, description='e.g. {"color": "red"}')
    rho: float | None = Field(default=None, ge=0.0, description="encoder radius for this query")


class HitOut(_Body):
    """One hit: ``score`` is the exact cosine against the item's raw vector."""

    id: str
    score: float
    rank: int
    tier: str
    modality: str
    text: str | None = None
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class QueryResponse(_Body):
    """Hits best first and the certificate's telemetry (γ, δ_k, ε, ζ, ρ, Safe@1, Safe@k, ...)."""

    kind: str
    hits: list[HitOut]
    telemetry: dict[str, Any]


class AnswerRequest(_Body):
    """A question for the gate (ANSWER / WIDEN / CLARIFY) and the answerer."""

    question: str = Text
    k: int = Field(default=5, ge=1, le=MAX_K)
    k_max: int = Field(default=10, ge=1, le=MAX_K)
    filters: dict[str, Any] | None = None


class AnswerResponse(_Body):
    """The answer text, the gate's decision with its numbers, and the cited evidence."""

    text: str
    decision: Literal["answer", "widen", "clarify", "not_in_memory"]
    k_used: int
    reason: str
    clarification: str | None
    gap_id: int | None
    citations: list[dict[str, Any]]
    numbers: dict[str, Any]
    telemetry: dict[str, Any]


class DeleteRequest(_Body):
    """Ids to delete: all must exist, else nothing is deleted (404)."""

    ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)


def hits_out(hits: list[Hit]) -> list[HitOut]:
    """The engine's hits as response models."""
    return [
        HitOut(
            id=h.id,
            score=h.score,
            rank=h.rank,
            tier=h.tier,
            modality=h.modality,
            text=h.text,
            source=h.source,
            metadata=h.metadata,
        )
        for h in hits
    ]


def query_response(kind: str, result: QueryResult) -> QueryResponse:
    """A :class:`~luma_rag.results.QueryResult` as a response (NaN numbers become null)."""
    return QueryResponse(
        kind=kind, hits=hits_out(result.hits), telemetry=result.telemetry.to_dict()
    )
