"""``LumaEmbedding``: LUMA-RAG's encoders as a LlamaIndex multimodal embedding."""

from __future__ import annotations

import asyncio
from io import BytesIO
from typing import Any

from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.schema import ImageType

from luma_rag.encoders import DEFAULT_MODEL, Encoder, get_encoder

__all__ = ["LumaEmbedding"]


class LumaEmbedding(MultiModalEmbedding):
    """Text and image embeddings from a LUMA-RAG encoder (one CLIP space for both).

    Use the same encoder as the store so that queries and nodes share a space; pass the
    store's own to load the model once: ``LumaEmbedding(encoder=store.encoder)``.

    Example:
        .. code-block:: python

            from llama_index.vector_stores.lumarag import LumaEmbedding

            embed = LumaEmbedding("luma-tiny")          # the shipped tiny CLIP, offline
            embed.get_text_embedding("a red circle")   # list[float], unit norm
            embed.get_image_embedding("circle.png")

    Args:
        model_name: A name for :func:`luma_rag.encoders.get_encoder` (ignored with ``encoder``).
        encoder: A built encoder to use instead of loading ``model_name``.
        device: torch device for a model loaded here, e.g. ``"cpu"``.
        embed_batch_size: Texts / images per encoder call.
    """

    device: str = "cpu"

    _encoder: Encoder = PrivateAttr()

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        encoder: Encoder | None = None,
        device: str = "cpu",
        embed_batch_size: int = 32,
        **kwargs: Any,
    ) -> None:
        if encoder is None:
            encoder = get_encoder(model_name, device=device)
        elif not isinstance(encoder, Encoder):
            raise ValueError(
                f"encoder must implement luma_rag.encoders.Encoder, got {type(encoder).__name__}"
            )
        super().__init__(
            model_name=encoder.name,
            device=device,
            embed_batch_size=embed_batch_size,
            **kwargs,
        )
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "LumaEmbedding"

    @property
    def encoder(self) -> Encoder:
        """The underlying encoder."""
        return self._encoder

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self._encoder.dim

    # -- text ----------------------------------------------------------------------------------
    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._encoder.encode_text(texts, batch_size=self.embed_batch_size).tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embedding(query)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    # -- images --------------------------------------------------------------------------------
    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        images = [_image_input(img) for img in img_file_paths]
        return self._encoder.encode_image(images, batch_size=self.embed_batch_size).tolist()

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._get_image_embeddings([img_file_path])[0]

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_image_embeddings, img_file_paths)

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return await asyncio.to_thread(self._get_image_embedding, img_file_path)


def _image_input(img: Any) -> Any:
    """A path stays a path; a ``BytesIO`` (what ``ImageNode.resolve_image`` gives) -> bytes."""
    if isinstance(img, BytesIO):
        return img.getvalue()
    return img
