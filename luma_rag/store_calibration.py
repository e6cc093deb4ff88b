"""Calibrate a store on its own items: the radii ρ and the bridge warm start (``Luma.calibrate``).

Opening a store runs nothing expensive (:func:`~luma_rag.encoding.attach_encoders`); this is
where the measurements happen, on a sample of what the user ingested — not on synthetic data:

1. **bridge warm start** (an audio encoder attached, bridge not yet fitted): the stored
   captions and texts through both text towers, as (CLAP-text, CLIP-text) pairs;
2. **text ρ** and 3. **image / video ρ**: :func:`luma_rag.rho.calibrate_rho` — the one
   mechanism for any embedder — on a sample of the stored texts / captions and images
   (meaning-preserving perturbations of :mod:`luma_rag.perturb`);
4. **audio ρ**: the bridge's residual ‖T·CLAP(caption) − CLIP(caption)‖ on held-out captions.

Every stage reports ``progress(stage, done, total)`` and logs; the radii are persisted with
``rho_source="calibrated"`` for the encoders in use. ``luma calibrate`` runs it from the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from luma_rag.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from luma_rag.engine import Luma

__all__ = ["Progress", "calibrate_store"]

logger = logging.getLogger(__name__)

#: ``progress(stage, done, total)``; stages: "bridge", "text", "image", "audio".
Progress = Callable[[str, int, int], None]
_MODALITIES = ("text", "image", "video", "audio")


def _sample(values: Sequence[Any], k: int, rng: np.random.Generator) -> list[Any]:
    if len(values) <= k:
        return list(values)
    return [values[int(i)] for i in sorted(rng.choice(len(values), size=k, replace=False))]


def calibrate_store(
    luma: Luma,
    modalities: Sequence[str] | None = None,
    *,
    sample: int = 128,
    progress: Progress | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Measure ρ (and warm-start the bridge) on a sample of the store's own items.

    Args:
        luma: an open store with encoders attached.
        modalities: which radii to (re)measure; default every one the encoders serve.
        sample: items drawn per stage, ``>= 2``.
        progress: called as ``progress(stage, done, total)``.
        seed: seed of the sample.

    Returns:
        The radii measured (also stored: ``luma.rho``, ``luma.rho_source``).

    Raises:
        ConfigError: no encoder attached. InvalidInputError: a bad argument.
    """
    from PIL import Image

    from luma_rag.calibration import CalibrationInputs, calibrate_radii
    from luma_rag.encoding import store_rho

    if luma.encoder is None or luma._embedder is None:
        raise ConfigError("calibrate needs encoders: open the store with encoder=...")
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 2:
        raise InvalidInputError(f"sample must be an int >= 2, got {sample!r}")
    wanted = set(modalities or _MODALITIES)
    if not wanted <= set(_MODALITIES):
        raise InvalidInputError(f"modalities must be among {_MODALITIES}, got {sorted(wanted)}")
    report = progress or (lambda stage, done, total: None)
    encoder, audio = luma.encoder, luma._embedder.audio_encoder
    rng = np.random.default_rng(seed)
    items = luma.get(luma.ids())
    texts = sorted({it["text"] for it in items if isinstance(it.get("text"), str)})
    images = [it["source"] for it in items if it["modality"] == "image" and it.get("source")]
    logger.info("calibrating %s on %d items (%d texts)", luma.path, len(items), len(texts))

    bridge = luma.bridge
    if audio is not None and bridge is not None and not bridge.fitted and texts:
        captions = _sample(texts, max(sample, bridge.config.resolved_min_pairs), rng)
        for lo in range(0, len(captions), 64):
            chunk = captions[lo : lo + 64]
            luma.add_bridge_pairs(audio.encode_text(chunk), encoder.encode_text(chunk))
            report("bridge", lo + len(chunk), len(captions))

    from luma_rag.rho import RhoConfig, calibrate_rho

    measured: dict[str, float] = {}
    cfg = RhoConfig(max_items=sample, seed=seed)
    if "text" in wanted and texts:  # one mechanism for every embedder: luma_rag.rho
        measured["text"] = calibrate_rho(
            encoder, texts, modality="text", config=cfg, progress=lambda d, t: report("text", d, t)
        ).rho
    if wanted & {"image", "video"} and images:
        pictures: list[Any] = []
        for path in _sample(images, sample, rng):
            try:
                with Image.open(path) as im:
                    pictures.append(im.convert("RGB"))
            except OSError as e:  # a source moved or deleted since ingest: skip it
                logger.warning("calibration skips %s: %s", path, e)
        if pictures:
            image_progress = lambda d, t: report("image", d, t)  # noqa: E731
            rho_image = calibrate_rho(
                encoder, pictures, modality="image", config=cfg, progress=image_progress
            ).rho
            measured.update({m: rho_image for m in ("image", "video") if m in wanted})
    if "audio" in wanted and audio is not None and texts:
        held_out = _sample(texts, sample, np.random.default_rng(seed + 1))
        if luma.bridge is None or not luma.bridge.fitted:
            need = luma.bridge.config.resolved_min_pairs if luma.bridge is not None else 0
            logger.warning(
                "the audio radius needs a fitted bridge: %d distinct texts/captions in %s, the "
                "bridge fits after %d pairs; ingest more captioned items, then calibrate again",
                len(texts),
                luma.path,
                need,
            )
        else:  # the bridge's residual on held-out captions (calibration.calibrate_radii)
            inputs = CalibrationInputs(audio_captions=held_out)
            measured.update(calibrate_radii(encoder, audio, luma.bridge, {"audio"}, inputs))
            report("audio", 1, 1)
    if measured:
        store_rho(luma, measured, "calibrated")
    logger.info("calibrated %s: %s", luma.path, measured)
    return measured
