"""End to end with the shipped tiny CLIP (``luma-tiny``): real images, real towers, offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.schema import ImageNode, QueryBundle, TextNode
from llama_index.vector_stores.lumarag import LumaEmbedding, LumaVectorStore

from luma_rag import Luma
from luma_rag.encoders import Encoder, get_encoder
from luma_rag.errors import MissingDependencyError

SHAPES = {"red_circle": ("circle", "red"), "blue_square": ("square", "blue")}


@pytest.fixture(scope="module")
def tiny() -> Encoder:
    try:
        return get_encoder("luma-tiny")
    except MissingDependencyError as e:  # the model stack is an extra; the weights ship
        pytest.skip(f"luma-tiny needs the model extra: {e}")


@pytest.fixture(scope="module")
def pngs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """LUMA-Shapes-style renders of the shapes in SHAPES, as PNG files."""
    from luma_rag.datasets.render import Background, Scene, background_array, render_frame
    from luma_rag.datasets.vocab import COLOR_RGB

    out_dir = tmp_path_factory.mktemp("pngs")
    bg = background_array(Background("plain", 128), 64)
    out = {}
    for name, (shape, color) in SHAPES.items():
        scene = Scene(shape, COLOR_RGB[color], ((32.0, 32.0),), 18.0, 0.0)
        path = out_dir / f"{name}.png"
        render_frame(bg, scene).save(path)
        out[name] = str(path)
    return out


@pytest.fixture
def store(tmp_path: Path, tiny: Encoder) -> Iterator[LumaVectorStore]:
    with Luma.open(tmp_path / "tiny", encoder=tiny) as luma:
        yield LumaVectorStore(luma=luma)


def test_open_by_name(tmp_path: Path, tiny: Encoder) -> None:
    with Luma.open(tmp_path / "by_name", encoder="luma-tiny") as luma:
        store = LumaVectorStore(luma=luma)
        assert store.dim == tiny.dim and store.encoder_name == tiny.name


def test_image_nodes_use_the_image_tower(
    store: LumaVectorStore, tiny: Encoder, pngs: dict[str, str]
) -> None:
    store.add([ImageNode(id_=name, image_path=path) for name, path in pngs.items()])
    stored = store.client.get(["red_circle"])[0]["vector"]
    expected = tiny.encode_image([pngs["red_circle"]])[0]
    assert np.dot(stored, expected) == pytest.approx(1.0, abs=1e-5)


def test_text_and_image_retrieval(
    store: LumaVectorStore, tiny: Encoder, pngs: dict[str, str]
) -> None:
    store.add(
        [ImageNode(id_=name, image_path=path) for name, path in pngs.items()]
        + [TextNode(id_="note", text="a note about green triangles")]
    )
    index = VectorStoreIndex.from_vector_store(store, embed_model=LumaEmbedding(encoder=tiny))
    hits = index.as_retriever(similarity_top_k=3).retrieve("a red circle")
    assert len(hits) == 3
    assert hits[0].score == pytest.approx(hits[0].node.metadata["luma"]["score"])
    by_image = index.as_retriever(similarity_top_k=1).retrieve(
        _image_query(tiny, pngs["blue_square"])
    )
    assert by_image[0].node.node_id == "blue_square"
    response = index.as_query_engine(llm=MockLLM(), similarity_top_k=2).query("a blue square")
    assert response.source_nodes[0].node.metadata["luma"]["modality"] in ("image", "text")


def _image_query(tiny: Encoder, path: str) -> QueryBundle:
    return QueryBundle(query_str="", embedding=tiny.encode_image([path])[0].tolist())
