"""Nodes <-> LUMA-RAG items: what is stored for a node, and how a node comes back.

An item's metadata is ``node_to_metadata_dict(node)`` (LlamaIndex's own layout: the user's
metadata at the top level, so it stays filterable, plus ``_node_content`` / ``_node_type`` /
``doc_id`` / ``ref_doc_id`` / ``document_id``) and ``_node_id``, so that ``node_ids`` can be
filtered on too. :func:`item_to_node` restores the node with ``metadata_dict_to_node``; items
written by LUMA-RAG itself (no ``_node_content``) come back as a ``TextNode`` or, for images,
an ``ImageNode`` pointing at the item's source.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Final, Literal

from llama_index.core.schema import BaseNode, ImageNode, MetadataMode, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

__all__ = [
    "NODE_ID_KEY",
    "TELEMETRY_KEY",
    "embedding_input",
    "item_to_node",
    "node_modality",
    "node_source",
    "node_text",
    "node_to_item_metadata",
]

#: Item metadata key holding the node id (filterable, for ``VectorStoreQuery.node_ids``).
NODE_ID_KEY: Final = "_node_id"
#: ``node.metadata`` key under which query results carry the hit's certificate telemetry.
TELEMETRY_KEY: Final = "luma"


def node_to_item_metadata(node: BaseNode, *, flat_metadata: bool = False) -> dict[str, Any]:
    """The metadata dict stored with a node's item.

    Raises:
        ValueError: ``flat_metadata`` and a nested value, or metadata that JSON cannot hold.
    """
    try:
        meta = node_to_metadata_dict(node, remove_text=False, flat_metadata=flat_metadata)
        meta[NODE_ID_KEY] = node.node_id
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"node {node.node_id!r}: its metadata cannot be stored ({e}); use strings, "
            "numbers, booleans, None, or lists/dicts of them"
            + ("" if not flat_metadata else ", without nesting (flat_metadata=True)")
        ) from e
    return meta


def node_modality(node: BaseNode) -> Literal["text", "image"]:
    """``"image"`` for an ImageNode that holds an image, else ``"text"``."""
    if isinstance(node, ImageNode) and (node.image or node.image_path or node.image_url):
        return "image"
    return "text"


def node_text(node: BaseNode) -> str | None:
    """The node's own text (no metadata), or None when it has none."""
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    return text or None


def node_source(node: BaseNode) -> str | None:
    """Where the node came from: an image's path or URL, else the ``file_path`` metadata."""
    if isinstance(node, ImageNode) and (node.image_path or node.image_url):
        return node.image_path or node.image_url
    source = node.metadata.get("file_path")
    return source if isinstance(source, str) and source else None


def embedding_input(node: BaseNode) -> tuple[Literal["text", "image"], Any]:
    """What to encode for a node without an embedding: ``("image", path | bytes)`` or
    ``("text", str)`` (the text as LlamaIndex embeds it, with its embed metadata).

    Raises:
        ValueError: An image only reachable by an http(s) URL (nothing is downloaded), bad
            base64, or a node with neither an image nor text.
    """
    if node_modality(node) == "image" and isinstance(node, ImageNode):
        if node.image:
            try:
                return "image", base64.b64decode(node.image, validate=True)
            except (binascii.Error, ValueError) as e:
                raise ValueError(f"ImageNode {node.node_id!r}: image is not valid base64") from e
        if node.image_path:
            return "image", node.image_path
        url = node.image_url or ""
        if url.startswith("file://"):
            return "image", url.removeprefix("file://")
        raise ValueError(
            f"ImageNode {node.node_id!r} only has image_url={url!r}, and LumaVectorStore "
            "downloads nothing; save the image and set image_path, or pass an embedding"
        )
    text = node.get_content(metadata_mode=MetadataMode.EMBED)
    if not text.strip():
        raise ValueError(
            f"node {node.node_id!r} has no embedding, no image and no text to embed; "
            "give it text, an image, or an embedding"
        )
    return "text", text


def item_to_node(
    item_id: str,
    metadata: Mapping[str, Any],
    *,
    modality: str = "text",
    text: str | None = None,
    source: str | None = None,
    telemetry: Mapping[str, Any] | None = None,
) -> BaseNode:
    """Rebuild the node stored as an item (see the module docstring).

    Args:
        item_id: The item's id (the node id).
        metadata: The item's metadata.
        modality / text / source: What LUMA-RAG recorded, for items it wrote itself.
        telemetry: When given, set as ``node.metadata["luma"]`` and hidden from the LLM and
            embed metadata modes, so that it never leaks into prompts or embeddings.
    """
    node: BaseNode
    if "_node_content" in metadata:
        node = metadata_dict_to_node(dict(metadata))
    else:
        user = {k: v for k, v in metadata.items() if k != TELEMETRY_KEY}
        if modality == "image":
            node = ImageNode(id_=item_id, text=text or "", image_path=source, metadata=user)
        else:
            node = TextNode(id_=item_id, text=text or "", metadata=user)
    if telemetry is not None:
        node.metadata[TELEMETRY_KEY] = dict(telemetry)
        for excluded in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
            if TELEMETRY_KEY not in excluded:
                excluded.append(TELEMETRY_KEY)
    return node
