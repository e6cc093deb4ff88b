"""LangChain ``Embeddings`` over a LUMA-RAG encoder: text, and images by path."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Self

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel, ConfigDict, Field, model_validator

from luma_rag.encoders import DEFAULT_MODEL, Encoder, get_encoder
from luma_rag.errors import ConfigError, InvalidInputError

__all__ = ["LumaEmbeddings"]


class LumaEmbeddings(BaseModel, Embeddings):
    """LUMA-RAG encoder embeddings: text and images in one (CLIP) space.

    Setup:
        Install the LangChain extra; the tiny CLIP ``"luma-tiny"`` ships inside the package,
        production models (``"ViT-B-32"``, ...) are loaded from disk, never downloaded.

        ```bash
        pip install -U "luma-rag[langchain]"
        ```

    Key init args:
        model: str
            Registry name of the encoder (``luma_rag.encoders.list_models()``).
        encoder: luma_rag.encoders.Encoder | None
            An encoder already built (e.g. ``luma.encoder``); ``model`` is then ignored.
        batch_size: int
            Inputs encoded per forward pass.

    Instantiate:
        ```python
        from langchain_lumarag import LumaEmbeddings

        embeddings = LumaEmbeddings(model="luma-tiny")
        ```

    Embed text:
        ```python
        vector = embeddings.embed_query("a red circle")
        vectors = embeddings.embed_documents(["a red circle", "a blue square"])
        print(len(vector), len(vectors))  # 128 2 (embeddings.dim, one vector per text)
        ```

    Embed images:
        Images are given by path; they share the text space, so a text query finds them.

        ```python
        # image_vectors = embeddings.embed_image(["photo.png"])
        ```

    Async:
        ```python
        import asyncio

        vector = asyncio.run(embeddings.aembed_query("a red circle"))
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    model: str = DEFAULT_MODEL
    """Registry name of the encoder, used when ``encoder`` is not given."""
    encoder: Encoder | None = None
    """The encoder; built from ``model`` when not given."""
    batch_size: int = Field(default=64, ge=1)
    """Inputs encoded per forward pass."""

    @model_validator(mode="after")
    def _build_encoder(self) -> Self:
        if self.encoder is None:
            self.encoder = get_encoder(self.model)
        else:
            self.model = self.encoder.name
        return self

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self._encoder.dim

    @property
    def _encoder(self) -> Encoder:
        if self.encoder is None:  # the validator sets it; only a bypassed validator gets here
            raise ConfigError("LumaEmbeddings has no encoder; build it with encoder='luma-tiny'")
        return self.encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts; one unit-norm vector of length :attr:`dim` per text ([] for [])."""
        texts = list(texts)
        if not texts:
            return []
        return self._encoder.encode_text(texts, batch_size=self.batch_size).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text."""
        if not isinstance(text, str):
            raise InvalidInputError(f"embed_query takes a str, got {type(text).__name__}")
        return self.embed_documents([text])[0]

    def embed_image(self, uris: Sequence[str | os.PathLike[str]]) -> list[list[float]]:
        """Embed images given by path; one unit-norm vector per image ([] for [])."""
        if isinstance(uris, str | os.PathLike):
            raise InvalidInputError("embed_image takes a list of paths; wrap a single path")
        paths = [os.fspath(u) for u in uris]
        if not paths:
            return []
        return self._encoder.encode_image(paths, batch_size=self.batch_size).tolist()

    async def aembed_image(self, uris: Sequence[str | os.PathLike[str]]) -> list[list[float]]:
        """Async :meth:`embed_image` (runs in a thread)."""
        return await run_in_executor(None, self.embed_image, uris)

    def __repr_args__(self) -> Any:
        return [("model", self.model), ("batch_size", self.batch_size)]
