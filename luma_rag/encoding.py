"""The encoder side of the facade: attach encoders, embed media, add or search the vectors.

These functions are :class:`~luma_rag.Luma` methods (``attach_encoders``, ``set_rho``,
``ingest``, ``ingest_texts``, ``ingest_images``, ``query``), kept here so the facade stays a
page long. Attaching measures the missing radii ρ (:func:`~luma_rag.calibration.calibrate_radii`
on inputs passed in, default the shipped set) and warm-starts an unfitted bridge; ingest and
query validate, embed (through :class:`~luma_rag.embedder.MediaEmbedder`; audio is marked
``bridged``), feed caption pairs to the bridge, then call the facade's vector API, so every
write takes the same validated path.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import luma_rag._checks as checks
from luma_rag.audio_ingest import ingest_audio
from luma_rag.errors import DimensionMismatchError, InvalidInputError
from luma_rag.results import QueryResult

if TYPE_CHECKING:
    from luma_rag.calibration import CalibrationInputs
    from luma_rag.encoders.base import Encoder
    from luma_rag.engine import Luma

__all__ = [
    "attach_encoders",
    "calibration",
    "ingest_audio",
    "ingest_images",
    "ingest_item",
    "ingest_texts",
    "query_media",
    "set_calibration",
    "set_rho",
    "store_rho",
]

logger = logging.getLogger(__name__)

MediaPath = str | os.PathLike[str]


def ingest_item(
    luma: Luma,
    text: str | None = None,
    *,
    image: MediaPath | None = None,
    audio: MediaPath | None = None,
    video: MediaPath | None = None,
    caption: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    id: str | None = None,
) -> str:
    """Embed and store one item (exactly one of text / image / audio / video).

    Args:
        caption: what the item shows or says; returned as ``Hit.text`` and, with an audio
            encoder attached, fed to the bridge as a (CLAP-text, CLIP-text) pair (plus
            (CLAP-audio, CLIP-text) for audio items).

    Returns:
        The item's id.
    """
    luma._store.check_open()
    metas = checks.check_metadata([metadata or {}], 1)
    ids = checks.check_ids([id], 1) if id is not None else None
    short: dict[str, str | None] = {"text": text, "caption": caption}
    for name, value in short.items():
        if isinstance(value, str):
            short[name], cut = checks.encoder_prefix(checks.check_text(value, name))
            if cut:
                logger.warning("%s is longer than the encoder reads; embedding its prefix", name)
    emb = luma._need_embedder().embed(
        text=short["text"],
        image=image,
        audio=audio,
        video=video,
        caption=short["caption"],
        with_pairs=True,  # an ingest feeds the bridge
    )
    if emb.pairs is not None and luma.bridge is not None:
        luma.add_bridge_pairs(*emb.pairs)
    item = luma.add_vectors(
        emb.vector[None, :],
        metas,
        ids,
        modality=emb.modality,
        bridged=emb.bridged,
        texts=[caption if caption is not None else text],
        sources=[emb.source],
    )[0]
    extractor = luma.enrichers.get(emb.modality)
    if extractor is not None and emb.source is not None:
        from luma_rag.enrich.linked import add_linked_text

        add_linked_text(luma, item, emb.source, emb.modality, extractor, metas[0])
    return item


def ingest_texts(
    luma: Luma,
    texts: Sequence[str],
    metadatas: Sequence[Mapping[str, Any]] | None = None,
    ids: Sequence[str] | None = None,
) -> list[str]:
    """Embed and store a batch of texts (one encoder call)."""
    luma._store.check_open()
    if (
        isinstance(texts, str)
        or not texts
        or not all(isinstance(t, str) and t.strip() for t in texts)
    ):
        raise InvalidInputError("texts must be a non-empty list of non-empty strings")
    texts = [checks.check_text(t, f"texts[{i}]") for i, t in enumerate(texts)]
    metas = checks.check_metadata(metadatas, len(texts))
    ids_ = checks.check_ids(ids, len(texts))
    prefixes = [checks.encoder_prefix(t)[0] for t in texts]
    vecs = luma._need_embedder().encoder.encode_text(prefixes)
    return luma.add_vectors(vecs, metas, ids_, modality="text", texts=list(texts))


def ingest_images(
    luma: Luma,
    paths: Sequence[MediaPath],
    captions: Sequence[str | None] | None = None,
    metadatas: Sequence[Mapping[str, Any]] | None = None,
    ids: Sequence[str] | None = None,
) -> list[str]:
    """Embed and store a batch of images (one encoder call; captions optional)."""
    luma._store.check_open()
    if isinstance(paths, (str, os.PathLike)) or not paths:
        raise InvalidInputError("paths must be a non-empty list of image files")
    n = len(paths)
    caps = checks.check_optional_strings(captions, n, "captions")
    metas = checks.check_metadata(metadatas, n)
    ids_ = checks.check_ids(ids, n)
    vecs = luma._need_embedder().encoder.encode_image(list(paths))
    stored = luma.add_vectors(
        vecs, metas, ids_, modality="image", texts=caps, sources=[os.fspath(p) for p in paths]
    )
    extractor = luma.enrichers.get("image")
    if extractor is not None:
        from luma_rag.enrich.linked import add_linked_text

        for item, path, meta in zip(stored, paths, metas, strict=True):
            add_linked_text(luma, item, path, "image", extractor, meta)
    return stored


def query_media(
    luma: Luma,
    text: str | None = None,
    *,
    image: MediaPath | None = None,
    audio: MediaPath | None = None,
    video: MediaPath | None = None,
    k: int = 10,
    filters: Mapping[str, Any] | None = None,
    rho: float | None = None,
    weights: Mapping[str, float] | None = None,
) -> QueryResult:
    """Search with a text, image, audio or video query — or several at once.

    ρ defaults to the store's radius for the query's modality (``luma.rho``), else
    ``SafetyConfig.rho``; ``telemetry.rho_source`` says which (``"calibrated"``, ``"user"`` or
    ``"unset"``). Audio queries cross the bridge, so ε_q enters the bound. A single-input
    query runs one encoder pass.

    Several inputs (``luma.query("but red", image="circle.png", weights={"text": 0.75})``)
    make a composite query: ``normalize(Σ w_m e(input_m))`` with the weights given per
    modality (default 1.0), certified with the combined radius of
    :func:`luma_rag.composite.composite_query` (``rho`` is then refused: each part uses its
    modality's ρ; use ``luma.query_parts`` for per-part radii or negative weights).
    """
    luma._store.check_open()
    k = checks.check_k(k, max_k=luma.config.max_k)
    given = {
        m: v
        for m, v in (("text", text), ("image", image), ("audio", audio), ("video", video))
        if v is not None
    }
    if len(given) > 1 or weights:
        from luma_rag.composite import Part, composite_query

        w = dict(weights or {})
        if set(w) - set(given):
            raise InvalidInputError(
                f"weights name {sorted(set(w) - set(given))} but the query has no such input"
            )
        if rho is not None:
            raise InvalidInputError(
                "rho sets the radius of a single-input query; a composite combines the parts' "
                "radii (pass Part(radius=...) to luma.query_parts to set them)"
            )
        inputs: dict[str, dict[str, Any]] = {m: {m: v} for m, v in given.items()}
        parts = [Part(**inputs[m], weight=float(w.get(m, 1.0))) for m in given]
        return composite_query(luma, parts, k=k, filters=filters)
    notes = []
    if isinstance(text, str):
        text, cut = checks.encoder_prefix(checks.check_text(text, "text"))
        if cut:
            notes.append(f"query text truncated to its first {checks.MAX_ENCODED_CHARS} characters")
    t0 = time.perf_counter()
    emb = luma._need_embedder().embed(
        text=text, image=image, audio=audio, video=video, with_pairs=False
    )  # one encoder pass: a query feeds no bridge pairs
    encode_ms = (time.perf_counter() - t0) * 1000.0
    source: Literal["calibrated", "user", "unset"] | None = None
    if rho is None and emb.modality in luma.rho:
        rho = luma.rho[emb.modality]
        source = "user" if luma.rho_source.get(emb.modality) == "user" else "calibrated"
    res = luma.search(
        emb.vector, k, filters=filters, rho=rho, bridged=emb.bridged, rho_source=source
    )
    tel = dataclasses.replace(
        res.telemetry,
        latency_ms=(time.perf_counter() - t0) * 1000.0,
        stages_ms={"encode": encode_ms, **res.telemetry.stages_ms},
        notes=(*notes, *res.telemetry.notes),
    )
    return dataclasses.replace(res, telemetry=tel)


def attach_encoders(
    luma: Luma,
    encoder: Encoder,
    audio_encoder: Encoder | None = None,
    *,
    calibration: CalibrationInputs | None = None,
) -> None:
    """Attach encoders; read ρ if it was measured with these encoders. Nothing slow runs here.

    ρ per query modality is read from the store (``luma.rho``, with ``luma.rho_source``) when
    it was measured with the same encoders; if the store's ρ came from other encoders it is
    dropped, and a warning (also in ``luma.notices``) says so. Missing radii are measured on
    the store's own items by :meth:`Luma.calibrate` (explicitly, or ``luma calibrate``); until
    then queries report ``rho_source="unset"``. Only the shipped tiny models (whose domain is
    the synthetic LUMA-Shapes set) are calibrated here at once, on the shipped inputs, and
    warm-start an unfitted bridge from its captions.

    Args:
        calibration: inputs that mean the same, to measure the missing radii now (and
            warm-start an unfitted bridge) whatever the encoders; default: only for the
            shipped tiny models, on the shipped set.
    """
    from luma_rag.calibration import calibrate_radii, load_calibration_inputs
    from luma_rag.embedder import MediaEmbedder
    from luma_rag.encoders.registry import is_packaged

    luma._store.check_open()
    if encoder.dim != luma.config.dim:
        raise DimensionMismatchError(
            f"encoder {encoder.name} gives {encoder.dim}-d vectors; "
            f"the store is {luma.config.dim}-d"
        )
    luma._embedder = MediaEmbedder(encoder, audio_encoder)
    _load_rho(luma, encoder, audio_encoder)
    bridge = luma.bridge
    warm_start = (
        _writable(luma) and audio_encoder is not None and bridge is not None and not bridge.fitted
    )
    missing = {"text", "image", "video"} - set(luma.rho)
    if audio_encoder is not None and bridge is not None:
        missing |= {"audio"} - set(luma.rho)
    tiny = is_packaged(encoder.name) and (audio_encoder is None or is_packaged(audio_encoder.name))
    if not (warm_start or missing) or (calibration is None and not tiny):
        return
    inputs = calibration if calibration is not None else load_calibration_inputs()
    if warm_start and audio_encoder is not None and bridge is not None:
        need = 2 * (bridge.config.resolved_min_pairs // 2 + 1)
        captions = inputs.bridge_captions[:need]
        if captions:
            luma.add_bridge_pairs(
                audio_encoder.encode_text(captions), encoder.encode_text(captions)
            )
    if missing:
        measured = calibrate_radii(encoder, audio_encoder, luma.bridge, missing, inputs)
        store_rho(luma, measured, "calibrated")


def _fingerprint(encoder: Encoder, audio_encoder: Encoder | None) -> dict[str, Any]:
    return {
        "encoder": str(encoder.name),
        "dim": int(encoder.dim),
        "audio_encoder": None if audio_encoder is None else str(audio_encoder.name),
    }


def _load_rho(luma: Luma, encoder: Encoder, audio_encoder: Encoder | None) -> None:
    """``luma.rho`` / ``rho_source`` from the store, minus radii of other encoders."""
    stored = luma._store.get_kv("rho")
    luma.rho = {k: float(v) for k, v in json.loads(stored).items()} if stored else {}
    sources = luma._store.get_kv("rho_source")
    luma.rho_source = dict(json.loads(sources)) if sources else {}
    for m in luma.rho:  # stores written before rho_source: measured at attach
        luma.rho_source.setdefault(m, "calibrated")
    now = _fingerprint(encoder, audio_encoder)
    was_text = luma._store.get_kv("rho_encoders")
    was = json.loads(was_text) if was_text else None
    drop: set[str] = set()
    if was is not None and was.get("encoder") != now["encoder"]:
        drop = set(luma.rho)  # audio's radius is measured in CLIP space too
        why = f"the encoder changed from {was.get('encoder')} to {now['encoder']}"
    elif (
        was is not None
        and audio_encoder is not None
        and was.get("audio_encoder")
        not in (
            None,
            now["audio_encoder"],
        )
    ):
        drop = {"audio"} & set(luma.rho)
        why = f"the audio encoder changed from {was.get('audio_encoder')} to {now['audio_encoder']}"
    if drop:
        message = (
            f"{luma.path}: {why}; the radii rho for {sorted(drop)} were measured with the old "
            "model and are dropped (queries report rho_source='unset' until luma.calibrate() "
            "or `luma calibrate` measures them again). Items ingested with the old encoder "
            "are in its embedding space: re-ingest them for meaningful results"
        )
        logger.warning("%s", message)
        luma.notices.append(message)
        for m in drop:
            luma.rho.pop(m, None)
            luma.rho_source.pop(m, None)
        _persist_rho(luma)
    if was != now and _writable(luma):
        luma._store.set_kv("rho_encoders", json.dumps(now))


def _writable(luma: Luma) -> bool:
    return not getattr(luma._store, "read_only", False)


def _persist_rho(luma: Luma) -> None:
    """Write ρ and its sources (a read-only view keeps what it measured to itself)."""
    if _writable(luma):
        luma._store.set_kv("rho", json.dumps(luma.rho))
        luma._store.set_kv("rho_source", json.dumps(luma.rho_source))


def store_rho(luma: Luma, values: Mapping[str, float], source: str) -> None:
    """Set and persist ρ for several modalities at once, with where each came from."""
    for modality, value in values.items():
        luma.rho[str(modality)] = checks.check_rho(value)
        luma.rho_source[str(modality)] = source
    _persist_rho(luma)


def set_rho(
    luma: Luma, modality: str, value: float, *, source: Literal["calibrated", "user"] = "user"
) -> None:
    """Set the encoder radius ρ used for queries of ``modality`` (persisted).

    Args:
        modality: ``"text"``, ``"image"``, ``"audio"`` or ``"video"``.
        value: ρ, finite and ``>= 0``.
        source: ``"calibrated"`` when measured (e.g. by :func:`luma_rag.rho.calibrate_rho`),
            else ``"user"``; reported as ``Telemetry.rho_source``.
    """
    luma._store.check_open()
    if source not in ("calibrated", "user"):
        raise InvalidInputError(f"source must be 'calibrated' or 'user', got {source!r}")
    store_rho(luma, {modality: value}, source)


def calibration(luma: Luma, name: str) -> dict[str, Any] | None:
    """A calibration stored with ``set_calibration`` (``None`` if there is none)."""
    luma._store.check_open()
    stored = luma._store.get_kv(f"calibration:{name}")
    return dict(json.loads(stored)) if stored else None


def set_calibration(luma: Luma, name: str, value: Mapping[str, Any]) -> None:
    """Persist a JSON-serialisable calibration (ρ of a foreign embedder, relevance floors).

    Args:
        name: Key, e.g. ``"rho:HuggingFaceEmbeddings"`` or ``"relevance:encoder"``.
        value: JSON-serialisable mapping.
    """
    luma._store.check_open()
    try:
        text = json.dumps(dict(value))
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"calibration {name!r} must be JSON-serialisable ({e})") from e
    luma._store.set_kv(f"calibration:{name}", text)
