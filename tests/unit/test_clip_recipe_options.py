"""train_clip options of session 12 (issue #12): another tower shape from a config file, and a
weight on the shape head. Both default to the shipped recipe's behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from luma_rag.errors import ConfigError
from luma_rag.training.train_clip import ClipTrainConfig


def test_shape_weight_one_is_the_plain_mean_and_other_weights_scale_the_shape_term() -> None:
    torch = pytest.importorskip("torch")
    from luma_rag.training.clip_losses import HEAD_KEYS, attribute_heads, attribute_loss

    torch.manual_seed(0)
    heads = attribute_heads(8, torch)
    img = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    codes = torch.tensor([[s % 8, s % 10, s % 2, s % 5, s % 2, 0] for s in range(6)])
    gray = torch.zeros(6, dtype=torch.bool)
    scaled = img * 8**0.5
    terms = {
        key: torch.nn.functional.cross_entropy(heads[key](scaled), codes[:, col])
        for col, key in enumerate(HEAD_KEYS)
    }
    plain = attribute_loss(heads, img, codes, gray, torch)
    assert torch.equal(plain, attribute_loss(heads, img, codes, gray, torch, 1.0))
    assert torch.allclose(plain, torch.stack(list(terms.values())).mean())
    heavy = attribute_loss(heads, img, codes, gray, torch, 3.0)
    expected = (3.0 * terms["shape"] + sum(v for k, v in terms.items() if k != "shape")) / 5
    assert torch.allclose(heavy, expected)


def test_config_rejects_a_negative_shape_weight_and_a_config_named_otherwise(
    tmp_path: Path,
) -> None:
    assert ClipTrainConfig().shape_weight == 1.0 and ClipTrainConfig().model_config is None
    with pytest.raises(ConfigError, match="shape_weight"):
        ClipTrainConfig(shape_weight=-1.0)
    with pytest.raises(ConfigError, match="--model other-clip"):
        ClipTrainConfig(model_config=str(tmp_path / "other-clip.json"))


@pytest.mark.slow
def test_train_clip_builds_the_tower_a_model_config_file_describes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("open_clip")
    from luma_rag.datasets.shapes import generate
    from luma_rag.encoders import catalog
    from luma_rag.encoders.open_clip_backend import OpenClipEncoder
    from luma_rag.encoders.registry import PACKAGE_DIR
    from luma_rag.training.train_clip import train_clip

    # the registration goes to a copy, so no other test sees the temporary architecture
    monkeypatch.setattr(catalog, "_CONFIG_PATHS", list(catalog._CONFIG_PATHS))
    shipped = json.loads((PACKAGE_DIR / "model_configs" / "luma-tiny-clip.json").read_text())
    shipped["vision_cfg"].update({"image_size": 32, "patch_size": 8, "layers": 1})
    shipped["text_cfg"]["layers"] = 1
    config = tmp_path / "luma-test-clip-32.json"
    config.write_text(json.dumps(shipped))
    data = generate(tmp_path / "corpus", n=80, seed=4242)
    cfg = ClipTrainConfig(
        model="luma-test-clip-32",
        model_config=str(config),
        epochs=1,
        batch_size=16,
        eval_every=0,
        aux_weight=1.0,
        head_pretrain=2,
        shape_weight=2.0,
    )
    report = train_clip(data, tmp_path / "out", cfg)
    assert report["model_config"]["vision_cfg"]["image_size"] == 32
    assert report["config"]["shape_weight"] == 2.0
    enc = OpenClipEncoder("luma-test-clip-32", tmp_path / "out" / "open_clip_model.safetensors")
    assert enc.model.visual.image_size == (32, 32)
    assert enc.encode_text(["a red circle"]).shape == (1, 128)


def test_background_head_adds_a_term_on_the_background_column() -> None:
    torch = pytest.importorskip("torch")
    from luma_rag.training.clip_losses import HEAD_KEYS, attribute_heads, attribute_loss

    torch.manual_seed(0)
    heads = attribute_heads(8, torch, background=True)
    assert list(heads) == [*HEAD_KEYS, "background"]
    assert list(attribute_heads(8, torch)) == list(HEAD_KEYS)
    img = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    codes = torch.tensor([[s % 8, s % 10, s % 2, s % 5, s % 2, s % 3] for s in range(6)])
    gray = torch.zeros(6, dtype=torch.bool)
    scaled = img * 8**0.5
    terms = [
        torch.nn.functional.cross_entropy(heads[key](scaled), codes[:, col])
        for col, key in enumerate((*HEAD_KEYS, "background"))
    ]
    assert torch.allclose(attribute_loss(heads, img, codes, gray, torch), torch.stack(terms).mean())
