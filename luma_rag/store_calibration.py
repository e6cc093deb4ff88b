"""Calibrate a store on its own items: the radii ρ and the bridge warm start (``Luma.calibrate``).

Opening a store runs nothing expensive (:func:`~luma_rag.encoding.attach_encoders`); this is
where the measurements happen, on a sample of what the user ingested — not on synthetic data:

1. **bridge warm start** (an audio encoder attached, bridge not yet fitted): the stored
   captions and texts through both text towers, as (CLAP-text, CLIP-text) pairs;
2. **text ρ**: stored texts and captions against meaning-preserving rewrites of themselves
   (casing, punctuation, one dropped word, two neighbouring words swapped);
3. **image / video ρ**: stored images against shifted / re-lit copies;
4. **audio ρ**: the bridge's residual ‖T·CLAP(caption) − CLIP(caption)‖ on held-out captions.

Every stage reports ``progress(stage, done, total)`` and logs; the radii are persisted with
``rho_source="calibrated"`` for the encoders in use. ``luma calibrate`` runs it from the CLI.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from luma_rag.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from luma_rag.engine import Luma

__all__ = ["Progress", "calibrate_store", "text_variants"]

logger = logging.getLogger(__name__)

#: ``progress(stage, done, total)``; stages: "bridge", "text", "image", "audio".
Progress = Callable[[str, int, int], None]
_MODALITIES = ("text", "image", "video", "audio")


def text_variants(text: str, rng: np.random.Generator, n: int = 3) -> list[str]:
    """``n`` rewrites of ``text`` that keep its meaning (casing, punctuation, one word moved).

    Args:
        text: a caption or query.
        rng: seeded generator (the rewrites are deterministic given it).
        n: how many.

    Returns:
        ``n`` strings (a one-word text gets casing / punctuation changes only).
    """
    words = text.split()
    out = []
    for i in range(n):
        w = list(words)
        kind = i % 4
        if kind == 0:
            variant = text.lower() if text != text.lower() else text.capitalize()
        elif kind == 1:
            variant = re.sub(r"[^\w\s]", "", text).strip() + "."
        elif kind == 2 and len(w) > 3:
            del w[int(rng.integers(1, len(w)))]
            variant = " ".join(w)
        elif len(w) > 2:
            j = int(rng.integers(0, len(w) - 1))
            w[j], w[j + 1] = w[j + 1], w[j]
            variant = " ".join(w)
        else:
            variant = text.upper()
        out.append(variant if variant.strip() else text)
    return out


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

    groups: list[list[str]] = []
    pictures: list[Any] = []
    held_out: list[str] = []
    if "text" in wanted and texts:
        report("text", 0, 1)
        groups = [[t, *text_variants(t, rng)] for t in _sample(texts, sample, rng)]
    if wanted & {"image", "video"} and images:
        report("image", 0, 1)
        for path in _sample(images, sample, rng):
            try:
                with Image.open(path) as im:
                    pictures.append(im.convert("RGB"))
            except OSError as e:  # a source moved or deleted since ingest: skip it
                logger.warning("calibration skips %s: %s", path, e)
    if "audio" in wanted and audio is not None and texts:
        held_out = _sample(texts, sample, np.random.default_rng(seed + 1))
    inputs = CalibrationInputs(text_groups=groups, images=pictures, audio_captions=held_out)
    if held_out and (luma.bridge is None or not luma.bridge.fitted):
        need = luma.bridge.config.resolved_min_pairs if luma.bridge is not None else 0
        logger.warning(
            "the audio radius needs a fitted bridge: %d distinct texts/captions in %s, the "
            "bridge fits after %d pairs; ingest more captioned items, then calibrate again",
            len(texts),
            luma.path,
            need,
        )
    measured: dict[str, float] = {}
    for stage in ("text", "image", "audio"):
        todo = {stage} | ({"video"} if stage == "image" else set())
        todo &= wanted
        if not todo:
            continue
        measured.update(calibrate_radii(encoder, audio, luma.bridge, todo, inputs))
        report(stage, 1, 1)
    if measured:
        store_rho(luma, measured, "calibrated")
    logger.info("calibrated %s: %s", luma.path, measured)
    return measured
