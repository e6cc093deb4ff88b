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
from typing import TYPE_CHECKING, Any

import luma_rag._checks as checks
from luma_rag.errors import DimensionMismatchError, InvalidInputError
from luma_rag.results import QueryResult

if TYPE_CHECKING:
    from luma_rag.calibration import CalibrationInputs
    from luma_rag.encoders.base import Encoder
    from luma_rag.engine import Luma

__all__ = [
    "attach_encoders",
    "ingest_images",
    "ingest_item",
    "ingest_texts",
    "query_media",
    "set_rho",
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
    for value, name in ((text, "text"), (caption, "caption")):
        if isinstance(value, str):
            checks.check_text(value, name)
    emb = luma._need_embedder().embed(
        text=text, image=image, audio=audio, video=video, caption=caption
    )
    if emb.pairs is not None and luma.bridge is not None:
        luma.add_bridge_pairs(*emb.pairs)
    return luma.add_vectors(
        emb.vector[None, :],
        metas,
        ids,
        modality=emb.modality,
        bridged=emb.bridged,
        texts=[caption if caption is not None else text],
        sources=[emb.source],
    )[0]


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
    vecs = luma._need_embedder().encoder.encode_text(list(texts))
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
    return luma.add_vectors(
        vecs, metas, ids_, modality="image", texts=caps, sources=[os.fspath(p) for p in paths]
    )


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
) -> QueryResult:
    """Search with a text, image, audio or video query (exactly one).

    ρ defaults to the store's calibrated radius for the query's modality (``luma.rho``),
    else ``SafetyConfig.rho``. Audio queries cross the bridge, so ε_q enters the bound.
    """
    luma._store.check_open()
    k = checks.check_k(k)
    if isinstance(text, str):
        checks.check_text(text, "text")
    t0 = time.perf_counter()
    emb = luma._need_embedder().embed(text=text, image=image, audio=audio, video=video)
    encode_ms = (time.perf_counter() - t0) * 1000.0
    if rho is None:
        rho = luma.rho.get(emb.modality, luma.config.safety.rho)
    res = luma.search(emb.vector, k, filters=filters, rho=rho, bridged=emb.bridged)
    tel = dataclasses.replace(
        res.telemetry,
        latency_ms=(time.perf_counter() - t0) * 1000.0,
        stages_ms={"encode": encode_ms, **res.telemetry.stages_ms},
    )
    return dataclasses.replace(res, telemetry=tel)


def attach_encoders(
    luma: Luma,
    encoder: Encoder,
    audio_encoder: Encoder | None = None,
    *,
    calibration: CalibrationInputs | None = None,
) -> None:
    """Attach encoders; calibrate ρ and warm-start the bridge when the store has none yet.

    ρ per query modality is read from the store (``luma.rho``); the ones missing are
    measured on first attach by :func:`~luma_rag.calibration.calibrate_radii` (text from
    paraphrases, image and video from shifted / re-lit images, audio from the bridge's
    residual), so no encoder modality is certified with the vacuous ρ = 0. An unfitted
    bridge is warm-started from caption pairs through both text towers first.

    Args:
        calibration: inputs that mean the same, for ρ and the bridge warm start (default:
            the set shipped beside the tiny checkpoints, read only when something is
            missing).
    """
    from luma_rag.calibration import calibrate_radii, load_calibration_inputs
    from luma_rag.embedder import MediaEmbedder

    luma._store.check_open()
    if encoder.dim != luma.config.dim:
        raise DimensionMismatchError(
            f"encoder {encoder.name} gives {encoder.dim}-d vectors; "
            f"the store is {luma.config.dim}-d"
        )
    luma._embedder = MediaEmbedder(encoder, audio_encoder)
    stored = luma._store.get_kv("rho")
    luma.rho = {k: float(v) for k, v in json.loads(stored).items()} if stored else {}
    bridge = luma.bridge
    warm_start = audio_encoder is not None and bridge is not None and not bridge.fitted
    missing = {"text", "image", "video"} - set(luma.rho)
    if audio_encoder is not None and bridge is not None:
        missing |= {"audio"} - set(luma.rho)
    if not (warm_start or missing):
        return
    inputs = calibration if calibration is not None else load_calibration_inputs()
    if warm_start and audio_encoder is not None and bridge is not None:
        need = 2 * (bridge.config.resolved_min_pairs // 2 + 1)
        captions = inputs.bridge_captions[:need]
        if len(captions) < bridge.config.resolved_min_pairs:
            logger.warning(
                "only %d warm-start captions for a bridge that fits after %d pairs; audio "
                "needs more caption pairs (ingest captioned items)",
                len(captions),
                bridge.config.resolved_min_pairs,
            )
        if captions:
            luma.add_bridge_pairs(
                audio_encoder.encode_text(captions), encoder.encode_text(captions)
            )
    if missing:
        luma.rho.update(calibrate_radii(encoder, audio_encoder, luma.bridge, missing, inputs))
        luma._store.set_kv("rho", json.dumps(luma.rho))


def set_rho(luma: Luma, modality: str, value: float) -> None:
    """Set the encoder radius ρ used for queries of ``modality`` (persisted)."""
    luma._store.check_open()
    luma.rho[str(modality)] = checks.check_rho(value)
    luma._store.set_kv("rho", json.dumps(luma.rho))
