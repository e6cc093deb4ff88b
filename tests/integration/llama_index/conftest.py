"""Fixtures for the LlamaIndex integration: a deterministic fake encoder, stores, nodes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.vector_stores.lumarag import LumaVectorStore

from luma_rag.errors import UnsupportedMediaError

DIM = 8


class HashEncoder:
    """A deterministic bag-of-words "CLIP" for tests (no model, no torch).

    A text embeds as the normalised sum of one seeded random vector per lower-cased word, so
    texts sharing words are close. An "image" is a file (or bytes) holding a caption, and
    embeds as that caption does, so images and texts share one space as in CLIP. Every
    call is recorded in ``calls`` as ``(modality, batch size)``.
    """

    def __init__(self, dim: int = 32, name: str = "hash-test") -> None:
        self._dim = dim
        self._name = name
        self.calls: list[tuple[str, int]] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset({"text", "image"})

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self._dim)

    def _embed(self, text: str) -> np.ndarray:
        words = re.findall(r"\w+", text.lower()) or [""]
        v = np.sum([self._word(w) for w in words], axis=0)
        return v / np.linalg.norm(v)

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        self.calls.append(("text", len(texts)))
        return np.stack([self._embed(t) for t in texts]).astype(np.float32)

    def encode_image(self, images: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
        self.calls.append(("image", len(images)))
        captions = [
            img.decode() if isinstance(img, bytes) else Path(img).read_text() for img in images
        ]
        return np.stack([self._embed(c) for c in captions]).astype(np.float32)

    def encode_audio(self, clips: Sequence[Any], *, batch_size: int = 16) -> np.ndarray:
        raise UnsupportedMediaError("HashEncoder embeds no audio")


def basis(i: int, lean: float = 0.0) -> list[float]:
    """Unit vector along axis ``i`` leaning ``lean`` towards axis 0 (DIM-d)."""
    v = np.zeros(DIM)
    v[i] = 1.0
    v[0] += lean
    return (v / np.linalg.norm(v)).tolist()


def make_nodes() -> list[TextNode]:
    """Five nodes from three documents; against ``basis(0)`` they rank n0 > n1 > ... > n4."""
    rows: list[tuple[str, str, dict[str, Any], list[float]]] = [
        (
            "doc-a",
            "The quick brown fox.",
            {
                "author": "Ann",
                "year": 2019,
                "rating": 4.5,
                "tags": ["fox", "animal"],
                "summary": "A Fox story",
            },
            basis(0),
        ),
        (
            "doc-a",
            "Jumps over the lazy dog.",
            {
                "author": "Ann",
                "year": 2020,
                "rating": 3.0,
                "tags": ["dog"],
                "summary": "dogs and foxes",
            },
            basis(1, 0.9),
        ),
        (
            "doc-b",
            "Lorem ipsum dolor.",
            {
                "author": "Bob",
                "year": 2021,
                "rating": 2.5,
                "tags": ["latin"],
                "summary": "placeholder",
            },
            basis(2, 0.6),
        ),
        (
            "doc-b",
            "Sit amet consectetur.",
            {"author": "Bob", "year": 2022, "rating": 5.0, "tags": [], "summary": "more latin"},
            basis(3, 0.4),
        ),
        (
            "doc-c",
            "A lone node.",
            {"author": "Cy", "year": 2023, "summary": "FOX in caps"},
            basis(4, 0.2),
        ),
    ]
    return [
        TextNode(
            id_=f"n{i}",
            text=text,
            metadata=meta,
            embedding=emb,
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)},
        )
        for i, (doc, text, meta, emb) in enumerate(rows)
    ]


@pytest.fixture
def node_embeddings() -> list[TextNode]:
    """Fresh copies of :func:`make_nodes` (tests may mutate them)."""
    return make_nodes()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LumaVectorStore]:
    """An empty DIM-d store on disk, without an encoder."""
    s = LumaVectorStore(tmp_path / "store", dim=DIM)
    yield s
    s.close()


@pytest.fixture
def hash_encoder() -> HashEncoder:
    return HashEncoder()


@pytest.fixture
def encoder_store(tmp_path: Path, hash_encoder: HashEncoder) -> Iterator[LumaVectorStore]:
    """An empty store that embeds with :class:`HashEncoder`."""
    s = LumaVectorStore(tmp_path / "enc_store", encoder=hash_encoder)
    yield s
    s.close()


@pytest.fixture
def image_files(tmp_path: Path) -> dict[str, str]:
    """Caption files standing in for images (see :class:`HashEncoder`), by name."""
    out = {}
    for name, caption in {
        "red_circle": "a red circle",
        "blue_square": "a blue square",
        "green_triangle": "a green triangle",
    }.items():
        path = tmp_path / f"{name}.png"
        path.write_text(caption)
        out[name] = str(path)
    return out
