"""Evaluate a store on your own data: a folder of images and texts, your queries and labels.

Give a folder (images: ``.png .jpg .jpeg .webp .bmp``; texts: ``.txt .md``, searched
recursively; an item's id is its path relative to the folder) and labelled queries — a JSONL
file with one ``{"query": "...", "relevant": ["cats/tabby.jpg", "notes/cats.txt"]}`` per line,
or a list of :class:`LabeledQuery`. :func:`evaluate_folder` ingests the folder into a new store
with your encoder and reports, with sample sizes and 95 % Wilson intervals:

* ranking: Recall@1 / @5 / @k, MRR@k, nDCG@k of each query's ranking against its labels;
* ρ: the encoder radius per modality, measured by ``Luma.calibrate`` on the ingested items;
* Safe@1: coverage (share of queries certified) and precision (share of certified queries whose
  top-1 is relevant);
* the gate: coverage (ANSWER or WIDEN) and risk (answered, but the item an ANSWER rests on
  — or, for a WIDEN, every item of its stable set — is not relevant), and each decision's share.

Example:
    >>> report = evaluate_folder("my_photos", load_queries("my_queries.jsonl"), "my-store")
    >>> report["ranking"]["recall@10"], report["safe1"]["precision"], report["gate"]["risk"]
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from luma_rag.answer.gate import GateConfig, GatedRetriever
from luma_rag.errors import InvalidInputError
from luma_rag.eval.metrics import coverage_risk, mrr, ndcg_at_k
from luma_rag.media import IMAGE_SUFFIXES

__all__ = ["LabeledQuery", "evaluate_folder", "load_queries", "wilson_interval"]

logger = logging.getLogger(__name__)

TEXT_SUFFIXES: Final = frozenset({".txt", ".md"})


@dataclass(frozen=True)
class LabeledQuery:
    """A query and the ids (paths relative to the folder) of the items relevant to it."""

    text: str
    relevant: frozenset[str]


def load_queries(path: str | os.PathLike[str]) -> list[LabeledQuery]:
    """Read ``{"query": str, "relevant": [str, ...]}`` lines (JSONL).

    Raises:
        InvalidInputError: a missing file, a line that is not such an object.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"no query file at {p}")
    out = []
    for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, relevant = row["query"], row["relevant"]
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidInputError(
                f'{p}:{number}: expected {{"query": "...", "relevant": ["file", ...]}} ({e})'
            ) from e
        if not isinstance(text, str) or not text.strip() or not isinstance(relevant, list):
            raise InvalidInputError(f"{p}:{number}: query must be text, relevant a list of ids")
        out.append(LabeledQuery(text.strip(), frozenset(str(r) for r in relevant)))
    return out


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % (by default) Wilson score interval of a proportion; (nan, nan) when ``n == 0``."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _files(folder: Path) -> tuple[list[Path], list[Path]]:
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    texts = [p for p in files if p.suffix.lower() in TEXT_SUFFIXES]
    if not images and not texts:
        raise InvalidInputError(f"{folder} holds no images or texts to evaluate on")
    return images, texts


def _rate(flags: Sequence[bool]) -> dict[str, Any]:
    n, hits = len(flags), int(sum(flags))
    low, high = wilson_interval(hits, n)
    return {"value": hits / n if n else math.nan, "n": n, "ci95": [low, high]}


def evaluate_folder(
    folder: str | os.PathLike[str],
    queries: Sequence[LabeledQuery],
    store_dir: str | os.PathLike[str],
    *,
    encoder: Any = "luma-tiny",
    k: int = 10,
    gate: GateConfig | None = None,
) -> dict[str, Any]:
    """Ingest ``folder`` into a new store at ``store_dir`` and evaluate ``queries`` on it.

    Args:
        folder: Your images and texts (ids: paths relative to the folder, POSIX style).
        queries: Labelled queries; labels naming no file of the folder are an error.
        store_dir: Where the store is created (must not hold one).
        encoder: The store's encoder (an :class:`~luma_rag.encoders.base.Encoder` or a name).
        k: Ranking cut-off and hits per query.
        gate: Gate settings (default ``GateConfig(k=min(5, k), k_max=k)``).

    Returns:
        ``{"n_items", "n_queries", "k", "ranking", "rho", "safe1", "gate", "per_query"}``
        (see the module docstring); rates carry ``n`` and a 95 % Wilson ``ci95``.

    Raises:
        InvalidInputError: no queries, an unknown label, an existing store, an empty folder.
    """
    from luma_rag.engine import Luma

    root = Path(folder)
    images, texts = _files(root)
    ids = {p.relative_to(root).as_posix() for p in (*images, *texts)}
    if not queries:
        raise InvalidInputError("no queries to evaluate; give at least one labelled query")
    unknown = sorted({r for q in queries for r in q.relevant} - ids)
    if unknown:
        raise InvalidInputError(f"labels name files not in {root}: {unknown[:5]}")
    if (Path(store_dir) / "config.json").exists():
        raise InvalidInputError(f"{store_dir} already holds a store; pass a new directory")
    cfg = gate or GateConfig(k=min(5, k), k_max=k)
    with Luma.open(store_dir, encoder=encoder) as luma:
        if images:
            luma.ingest_images(images, ids=[p.relative_to(root).as_posix() for p in images])
        if texts:
            bodies = [p.read_text(encoding="utf-8").strip() or p.name for p in texts]
            luma.ingest_texts(bodies, ids=[p.relative_to(root).as_posix() for p in texts])
        luma.calibrate()  # rho measured on these very items (opening calibrates nothing)
        gated = GatedRetriever(luma, cfg, record_gaps=False)
        per_query = []
        for q in queries:
            res = luma.query(q.text, k=k)
            decision = gated.query(q.text)
            ranked = [h.id in q.relevant for h in res.hits]
            # ANSWER answers from [1] (the rest is context); WIDEN from its whole stable set.
            used = decision.evidence[:1] if decision.decision == "answer" else decision.evidence
            per_query.append(
                {
                    "query": q.text,
                    "ranked_relevant": ranked,
                    "n_relevant": len(q.relevant),
                    "top1": res.hits[0].id if res.hits else None,
                    "safe1": bool(res.telemetry.safe1),
                    "margin_top2": float(res.telemetry.margin_top2),
                    "decision": decision.decision,
                    "answer_relevant": any(h.id in q.relevant for h in used),
                }
            )
        rho = dict(luma.rho)
        n_items = len(luma)
    return _summary(per_query, rho, n_items, k)


def _summary(
    per_query: list[dict[str, Any]], rho: dict[str, float], n_items: int, k: int
) -> dict[str, Any]:
    ranked = [np.asarray(p["ranked_relevant"], dtype=bool) for p in per_query]
    n_rel = [p["n_relevant"] for p in per_query]
    top1 = [bool(r[:1].any()) for r in ranked]
    ranking: dict[str, Any] = {
        f"recall@{c}": _rate([bool(r[:c].any()) for r in ranked]) for c in sorted({1, 5, k})
    }
    ranking[f"mrr@{k}"] = mrr([r[:k] for r in ranked])
    ranking[f"ndcg@{k}"] = ndcg_at_k(ranked, k, n_relevant=n_rel)
    flags = [p["safe1"] for p in per_query]
    cert = coverage_risk(np.asarray(flags), np.asarray(top1))
    certified_right = [t for t, f in zip(top1, flags, strict=True) if f]
    answered = [p for p in per_query if p["decision"] in ("answer", "widen")]
    return {
        "n_items": n_items,
        "n_queries": len(per_query),
        "k": k,
        "ranking": ranking,
        "rho": rho,
        "safe1": {
            "coverage": _rate(flags),
            "precision": _rate(certified_right),
            "risk": cert["risk"],
        },
        "gate": {
            "coverage": _rate([p["decision"] in ("answer", "widen") for p in per_query]),
            "risk": _rate([not p["answer_relevant"] for p in answered]),
            "shares": {
                d: sum(p["decision"] == d for p in per_query) / len(per_query)
                for d in ("answer", "widen", "clarify")
            },
        },
        "per_query": per_query,
    }
