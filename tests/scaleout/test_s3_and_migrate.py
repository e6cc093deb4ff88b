"""Media in a real S3 gateway (SeaweedFS) and migration local <-> Milvus + S3."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag import Luma, LumaConfig
from luma_rag.backends import MilvusBackend, MilvusConfig, S3Config, S3MediaStore
from luma_rag.backends.migrate import main as migrate_main
from luma_rag.backends.migrate import migrate, stored_rho
from luma_rag.bridge import BridgeConfig, ProcrustesBridge
from luma_rag.errors import ConfigError, NotFoundError
from luma_rag.store.bridge_file import load_bridge


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_s3_media_roundtrip(s3_env: dict[str, Any], tmp_path: Path) -> None:
    store = S3MediaStore(S3Config.from_env())
    f = tmp_path / "clip.wav"
    f.write_bytes(b"RIFF....fake audio bytes")
    uri = store.put_file(f)
    assert uri.startswith("s3://luma-media/media/") and uri.endswith(".wav")
    assert store.put_file(f) == uri  # content-addressed: same bytes, same object
    assert store.get_bytes(uri) == f.read_bytes()
    assert store.exists(uri)
    with urllib.request.urlopen(store.url(uri, expires_s=60)) as resp:  # 127.0.0.1 only
        assert resp.read() == f.read_bytes()
    local = store.fetch(uri, tmp_path / "cache")
    assert local.read_bytes() == f.read_bytes()
    missing = uri.replace("media/", "media/0")
    assert not store.exists(missing)
    with pytest.raises(NotFoundError):
        store.get_bytes(missing)
    with pytest.raises(ConfigError, match="not an object of bucket"):
        store.get_bytes("s3://other-bucket/x")


def test_s3_sources_are_readable_by_media_readers(s3_env: dict[str, Any], tmp_path: Path) -> None:
    """The LLaVA answerer and other readers open hit sources via media.sources.local_path."""
    from luma_rag.media import load_image
    from luma_rag.media.sources import local_path

    Image = pytest.importorskip("PIL.Image")
    f = tmp_path / "red.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(f)
    uri = S3MediaStore(S3Config.from_env()).put_file(f)
    path = local_path(uri)
    assert Path(path).read_bytes() == f.read_bytes()
    assert load_image(path).getpixel((0, 0)) == (255, 0, 0)


def test_s3_config_from_env_names_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="LUMA_S3_BUCKET"):
        S3Config.from_env({"LUMA_S3_ENDPOINT": "http://127.0.0.1:1"})


def _local_store(path: Path, media_dir: Path) -> list[str]:
    rng = np.random.default_rng(5)
    cfg = LumaConfig(
        dim=32, hot_budget=20, bridge=BridgeConfig(source_dim=24, target_dim=32, refresh_every=64)
    )
    media_dir.mkdir()
    files = []
    for i in range(3):
        f = media_dir / f"img{i}.png"
        f.write_bytes(f"png bytes {i}".encode())
        files.append(str(f))
    with Luma.open(path, cfg) as luma:
        x = _unit(rng.standard_normal((64, 24)))
        luma.add_bridge_pairs(x, _unit(rng.standard_normal((64, 32))))
        vecs = _unit(rng.standard_normal((50, 32)))
        ids = luma.add_vectors(
            vecs[:40],
            metadata=[{"n": i, "tag": ["a", "b"][i % 2]} for i in range(40)],
            texts=[f"caption {i}" for i in range(40)],
            sources=[files[i % 3] for i in range(40)],
            modality="image",
        )
        ids += luma.add_vectors(vecs[40:], metadata=[{"n": i} for i in range(10)], modality="text")
        luma.set_rho("image", 0.05)
        luma.set_rho("text", 0.02)
    return ids


def test_migrate_local_to_milvus_and_back(
    tmp_path: Path, milvus_uri: str, s3_env: dict[str, Any]
) -> None:
    ids = _local_store(tmp_path / "src", tmp_path / "media")
    media = S3MediaStore(S3Config.from_env())
    report = migrate(tmp_path / "src", milvus_uri, media=media)
    assert (report.items, report.media, report.bridge) == (50, 3, True)
    assert report.rho == {"image": 0.05, "text": 0.02}
    backend = MilvusBackend(MilvusConfig.from_uri(milvus_uri))
    rec = backend.get([ids[0]])[ids[0]]
    assert rec["source"].startswith("s3://luma-media/") and rec["text"] == "caption 0"
    assert media.get_bytes(rec["source"]) == b"png bytes 0"
    with pytest.raises(ConfigError, match="already holds items"):
        migrate(tmp_path / "src", milvus_uri)

    back = migrate(milvus_uri, tmp_path / "back")
    assert back.checksum == report.checksum and back.items == 50
    with Luma.open(tmp_path / "src") as a, Luma.open(tmp_path / "back") as b:
        assert sorted(a.ids()) == sorted(b.ids())
        ga = {d["id"]: d for d in a.get(a.ids())}
        for d in b.get(b.ids()):
            np.testing.assert_array_equal(d["vector"], ga[d["id"]]["vector"])
            assert d["metadata"] == ga[d["id"]]["metadata"]
            assert d["modality"] == ga[d["id"]]["modality"]
        assert stored_rho(b) == stored_rho(a) == {"image": 0.05, "text": 0.02}
        assert a.bridge is not None and b.bridge is not None
        sa, sb = a.bridge.state_dict(), b.bridge.state_dict()
        assert sa.keys() == sb.keys()
        for name in sa:
            np.testing.assert_array_equal(sa[name], sb[name])
        q = ga[ids[3]]["vector"]
        assert a.search(q, k=5).ids == b.search(q, k=5).ids
    assert isinstance(load_bridge(tmp_path / "back" / "bridge.safetensors"), ProcrustesBridge)
    backend.drop()


def test_migrate_refuses_bad_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="local directory and a milvus"):
        migrate(tmp_path / "a", tmp_path / "b")
    assert migrate_main([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "error:" in capsys.readouterr().out
