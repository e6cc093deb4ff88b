"""Media in S3-compatible object storage (AWS S3, MinIO, SeaweedFS, ...).

Ingest uploads the original file under a content-addressed key (``media/<sha256>.<ext>``, so a
re-ingest of the same bytes is one object) and the record keeps ``s3://<bucket>/<key>`` as
its ``source``. Readers turn that source back into bytes (:meth:`S3MediaStore.get_bytes`), a
local file (:meth:`S3MediaStore.fetch`) or a presigned HTTP URL (:meth:`S3MediaStore.url`).
Local files stay the default: nothing here runs unless a store is configured.

Settings come from the environment by default (:meth:`S3Config.from_env`)::

    LUMA_S3_ENDPOINT=http://127.0.0.1:8333   LUMA_S3_BUCKET=luma-media
    AWS_ACCESS_KEY_ID=...   AWS_SECRET_ACCESS_KEY=...   (AWS_REGION, optional)
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from luma_rag._config import ConfigBase, check
from luma_rag.errors import BackendError, ConfigError, MissingDependencyError, NotFoundError
from luma_rag.media.sources import register_resolver

__all__ = ["S3Config", "S3MediaStore", "is_s3_uri"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def is_s3_uri(source: str | None) -> bool:
    """Whether a record's ``source`` names an object (``s3://bucket/key``)."""
    return isinstance(source, str) and source.startswith("s3://")


@dataclass(frozen=True)
class S3Config(ConfigBase):
    """Where media objects live.

    Attributes:
        endpoint: ``http(s)://host:port`` of the S3 API. bucket: bucket name (created if missing).
        access_key / secret_key: credentials (kept out of ``repr``). region: signing region.
        prefix: key prefix for uploaded media.
    """

    endpoint: str
    bucket: str
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    region: str = "us-east-1"
    prefix: str = "media/"

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        check(
            parts.scheme in ("http", "https") and bool(parts.netloc),
            f"S3Config.endpoint must look like http://host:port, got {self.endpoint!r}",
        )
        check(
            isinstance(self.bucket, str) and 3 <= len(self.bucket) <= 63,
            f"S3Config.bucket must be a 3-63 character bucket name, got {self.bucket!r}",
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Config:
        """Read ``LUMA_S3_ENDPOINT``, ``LUMA_S3_BUCKET``, ``AWS_ACCESS_KEY_ID``, ... .

        Raises:
            ConfigError: ``LUMA_S3_ENDPOINT`` or ``LUMA_S3_BUCKET`` is not set.
        """
        env = os.environ if env is None else env
        missing = [k for k in ("LUMA_S3_ENDPOINT", "LUMA_S3_BUCKET") if not env.get(k)]
        if missing:
            raise ConfigError(
                f"set {' and '.join(missing)} (e.g. LUMA_S3_ENDPOINT=http://127.0.0.1:8333, "
                "LUMA_S3_BUCKET=luma-media) to keep media in object storage"
            )
        return cls(
            endpoint=env["LUMA_S3_ENDPOINT"],
            bucket=env["LUMA_S3_BUCKET"],
            access_key=env.get("AWS_ACCESS_KEY_ID", ""),
            secret_key=env.get("AWS_SECRET_ACCESS_KEY", ""),
            region=env.get("AWS_REGION", "us-east-1"),
        )


class S3MediaStore:
    """Upload, fetch and sign media objects in one bucket.

    Example:
        >>> store = S3MediaStore(S3Config.from_env())
        >>> uri = store.put_file("photo.png")        # 's3://luma-media/media/<sha256>.png'
        >>> store.url(uri)                           # presigned GET, valid one hour
    """

    def __init__(self, config: S3Config) -> None:
        try:
            from minio import Minio
        except ImportError as e:
            raise MissingDependencyError.for_extra("minio", "s3") from e
        self.config = config
        parts = urlsplit(config.endpoint)
        self._client = Minio(
            parts.netloc,
            access_key=config.access_key or None,
            secret_key=config.secret_key or None,
            secure=parts.scheme == "https",
            region=config.region,
        )
        self._call("check bucket", self._ensure_bucket)
        # Readers of hit sources (the LLaVA answerer, the app) get s3:// media through this store.
        cache = Path(tempfile.gettempdir()) / "luma-s3-cache" / config.bucket
        register_resolver("s3", lambda uri: str(self.fetch(uri, cache)))

    def _ensure_bucket(self) -> None:
        if not self._client.bucket_exists(self.config.bucket):
            self._client.make_bucket(self.config.bucket)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call, converting its errors at the boundary."""
        from minio.error import MinioException, S3Error

        try:
            return fn(*args, **kwargs)
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchObject"):
                raise NotFoundError(
                    f"no object {args[1] if len(args) > 1 else ''!r} in bucket {self.config.bucket}"
                ) from e
            raise BackendError(
                f"S3 {what} failed at {self.config.endpoint} ({e.code}: {e.message}); check "
                "the bucket and the credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            ) from e
        except (MinioException, OSError) as e:
            raise BackendError(
                f"S3 {what} failed at {self.config.endpoint} ({e}); is the server running?"
            ) from e

    def uri(self, key: str) -> str:
        """``s3://<bucket>/<key>``."""
        return f"s3://{self.config.bucket}/{key}"

    def key_of(self, uri: str) -> str:
        """The object key of ``s3://<bucket>/<key>``.

        Raises:
            InvalidInputError: not an ``s3://`` URI of this store's bucket.
        """
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not is_s3_uri(uri) or bucket != self.config.bucket or not key:
            raise ConfigError(f"{uri!r} is not an object of bucket {self.config.bucket!r}")
        return key

    def put_bytes(self, data: bytes, suffix: str = "", content_type: str | None = None) -> str:
        """Store ``data`` under a content-addressed key; returns its ``s3://`` URI."""
        import io

        key = f"{self.config.prefix}{hashlib.sha256(data).hexdigest()}{suffix}"
        self._call(
            "upload",
            self._client.put_object,
            self.config.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type or "application/octet-stream",
        )
        return self.uri(key)

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Upload a local media file; returns its ``s3://`` URI (same bytes: same object)."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise NotFoundError(f"cannot read media file {path} ({e})") from e
        return self.put_bytes(data, suffix=path.suffix.lower())

    def get_bytes(self, uri: str) -> bytes:
        """The object's bytes."""
        resp = self._call("download", self._client.get_object, self.config.bucket, self.key_of(uri))
        try:
            return bytes(resp.read())
        finally:
            resp.close()
            resp.release_conn()

    def fetch(self, uri: str, dest_dir: str | os.PathLike[str]) -> Path:
        """Download the object into ``dest_dir`` (kept if already there); returns the path."""
        key = self.key_of(uri)
        dest = Path(dest_dir) / Path(key).name
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            tmp.write_bytes(self.get_bytes(uri))
            os.replace(tmp, dest)
        return dest

    def url(self, uri: str, expires_s: int = 3600) -> str:
        """A presigned HTTP GET URL for the object, valid ``expires_s`` seconds."""
        return str(
            self._call(
                "presign",
                self._client.presigned_get_object,
                self.config.bucket,
                self.key_of(uri),
                expires=datetime.timedelta(seconds=expires_s),
            )
        )

    def exists(self, uri: str) -> bool:
        """Whether the object is there."""
        try:
            self._call("stat", self._client.stat_object, self.config.bucket, self.key_of(uri))
        except NotFoundError:
            return False
        return True

    def sha256(self, uri: str) -> str:
        """Hex SHA-256 of the object's bytes (migration checks)."""
        return hashlib.sha256(self.get_bytes(uri)).hexdigest()
