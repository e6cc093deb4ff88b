"""``luma query``: search a store with a text, image, audio or video query, or a raw vector."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from luma_rag.cli._common import (
    DEFAULT_AUDIO_MODEL,
    DEFAULT_MODEL,
    clip,
    error,
    num,
    pick_model,
    positive_int,
    print_json,
    print_table,
    recorded_encoders,
    require_store,
    short_path,
    status,
    store_path,
    yes,
)
from luma_rag.errors import InvalidInputError

if TYPE_CHECKING:
    from luma_rag.results import QueryResult

__all__ = ["add_parser", "cmd_query"]


def add_parser(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``luma query`` to the subcommands."""
    p = sub.add_parser("query", parents=parents, help="search the store")
    p.add_argument("text", nargs="?", metavar="TEXT", help="a text query")
    p.add_argument("--image", type=Path, help="an image query")
    p.add_argument("--audio", type=Path, help="an audio query (crosses the CLAP->CLIP bridge)")
    p.add_argument("--video", type=Path, help="a video query")
    p.add_argument("--vector", type=Path, help="a .npy (dim,) float vector (no encoder needed)")
    p.add_argument("-k", type=positive_int, default=10, help="number of hits (default 10)")
    p.add_argument("--filter", dest="filter", metavar="JSON", help='e.g. \'{"color": "red"}\'')
    p.set_defaults(run=cmd_query)


def cmd_query(args: argparse.Namespace) -> int:
    """``luma query``: hits and the telemetry behind their certificate."""
    given = {
        name: value
        for name, value in (
            ("text", args.text),
            ("image", args.image),
            ("audio", args.audio),
            ("video", args.video),
            ("vector", args.vector),
        )
        if value is not None
    }
    if len(given) != 1:
        error("pass exactly one query: TEXT, --image, --audio, --video or --vector")
        return 2
    [(kind, value)] = given.items()
    if kind != "text" and not Path(value).is_file():
        raise InvalidInputError(f"--{kind} {value}: no such file")
    from luma_rag.engine import Luma

    filters = _parse_filter(args.filter)
    path = store_path(args)
    require_store(path)
    if kind == "vector":
        vector = _load_vector(Path(value))
        with Luma.open(path) as luma:
            result = luma.search(vector, args.k, filters=filters)
        print_result(kind, str(value), result, as_json=args.json)
        return 0
    recorded = recorded_encoders(path)
    model = pick_model(args.model, recorded.get("model"), DEFAULT_MODEL, path)
    audio_model = None
    if kind == "audio":
        audio_model = pick_model(
            args.audio_model, recorded.get("audio_model"), DEFAULT_AUDIO_MODEL, path
        )
    encoders = model + (f" + {audio_model}" if audio_model else "")
    with status(f"loading {encoders}", enabled=not args.quiet):
        luma = Luma.open(path, encoder=model, audio_encoder=audio_model)
    with luma:
        result = luma.query(**{kind: value}, k=args.k, filters=filters)
    print_result(kind, str(value), result, as_json=args.json)
    return 0


def print_result(kind: str, value: str, result: QueryResult, *, as_json: bool) -> None:
    """The hits and the telemetry, as a table or as one JSON document."""
    if as_json:
        print_json(_result_dict(kind, value, result))
    else:
        _print_result(result)


def _parse_filter(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInputError(
            f"--filter is not valid JSON ({e.msg} at char {e.pos}); "
            'write it like \'{"color": "red", "size": {"$gte": 2}}\''
        ) from e
    if not isinstance(value, dict):
        raise InvalidInputError(
            f'--filter must be a JSON object such as \'{{"color": "red"}}\', '
            f"got {type(value).__name__}"
        )
    return value


def _load_vector(path: Path) -> np.ndarray:
    """A (dim,) or (1, dim) float vector from a .npy file (never unpickled)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise InvalidInputError(f"--vector {path}: not a plain numeric .npy array ({e})") from e
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu" or arr.squeeze().ndim != 1:
        raise InvalidInputError(
            f"--vector {path}: expected a numeric (dim,) array saved with numpy.save, "
            f"got {getattr(arr, 'dtype', type(arr).__name__)} {getattr(arr, 'shape', '')}"
        )
    return np.ascontiguousarray(arr.squeeze(), dtype=np.float32)


def _result_dict(kind: str, value: str, result: QueryResult) -> dict[str, Any]:
    return {
        "query": {"modality": kind, "value": value},
        "hits": [
            {
                "id": h.id,
                "rank": h.rank,
                "score": h.score,
                "tier": h.tier,
                "modality": h.modality,
                "text": h.text,
                "source": h.source,
                "metadata": h.metadata,
            }
            for h in result.hits
        ],
        "telemetry": result.telemetry.to_dict(),
    }


def _print_result(result: QueryResult) -> None:
    rows = [
        (
            str(h.rank + 1),
            f"{h.score:.4f}",
            h.tier,
            h.modality,
            clip(h.text or "", 40),
            clip(short_path(h.source or h.id), 50),
        )
        for h in result.hits
    ]
    print_table(("#", "score", "tier", "modality", "text", "source / id"), rows)
    t = result.telemetry
    safe_k_min = f" (k'={t.safe_k_min})" if t.safe_k_min is not None else ""
    print(
        f"γ {num(t.margin_top2)}  δ_k {num(t.delta_k)}  ε {num(t.epsilon)} "
        f"(items {num(t.epsilon_items)})  ζ {num(t.zeta_mean)}/{num(t.zeta_max)}  "
        f"ρ {num(t.rho)}"
    )
    print(
        f"Safe@1 {yes(t.safe1)}  Safe@{t.k} {yes(t.safek)}{safe_k_min}  "
        f"complete {yes(t.complete)}  candidates {t.n_candidates}  "
        f"latency {t.latency_ms:.1f} ms"
    )
