"""#11.5: unbounded inputs get a clamp or a typed error, each in well under 2 s."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from luma_rag import Luma
from luma_rag.errors import InvalidInputError
from tests.reliability.conftest import DIM, copy_store

CLIP = Path(__file__).resolve().parents[2] / "luma_rag/encoders/checkpoints/luma-tiny-clip"


@pytest.fixture
def store(pristine, tmp_path: Path) -> Luma:
    luma = Luma.open(copy_store(pristine[0], tmp_path / "s"))
    yield luma  # type: ignore[misc]
    luma.close()


def _fast(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("k", [10**9, 2**31, 2**63, 10_001])
def test_k_above_the_limit_is_refused(store: Luma, k: int) -> None:
    with pytest.raises(InvalidInputError, match="max_k"):
        _fast(store.search, np.ones(DIM, np.float32), k=k)


def test_k_above_the_item_count_is_clamped_and_reported(store: Luma) -> None:
    res = _fast(store.search, np.ones(DIM, np.float32), k=10_000)
    assert len(res) == len(store) and res.telemetry.k == len(store)
    assert any("clamped" in n for n in res.telemetry.notes)


@pytest.mark.parametrize("field", ["ids", "texts", "sources"])
def test_lone_surrogates_are_refused(store: Luma, field: str) -> None:
    n = len(store)
    with pytest.raises(InvalidInputError, match="UTF-8"):
        _fast(store.add_vectors, np.ones((1, DIM), np.float32), **{field: ["bad \ud800 text"]})
    assert len(store) == n


def test_deep_or_huge_metadata_is_refused(store: Luma) -> None:
    deep: dict = {}
    node = deep
    for _ in range(10_000):
        node["x"] = {}
        node = node["x"]
    for meta in (deep, {"blob": "x" * (2 << 20)}):
        with pytest.raises(InvalidInputError, match="metadata"):
            _fast(store.add_vectors, np.ones((1, DIM), np.float32), metadata=[meta])


@pytest.mark.skipif(not any(CLIP.glob("*.safetensors")), reason="tiny CLIP checkpoint missing")
def test_a_huge_text_query_is_truncated_and_reported(tmp_path: Path) -> None:
    with Luma.open(tmp_path / "t", encoder="luma-tiny") as luma:
        luma.ingest_texts(["a red circle", "a blue square"])
        text = "a red circle " * 800_000  # ~10 MB
        res = _fast(luma.query, text, k=1)
        assert res.hits[0].text == "a red circle"
        assert any("truncated" in n for n in res.telemetry.notes)
        with pytest.raises(InvalidInputError, match="UTF-8"):
            luma.query("bad \udfff")


@pytest.mark.skipif(not any(CLIP.glob("*.safetensors")), reason="tiny CLIP checkpoint missing")
def test_a_huge_image_is_refused_before_decoding(tmp_path: Path) -> None:
    from PIL import Image

    from luma_rag.errors import UnsupportedMediaError

    big = tmp_path / "big.png"
    Image.new("L", (7000, 7000)).save(big, optimize=False, compress_level=1)
    with Luma.open(tmp_path / "img", encoder="luma-tiny") as luma:
        luma.ingest_texts(["a red circle"])
        with pytest.raises(UnsupportedMediaError, match="max_pixels"):
            _fast(luma.ingest_images, [big])
        with pytest.raises(UnsupportedMediaError, match="max_pixels"):
            _fast(luma.query, image=big)
        assert len(luma) == 1
