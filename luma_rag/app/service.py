"""What the chat app does, without the UI: ask, ingest uploads, read the memory's state.

:class:`AppService` holds an open :class:`~luma_rag.engine.Luma` store, an answerer and the
answer gate. Its methods are plain functions of plain values (paths, strings), so the Gradio
wiring in :mod:`luma_rag.app.chat` stays thin and the tests call them directly.

Example:
    >>> service = AppService(luma, EvidenceAnswerer())
    >>> reply = service.ask("a red circle on the left")
    >>> reply.decision, reply.answer.text, reply.telemetry["safe1"]
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from luma_rag.answer import Answerer, GateConfig, GatedRetriever
from luma_rag.answer.readable import readable
from luma_rag.app.group_picture import pictures_for_groups
from luma_rag.app.replies import ChatReply, IngestReport, MemoryView, Upload
from luma_rag.errors import InvalidInputError, LumaError, UnsupportedMediaError
from luma_rag.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, load_image
from luma_rag.media.sources import local_path

if TYPE_CHECKING:
    from luma_rag.engine import Luma
    from luma_rag.results import QueryResult

__all__ = [
    "DEFAULT_MAX_QUESTION_CHARS",
    "DEFAULT_MAX_UPLOAD_MB",
    "AppService",
    "ChatReply",
    "IngestReport",
    "MemoryView",
]

logger = logging.getLogger(__name__)

#: Largest file the app accepts by default, in megabytes (uploads and media queries).
DEFAULT_MAX_UPLOAD_MB: Final = 20.0
#: Longest question the app accepts by default, in characters.
DEFAULT_MAX_QUESTION_CHARS: Final = 2000
TEXT_SUFFIXES: Final = frozenset({".txt", ".md"})
#: Directory inside the store where uploaded media are kept (``Hit.source`` points there).
UPLOADS_DIR: Final = "uploads"
_MEDIA_PROMPTS: Final = {
    "image": "What does this image show?",
    "audio": "What does this audio clip say?",
}

ProgressCallback = Callable[[int, int, str], None]


class AppService:
    """The app's operations on one store; thread-safe where the store is.

    Args:
        engine: An open store with an encoder attached (``Luma.open(..., encoder=...)``).
        answerer: Turns a gate decision into an answer (e.g.
            :class:`~luma_rag.answer.EvidenceAnswerer`).
        gate_config: Gate settings (default :class:`~luma_rag.answer.GateConfig`).
        max_upload_mb: Largest file accepted, for uploads and media queries.
        gap_limit: Knowledge gaps listed by :meth:`memory`.
        max_question_chars: Longest question accepted (a longer one is refused, not cut).
        search_text: Maps a typed question to the text the gate searches with (e.g.
            :func:`luma_rag.answer.verify_vlm.referent_of`: "What colour is the small
            circle?" → "the small circle"); the answerer always gets the question itself.
            None (default): the question is searched as typed.
    """

    def __init__(
        self,
        engine: Luma,
        answerer: Answerer,
        gate_config: GateConfig | None = None,
        *,
        max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
        gap_limit: int = 20,
        max_question_chars: int = DEFAULT_MAX_QUESTION_CHARS,
        search_text: Callable[[str], str] | None = None,
    ) -> None:
        if not isinstance(answerer, Answerer):
            raise InvalidInputError(
                f"answerer must have an answer(question, decision) method, got {answerer!r}"
            )
        if not (isinstance(max_upload_mb, int | float) and max_upload_mb > 0):
            raise InvalidInputError(f"max_upload_mb must be > 0, got {max_upload_mb!r}")
        self.engine = engine
        self.answerer = readable(answerer)  # the gate's own question; never an empty answer
        self.gate = GatedRetriever(engine, gate_config)
        self.max_upload_mb = float(max_upload_mb)
        self.gap_limit = int(gap_limit)
        ok = isinstance(max_question_chars, int) and not isinstance(max_question_chars, bool)
        if not ok or max_question_chars < 1:
            raise InvalidInputError(
                f"max_question_chars must be an int >= 1, got {max_question_chars!r}"
            )
        self.max_question_chars = max_question_chars
        if search_text is not None and not callable(search_text):
            raise InvalidInputError(f"search_text must be callable or None, got {search_text!r}")
        self.search_text = search_text
        self._ingest_lock = threading.Lock()
        self._answer_lock = threading.Lock()  # one answerer call at a time (models may not share)

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    def served_paths(self) -> list[str]:
        """What the app may serve as evidence: every media file the store references, and the
        uploads directory (new uploads land there). Never the store's own files."""
        referenced = {
            item["source"]
            for item in self.engine.get(self.engine.ids())
            if item.get("source") and os.path.isfile(item["source"])
        }
        return [*sorted(referenced), os.fspath(self.engine.path / UPLOADS_DIR)]

    def blocked_paths(self) -> list[str]:
        """The store's own files (records, vectors, snapshots, config): never served."""
        root = self.engine.path
        return sorted(os.fspath(p) for p in root.iterdir() if p.name != UPLOADS_DIR)

    @property
    def answerer_name(self) -> str:
        """A short name of the answerer, e.g. ``"EvidenceAnswerer"``."""
        return type(self.answerer).__name__

    # -- chat ------------------------------------------------------------------------------------
    def ask(
        self,
        question: str | None,
        *,
        image: str | os.PathLike[str] | None = None,
        audio: str | os.PathLike[str] | None = None,
    ) -> ChatReply:
        """Answer a typed question, or use an image / audio clip as the query.

        With a media query the typed text (if any) is the question the answerer is given;
        retrieval uses the media alone.

        Raises:
            InvalidInputError: nothing asked, both an image and an audio clip, a file over the
                size limit or of the wrong kind. Other :class:`~luma_rag.errors.LumaError`:
                from the store (e.g. audio without an audio encoder).
        """
        text = (question or "").strip()
        if len(text) > self.max_question_chars:
            raise InvalidInputError(
                f"the question is {len(text)} characters long; the limit is "
                f"{self.max_question_chars}: shorten it"
            )
        if image is not None and audio is not None:
            raise InvalidInputError("use one query medium at a time: an image or an audio clip")
        t0 = time.perf_counter()
        query: dict[str, Any]
        if image is not None:
            kind = "image"
            query = {"image": self._checked_file(image, IMAGE_SUFFIXES, "image")}
        elif audio is not None:
            kind = "audio"
            query = {"audio": self._checked_file(audio, AUDIO_SUFFIXES, "audio clip")}
        elif text:
            searched = self.search_text(text).strip() if self.search_text else text
            kind, query = "text", {"text": searched or text}
        else:
            raise InvalidInputError("type a question, or upload an image or an audio clip")
        decision = self.gate.query(**query)

        def search(filters: dict[str, Any], k: int) -> QueryResult:
            return self.engine.query(**query, k=k, filters=filters)

        decision = pictures_for_groups(decision, self.gate.config.link_key, search)
        asked = text or _MEDIA_PROMPTS[kind]
        t1 = time.perf_counter()
        with self._answer_lock:
            answer = self.answerer.answer(asked, decision)
        t2 = time.perf_counter()
        numbers = decision.numbers.to_dict()
        telemetry = {
            **{k: numbers[k] for k in _TELEMETRY_KEYS},
            "decision": answer.decision.decision,
            "k_used": answer.decision.k_used,
            "relevance": decision.relevance.to_dict() if decision.relevance else None,
            "latency_ms": (t2 - t0) * 1000.0,
            "answer_ms": (t2 - t1) * 1000.0,
        }
        visual, sounds = [], []
        for c in answer.citations:
            shown = _displayable(c.source)
            if c.source is None or shown is None:
                continue
            caption = f"[{c.rank}] {c.text or Path(c.source).name} ({c.score:.3f})"
            if c.modality in ("image", "video"):
                visual.append((shown, caption))
            elif c.modality == "audio":
                sounds.append((shown, caption))
        return ChatReply(asked, kind, answer, telemetry, visual, sounds)

    # -- ingest ----------------------------------------------------------------------------------
    def ingest(
        self,
        files: Sequence[str | os.PathLike[str]] = (),
        *,
        caption: str | None = None,
        text: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Store uploaded files (text, image, audio, video) and / or a typed text; all or none.

        Every file is checked first (kind, size, images decoded); media are copied into the
        store's ``uploads/`` directory, so their ``Hit.source`` outlives the upload. If any item
        fails, the items of this call already stored are deleted again and the copies removed.

        Args:
            files: Paths of the uploaded files (``.txt`` / ``.md`` are read as text).
            caption: What the media show or say (applied to every media file); optional.
            text: A typed text to store as one more item; optional.
            progress: Called as ``progress(done, total, label)`` after each item.

        Returns:
            The :class:`IngestReport`; the new items are searchable at once.

        Raises:
            InvalidInputError / UnsupportedMediaError: a bad upload; the store is unchanged.
        """
        caption = (caption or "").strip() or None
        uploads = [self._check_upload(Path(f)) for f in files]
        if text is not None and text.strip():
            uploads.append(Upload("text", f"text ({len(text.strip())} chars)", text.strip()))
        if not uploads:
            raise InvalidInputError("nothing to ingest: upload files or type a text")
        t0 = time.perf_counter()
        with self._ingest_lock:
            ids: list[str] = []
            copies: list[Path] = []
            try:
                for i, up in enumerate(uploads):
                    ids.append(self._store(up, caption, copies))
                    if progress is not None:
                        progress(i + 1, len(uploads), up.label)
            except (LumaError, OSError) as e:
                self._roll_back(ids, copies)
                raise UnsupportedMediaError(
                    f"could not ingest {uploads[len(ids)].label}: {e}; nothing was stored"
                ) from e
        return IngestReport(ids, [u.label for u in uploads], time.perf_counter() - t0)

    def _check_upload(self, path: Path) -> Upload:
        name = path.name
        suffix = path.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            self._checked_file(path, TEXT_SUFFIXES, "text file")
            try:
                content = path.read_text(encoding="utf-8").strip()
            except UnicodeDecodeError as e:
                raise UnsupportedMediaError(f"{name} is not UTF-8 text") from e
            if not content:
                raise UnsupportedMediaError(f"{name} is empty")
            return Upload("text", f"text {name}", text=content, name=name)
        for kind, suffixes in (
            ("image", IMAGE_SUFFIXES),
            ("audio", AUDIO_SUFFIXES),
            ("video", VIDEO_SUFFIXES),
        ):
            if suffix in suffixes:
                self._checked_file(path, suffixes, kind)
                if kind == "image":
                    _check_image(path)
                return Upload(kind, f"{kind} {name}", path=path, name=name)
        known = sorted(TEXT_SUFFIXES | IMAGE_SUFFIXES | AUDIO_SUFFIXES | VIDEO_SUFFIXES)
        raise UnsupportedMediaError(f"{name}: unsupported file type; upload one of {known}")

    def _checked_file(
        self, value: str | os.PathLike[str], suffixes: frozenset[str], what: str
    ) -> Path:
        path = Path(value)
        if path.suffix.lower() not in suffixes:
            raise UnsupportedMediaError(
                f"{path.name} is not a supported {what} (expected {sorted(suffixes)})"
            )
        if not path.is_file():
            raise UnsupportedMediaError(f"{path.name}: the uploaded file is missing")
        size = path.stat().st_size
        if size == 0:
            raise UnsupportedMediaError(f"{path.name} is empty")
        if size > self.max_upload_bytes:
            raise UnsupportedMediaError(
                f"{path.name} is {size / 2**20:.1f} MB; the limit is {self.max_upload_mb:g} MB"
            )
        return path

    def _store(self, up: Upload, caption: str | None, copies: list[Path]) -> str:
        meta = {"filename": up.name} if up.name else {}
        if up.kind == "text":
            return self.engine.ingest(up.text, metadata=meta)
        if up.path is None:
            raise InvalidInputError(f"{up.label} has no file")
        target = self.engine.path / UPLOADS_DIR / f"{uuid.uuid4().hex}{up.path.suffix.lower()}"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(up.path, target)
        copies.append(target)
        if up.kind == "image":
            return self.engine.ingest(image=target, caption=caption, metadata=meta)
        if up.kind == "audio":
            return self.engine.ingest(audio=target, caption=caption, metadata=meta)
        return self.engine.ingest(video=target, caption=caption, metadata=meta)

    def _roll_back(self, ids: list[str], copies: list[Path]) -> None:
        if ids:
            self.engine.delete(ids)
        for path in copies:
            path.unlink(missing_ok=True)

    # -- memory ----------------------------------------------------------------------------------
    def memory(self) -> MemoryView:
        """Tier counts against the budget, the bridge's ε history and recent knowledge gaps."""
        bridge = self.engine.bridge
        history = bridge.history if bridge is not None else []
        gaps = [
            {
                "time": datetime.fromtimestamp(g["time"], UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "query": _short_label(g["query"]),
                "clarification": g.get("clarification") or "",
                "reason": g.get("reason") or "",
            }
            for g in self.engine.knowledge_gaps(self.gap_limit)
        ]
        return MemoryView(self.engine.stats(), history, gaps, bridge is not None)


def _short_label(query: str) -> str:
    """``"image query: /tmp/gradio/…/cat.png"`` -> ``"image query: cat.png"``."""
    kind, sep, path = query.partition(" query: ")
    if sep and kind in ("image", "audio", "video") and os.sep in path:
        return f"{kind} query: {os.path.basename(path)}"
    return query


def _displayable(source: str | None) -> str | None:
    """A local file showing a cited source: the path itself, or for a URI (``s3://...``) the
    download its registered resolver makes (in the temp directory, which the app may serve);
    None when there is no file to show."""
    if source is None:
        return None
    try:
        path = local_path(source)
    except LumaError as e:  # no resolver for the scheme, or the download failed
        logger.warning("cannot display %s: %s", source, e)
        return None
    return path if os.path.isfile(path) else None


def _check_image(path: Path) -> None:
    """Decode the image fully, so corrupt or truncated files are refused before any write."""
    try:
        load_image(path)
    except LumaError:
        raise
    except (OSError, ValueError, KeyError, SyntaxError) as e:  # a decoder error load_image let by
        raise UnsupportedMediaError(f"{path.name} is not a readable image ({e!r})") from e


_TELEMETRY_KEYS: Final = (
    "margin_top2",
    "delta_k",
    "epsilon",
    "epsilon_items",
    "zeta_mean",
    "zeta_max",
    "rho",
    "rho_source",
    "safe1",
    "safe_k",
    "complete",
    "complete_at",
    "n_candidates",
)
