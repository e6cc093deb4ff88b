"""The shipped tiny CLIP through the encoder registry: loading, contract, errors, quality."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from luma_rag.datasets import generate, load_manifest, parse_query_attributes, relevant
from luma_rag.datasets.shapes import ShapeItem
from luma_rag.datasets.vocab import SHAPES
from luma_rag.encoders import (
    Encoder,
    OpenClipEncoder,
    PretrainedSpec,
    find_weights,
    get_encoder,
    get_model_config,
    list_models,
    list_pretrained,
    registry,
)
from luma_rag.errors import InvalidInputError, ModelNotAvailableError, UnsupportedMediaError
from luma_rag.media import load_image
from luma_rag.training.compositional import evaluate_referents, linear_probe
from luma_rag.training.evaluate import evaluate_retrieval, relevance_matrix

CHECKPOINT_DIR = registry.PACKAGE_DIR / "checkpoints" / "luma-tiny-clip"
WEIGHTS = CHECKPOINT_DIR / "open_clip_model.safetensors"
VIT = "timm/vit_base_patch32_clip_224.openai"
#: Question referents -> image top-1 on unseen combinations: v4 measured 1.000 on seeds 7331,
#: 5519 and 41877 (1 550 / 1 430 / 1 515 referents; checkpoint README) and on this fixture
#: (485); v3 0.973-0.981 and 0.979 here. The floor fails v3 on this fixture only by chance.
REFERENT_FLOOR = 0.98
#: Text->image MRR with primary captions: v4 1.000 on seeds 7331 / 5519 / 41877 and on this
#: fixture (97); v3 0.873-0.881 (its rank-1 misses: the right item on the wrong background).
#: The floor fails v3.
MRR_FLOOR = 0.95
#: Linear shape probe, fitted on seen combinations, scored on unseen ones: v4 1.000 / 0.997 /
#: 1.000 (seeds 7331 / 5519 / 41877, n 310 / 286 / 303) and 1.000 on this fixture's 97; v3
#: 0.768-0.787 and 0.680 here (chance 0.125). The floor is issue #12's target and fails v3.
PROBE_FLOOR = 0.93


@pytest.fixture(scope="module")
def encoder() -> OpenClipEncoder:
    enc = get_encoder("luma-tiny")
    assert isinstance(enc, OpenClipEncoder)
    return enc


@pytest.fixture(scope="module")
def heldout(tmp_path_factory: pytest.TempPathFactory) -> list[ShapeItem]:
    """A corpus the checkpoint never saw (another seed); its test split is held out."""
    root = tmp_path_factory.mktemp("shapes-heldout")
    items = load_manifest(generate(root, n=1200, seed=1234))
    return items


@pytest.fixture()
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty model directories, and no network: a connect attempt fails the test."""
    for var in ("HF_HOME", "HUGGINGFACE_HUB_CACHE", "LUMA_MODEL_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the registry tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return tmp_path


def _png(size: tuple[int, int] = (40, 30), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- registry ---------------------------------------------------------------------------------


def test_registry_lists_tiny_and_production_models() -> None:
    assert "luma-tiny-clip" in list_models()
    table = list_pretrained()
    assert ("luma-tiny-clip", "luma-shapes") in table
    for name in ("ViT-B-32", "openai/clip-vit-large-patch14", "laion/clap-htsat-unfused"):
        tags = registry._PRETRAINED[name]
        assert all(spec.needs_download for spec in tags.values()), name
    assert not registry._PRETRAINED["luma-tiny-clip"]["luma-shapes"].needs_download
    cfg = get_model_config("luma-tiny-clip")
    assert cfg is not None and {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg)
    assert cfg["text_cfg"]["vocab_size"] == 49408
    assert get_model_config("no-such-model") is None


def test_shipped_checkpoint_is_small_safetensors_with_matching_sha256() -> None:
    files = sorted(p.name for p in CHECKPOINT_DIR.iterdir())
    assert "README.md" in files and "training.json" in files
    assert not [f for f in files if f.endswith((".pt", ".pth", ".bin", ".pkl", ".ckpt"))]
    assert WEIGHTS.stat().st_size <= 12 * 2**20
    spec = registry._PRETRAINED["luma-tiny-clip"]["luma-shapes"]
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() == spec.sha256
    report = json.loads((CHECKPOINT_DIR / "training.json").read_text())
    assert report["weights"]["sha256"] == spec.sha256


def test_shipped_weights_load_through_open_clip(encoder: OpenClipEncoder) -> None:
    import open_clip
    import torch
    from safetensors.torch import load_file

    assert isinstance(encoder, Encoder)
    assert encoder.name == "luma-tiny-clip"
    assert isinstance(encoder.model, open_clip.CLIP)
    cfg = get_model_config("luma-tiny-clip")
    assert cfg is not None and encoder.dim == cfg["embed_dim"]
    assert encoder.modalities == frozenset({"text", "image"})
    shipped = load_file(str(WEIGHTS))
    state = encoder.model.state_dict()
    assert set(shipped) == set(state)
    for key in ("visual.conv1.weight", "token_embedding.weight", "text_projection"):
        torch.testing.assert_close(state[key], shipped[key].float())
    # The same file loads with plain open_clip once the config is registered.
    registry.ensure_open_clip_configs(open_clip)
    model, _, _ = open_clip.create_model_and_transforms("luma-tiny-clip", pretrained=str(WEIGHTS))
    torch.testing.assert_close(model.state_dict()["visual.proj"], state["visual.proj"])


def test_explicit_pretrained_path_and_bad_path(tmp_path: Path) -> None:
    enc = get_encoder("luma-tiny-clip", pretrained=str(WEIGHTS))
    assert enc.dim == get_encoder("luma-tiny").dim
    with pytest.raises(ModelNotAvailableError, match="neither a weights tag"):
        get_encoder("luma-tiny-clip", pretrained=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelNotAvailableError, match="no weights known"):
        get_encoder("luma-tiny-clip/no-such-tag")


def test_checksum_mismatch_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = registry._PRETRAINED["luma-tiny-clip"]["luma-shapes"]
    bad = PretrainedSpec(backend="open_clip", path=spec.path, sha256="0" * 64)
    monkeypatch.setitem(registry._PRETRAINED["luma-tiny-clip"], "luma-shapes", bad)
    with pytest.raises(ModelNotAvailableError, match="sha256"):
        get_encoder("luma-tiny")


@pytest.mark.parametrize(
    "name",
    ["ViT-B-32/openai", "ViT-B-32", "openai/clip-vit-large-patch14", "laion/clap-htsat-unfused"],
)
def test_production_model_not_cached_raises_at_once(no_weights: Path, name: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as info:
        get_encoder(name)
    assert time.perf_counter() - started < 2.0
    message = str(info.value)
    assert name.split("/openai")[0] in message
    assert "LUMA_MODEL_DIR" in message and "pretrained=" in message
    assert str(no_weights / "hub") in message


def test_weights_found_in_luma_model_dir_and_hf_cache(
    no_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # $LUMA_MODEL_DIR/<model>/<tag>/: a user-registered tag of the tiny model, built for real.
    user = PretrainedSpec(backend="open_clip", files=("open_clip_model.safetensors",))
    monkeypatch.setitem(registry._PRETRAINED["luma-tiny-clip"], "user", user)
    target = no_weights / "models" / "luma-tiny-clip" / "user"
    target.mkdir(parents=True)
    (target / "open_clip_model.safetensors").write_bytes(WEIGHTS.read_bytes())
    monkeypatch.setenv("LUMA_MODEL_DIR", str(no_weights / "models"))
    enc = get_encoder("luma-tiny-clip/user")
    np.testing.assert_array_equal(
        enc.encode_text(["a red circle"]), get_encoder("luma-tiny").encode_text(["a red circle"])
    )
    # The Hugging Face hub cache layout (models--org--name/snapshots/<rev>/file).
    spec = registry._PRETRAINED["ViT-B-32"]["openai"]
    snapshot = no_weights / "hub" / f"models--{VIT.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"not really weights")
    assert find_weights("ViT-B-32", "openai", spec) == snapshot / "open_clip_model.safetensors"


# --- the Encoder contract ---------------------------------------------------------------------


def test_text_and_image_embeddings_are_unit_float32(encoder: OpenClipEncoder) -> None:
    text = encoder.encode_text(["a red circle", "two small blue squares at the top", ""])
    image = encoder.encode_image([_png(), Image.new("RGB", (64, 64), (30, 70, 220))])
    for emb, n in ((text, 3), (image, 2)):
        assert emb.shape == (n, encoder.dim) and emb.dtype == np.float32
        assert emb.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_encoding_is_deterministic_and_batch_independent(
    encoder: OpenClipEncoder, tmp_path: Path
) -> None:
    texts = ["a huge green star on the left", "a pair of tiny pink hexagons in the middle"] * 3
    a = encoder.encode_text(texts)
    np.testing.assert_array_equal(a, encoder.encode_text(texts))
    np.testing.assert_allclose(a, encoder.encode_text(texts, batch_size=1), atol=1e-5)
    path = tmp_path / "red.png"
    path.write_bytes(_png())
    by_path, by_bytes, by_pil = encoder.encode_image([path, path.read_bytes(), Image.open(path)])
    np.testing.assert_array_equal(by_path, by_bytes)
    np.testing.assert_allclose(by_path, by_pil, atol=1e-6)


def test_bad_batches_and_audio_raise_typed_errors(encoder: OpenClipEncoder) -> None:
    with pytest.raises(InvalidInputError, match="empty batch"):
        encoder.encode_text([])
    with pytest.raises(InvalidInputError, match="wrap it"):
        encoder.encode_text("a red circle")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="must be str"):
        encoder.encode_text(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="batch_size"):
        encoder.encode_text(["ok"], batch_size=0)
    with pytest.raises(UnsupportedMediaError, match="does not embed audio"):
        encoder.encode_audio([np.zeros(16000, dtype=np.float32)])


# --- image loading ----------------------------------------------------------------------------


BAD_IMAGES = {
    "truncated png": _png((64, 64))[:60],
    "random bytes": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "decompression bomb header": _png_header_only(100_000, 100_000),
    "text file": b"just some text, not an image\n",
    "eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
}


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
def test_bad_image_files_raise_unsupported_media(
    encoder: OpenClipEncoder, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(BAD_IMAGES[kind])
    with pytest.raises(UnsupportedMediaError):
        load_image(path)
    with pytest.raises(UnsupportedMediaError):
        load_image(BAD_IMAGES[kind])
    with pytest.raises(UnsupportedMediaError):  # one bad file fails the whole batch
        encoder.encode_image([_png(), path])


def test_missing_empty_and_oversized_images(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMediaError, match="no image file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UnsupportedMediaError, match="empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(UnsupportedMediaError, match="decompression-bomb"):
        load_image(_png_header_only(5_000, 5_000), max_pixels=1_000_000)
    with pytest.raises(UnsupportedMediaError, match="a path, bytes or a PIL"):
        load_image(12)  # type: ignore[arg-type]


def test_exif_is_applied_then_stripped_and_size_is_bounded() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    exif[0x010F] = "SomeCamera"  # make
    buf = io.BytesIO()
    Image.new("RGB", (3000, 1500), (10, 200, 10)).save(buf, format="JPEG", exif=exif.tobytes())
    image = load_image(buf.getvalue())
    assert image.size == (512, 1024)  # portrait after orientation, longest side 1024
    assert image.mode == "RGB"
    assert not image.info and not image.getexif()
    small = load_image(Image.new("RGBA", (10, 20)))
    assert small.size == (10, 20) and small.mode == "RGB"


# --- lazy imports and quality -----------------------------------------------------------------


def test_importing_luma_rag_does_not_import_torch() -> None:
    code = (
        "import sys, luma_rag, luma_rag.encoders, luma_rag.training, "
        "luma_rag.training.evaluate, luma_rag.encoders.registry\n"
        "heavy = [m for m in ('torch', 'open_clip', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_relevance_matrix_matches_relevant(heldout: list[ShapeItem]) -> None:
    items = heldout[:120]
    queries = [parse_query_attributes(it.captions[-1]) for it in items[:40]]
    queries += [{"shape": "circle", "color": "red"}, {}]
    expected = np.array([[relevant(q, it.attributes) for it in items] for q in queries])
    np.testing.assert_array_equal(relevance_matrix(queries, items), expected)


def test_quality_on_held_out_combinations(
    encoder: OpenClipEncoder, heldout: list[ShapeItem]
) -> None:
    test = [it for it in heldout if it.split == "test"]
    assert len(test) >= 80
    metrics = evaluate_retrieval(
        encoder, test
    )  # v4 measured 1.000 / 1.000 on seed 5519 (286 images)
    assert metrics["t2i_recall@10"] >= 0.95, metrics
    assert metrics["t2i_mrr"] >= MRR_FLOOR, metrics
    assert metrics["i2i_nn_shape_color"] >= 0.85, metrics
    # Text queries for unseen combinations still find them among the seen ones.
    harder = evaluate_retrieval(encoder, test, gallery=heldout)
    assert harder["t2i_recall@10"] >= 0.85, harder


def test_referent_retrieval_on_held_out_combinations(
    encoder: OpenClipEncoder, heldout: list[ShapeItem]
) -> None:
    """Question referents ("the small circle on the left", every attribute but the asked one)
    rank a matching image first (issue #12's target 0.80), and a linear read-out of shape
    from the image embedding transfers to unseen shape/colour combinations (target 0.90)."""
    test = [it for it in heldout if it.split == "test"]
    referents = evaluate_referents(encoder, test)
    assert referents["n"] == 5 * len(test) and referents["n_gallery"] >= 80
    assert referents["top1"] >= REFERENT_FLOOR, referents
    train = [it for it in heldout if it.split == "train"]
    probe = linear_probe(encoder, train, test)
    assert probe["n"] == len(test) and probe["chance"] == 1 / 8
    assert probe["accuracy"] >= PROBE_FLOOR, probe


def test_train_clip_smoke_run_writes_loadable_weights(tmp_path: Path) -> None:
    import torch

    from luma_rag.training.train_clip import main

    data = tmp_path / "shapes"
    generate(data, n=80, seed=5)
    threads = torch.get_num_threads()
    argv = ["--data", str(data), "--out", str(tmp_path / "out"), "--epochs", "1"]
    flags = ["--batch-size", "16", "--eval-every", "0", "--threads", "1", "--focus", "0.5"]
    assert main([*argv, *flags]) == 0
    assert torch.get_num_threads() == threads
    report = json.loads((tmp_path / "out" / "training.json").read_text())
    assert report["config"]["epochs"] == 1 and len(report["history"]) == 2
    assert set(report["history"][0]["focus_shape_errors"]) <= set(SHAPES)
    assert 0.0 <= report["metrics"]["test"]["t2i_recall@10"] <= 1.0
    weights = tmp_path / "out" / "open_clip_model.safetensors"
    assert report["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    enc = get_encoder("luma-tiny-clip", pretrained=str(weights))
    assert enc.encode_text(["a red circle"]).shape == (1, enc.dim)
