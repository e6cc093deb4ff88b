"""Copy a store between a local directory and Milvus (+ S3 for the media), verified.

``migrate(src, dst)`` copies every item — id, raw vector, modality, metadata, text, source —
plus the store config, the bridge state and the calibrated radii ρ. Local → Milvus can upload
each item's media file to S3 (``media=S3MediaStore(...)``); the record then keeps its
``s3://`` URI. Milvus → local keeps ``s3://`` sources as they are (the app and the answerer
fetch them through :class:`~luma_rag.backends.s3.S3MediaStore`).

Verification: item counts must match, and a checksum over every item (SHA-256 of, in id
order, the id, the CRC32 of the float32 vector bytes, the canonical metadata JSON, the modality
and the text) must be equal on both sides; each uploaded media object is read back and its
SHA-256 compared with the local file's. A mismatch raises
:class:`~luma_rag.errors.StoreCorruptedError` naming what differs.

Not carried: the per-item bridge version (items arrive as projected by the current bridge, so
their item-side drift ε_i restarts at 0), usage counters (hot/warm placement) and knowledge
gaps. The CLI calls :func:`main` (``luma migrate SRC DST [--s3]``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import tempfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.backends.milvus import MilvusBackend
from luma_rag.backends.milvus_config import MilvusConfig, is_milvus_uri
from luma_rag.backends.s3 import S3Config, S3MediaStore, is_s3_uri
from luma_rag.errors import ConfigError, LumaError, StoreCorruptedError
from luma_rag.store.bridge_file import load_bridge, save_bridge

__all__ = ["MigrationReport", "checksum", "main", "migrate", "stored_rho"]

logger = logging.getLogger(__name__)

_BATCH = 1000


@dataclass(frozen=True)
class MigrationReport:
    """What a migration copied and the checks that passed.

    Attributes:
        items: items copied. media: media files uploaded (local → Milvus with S3).
        checksum: the SHA-256 both sides agree on. bridge: whether bridge state was copied.
        rho: the radii copied.
    """

    items: int
    media: int
    checksum: str
    bridge: bool
    rho: dict[str, float]


def _item_digest(h: Any, item: Mapping[str, Any]) -> None:
    vec = np.ascontiguousarray(item["vector"], dtype=np.float32)
    meta = json.dumps(item["metadata"], sort_keys=True, separators=(",", ":"))
    for part in (
        item["id"],
        str(zlib.crc32(vec.tobytes())),
        meta,
        item["modality"],
        item["text"] or "",
    ):
        h.update(part.encode())
        h.update(b"\x00")


def checksum(items: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 over items (dicts with id, vector, metadata, modality, text), in id order."""
    h = hashlib.sha256()
    for item in sorted(items, key=lambda it: it["id"]):
        _item_digest(h, item)
    return h.hexdigest()


def stored_rho(luma: Any) -> dict[str, float]:
    """The radii ρ a store holds (``luma.rho`` is only loaded with an encoder attached)."""
    if luma.rho:
        return dict(luma.rho)
    raw = luma._store.get_kv("rho")  # the StoreBackend's settings (the facade keeps ρ there)
    return {k: float(v) for k, v in json.loads(raw).items()} if raw else {}


def _local_items(luma: Any) -> Iterable[dict[str, Any]]:
    ids = luma.ids()
    for start in range(0, len(ids), _BATCH):
        yield from luma.get(ids[start : start + _BATCH])


def _milvus_items(backend: MilvusBackend) -> Iterable[dict[str, Any]]:
    for row in backend.scan():
        yield {
            "id": row["id"],
            "vector": row["vec"],
            "metadata": row["meta"],
            "modality": row["modality"],
            "text": row["text"],
            "source": row["source"],
        }


def migrate(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    media: S3MediaStore | None = None,
) -> MigrationReport:
    """Copy the store at ``src`` to ``dst`` (one a directory, the other a ``milvus://`` URI).

    Args:
        src / dst: a local store directory, or ``milvus://host:port/collection``. The
            destination must not hold items yet.
        media: where to upload media files (local → Milvus only); None keeps local paths.

    Raises:
        ConfigError: both sides local or both Milvus, or the destination is not empty.
        StoreCorruptedError: the copy does not verify (counts, checksums, media hashes).
    """
    from luma_rag import Luma

    src_s, dst_s = os.fspath(src), os.fspath(dst)
    if is_milvus_uri(src_s) == is_milvus_uri(dst_s):
        raise ConfigError(
            "migrate copies between a local directory and a milvus:// URI; got "
            f"{src_s!r} -> {dst_s!r}"
        )
    if is_milvus_uri(dst_s):
        with Luma.open(src_s) as luma:
            return _to_milvus(luma, MilvusConfig.from_uri(dst_s), media)
    if Path(dst_s).exists() and any(Path(dst_s).iterdir()):
        raise ConfigError(f"{dst_s} is not empty; migrate into a new directory")
    backend = MilvusBackend(MilvusConfig.from_uri(src_s))
    try:
        return _to_local(backend, Path(dst_s))
    finally:
        backend.close()


def _to_milvus(luma: Any, cfg: MilvusConfig, media: S3MediaStore | None) -> MigrationReport:
    backend = MilvusBackend(cfg, dim=luma.config.dim)
    try:
        if backend.count():
            raise ConfigError(f"{cfg.uri} already holds items; migrate into a new collection")
        uploaded: dict[str, str] = {}
        n = 0
        ids = luma.ids()
        for start in range(0, len(ids), _BATCH):
            batch = sorted(luma.get(ids[start : start + _BATCH]), key=lambda it: it["id"])
            sources = [_upload(it["source"], media, uploaded) for it in batch]
            backend.upsert(
                [it["id"] for it in batch],
                np.stack([it["vector"] for it in batch]),
                [it["metadata"] for it in batch],
                modality=[it["modality"] for it in batch],
                texts=[it["text"] for it in batch],
                sources=sources,
            )
            n += len(batch)
        backend.put_blob("config", luma.config.to_json().encode())
        rho = stored_rho(luma)
        backend.put_blob("rho", json.dumps(rho).encode())
        has_bridge = luma.bridge is not None
        if has_bridge:
            with tempfile.TemporaryDirectory() as tmp:
                save_bridge(luma.bridge, Path(tmp) / "bridge.safetensors")
                backend.put_blob("bridge", (Path(tmp) / "bridge.safetensors").read_bytes())
        want = checksum(_local_items(luma))
        got = checksum(_milvus_items(backend))
        _verify(n, backend.count(), want, got, cfg.uri)
        for local, uri in uploaded.items():
            if media is not None and media.sha256(uri) != _file_sha256(local):
                raise StoreCorruptedError(f"media object {uri} differs from {local}")
        logger.info("migrated %d items (%d media) into %s", n, len(uploaded), cfg.uri)
        return MigrationReport(n, len(uploaded), got, has_bridge, rho)
    finally:
        backend.close()


def _upload(source: str | None, media: S3MediaStore | None, done: dict[str, str]) -> str | None:
    if media is None or source is None or is_s3_uri(source) or not Path(source).is_file():
        return source
    if source not in done:
        done[source] = media.put_file(source)
    return done[source]


def _file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _to_local(backend: MilvusBackend, dst: Path) -> MigrationReport:
    from luma_rag import Luma, LumaConfig

    raw_cfg = backend.get_blob("config")
    config = LumaConfig.from_json(raw_cfg.decode()) if raw_cfg else LumaConfig(dim=backend.dim)
    dst.mkdir(parents=True, exist_ok=True)
    bridge_blob = backend.get_blob("bridge")
    if bridge_blob is not None:
        (dst / "bridge.safetensors").write_bytes(bridge_blob)
        load_bridge(dst / "bridge.safetensors")  # fails loudly if unreadable
    rho = json.loads((backend.get_blob("rho") or b"{}").decode())
    n = 0
    with Luma.open(dst, config) as luma:
        batch: list[dict[str, Any]] = []
        for item in _milvus_items(backend):
            batch.append(item)
            if len(batch) >= _BATCH:
                n += _add_local(luma, batch)
                batch = []
        n += _add_local(luma, batch)
        for modality, value in rho.items():
            luma.set_rho(modality, value)
        want = checksum(_milvus_items(backend))
        got = checksum(_local_items(luma))
        _verify(backend.count(), len(luma), want, got, os.fspath(dst))
    return MigrationReport(n, 0, got, bridge_blob is not None, rho)


def _add_local(luma: Any, batch: Sequence[dict[str, Any]]) -> int:
    for modality in sorted({it["modality"] for it in batch}):
        part = [it for it in batch if it["modality"] == modality]
        luma.add_vectors(
            np.stack([it["vector"] for it in part]),
            [it["metadata"] for it in part],
            [it["id"] for it in part],
            modality=modality,
            texts=[it["text"] for it in part],
            sources=[it["source"] for it in part],
        )
    return len(batch)


def _verify(n_src: int, n_dst: int, want: str, got: str, where: str) -> None:
    if n_src != n_dst:
        raise StoreCorruptedError(f"{where}: {n_dst} items after the copy, expected {n_src}")
    if want != got:
        raise StoreCorruptedError(f"{where}: the copied items' checksum differs from the source")


def main(argv: Sequence[str] | None = None) -> int:
    """``luma migrate SRC DST [--s3]``: copy a store between a directory and Milvus."""
    parser = argparse.ArgumentParser(
        prog="luma migrate",
        description="Copy a store between a local directory and milvus://host:port/collection.",
    )
    parser.add_argument("src", help="a store directory or milvus://host:port/collection")
    parser.add_argument("dst", help="a new directory or milvus://host:port/new_collection")
    parser.add_argument(
        "--s3",
        action="store_true",
        help="upload media files to S3 (LUMA_S3_ENDPOINT, LUMA_S3_BUCKET, AWS_* credentials)",
    )
    args = parser.parse_args(argv)
    try:
        media = S3MediaStore(S3Config.from_env()) if args.s3 else None
        report = migrate(args.src, args.dst, media=media)
    except LumaError as e:
        print(f"error: {e}")
        return 2
    print(
        json.dumps(
            {
                "items": report.items,
                "media": report.media,
                "checksum": report.checksum,
                "bridge": report.bridge,
                "rho": report.rho,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
