"""Settings of the Milvus backend and the ``milvus://host:port/collection`` URI."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

from luma_rag._config import ConfigBase, check
from luma_rag.errors import ConfigError

__all__ = ["MilvusConfig", "is_milvus_uri"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")


def is_milvus_uri(uri: object) -> bool:
    """Whether ``uri`` is a ``milvus://`` URI (a path string otherwise)."""
    return isinstance(uri, str) and uri.startswith("milvus://")


@dataclass(frozen=True)
class MilvusConfig(ConfigBase):
    """Where the collection lives and how Milvus indexes it.

    Index choice (one vector index per collection in Milvus 2.3):

    * ``HNSW`` (default): the graph LUMA's hot tier uses; best recall/latency while the
      collection fits in the query node's memory. Not certifiable (see ``complete`` below).
    * ``IVF_PQ``: LUMA's warm tier — compressed codes for collections that outgrow memory;
      candidates are still rescored exactly from the raw vectors stored next to the codes.
    * ``FLAT``: brute force inside Milvus; slower, but exact, so ``complete`` can be certified.

    Milvus replaces LUMA's own hot/warm spill with its segment lifecycle: new rows sit in a
    growing segment that is searched by brute force, and sealed segments get the index.

    Attributes:
        address: ``host:port`` of the Milvus proxy. collection: collection name.
        index: vector index type. hnsw_m / ef_construction / ef_search: HNSW settings.
        nlist / nprobe / pq_m: IVF_PQ settings (``pq_m`` must divide the dimension).
        rerank_depth: candidates fetched from Milvus and rescored exactly (at least k).
        exact_scan_below: a filtered query whose prefilter matches at most this many items
            scans them exactly from the raw vectors (exact and complete) instead of ANN search.
        timeout_s: per-request timeout.
    """

    address: str
    collection: str
    index: Literal["HNSW", "IVF_PQ", "FLAT"] = "HNSW"
    hnsw_m: int = 16
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int = 1024
    nprobe: int = 32
    pq_m: int = 16
    rerank_depth: int = 64
    exact_scan_below: int = 4096
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        host, _, port = self.address.rpartition(":")
        check(
            bool(host) and port.isdigit(),
            f"MilvusConfig.address must be host:port, e.g. 127.0.0.1:19530, got {self.address!r}",
        )
        check(
            isinstance(self.collection, str) and bool(_NAME.match(self.collection)),
            f"Milvus collection names are letters, digits and '_' (not starting with a digit); "
            f"got {self.collection!r}",
        )
        check(
            self.index in ("HNSW", "IVF_PQ", "FLAT"),
            f"MilvusConfig.index must be 'HNSW', 'IVF_PQ' or 'FLAT', got {self.index!r}",
        )
        for name in ("hnsw_m", "ef_construction", "ef_search", "nlist", "nprobe", "pq_m"):
            value = getattr(self, name)
            check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"MilvusConfig.{name} must be an int >= 1, got {value!r}",
            )
        check(
            isinstance(self.rerank_depth, int) and 1 <= self.rerank_depth <= 16384,
            f"MilvusConfig.rerank_depth must be an int in [1, 16384] (Milvus's topk limit), "
            f"got {self.rerank_depth!r}",
        )
        check(
            isinstance(self.exact_scan_below, int) and self.exact_scan_below >= 0,
            f"MilvusConfig.exact_scan_below must be an int >= 0, got {self.exact_scan_below!r}",
        )

    @classmethod
    def from_uri(cls, uri: str, **settings: object) -> MilvusConfig:
        """Parse ``milvus://host:port/collection[?index=FLAT&rerank_depth=128]``.

        Raises:
            ConfigError: not a milvus URI, no collection, or an unknown setting.
        """
        parts = urlsplit(uri)
        collection = parts.path.strip("/")
        if parts.scheme != "milvus" or not parts.netloc or not collection:
            raise ConfigError(
                f"{uri!r} is not a Milvus store URI; write milvus://127.0.0.1:19530/<collection>"
            )
        query: dict[str, object] = {}
        for item in filter(None, parts.query.split("&")):
            key, _, value = item.partition("=")
            query[key] = int(value) if value.isdigit() else value
        base = cls(address=parts.netloc, collection=collection)
        try:
            return replace(base, **{**query, **settings})  # type: ignore[arg-type]
        except TypeError as e:
            raise ConfigError(f"{uri!r}: {e}; see MilvusConfig for the settings") from e

    @property
    def uri(self) -> str:
        """``milvus://address/collection``."""
        return f"milvus://{self.address}/{self.collection}"
