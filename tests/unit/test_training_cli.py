"""The training commands' shared flags, report helpers and ``main`` skeleton."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from luma_rag.errors import ConfigError
from luma_rag.training._cli import add_config_flags, config_kwargs, file_digests, run_main, versions


@dataclass(frozen=True)
class _Cfg:
    """A config.

    Attributes:
        steps: Optimiser steps. More text here.
        lr: Peak learning rate, e.g. 0.002, i.e. the top. Not this sentence.
        minutes: Wall-clock cap.
        anchor: Anchor model
            name, on two lines.
        nested: Not a flag.
    """

    steps: int = 10
    lr: float = 1e-3
    minutes: float | None = None
    anchor: str | None = "luma-tiny"
    nested: tuple[int, ...] = (1, 2)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_config_flags(p, _Cfg)
    return p


def test_flags_default_to_the_dataclass_and_parse_types() -> None:
    assert _Cfg(**config_kwargs(_Cfg, _parser().parse_args([]))) == _Cfg()
    args = _parser().parse_args(
        ["--steps", "3", "--lr", "0.5", "--minutes", "2", "--anchor", "none"]
    )
    assert _Cfg(**config_kwargs(_Cfg, args)) == _Cfg(steps=3, lr=0.5, minutes=2.0, anchor=None)
    with pytest.raises(SystemExit):
        _parser().parse_args(["--nested", "1"])  # only scalar fields become flags
    with pytest.raises(SystemExit):
        _parser().parse_args(["--steps", "many"])


def test_help_comes_from_the_docstring() -> None:
    text = _parser().format_help()
    assert "Optimiser steps (default: 10)" in text
    assert "Anchor model name, on two lines" in " ".join(text.split())
    flat = " ".join(text.split())
    assert "Peak learning rate, e.g. 0.002, i.e. the top (default: 0.001)" in flat
    assert "Not this sentence" not in flat


def test_file_digests_and_versions(tmp_path: Path) -> None:
    (tmp_path / "b.bin").write_bytes(b"abc")
    (tmp_path / "a.txt").write_bytes(b"")
    digests = file_digests(tmp_path.iterdir())
    assert list(digests) == ["a.txt", "b.bin"]
    assert digests["b.bin"] == {
        "bytes": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }
    v = versions("numpy", "no_such_module_here")
    assert set(v) == {"python", "numpy"}


def test_run_main_prints_and_maps_luma_errors_to_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def train(args: argparse.Namespace) -> dict[str, object]:
        if args.steps < 0:
            raise ConfigError("steps must be >= 0")
        return {"seconds": {"train": 1.0}, "metrics": {"acc": 0.5}}

    assert run_main(_parser(), ["--steps", "2"], train, lambda a: {"steps": a.steps}) == 0
    out = capsys.readouterr().out
    first, rest = out.split("\n", 1)
    assert json.loads(first) == {"steps": 2}
    summary = json.loads(rest)
    assert summary["acc"] == 0.5 and summary["train"] == 1.0 and summary["total_wall"] >= 0
    assert run_main(_parser(), ["--steps", "-1"], train, lambda a: {}) == 2
    assert "error: steps must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, "steps must be >= 1"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"lr": 0.0}, "need lr > 0"),
        ({"weight_decay": -0.1}, "weight_decay >= 0"),
        ({"minutes": 0.0}, "minutes must be > 0"),
    ],
)
def test_every_training_config_shares_the_run_checks(
    changes: dict[str, float], message: str
) -> None:
    from luma_rag.training.train_clap import ClapTrainConfig
    from luma_rag.training.train_clip import ClipTrainConfig
    from luma_rag.training.train_llava import LlavaTrainConfig

    for config_type in (ClapTrainConfig, ClipTrainConfig, LlavaTrainConfig):
        bad = {
            ("epochs" if k == "steps" and config_type is ClipTrainConfig else k): v
            for k, v in changes.items()
        }
        with pytest.raises(ConfigError, match=message.replace("steps", "(steps|epochs)")):
            config_type(**bad)
    with pytest.raises(ConfigError, match="aux_weight must be >= 0"):
        ClapTrainConfig(aux_weight=-1.0)


def test_weights_record_names_and_digests_the_file(tmp_path: Path) -> None:
    import hashlib

    from luma_rag.training._cli import weights_record

    w = tmp_path / "tower.safetensors"
    w.write_bytes(b"weights")
    assert weights_record(w, "luma-tiny-clip") == {
        "model": "luma-tiny-clip",
        "file": "tower.safetensors",
        "bytes": 7,
        "sha256": hashlib.sha256(b"weights").hexdigest(),
    }
    assert weights_record(None, "m") == {"model": "m", "file": None}
