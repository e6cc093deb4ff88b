"""Production model names with stand-in checkpoints: lookup order, file layouts, typed failures.

The stand-ins (:mod:`luma_rag.encoders.standins`) are the real architectures (a ViT-B-32-shaped
open_clip config with 2 layers, a tiny ``ClapConfig`` saved as ``pytorch_model.bin``, a tiny
``LlavaConfig`` in sharded safetensors) with random weights, laid out like the published
repositories, under ``$LUMA_MODEL_DIR`` and in a Hugging Face cache. Every test runs with the
network blocked: a connect or DNS lookup is recorded and fails the test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag.encoders import get_encoder, model_kind, resolve_model
from luma_rag.encoders.standins import (
    CLAP_NAME,
    CLIP_NAME,
    HF_CLIP_NAME,
    LLAVA_NAME,
    to_hf_cache,
    write_clip_standin,
    write_standins,
)
from luma_rag.errors import ModelNotAvailableError

HUB = {CLIP_NAME: "timm/vit_base_patch32_clip_224.openai", CLAP_NAME: CLAP_NAME}
HUB.update({LLAVA_NAME: LLAVA_NAME, HF_CLIP_NAME: HF_CLIP_NAME})
_ENV = ("LUMA_MODEL_DIR", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three stand-ins, written once per module in the ``$LUMA_MODEL_DIR`` layout."""
    root = tmp_path_factory.mktemp("standins")
    write_standins(root)
    return root


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Block sockets and DNS; yields the list of attempts, which must stay empty."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        attempts.append(args[1:] or kwargs)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield attempts
    assert attempts == [], f"something tried the network: {attempts}"


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No model locations set; an empty hub cache at tmp_path/hub."""
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path


@pytest.fixture()
def model_dir(pristine: Path, env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$LUMA_MODEL_DIR`` holding a fresh copy of the stand-ins."""
    root = env / "models"
    shutil.copytree(pristine, root)
    monkeypatch.setenv("LUMA_MODEL_DIR", str(root))
    return root


def _hub_cache(pristine: Path, env: Path) -> dict[str, Path]:
    snapshots = {}
    for name, repo in HUB.items():
        copy = env / "tmp-copy" / name
        shutil.copytree(pristine / name, copy)
        snapshots[name] = to_hf_cache(copy, env / "hub", repo)
    return snapshots


def _check_clip(enc: Any, image: Path, dim: int = 64) -> None:
    text = enc.encode_text(["a red circle", "a blue square"])
    img = enc.encode_image([image])
    assert text.shape == (2, enc.dim) and img.shape == (1, enc.dim) and enc.dim == dim
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)


def _check_clap(enc: Any) -> None:
    tone = np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000).astype(np.float32)
    audio = enc.encode_audio([(tone, 16_000)])
    assert audio.shape == (1, enc.dim) and enc.encode_text(["a tone"]).shape == (1, enc.dim)


@pytest.fixture(scope="module")
def red_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "red.png"
    Image.new("RGB", (64, 48), (220, 20, 20)).save(path)
    return path


def test_every_name_loads_from_luma_model_dir_offline(
    model_dir: Path, no_network: list[Any], red_png: Path
) -> None:
    from luma_rag.answer import LlavaAnswerer

    clip = get_encoder(CLIP_NAME)
    _check_clip(clip, red_png)
    assert (
        resolve_model(CLIP_NAME).location == model_dir / CLIP_NAME / "open_clip_model.safetensors"
    )
    _check_clip(get_encoder(HF_CLIP_NAME), red_png, dim=16)  # transformers CLIP backend
    clap = get_encoder(CLAP_NAME)
    _check_clap(clap)
    assert (model_dir / CLAP_NAME / "pytorch_model.bin").is_file()  # as published: no safetensors
    assert not (model_dir / CLAP_NAME / "model.safetensors").exists()
    llava = LlavaAnswerer(LLAVA_NAME, device="cpu", max_new_tokens=3)
    llava.load()
    assert llava.load_info["path"] == str(model_dir / LLAVA_NAME)
    # the hub's offline switches were set for the loads only
    assert "HF_HUB_OFFLINE" not in os.environ and "TRANSFORMERS_OFFLINE" not in os.environ
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE is False


def test_every_name_loads_from_the_hf_cache_layout(
    pristine: Path, env: Path, no_network: list[Any], red_png: Path
) -> None:
    snapshots = _hub_cache(pristine, env)
    assert all(p.is_relative_to(env / "hub") for p in snapshots.values())
    assert resolve_model(CLIP_NAME).location.parent == snapshots[CLIP_NAME]
    _check_clip(get_encoder(CLIP_NAME), red_png)
    assert resolve_model(CLAP_NAME).location == snapshots[CLAP_NAME]
    _check_clap(get_encoder(CLAP_NAME))
    assert resolve_model(LLAVA_NAME).location == snapshots[LLAVA_NAME]
    _check_clip(get_encoder(HF_CLIP_NAME), red_png, dim=16)


def test_lookup_order_explicit_then_model_dir_then_cache(
    pristine: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshots = _hub_cache(pristine, env)
    for name, snapshot in snapshots.items():  # only the cache
        assert str(resolve_model(name).location).startswith(str(snapshot))
    root = env / "models"
    shutil.copytree(pristine, root)
    monkeypatch.setenv("LUMA_MODEL_DIR", str(root))
    for name in HUB:  # LUMA_MODEL_DIR wins over the cache
        assert str(resolve_model(name).location).startswith(str(root / name))
    explicit = env / "elsewhere"
    shutil.copytree(pristine / CLIP_NAME, explicit)
    assert resolve_model(CLIP_NAME, str(explicit)).location.parent == explicit  # a directory
    file = explicit / "open_clip_model.safetensors"
    assert resolve_model(CLIP_NAME, str(file)).location == file  # a file
    assert resolve_model(str(pristine / CLAP_NAME)).location == pristine / CLAP_NAME  # dir as name


@pytest.mark.parametrize("name", [CLIP_NAME, HF_CLIP_NAME, CLAP_NAME, LLAVA_NAME])
def test_missing_model_message_gives_the_layout_that_loads(
    name: str, pristine: Path, env: Path, no_network: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_model(name)
    message = str(info.value)
    assert str(env / "hub") in message and "never downloads" in message
    match = re.search(r"hf download (\S+) --local-dir \$LUMA_MODEL_DIR/(\S+)`", message)
    assert match is not None, message
    assert match.group(1) == HUB[name] and match.group(2) == name
    # do exactly what the message says, with the stand-in as the downloaded directory
    root = env / "models"
    shutil.copytree(pristine / name, root / match.group(2))
    monkeypatch.setenv("LUMA_MODEL_DIR", str(root))
    assert resolve_model(name).location.is_relative_to(root / name)


def test_open_clip_bin_accepted_and_damaged_files_are_typed(
    env: Path, model_dir: Path, no_network: list[Any], red_png: Path
) -> None:
    target = model_dir / CLIP_NAME
    shutil.rmtree(target)
    write_clip_standin(target, bin=True)
    assert resolve_model(CLIP_NAME).location.name == "open_clip_pytorch_model.bin"
    _check_clip(get_encoder(CLIP_NAME), red_png)
    _truncate(target / "open_clip_pytorch_model.bin")
    with pytest.raises(ModelNotAvailableError, match=r"open_clip_pytorch_model\.bin.*damaged"):
        get_encoder(CLIP_NAME)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("name", "file"),
    [
        (CLIP_NAME, "open_clip_model.safetensors"),
        (CLAP_NAME, "pytorch_model.bin"),
        (LLAVA_NAME, "model-00002-of-00004.safetensors"),
    ],
)
def test_truncated_weights_raise_model_not_available_naming_the_file(
    name: str, file: str, model_dir: Path, no_network: list[Any]
) -> None:
    from luma_rag.answer import LlavaAnswerer

    _truncate(model_dir / name / file)
    with pytest.raises(ModelNotAvailableError) as info:
        if name == LLAVA_NAME:
            LlavaAnswerer(name, device="cpu").load()
        else:
            get_encoder(name)
    message = str(info.value)
    assert str(model_dir / name / file) in message and "Copy it again" in message
    # a file that is not in its format at all
    (model_dir / name / file).write_bytes(b"\x00" * 64)
    with pytest.raises(ModelNotAvailableError, match=re.escape(file)):
        if name == LLAVA_NAME:
            LlavaAnswerer(name, device="cpu").load()
        else:
            get_encoder(name)


def test_audio_models_are_recognised_by_their_entry_not_their_name(
    pristine: Path, env: Path
) -> None:
    assert model_kind(CLAP_NAME) == "audio" and model_kind("luma-tiny-clap") == "audio"
    assert model_kind(CLIP_NAME) == "clip" and model_kind("luma-tiny") == "clip"
    assert model_kind(HF_CLIP_NAME) == "clip"
    assert model_kind(LLAVA_NAME) == "answerer"
    renamed = env / "my-sound-model"  # no "clap" anywhere in the path
    shutil.copytree(pristine / CLAP_NAME, renamed)
    assert model_kind(str(renamed)) == "audio"
    _check_clap(get_encoder(str(renamed)))
    with pytest.raises(ModelNotAvailableError, match="unknown model"):
        model_kind("clap-but-not-registered")


def test_llava_precision_is_chosen_and_reported(model_dir: Path, no_network: list[Any]) -> None:
    from luma_rag.answer import LlavaAnswerer

    fp32 = LlavaAnswerer(LLAVA_NAME, device="cpu", precision="fp32")
    fp32.load()
    default = LlavaAnswerer(LLAVA_NAME, device="cpu")
    default.load()
    assert default.load_info["precision"] == "bf16"  # CPU default
    assert {str(p.dtype) for p in default._model.parameters()} == {"torch.bfloat16"}
    ratio = fp32.load_info["memory_bytes"] / default.load_info["memory_bytes"]
    assert ratio == pytest.approx(2.0, rel=0.01)
    if importlib.util.find_spec("bitsandbytes") is None:  # importing it would look up kernels
        return
    for precision, layer in (("int8", "Linear8bitLt"), ("nf4", "Linear4bit")):
        answerer = LlavaAnswerer(LLAVA_NAME, device="cpu", precision=precision)
        answerer.load()
        assert answerer.load_info["precision"] == precision
        assert any(type(m).__name__ == layer for m in answerer._model.modules())
        assert answerer.load_info["memory_bytes"] < default.load_info["memory_bytes"]
