"""``luma ingest DIR``: embed and store every image, text, audio and video file of a folder.

Captions and metadata come from a LUMA-Shapes ``manifest.jsonl`` in DIR and from
``--captions`` (JSONL or CSV: file name -> caption, and with JSONL a ``metadata`` object).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from luma_rag.cli._common import (
    DEFAULT_AUDIO_MODEL,
    DEFAULT_MODEL,
    Progress,
    pick_model,
    print_json,
    record_encoders,
    recorded_encoders,
    status,
    store_path,
)
from luma_rag.errors import InvalidInputError, LumaError, ModelNotAvailableError
from luma_rag.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES

if TYPE_CHECKING:
    from luma_rag.engine import Luma

__all__ = ["MODALITIES", "add_parser", "cmd_ingest"]

TEXT_SUFFIXES: Final = frozenset({".txt", ".md"})
MODALITIES: Final = ("image", "text", "video", "audio")
_BATCH: Final = 32
_CAPTION_KEYS: Final = ("caption", "text")
_FILE_KEYS: Final = ("file", "path", "name", "image", "audio", "video")


def _modality_list(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [n for n in names if n not in MODALITIES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"choose from {','.join(MODALITIES)}; got {value!r}")
    return names


def add_parser(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add ``luma ingest`` to the subcommands."""
    p = sub.add_parser("ingest", parents=parents, help="embed and store the media in a folder")
    p.add_argument(
        "dir",
        type=Path,
        metavar="DIR",
        help="folder (searched recursively; images, audio, video, .txt/.md) or one file",
    )
    p.add_argument(
        "--captions",
        type=Path,
        metavar="FILE",
        help="captions and per-file metadata: JSONL lines like "
        '{"file": "a.png", "caption": "a red circle", "metadata": {"split": "test"}} '
        "(metadata becomes filterable with `luma query --filter`), or CSV/TSV with a "
        "file,caption header or bare file,caption rows. File names are relative to DIR. A "
        "LUMA-Shapes manifest.jsonl in DIR is read automatically",
    )
    p.add_argument(
        "--only",
        type=_modality_list,
        default=MODALITIES,
        metavar="LIST",
        help="comma-separated modalities to ingest (default: image,text,video,audio)",
    )
    p.set_defaults(run=cmd_ingest)


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


def cmd_ingest(args: argparse.Namespace) -> int:
    """``luma ingest DIR``: embed every known file; exit 1 if any was skipped."""
    path = store_path(args)
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

    recorded = recorded_encoders(path)
    model = pick_model(args.model, recorded.get("model"), DEFAULT_MODEL, path)
    has_audio = any(it.modality == "audio" for it in items)
    audio_model = None
    if has_audio:
        given = args.audio_model
        audio_model = pick_model(given, recorded.get("audio_model"), DEFAULT_AUDIO_MODEL, path)
    from luma_rag.engine import Luma

    started = time.perf_counter()
    encoders = model + (f" + {audio_model}" if audio_model else "")
    fresh = not (path / "config.json").is_file()
    what = f"opening {path} with {encoders}" + (
        " (a new store: the encoder radius ρ is calibrated once, about a minute)" if fresh else ""
    )
    try:
        with status(what, enabled=not args.quiet):
            luma = Luma.open(path, encoder=model, audio_encoder=audio_model)
    except ModelNotAvailableError as e:
        hint = " (or skip audio with --only image,text,video)" if has_audio else ""
        raise ModelNotAvailableError(f"{e}{hint}") from e
    report = _Report()
    with luma, Progress(len(items), "ingest", enabled=not args.quiet) as progress:
        record_encoders(path, model, audio_model)
        for modality in MODALITIES:
            group = [it for it in items if it.modality == modality]
            if modality in ("image", "text"):
                for i in range(0, len(group), _BATCH):
                    _ingest_batch(luma, group[i : i + _BATCH], report)
                    progress.advance(len(group[i : i + _BATCH]))
            else:
                bridge = luma.bridge
                if modality == "audio" and group and bridge is not None and not bridge.fitted:
                    luma.calibrate(["audio"])  # warm-start the bridge on the stored captions
                for it in group:
                    _ingest_one(luma, it, report)
                    progress.advance(1)
    seconds = time.perf_counter() - started
    for rel, reason in report.skipped:
        print(f"skipped {rel}: {reason}", file=sys.stderr)
    total = sum(report.counts.values())
    if args.json:
        print_json(
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
