"""media.sources: local paths pass through; URIs need the resolver their backend registers."""

from __future__ import annotations

import pytest

from luma_rag.errors import UnsupportedMediaError
from luma_rag.media.sources import local_path, register_resolver, scheme_of


def test_plain_paths_pass_through() -> None:
    assert local_path("/data/img.png") == "/data/img.png"
    assert local_path("relative/img.png") == "relative/img.png"
    assert scheme_of("C:/x.png") is None and scheme_of("s3://b/k") == "s3"


def test_unknown_scheme_is_a_typed_error_that_says_what_to_do() -> None:
    with pytest.raises(UnsupportedMediaError, match="no resolver for gs://"):
        local_path("gs://bucket/key.png")


def test_registered_resolver_is_used() -> None:
    register_resolver("memtest", lambda uri: "/tmp/" + uri.rsplit("/", 1)[-1])
    assert local_path("memtest://bucket/a.png") == "/tmp/a.png"
