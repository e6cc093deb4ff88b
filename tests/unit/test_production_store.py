"""A store on production model names (stand-in checkpoints): cheap open, one pass, calibration.

The stand-ins (:mod:`luma_rag.encoders.standins`) sit under ``$LUMA_MODEL_DIR`` exactly as the
README's "Switch to production models" section says; sockets and DNS are blocked throughout.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag import Luma
from luma_rag.encoders import get_encoder, registry
from luma_rag.encoders.standins import CLAP_NAME, CLIP_NAME, write_clip_standin, write_standins
from luma_rag.errors import ModelNotAvailableError

REPO = Path(__file__).resolve().parents[2]
COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60)}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_standins(root)
    return root


@pytest.fixture(autouse=True)
def env(models: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """``$LUMA_MODEL_DIR`` = the stand-ins; an empty hub cache; no network."""
    for var in ("HF_HOME", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("LUMA_MODEL_DIR", str(models))
    attempts: list[Any] = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def refuse_connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] == "127.0.0.1":  # the demo test's server
            return connect(self, address)
        attempts.append(address)
        raise OSError("network disabled in tests")

    def refuse_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "127.0.0.1":
            return getaddrinfo(host, *args, **kwargs)
        attempts.append(host)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    yield
    assert attempts == [], attempts


class Counting:
    """An encoder wrapper that counts encoder calls per method."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not name.startswith("encode_"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted


@pytest.fixture(scope="module")
def encoders(models: Path) -> tuple[Any, Any]:
    """Both stand-ins, loaded once per module (explicit paths: no environment needed)."""
    clip = get_encoder(CLIP_NAME, pretrained=str(models / CLIP_NAME))
    return clip, get_encoder(CLAP_NAME, pretrained=str(models / CLAP_NAME))


def _images(folder: Path, n: int) -> list[tuple[str, str]]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        colour = list(COLOURS)[i % len(COLOURS)]
        path = folder / f"{i:03d}.png"
        im = Image.new("RGB", (96, 96), (240, 240, 240))
        im.paste(COLOURS[colour], (10 + 7 * (i % 9), 10 + 5 * (i % 7), 60, 60))
        im.save(path)
        out.append((str(path), f"a {'small' if i % 2 else 'large'} {colour} square number {i}"))
    return out


def test_open_runs_no_calibration_and_reports_rho_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import luma_rag.calibration as calibration

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("Luma.open calibrated a production model")

    monkeypatch.setattr(calibration, "calibrate_radii", forbidden)
    monkeypatch.setattr(calibration, "load_calibration_inputs", forbidden)
    clip, clap = Counting(get_encoder(CLIP_NAME)), Counting(get_encoder(CLAP_NAME))
    with Luma.open(tmp_path / "s", encoder=clip, audio_encoder=clap) as luma:
        assert clip.calls == {} and clap.calls == {}  # no encoder pass at all while opening
        assert luma.bridge is not None and not luma.bridge.fitted and luma.rho == {}
        luma.ingest_texts(["a red square", "a blue circle"])
        res = luma.query("a red square", k=2)
        assert res.telemetry.rho_source == "unset" and res.telemetry.rho == 0.0
    with Luma.open(tmp_path / "t", encoder=CLIP_NAME, audio_encoder=CLAP_NAME) as luma:
        assert luma.encoder is not None and luma.encoder.name == "ViT-B-32"


def test_one_encoder_pass_per_query_and_per_ingest(
    tmp_path: Path, encoders: tuple[Any, Any]
) -> None:
    clip, clap = Counting(encoders[0]), Counting(encoders[1])
    with Luma.open(tmp_path / "s", encoder=clip, audio_encoder=clap) as luma:
        luma.ingest("a red square")  # text item: its CLIP vector is also the bridge target
        assert clip.calls == {"encode_text": 1} and clap.calls == {"encode_text": 1}
        for modality_query in ({"text": "a red square"},):
            clip.calls.clear()
            clap.calls.clear()
            luma.query(**modality_query)
            assert clip.calls == {"encode_text": 1} and clap.calls == {}


def test_misnamed_or_wrong_kind_audio_model_fails_before_the_clip_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    real = registry._BACKENDS["open_clip"]
    monkeypatch.setitem(registry._BACKENDS, "open_clip", lambda *a: loads.append(a[0]) or real(*a))
    with pytest.raises(ModelNotAvailableError, match="unknown model 'laion/clap-htsat-unfusd'"):
        Luma.open(tmp_path / "s", encoder=CLIP_NAME, audio_encoder="laion/clap-htsat-unfusd")
    with pytest.raises(ModelNotAvailableError, match="is a clip model"):
        Luma.open(tmp_path / "s", encoder=CLIP_NAME, audio_encoder=CLIP_NAME)
    with pytest.raises(ModelNotAvailableError, match="is an audio model"):
        Luma.open(tmp_path / "s", encoder=CLAP_NAME)
    assert loads == [] and not (tmp_path / "s").exists()


def test_audio_model_by_directory_without_clap_in_its_name(tmp_path: Path, models: Path) -> None:
    sound = tmp_path / "my-sound-model"
    shutil.copytree(models / CLAP_NAME, sound)
    with Luma.open(tmp_path / "s", encoder=CLIP_NAME, audio_encoder=str(sound)) as luma:
        assert luma.bridge is not None  # recognised as audio: the store got a bridge
        assert luma.config.bridge is not None and luma.config.bridge.source_dim == 128


def test_calibrate_on_own_items_then_encoder_change_drops_rho(
    tmp_path: Path, encoders: tuple[Any, Any], models: Path
) -> None:
    clip, clap = encoders
    items = _images(tmp_path / "img", 40)
    store = tmp_path / "s"
    with Luma.open(store, encoder=clip, audio_encoder=clap) as luma:
        luma.ingest_images([p for p, _ in items], captions=[c for _, c in items])
        assert luma.bridge is not None
        n_more = luma.bridge.config.resolved_min_pairs  # enough texts for the bridge to fit
        luma.ingest_texts([f"a {c} note about item {i}" for i, c in enumerate(["red"] * n_more)])
        stages: list[tuple[str, int, int]] = []
        measured = luma.calibrate(progress=lambda *a: stages.append(a), sample=32)
        assert set(measured) == {"text", "image", "video", "audio"}
        assert all(v > 0 for v in measured.values())
        assert {s for s, _, _ in stages} == {"bridge", "text", "image", "audio"}
        assert luma.bridge is not None and luma.bridge.fitted
        res = luma.query("a large red square", k=3)
        assert res.telemetry.rho_source == "calibrated" and res.telemetry.rho == measured["text"]
        luma.set_rho("image", 0.3)
        assert luma.query(image=items[0][0]).telemetry.rho_source == "user"
    with Luma.open(store, encoder=clip, audio_encoder=clap) as luma:  # same encoders: kept
        assert luma.rho["text"] == measured["text"] and luma.notices == []
    other = tmp_path / "other-clip"  # another 64-d CLIP: same dim, different model
    write_clip_standin(other, seed=1)
    with Luma.open(store, encoder=str(other), audio_encoder=clap) as luma:
        assert luma.rho == {} and len(luma.notices) == 1
        assert "encoder changed from ViT-B-32 to other-clip" in luma.notices[0]
        assert luma.query("a red square").telemetry.rho_source == "unset"


def test_bridge_pairs_are_appended_not_rewritten(tmp_path: Path, encoders: tuple[Any, Any]) -> None:
    clip, clap = encoders
    store = tmp_path / "s"
    with Luma.open(store, encoder=clip, audio_encoder=clap) as luma:
        snapshot, log = store / "bridge.safetensors", store / "bridge.pairs"
        before = snapshot.stat().st_mtime_ns if snapshot.exists() else None
        for i in range(5):
            luma.ingest(f"a red square number {i}", caption=f"red square {i}")
        after = snapshot.stat().st_mtime_ns if snapshot.exists() else None
        assert after == before  # not rewritten per item
        row = 4 * (128 + 64)
        assert log.stat().st_size == 5 * (16 + row)  # one framed record per item
        # a crash now: a copy of the directory as it is on disk reopens to the same bridge
        crashed = tmp_path / "crashed"
        shutil.copytree(store, crashed)
        live = luma.bridge
        assert live is not None
        with Luma.open(crashed, encoder=clip, audio_encoder=clap) as copy:
            assert copy.bridge is not None and copy.bridge.pairs_seen == live.pairs_seen == 5
    assert log.stat().st_size == 0 and snapshot.exists()  # close: snapshot, then empty log
    with Luma.open(store, encoder=clip, audio_encoder=clap) as luma:
        assert luma.bridge is not None and luma.bridge.pairs_seen == 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_demo_production_serves_with_standins(tmp_path: Path, models: Path) -> None:
    """`make demo DEMO_ARGS=--production` with the stand-ins under LUMA_MODEL_DIR: HTTP 200."""
    port = _free_port()
    env = {**os.environ, "LUMA_MODEL_DIR": str(models), "HF_HUB_CACHE": str(tmp_path / "hub")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "integrations")])
    cmd = [
        sys.executable,
        "-m",
        "luma_rag.app.demo",
        "--production",
        "--store",
        str(tmp_path / "st"),
    ]
    cmd += ["--n", "12", "--n-audio", "3", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    status = r.status
                    break
            except OSError:
                time.sleep(1)
        assert status == 200, f"demo did not serve (exit {proc.poll()})"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "calibrate" in err and "bf16" in err, err[-3000:]


def test_cli_calibrate_then_query_reports_calibrated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from luma_rag.cli import main

    store = tmp_path / "s"
    with Luma.open(store, encoder=CLIP_NAME) as luma:
        luma.ingest_texts([f"a {c} square number {i}" for i, c in enumerate(COLOURS)])
    args = ["--store", str(store), "--model", CLIP_NAME, "--json"]
    assert main(["query", *args, "a red square"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["calibrate", *args]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert set(report["measured"]) == {"text"} and report["rho_source"] == {"text": "calibrated"}
    assert "calibrate: text" in captured.err  # progress on stderr
    assert main(["query", *args, "a red square"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert before["telemetry"]["rho_source"] == "unset"
    assert after["telemetry"]["rho_source"] == "calibrated"
    assert after["telemetry"]["rho"] == pytest.approx(report["rho"]["text"])


def test_bridge_log_stale_offset_is_reanchored(tmp_path: Path) -> None:
    """A crash after the log was emptied but before the final snapshot loses nothing later."""
    from luma_rag.bridge import BridgeConfig
    from luma_rag.store.bridge_log import BridgeLog
    from luma_rag.store.records import RecordStore

    rng = np.random.default_rng(0)

    def pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = rng.standard_normal((n, 6)), rng.standard_normal((n, 4))
        return (
            (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32),
            (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32),
        )

    cfg = BridgeConfig(source_dim=6, target_dim=4, refresh_every=8)
    records = RecordStore(tmp_path / "records.sqlite")

    def bridge_log() -> BridgeLog:
        return BridgeLog(tmp_path, cfg, "store-1", records, snapshot_every=1000)

    log = bridge_log()
    for _ in range(3):
        log.add_pairs(*pairs(2))
    log.snapshot()  # offset = 3 records
    (tmp_path / "bridge.pairs").write_bytes(b"")  # "crash" right after emptying the log
    reopened = bridge_log()
    assert reopened.bridge.pairs_seen == 6
    for _ in range(5):  # grows past the stale offset; then another crash (no close)
        reopened.add_pairs(*pairs(2))
    again = bridge_log()
    assert again.bridge.pairs_seen == 16
