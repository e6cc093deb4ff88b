"""LUMA-Shapes: determinism, schema, held-out splits, captions, audio and video."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag.datasets import (
    ShapeAttributes,
    generate,
    held_out_combos,
    load_manifest,
    parse_query_attributes,
    relevant,
    split_for,
)
from luma_rag.datasets.sampling import plan_item
from luma_rag.datasets.shapes import main
from luma_rag.datasets.speech import SAMPLE_RATE, read_wav, resample
from luma_rag.datasets.video import read_video
from luma_rag.datasets.vocab import COLOR_RGB, COLORS, SHAPES
from luma_rag.errors import InvalidInputError, MissingDependencyError

PIL = pytest.importorskip("PIL.Image")

N = 24
HAS_ESPEAK = shutil.which("espeak-ng") is not None
VIDEO_FORMAT = "mp4" if importlib.util.find_spec("av") is not None else "gif"
NEEDS_ESPEAK = pytest.mark.skipif(
    not HAS_ESPEAK,
    reason="espeak-ng is not installed; install it with `apt-get install espeak-ng` "
    "to run the LUMA-Shapes audio tests",
)
RECORD_KEYS = {
    "id",
    "split",
    "image",
    "caption",
    "captions",
    "audio",
    "video",
    "attributes",
    "speech",
    "audio_seconds",
    "video_fps",
    "video_frames",
}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _records(root: Path) -> list[dict[str, Any]]:
    lines = (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 0 with video (and audio where espeak-ng is installed)."""
    out = tmp_path_factory.mktemp("shapes") / "a"
    generate(out, N, seed=0, audio=HAS_ESPEAK, video=True, video_format=VIDEO_FORMAT)
    return out


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 0, images only."""
    out = tmp_path_factory.mktemp("shapes") / "still"
    generate(out, N, seed=0)
    return out


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(media: Path, tmp_path: Path) -> None:
    generate(tmp_path, N, seed=0, audio=HAS_ESPEAK, video=True, video_format=VIDEO_FORMAT)
    first, second = _files(media), _files(tmp_path)
    assert first.keys() == second.keys()
    assert len([k for k in first if k.startswith("images/")]) == N
    assert [k for k in first if first[k] != second[k]] == []


def test_different_seed_differs(still: Path, tmp_path: Path) -> None:
    generate(tmp_path, N, seed=1)
    assert (tmp_path / "manifest.jsonl").read_bytes() != (still / "manifest.jsonl").read_bytes()
    ours, theirs = _files(tmp_path), _files(still)
    assert sum(ours[k] != theirs[k] for k in ours if k.startswith("images/")) > N // 2


def test_media_flags_do_not_change_images_or_attributes(media: Path, still: Path) -> None:
    for a, b in zip(_records(media), _records(still), strict=True):
        assert (media / a["image"]).read_bytes() == (still / b["image"]).read_bytes()
        assert a["attributes"] | {"motion": None} == b["attributes"]
        assert a["split"] == b["split"]
        assert a["attributes"]["motion"] is not None and b["attributes"]["motion"] is None


def test_workers_do_not_change_output(still: Path, tmp_path: Path) -> None:
    generate(tmp_path, N, seed=0, workers=1)
    assert _files(tmp_path) == _files(still)


# --- schema ------------------------------------------------------------------------------------


def test_manifest_schema(media: Path, still: Path) -> None:
    for root, with_media in ((media, True), (still, False)):
        records = _records(root)
        assert [r["id"] for r in records] == [f"shape-{i:06d}" for i in range(N)]
        for r in records:
            assert set(r) == RECORD_KEYS
            assert r["split"] in ("train", "val", "test")
            assert 3 <= len(r["captions"]) <= 5
            assert len(set(r["captions"])) == len(r["captions"])
            assert r["captions"][0] == r["caption"]
            assert (root / r["image"]).is_file()
            ShapeAttributes.from_dict(r["attributes"])  # validates every value
            if with_media:
                assert (root / r["video"]).is_file()
                assert r["video_fps"] == 8 and r["video_frames"] in (8, 16, 24)
                assert (r["audio"] is not None) == HAS_ESPEAK
            else:
                assert r["audio"] is r["video"] is r["video_fps"] is r["video_frames"] is None
                assert r["speech"] is None


def test_load_manifest_round_trip(media: Path) -> None:
    items = load_manifest(media)
    assert [it.to_record() for it in items] == _records(media)
    assert items == load_manifest(media / "manifest.jsonl")
    assert items[0].image_path == media / items[0].image


def test_load_manifest_reports_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"manifest.jsonl:1"):
        load_manifest(tmp_path)
    with pytest.raises(InvalidInputError, match="no LUMA-Shapes manifest"):
        load_manifest(tmp_path / "missing")


def test_existing_corpus_needs_overwrite(tmp_path: Path) -> None:
    generate(tmp_path, 3, seed=0)
    with pytest.raises(InvalidInputError, match="overwrite"):
        generate(tmp_path, 2, seed=0)
    generate(tmp_path, 2, seed=0, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        "shape-000000.png",
        "shape-000001.png",
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be"),
        ({"seed": -1}, "seed must be"),
        ({"size": 8}, "size must be"),
        ({"size": 95, "video": True}, "even size"),
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"n": 2, "seed": 0} | kwargs
    with pytest.raises(InvalidInputError, match=match):
        generate(tmp_path, **args)


# --- images ------------------------------------------------------------------------------------


def test_images_decode_with_the_right_size(still: Path, tmp_path: Path) -> None:
    for r in _records(still):
        with PIL.open(still / r["image"]) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (96, 96))
    generate(tmp_path, 2, seed=0, size=64)
    with PIL.open(tmp_path / "images" / "shape-000001.png") as im:
        assert im.size == (64, 64)


def test_image_shows_the_named_color(still: Path) -> None:
    for r in _records(still):
        pixels = np.asarray(PIL.open(still / r["image"])).reshape(-1, 3).astype(float)
        target = np.array(COLOR_RGB[r["attributes"]["color"]], dtype=float)
        close = np.linalg.norm(pixels - target, axis=1) < 30
        assert close.mean() > 0.01, r["id"]


# --- splits ------------------------------------------------------------------------------------


def test_held_out_combos_rule() -> None:
    combos = held_out_combos()
    val, test = combos["val"], combos["test"]
    assert not val & test
    assert sorted(s for s, _ in test) == sorted(SHAPES) == sorted(s for s, _ in val)
    assert len({c for _, c in test}) == len(SHAPES)  # one shape per held-out colour
    train = {(s, c) for s in SHAPES for c in COLORS} - val - test
    assert {s for s, _ in train} == set(SHAPES) and {c for _, c in train} == set(COLORS)
    assert held_out_combos(0) == combos and held_out_combos(1) != combos


def test_held_out_combos_never_in_train() -> None:
    combos = held_out_combos()
    seen: dict[str, set[tuple[str, str]]] = {"train": set(), "val": set(), "test": set()}
    for i in range(400):
        plan = plan_item(3, i, size=96, fps=8, video=False, split_seed=0)
        seen[plan.split].add((plan.attributes.shape, plan.attributes.color))
    assert seen["test"] <= combos["test"] and seen["val"] <= combos["val"]
    assert not seen["train"] & (combos["val"] | combos["test"])
    assert seen["test"] and seen["val"]


def test_manifest_splits_follow_the_rule(still: Path) -> None:
    for r in _records(still):
        a = r["attributes"]
        assert r["split"] == split_for(a["shape"], a["color"])


# --- captions ----------------------------------------------------------------------------------


def _expected(attrs: dict[str, Any]) -> dict[str, Any]:
    keys = ("shape", "color", "size", "position", "count", "motion")
    return {k: attrs[k] for k in keys if attrs[k] is not None}


@pytest.mark.parametrize("video", [False, True])
def test_captions_parse_back_to_attributes(video: bool) -> None:
    for i in range(300):
        plan = plan_item(7, i, size=96, fps=8, video=video, split_seed=0)
        attrs = plan.attributes.as_dict()
        parsed = [parse_query_attributes(c) for c in plan.captions]
        assert all(p == parsed[0] for p in parsed), plan.captions
        background = parsed[0].pop("background", None)
        assert background in (None, attrs["background"]), plan.captions
        assert parsed[0] == _expected(attrs), plan.captions


@pytest.mark.parametrize(
    ("text", "attrs"),
    [
        (
            "a photo of a tiny crimson disc at left",
            {"shape": "circle", "color": "red", "size": "small", "position": "left", "count": 1},
        ),
        (
            "two blue squares moving left",
            {"shape": "square", "color": "blue", "count": 2, "motion": "left"},
        ),
        ("Blue square, moving LEFT!", {"shape": "square", "color": "blue", "motion": "left"}),
        (
            "a red circle on the left drifting to the right",
            {"shape": "circle", "color": "red", "position": "left", "count": 1, "motion": "right"},
        ),
        ("plus signs on stripes", {"shape": "cross", "background": "stripes"}),
        (
            "a big violet rhombus falling",
            {"shape": "diamond", "color": "purple", "size": "large", "count": 1, "motion": "down"},
        ),
        ("red or blue circle", {"shape": "circle"}),  # two colours: ambiguous, left out
        ("", {}),
    ],
)
def test_parse_query_attributes(text: str, attrs: dict[str, Any]) -> None:
    assert parse_query_attributes(text) == attrs


def test_relevant_is_group_aware() -> None:
    item = ShapeAttributes("circle", "red", "small", "left", 2, "noise", "up")
    assert relevant({"shape": "circle", "color": "red"}, item)
    assert relevant(parse_query_attributes("two tiny red discs rising"), item.as_dict())
    assert not relevant({"shape": "circle", "count": 1}, item)
    assert not relevant(parse_query_attributes("a red circle"), item)  # "a" means one
    assert relevant({}, item) and relevant({"motion": None}, item)
    with pytest.raises(InvalidInputError, match="unknown attribute"):
        relevant({"hue": "red"}, item)
    with pytest.raises(InvalidInputError, match="not one of"):
        relevant({"color": "teal"}, item)


# --- audio -------------------------------------------------------------------------------------


def test_resample_keeps_frequency_and_length() -> None:
    t = np.arange(22050) / 22050
    y = resample(np.sin(2 * np.pi * 1000 * t), SAMPLE_RATE, 22050)
    assert y.shape == (SAMPLE_RATE,)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) == 1000  # 1 s at 16 kHz: bin k is k Hz
    assert np.abs(y[100:-100]).max() == pytest.approx(1.0, abs=0.01)


@NEEDS_ESPEAK
def test_audio_is_16k_mono_speech(media: Path) -> None:
    for r in _records(media):
        rate, samples = read_wav(media / r["audio"])
        assert rate == SAMPLE_RATE
        assert samples.dtype == np.int16
        assert samples.size / rate == pytest.approx(r["audio_seconds"], abs=1e-3)
        assert 0.5 < r["audio_seconds"] < 10.0
        assert np.sqrt(np.mean(samples.astype(float) ** 2)) > 300.0  # not silent
        assert set(r["speech"]) == {"voice", "rate", "pitch"}
        assert 140 <= r["speech"]["rate"] <= 190 and 30 <= r["speech"]["pitch"] <= 70


def test_missing_espeak_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("luma_rag.datasets.speech.shutil.which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="apt-get install espeak-ng"):
        generate(tmp_path, 2, seed=0, audio=True)
    assert not (tmp_path / "manifest.jsonl").exists()


# --- video -------------------------------------------------------------------------------------


def _centroid(frame: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    dist = np.linalg.norm(frame.astype(float) - np.array(rgb, dtype=float), axis=2)
    ys, xs = np.nonzero(dist < 45)
    assert xs.size > 10
    return np.array([xs.mean(), ys.mean()])


def test_video_has_the_frame_count_and_moves_in_the_stated_direction(media: Path) -> None:
    directions = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    for r in _records(media):
        fps, frames = read_video(media / r["video"])
        assert frames.shape == (r["video_frames"], 96, 96, 3)
        assert fps == pytest.approx(r["video_fps"])
        rgb = COLOR_RGB[r["attributes"]["color"]]
        move = _centroid(frames[-1], rgb) - _centroid(frames[0], rgb)
        unit = np.array(directions[r["attributes"]["motion"]], dtype=float)
        along = float(move @ unit)
        assert along > 0.15 * 96, (r["id"], move)
        assert np.linalg.norm(move - along * unit) < 0.05 * 96, (r["id"], move)


def test_gif_clips_need_only_pillow(tmp_path: Path) -> None:
    generate(tmp_path / "a", 3, seed=2, video=True, video_format="gif", size=64)
    generate(tmp_path / "b", 3, seed=2, video=True, video_format="gif", size=64)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    for r in _records(tmp_path / "a"):
        assert r["video"].endswith(".gif")
        fps, frames = read_video(tmp_path / "a" / r["video"])
        assert frames.shape == (r["video_frames"], 64, 64, 3)
        assert fps == pytest.approx(8.0, rel=0.05)  # GIF delays are whole centiseconds


# --- command line ------------------------------------------------------------------------------


def test_cli_writes_a_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--n", "3", "--seed", "5", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "manifest.jsonl")
    assert len(_records(tmp_path)) == 3
    assert main(["--out", str(tmp_path), "--n", "3", "--quiet"]) == 2  # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_python_dash_m_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "luma_rag.datasets.shapes", "--out", str(tmp_path), "--n", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" not in proc.stderr
    assert "LUMA-Shapes 2/2" in proc.stderr
    assert len(_records(tmp_path)) == 2
