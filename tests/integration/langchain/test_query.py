"""What a retriever query is: text, or an image / audio / video file (``_query``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_lumarag._query import MEDIA_SUFFIXES, check_k, parse_query

from luma_rag.errors import InvalidInputError


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("photo.png", "shot.JPG", "clip.wav", "movie.mp4", "voice.flac"):
        path = tmp_path / name
        path.write_bytes(b"\0")
        files[name] = path
    return files


def test_text_is_text() -> None:
    assert parse_query("a red circle").modality == "text"
    assert parse_query("a red circle").value == "a red circle"


@pytest.mark.parametrize(
    ("name", "modality"),
    [
        ("photo.png", "image"),
        ("shot.JPG", "image"),
        ("clip.wav", "audio"),
        ("voice.flac", "audio"),
        ("movie.mp4", "video"),
    ],
)
def test_media_suffix_picks_the_modality(media: dict[str, Path], name: str, modality: str) -> None:
    parsed = parse_query(str(media[name]))
    assert (parsed.modality, parsed.value) == (modality, str(media[name]))
    assert parse_query(media[name]).modality == modality  # os.PathLike too


def test_file_uri(media: dict[str, Path]) -> None:
    parsed = parse_query(media["photo.png"].as_uri())
    assert (parsed.modality, parsed.value) == ("image", str(media["photo.png"]))


def test_explicit_modality_wins(media: dict[str, Path], tmp_path: Path) -> None:
    assert parse_query("see photo.png", modality="text").modality == "text"
    odd = tmp_path / "frame.raw"
    odd.write_bytes(b"\0")
    assert parse_query(str(odd), modality="image").modality == "image"


def test_multiline_text_with_a_suffix_is_text() -> None:
    assert parse_query("what is in\nphoto.png").modality == "text"


def test_missing_file_says_how_to_search_the_text() -> None:
    with pytest.raises(InvalidInputError, match=r"no such file.*modality='text'"):
        parse_query("holiday.png")
    with pytest.raises(InvalidInputError, match="no such file"):
        parse_query("/nowhere/at/all", modality="audio")


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query(query: str) -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        parse_query(query)


@pytest.mark.parametrize("modality", ["picture", "TEXT", "", 3])
def test_unknown_modality(modality: object) -> None:
    with pytest.raises(InvalidInputError, match="unknown query modality"):
        parse_query("a red circle", modality=modality)  # type: ignore[arg-type]


@pytest.mark.parametrize("query", [None, 3, b"bytes", ["a"]])
def test_not_text(query: object) -> None:
    with pytest.raises(InvalidInputError, match="text or a file path"):
        parse_query(query)


def test_pathlike_without_a_media_suffix_needs_a_modality(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot tell the modality"):
        parse_query(tmp_path / "notes.txt")


def test_suffix_table_is_lower_case() -> None:
    assert all(s == s.lower() and s.startswith(".") for s in MEDIA_SUFFIXES)


@pytest.mark.parametrize("k", [0, -1, True, 2.0, "3", None])
def test_check_k_refuses(k: object) -> None:
    with pytest.raises(InvalidInputError, match="k must be an integer >= 1"):
        check_k(k)
