"""The ``luma`` command line: build a store from a folder, query it, inspect it.

Every command calls the library; none holds retrieval logic of its own::

    luma generate --out data/shapes --n 200          # a LUMA-Shapes corpus
    luma ingest data/shapes                          # images + captions + attributes
    luma query "two red circles" -k 5
    luma query --image photo.png --filter '{"split": "test"}' --json
    luma query --vector q.npy                        # a raw (dim,) float vector, no encoder
    luma stats
    luma gaps
    luma eval | bench | demo ...                     # delegated to their own components

The store is ``--store``, else ``$LUMA_STORE``, else ``./luma-store``. ``--json`` prints one
JSON document on stdout for scripts. Exit status: 0 success; 1 an error, reported on stderr
without a traceback (also when some files of an ``ingest`` were skipped); 2 a usage error or a
component that is not installed; 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import numpy as np

from luma_rag.engine import Luma
from luma_rag.errors import InvalidInputError, LumaError, ModelNotAvailableError
from luma_rag.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from luma_rag.results import QueryResult

__all__ = ["main"]

logger = logging.getLogger(__name__)

#: Environment variable naming the default store.
ENV_STORE: Final = "LUMA_STORE"
DEFAULT_STORE: Final = "luma-store"
DEFAULT_MODEL: Final = "luma-tiny"
DEFAULT_AUDIO_MODEL: Final = "luma-tiny-clap"
#: File in the store where ``luma ingest`` records the encoders it used (the query default).
ENCODERS_FILE: Final = "luma-cli.json"
TEXT_SUFFIXES: Final = frozenset({".txt", ".md"})
MODALITIES: Final = ("image", "text", "video", "audio")
_BATCH: Final = 32
_CAPTION_KEYS: Final = ("caption", "text")
_FILE_KEYS: Final = ("file", "path", "name", "image", "audio", "video")

#: ``luma NAME ...`` hands its arguments to ``module.main(argv)``: name -> (module, what, hint).
_DELEGATES: dict[str, tuple[str, str, str]] = {
    "eval": ("luma_rag.eval.run", "the evaluation suite", ""),
    "bench": ("bench.run", "the benchmark", "; it ships with the source tree: run it there"),
    "demo": ("apps.demo", "the demo app", ""),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``luma`` command line.

    Args:
        argv: arguments without the program name (None: ``sys.argv[1:]``).

    Returns:
        The exit status (0 success, 1 error, 2 usage error or component not installed).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list and args_list[0] in _DELEGATES:
            return _delegate(args_list[0], args_list[1:])
        try:
            args = _parser().parse_args(args_list)
        except SystemExit as e:  # --help, --version, usage errors: argparse already printed
            return e.code if isinstance(e.code, int) else 2
        if args.verbose:
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        command: Callable[[argparse.Namespace], int] = args.run
        return command(args)
    except LumaError as e:
        _error(str(e))
        return 1
    except BrokenPipeError:  # `luma query ... | head`
        sys.stderr.close()
        return 1
    except OSError as e:
        _error(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


# -- parser --------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from luma_rag import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON on stdout")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    common.add_argument("--verbose", "-v", action="store_true", help="log library INFO messages")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store",
        type=Path,
        default=None,
        help=f"store directory (default: ${ENV_STORE}, else ./{DEFAULT_STORE})",
    )
    models = argparse.ArgumentParser(add_help=False)
    models.add_argument(
        "--model",
        default=None,
        help="CLIP-space encoder (default: the one the store was ingested with, else "
        f"{DEFAULT_MODEL})",
    )
    models.add_argument(
        "--audio-model",
        default=None,
        help=f"CLAP encoder for audio (default: the store's, else {DEFAULT_AUDIO_MODEL})",
    )

    parser = argparse.ArgumentParser(
        prog="luma", description="LUMA-RAG: lifelong multimodal retrieval with Safe@k."
    )
    parser.add_argument("--version", action="version", version=f"luma-rag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "ingest", parents=[common, store, models], help="embed and store the media in a folder"
    )
    p.add_argument(
        "dir",
        type=Path,
        metavar="DIR",
        help="folder (searched recursively; images, audio, video, .txt/.md) or one file",
    )
    p.add_argument(
        "--captions",
        type=Path,
        help="JSONL or CSV mapping file name -> caption (a LUMA-Shapes manifest.jsonl in DIR "
        "is read automatically)",
    )
    p.add_argument(
        "--only",
        type=_modality_list,
        default=MODALITIES,
        metavar="LIST",
        help="comma-separated modalities to ingest (default: image,text,video,audio)",
    )
    p.set_defaults(run=_cmd_ingest)

    p = sub.add_parser("query", parents=[common, store, models], help="search the store")
    p.add_argument("text", nargs="?", metavar="TEXT", help="a text query")
    p.add_argument("--image", type=Path, help="an image query")
    p.add_argument("--audio", type=Path, help="an audio query (crosses the CLAP->CLIP bridge)")
    p.add_argument("--video", type=Path, help="a video query")
    p.add_argument("--vector", type=Path, help="a .npy (dim,) float vector (no encoder needed)")
    p.add_argument("-k", type=_positive_int, default=10, help="number of hits (default 10)")
    p.add_argument("--filter", dest="filter", metavar="JSON", help='e.g. \'{"color": "red"}\'')
    p.set_defaults(run=_cmd_query)

    p = sub.add_parser("stats", parents=[common, store], help="items, tiers, memory, bridge")
    p.set_defaults(run=_cmd_stats)

    p = sub.add_parser("gaps", parents=[common, store], help="recent knowledge gaps")
    p.add_argument("--limit", type=_positive_int, default=50, help="how many (default 50)")
    p.set_defaults(run=_cmd_gaps)

    p = sub.add_parser("generate", parents=[common], help="generate a LUMA-Shapes corpus")
    p.add_argument("--out", type=Path, required=True, help="corpus directory")
    p.add_argument("--n", type=_positive_int, required=True, help="number of items")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    p.add_argument("--audio", action="store_true", help="speak captions (needs espeak-ng)")
    p.add_argument("--video", action="store_true", help="write clips of moving shapes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing corpus")
    p.set_defaults(run=_cmd_generate)

    for name, (module, what, _) in _DELEGATES.items():  # dispatched in main(), listed here
        sub.add_parser(name, help=f"{what} ({module}); arguments are passed on", add_help=False)
    return parser


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _modality_list(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [n for n in names if n not in MODALITIES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"choose from {','.join(MODALITIES)}; got {value!r}")
    return names


# -- store helpers -------------------------------------------------------------------------------
def _store_path(args: argparse.Namespace) -> Path:
    if args.store is not None:
        return Path(args.store)
    return Path(os.environ.get(ENV_STORE) or DEFAULT_STORE)


def _require_store(path: Path) -> None:
    """Refuse a path that holds no store (Luma.open would create one)."""
    if not (path / "config.json").is_file():
        raise InvalidInputError(
            f"no LUMA store at {path}; create one with `luma ingest DIR --store {path}`, "
            f"or point --store (or ${ENV_STORE}) at an existing store"
        )


def _recorded_encoders(path: Path) -> dict[str, str | None]:
    try:
        data = json.loads((path / ENCODERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record_encoders(path: Path, model: str, audio_model: str | None) -> None:
    recorded = _recorded_encoders(path)
    data = {"model": model, "audio_model": audio_model or recorded.get("audio_model")}
    if data != recorded:
        tmp = path / (ENCODERS_FILE + ".tmp")
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, path / ENCODERS_FILE)


def _pick_model(given: str | None, recorded: str | None, default: str, path: Path) -> str:
    if given and recorded and given != recorded:
        print(
            f"warning: the store at {path} was ingested with {recorded!r}; vectors from "
            f"{given!r} live in another space unless it is the same model",
            file=sys.stderr,
        )
    return given or recorded or default


# -- ingest --------------------------------------------------------------------------------------
@dataclass
class _Item:
    """One file to ingest: absolute path, path relative to DIR, modality, caption, metadata."""

    path: Path
    rel: str
    modality: str
    caption: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Report:
    """What an ingest did: ids per modality and skipped files with the reason."""

    counts: Counter[str] = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _modality_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    for name, suffixes in (
        ("image", IMAGE_SUFFIXES),
        ("audio", AUDIO_SUFFIXES),
        ("video", VIDEO_SUFFIXES),
        ("text", TEXT_SUFFIXES),
    ):
        if suffix in suffixes:
            return name
    return None


def _collect(root: Path, only: Sequence[str]) -> list[_Item]:
    """Files under ``root`` (or ``root`` itself) whose suffix names a wanted modality."""
    if root.is_file():
        files, base = [root], root.parent
    elif root.is_dir():
        base = root
        files = [
            p
            for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        ]
    else:
        raise InvalidInputError(f"{root} does not exist; pass a folder (or file) to ingest")
    items = []
    for p in files:
        modality = _modality_of(p)
        if modality is not None and modality in only:
            rel = p.relative_to(base).as_posix()
            items.append(_Item(p.resolve(), rel, modality, metadata={"file": rel}))
    return items


def _notes_from_manifest(root: Path) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """LUMA-Shapes ``manifest.jsonl`` in ``root``: media path -> (caption, attributes...)."""
    from luma_rag.datasets import load_manifest
    from luma_rag.datasets.manifest import MANIFEST

    if not (root / MANIFEST).is_file():
        return {}
    notes: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for item in load_manifest(root):
        meta = {"item": item.id, "split": item.split, **item.attributes.as_dict()}
        for rel in (item.image, item.audio, item.video):
            if rel:
                notes[Path(rel).as_posix()] = (item.caption, meta)
    return notes


def _notes_from_captions(path: Path) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """A JSONL (``{"file": ..., "caption": ..., "metadata": {...}}``) or CSV caption file."""
    if not path.is_file():
        raise InvalidInputError(f"--captions {path}: no such file")
    with path.open(encoding="utf-8", newline="") as f:
        if path.suffix.lower() in {".jsonl", ".ndjson"}:
            rows = [(n, _json_row(line, path, n)) for n, line in enumerate(f, 1) if line.strip()]
        elif path.suffix.lower() in {".csv", ".tsv"}:
            rows = list(enumerate(_csv_rows(f, "\t" if path.suffix.lower() == ".tsv" else ","), 2))
        else:
            raise InvalidInputError(f"--captions {path}: expected a .jsonl or .csv file")
    notes: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for number, row in rows:
        name = next((row[k] for k in _FILE_KEYS if isinstance(row.get(k), str)), None)
        caption = next((row[k] for k in _CAPTION_KEYS if isinstance(row.get(k), str)), None)
        meta = row.get("metadata") or {}
        if not name or not isinstance(meta, dict):
            raise InvalidInputError(
                f"{path}:{number}: each entry needs a file name ('file') and a caption "
                "('caption'); 'metadata', if given, must be an object"
            )
        notes[Path(name).as_posix().removeprefix("./")] = (caption, meta)
    return notes


def _json_row(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"{path}:{number}: not JSON ({e.msg})") from e
    if not isinstance(row, dict):
        raise InvalidInputError(f"{path}:{number}: expected a JSON object per line")
    return row


def _csv_rows(f: TextIO, delimiter: str) -> Iterator[dict[str, Any]]:
    """Rows with a header naming a file and a caption column, or bare (file, caption) pairs."""
    reader = csv.reader(f, delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    if any(k in header for k in _FILE_KEYS) and any(k in header for k in _CAPTION_KEYS):
        for values in reader:
            yield dict(zip(header, values, strict=False))
        return
    for values in [header, *reader] if header else reader:
        if values:
            yield {"file": values[0], "caption": ",".join(values[1:]) or None}


def _annotate(items: list[_Item], notes: Mapping[str, tuple[str | None, dict[str, Any]]]) -> None:
    for it in items:
        note = notes.get(it.rel) or notes.get(Path(it.rel).name)
        if note is not None:
            caption, meta = note
            it.caption = caption if caption and caption.strip() else it.caption
            it.metadata.update(meta)


def _cmd_ingest(args: argparse.Namespace) -> int:
    """``luma ingest DIR``: embed every known file; exit 1 if any was skipped."""
    path = _store_path(args)
    root = Path(args.dir)
    items = _collect(root, args.only)
    if not items:
        known = sorted(IMAGE_SUFFIXES | AUDIO_SUFFIXES | VIDEO_SUFFIXES | TEXT_SUFFIXES)
        raise InvalidInputError(
            f"nothing to ingest under {root}: no {'/'.join(args.only)} files "
            f"(suffixes {', '.join(known)})"
        )
    if root.is_dir():
        _annotate(items, _notes_from_manifest(root))
    if args.captions is not None:  # after the manifest: its captions and metadata win
        _annotate(items, _notes_from_captions(args.captions))

    recorded = _recorded_encoders(path)
    model = _pick_model(args.model, recorded.get("model"), DEFAULT_MODEL, path)
    has_audio = any(it.modality == "audio" for it in items)
    audio_model = None
    if has_audio:
        given = args.audio_model
        audio_model = _pick_model(given, recorded.get("audio_model"), DEFAULT_AUDIO_MODEL, path)
    started = time.perf_counter()
    try:
        luma = Luma.open(path, encoder=model, audio_encoder=audio_model)
    except ModelNotAvailableError as e:
        hint = " (or skip audio with --only image,text,video)" if has_audio else ""
        raise ModelNotAvailableError(f"{e}{hint}") from e
    report = _Report()
    with luma, _Progress(len(items), "ingest", enabled=not args.quiet) as progress:
        _record_encoders(path, model, audio_model)
        for modality in MODALITIES:
            group = [it for it in items if it.modality == modality]
            if modality in ("image", "text"):
                for i in range(0, len(group), _BATCH):
                    _ingest_batch(luma, group[i : i + _BATCH], report)
                    progress.advance(len(group[i : i + _BATCH]))
            else:
                for it in group:
                    _ingest_one(luma, it, report)
                    progress.advance(1)
    seconds = time.perf_counter() - started
    for rel, reason in report.skipped:
        print(f"skipped {rel}: {reason}", file=sys.stderr)
    total = sum(report.counts.values())
    if args.json:
        _print_json(
            {
                "store": str(path),
                "ingested": total,
                "by_modality": dict(report.counts),
                "skipped": [{"file": f, "error": r} for f, r in report.skipped],
                "seconds": round(seconds, 3),
            }
        )
    else:
        parts = ", ".join(f"{n} {m}" for m, n in report.counts.items()) or "nothing"
        skipped = f"; skipped {len(report.skipped)} (see above)" if report.skipped else ""
        print(f"ingested {total} item(s) ({parts}) into {path} in {seconds:.1f} s{skipped}")
    return 1 if report.skipped else 0


def _ingest_batch(luma: Luma, batch: list[_Item], report: _Report) -> None:
    """One encoder call for a batch of images or texts; item by item if the batch fails."""
    modality = batch[0].modality
    try:
        if modality == "image":
            luma.ingest_images(
                [it.path for it in batch],
                [it.caption for it in batch],
                [it.metadata for it in batch],
                [str(it.path) for it in batch],
            )
        else:
            texts = [_read_text(it.path) for it in batch]
            luma.ingest_texts(texts, [it.metadata for it in batch], [str(it.path) for it in batch])
    except (LumaError, OSError, UnicodeDecodeError):
        for it in batch:  # find the bad file(s); the good ones still go in
            _ingest_one(luma, it, report)
        return
    report.counts[modality] += len(batch)


def _ingest_one(luma: Luma, it: _Item, report: _Report) -> None:
    """Ingest one file, or record why it was skipped."""
    try:
        if it.modality == "text":
            luma.ingest(_read_text(it.path), metadata=it.metadata, id=str(it.path))
        else:
            luma.ingest(
                image=it.path if it.modality == "image" else None,
                audio=it.path if it.modality == "audio" else None,
                video=it.path if it.modality == "video" else None,
                caption=it.caption,
                metadata=it.metadata,
                id=str(it.path),
            )
    except (LumaError, OSError, UnicodeDecodeError) as e:
        report.skipped.append((it.rel, str(e)))
        return
    report.counts[it.modality] += 1


def _read_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise InvalidInputError(f"{path} is empty")
    return text


class _Progress:
    """A progress line on stderr (tqdm when installed), only on a terminal and without --quiet."""

    def __init__(self, total: int, label: str, *, enabled: bool) -> None:
        self.total, self.label, self.done = total, label, 0
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, desc=label, unit="file", file=sys.stderr, leave=False)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.done:
            print(file=sys.stderr)

    def advance(self, n: int) -> None:
        """Count ``n`` more files as done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled:
            print(f"\r{self.label} {self.done}/{self.total}", end="", file=sys.stderr, flush=True)


# -- query ---------------------------------------------------------------------------------------
def _cmd_query(args: argparse.Namespace) -> int:
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
        _error("pass exactly one query: TEXT, --image, --audio, --video or --vector")
        return 2
    [(kind, value)] = given.items()
    if kind != "text" and not Path(value).is_file():
        raise InvalidInputError(f"--{kind} {value}: no such file")
    filters = _parse_filter(args.filter)
    path = _store_path(args)
    _require_store(path)
    if kind == "vector":
        vector = _load_vector(Path(value))
        with Luma.open(path) as luma:
            result = luma.search(vector, args.k, filters=filters)
    else:
        recorded = _recorded_encoders(path)
        model = _pick_model(args.model, recorded.get("model"), DEFAULT_MODEL, path)
        audio_model = None
        if kind == "audio":
            audio_model = _pick_model(
                args.audio_model, recorded.get("audio_model"), DEFAULT_AUDIO_MODEL, path
            )
        with Luma.open(path, encoder=model, audio_encoder=audio_model) as luma:
            result = luma.query(**{kind: value}, k=args.k, filters=filters)
    if args.json:
        _print_json(_result_dict(kind, str(value), result))
    else:
        _print_result(result)
    return 0


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
            _clip(h.text or "", 40),
            _clip(_short_path(h.source or h.id), 50),
        )
        for h in result.hits
    ]
    _print_table(("#", "score", "tier", "modality", "text", "source / id"), rows)
    t = result.telemetry
    safe_k_min = f" (k'={t.safe_k_min})" if t.safe_k_min is not None else ""
    print(
        f"γ {_num(t.margin_top2)}  δ_k {_num(t.delta_k)}  ε {_num(t.epsilon)} "
        f"(items {_num(t.epsilon_items)})  ζ {_num(t.zeta_mean)}/{_num(t.zeta_max)}  "
        f"ρ {_num(t.rho)}"
    )
    print(
        f"Safe@1 {_yes(t.safe1)}  Safe@{t.k} {_yes(t.safek)}{safe_k_min}  "
        f"complete {_yes(t.complete)}  candidates {t.n_candidates}  "
        f"latency {t.latency_ms:.1f} ms"
    )


# -- stats, gaps, generate -------------------------------------------------------------------------
def _cmd_stats(args: argparse.Namespace) -> int:
    """``luma stats``: items, tiers, memory, bridge, recorded model."""
    path = _store_path(args)
    _require_store(path)
    with Luma.open(path) as luma:
        stats = {"store": str(path), "dim": luma.config.dim, **luma.stats()}
    stats["model"] = _recorded_encoders(path).get("model")
    if args.json:
        _print_json(stats)
    else:
        _print_table(
            ("field", "value"), [(key, _human(key, value)) for key, value in stats.items()]
        )
    return 0


def _cmd_gaps(args: argparse.Namespace) -> int:
    """``luma gaps``: the queries the memory could not settle, newest first."""
    path = _store_path(args)
    _require_store(path)
    with Luma.open(path) as luma:
        gaps = luma.knowledge_gaps(args.limit)
    if args.json:
        _print_json(gaps)
    elif not gaps:
        print(f"no knowledge gaps recorded in {path}")
    else:
        rows = []
        for g in gaps:
            detail = {k: v for k, v in g.items() if k not in ("gap", "time", "query")}
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(g["time"]))
            rows.append((str(g["gap"]), when, _clip(g["query"], 50), _clip(json.dumps(detail), 60)))
        _print_table(("gap", "time", "query", "detail"), rows)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    """``luma generate``: a LUMA-Shapes corpus (:func:`luma_rag.datasets.generate`)."""
    from luma_rag.datasets import generate

    started = time.perf_counter()
    manifest = generate(
        args.out,
        n=args.n,
        seed=args.seed,
        audio=args.audio,
        video=args.video,
        size=args.size,
        overwrite=args.overwrite,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    seconds = time.perf_counter() - started
    if args.json:
        _print_json({"manifest": str(manifest), "n": args.n, "seconds": round(seconds, 3)})
    else:
        print(f"generated {args.n} LUMA-Shapes item(s) in {seconds:.1f} s: {manifest}")
    return 0


# -- delegated components --------------------------------------------------------------------------
def _delegate(name: str, argv: list[str]) -> int:
    """Run ``luma NAME ARGS`` as ``module.main(ARGS)``; exit 2 when the component is missing."""
    module_name, what, hint = _DELEGATES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            _error(
                f"`luma {name}` needs {what} ({module_name}), which is not installed yet in "
                f"this build of LUMA-RAG{hint}"
            )
            return 2
        _error(f"`luma {name}` needs the package {e.name!r}, which is not installed ({e})")
        return 1
    entry = getattr(module, "main", None)
    if not callable(entry):
        _error(f"`luma {name}`: {module_name} has no main(); the component is not installed yet")
        return 2
    try:
        status = entry(argv)
    except SystemExit as e:  # the component's argparse: --help, usage errors
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return int(status or 0)


# -- output helpers ------------------------------------------------------------------------------
def _error(message: str) -> None:
    print(f"luma: error: {message}", file=sys.stderr)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _print_json(value: Any) -> None:
    print(json.dumps(_jsonable(value), ensure_ascii=False, indent=2))


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_path(source: str) -> str:
    try:
        return Path(source).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return source


def _num(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _human(key: str, value: Any) -> str:
    if key.endswith("_bytes") and isinstance(value, int):
        size = float(value)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if size < 1024 or unit == "GiB":
                return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            size /= 1024
    if isinstance(value, float):
        return _num(value)
    return "-" if value is None else str(value)
