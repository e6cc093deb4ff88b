"""Encoder radius ρ: the pure estimators, and calibration of every modality on attach."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from luma_rag.calibration import group_pairs, radius_from_augmentations, radius_from_pairs
from luma_rag.errors import InvalidInputError

CLIP = Path(__file__).resolve().parents[2] / "luma_rag/encoders/checkpoints/luma-tiny-clip"


def test_radius_from_pairs_is_the_quantile_of_distances() -> None:
    a = np.eye(4, dtype=np.float32)
    b = np.roll(a, 1, axis=0) * 0.0 + a  # identical -> 0
    assert radius_from_pairs(a, b) == 0.0
    c = np.array([[1, 0], [1, 0], [1, 0], [1, 0]], dtype=np.float32)
    d = np.array([[1, 0], [1, 0], [0, 1], [-1, 0]], dtype=np.float32)
    assert radius_from_pairs(c, d, quantile=1.0) == pytest.approx(2.0)
    assert radius_from_pairs(c, d, quantile=0.5) == pytest.approx(np.sqrt(2) / 2)
    with pytest.raises(InvalidInputError):
        radius_from_pairs(c, d[:2])
    with pytest.raises(InvalidInputError):
        radius_from_pairs(c, d, quantile=0.0)


def test_group_pairs_stays_within_groups() -> None:
    left, right = group_pairs([[0, 1, 2], [3], [4, 5]])
    assert set(zip(left.tolist(), right.tolist(), strict=True)) == {(0, 1), (0, 2), (1, 2), (4, 5)}


def test_radius_from_augmentations_grows_with_encoder_sensitivity() -> None:
    from PIL import Image, ImageDraw

    images = []
    for i in range(4):
        im = Image.new("RGB", (64, 64), (128, 128, 128))
        ImageDraw.Draw(im).ellipse((8 + 4 * i, 8, 28 + 4 * i, 28), fill=(220, 40 * i, 30))
        images.append(im)

    def by_mean(batch: list[Image.Image]) -> np.ndarray:  # insensitive: mean colour only
        x = np.array([np.asarray(im, dtype=np.float32).mean(axis=(0, 1)) for im in batch])
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def by_pixels(batch: list[Image.Image]) -> np.ndarray:  # sensitive to every pixel
        x = np.array([np.asarray(im, dtype=np.float32).ravel() for im in batch]) + 1.0
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    low = radius_from_augmentations(by_mean, images, seed=1)
    high = radius_from_augmentations(by_pixels, images, seed=1)
    assert 0.0 <= low <= high


@pytest.mark.skipif(
    not any(CLIP.glob("*.safetensors")), reason="the shipped luma-tiny-clip checkpoint is missing"
)
def test_attach_calibrates_every_query_modality(tmp_path: Path) -> None:
    from luma_rag import Luma

    with Luma.open(tmp_path / "s", encoder="luma-tiny") as luma:
        assert {"text", "image", "video"} <= set(luma.rho)
        assert all(0.0 < v < 2.0 for v in luma.rho.values())
        calibrated = dict(luma.rho)
    with Luma.open(tmp_path / "s", encoder="luma-tiny") as luma:  # persisted, not recomputed
        assert luma.rho == calibrated


def test_shipped_calibration_inputs_are_what_the_command_writes(tmp_path: Path) -> None:
    """The data beside the checkpoints is reproducible by `python -m ...calibration_data`."""
    from luma_rag.calibration import DEFAULT_INPUTS_DIR, load_calibration_inputs
    from luma_rag.training.calibration_data import main

    assert main(["--out", str(tmp_path / "cal")]) == 0
    fresh = load_calibration_inputs(tmp_path / "cal")
    shipped = load_calibration_inputs(DEFAULT_INPUTS_DIR)
    assert fresh.text_groups == shipped.text_groups and len(shipped.text_groups) == 128
    assert fresh.bridge_captions == shipped.bridge_captions
    assert fresh.audio_captions == shipped.audio_captions
    assert len(shipped.images) == 48
    for a, b in zip(fresh.images, shipped.images, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_calibrate_radii_uses_only_the_inputs_passed_in() -> None:
    from luma_rag.calibration import CalibrationInputs, calibrate_radii

    class Echo:  # text -> one-hot of its length: paraphrases of equal length coincide
        name, dim, modalities = "echo", 8, ("text",)

        def encode_text(self, texts: list[str]) -> np.ndarray:
            return np.eye(8, dtype=np.float32)[[len(t) % 8 for t in texts]]

    same = CalibrationInputs(text_groups=[["ab", "cd"], ["xyz", "uvw"]])
    apart = CalibrationInputs(text_groups=[["a", "bb"], ["ccc", "dddd"]])
    assert calibrate_radii(Echo(), None, None, {"text"}, same) == {"text": 0.0}  # type: ignore[arg-type]
    rho = calibrate_radii(Echo(), None, None, {"text", "image"}, apart)  # type: ignore[arg-type]
    assert rho == {"text": pytest.approx(np.sqrt(2.0))}  # no images given: no image radius
    with pytest.raises(InvalidInputError, match="calibration_data"):
        from luma_rag.calibration import load_calibration_inputs

        load_calibration_inputs(Path("/nonexistent/calibration"))
