"""Tests of the Gradio chat app (luma_rag/app/): the Blocks it builds and its handlers, on a
small store.

The store uses the shipped tiny CLIP when its checkpoint exists, else :class:`ShapeEncoder`, a
deterministic stand-in defined here: it reads colour and position words from text, and the
dominant colour and its position from images, so the app's decisions are meaningful.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag import Luma
from luma_rag.answer import EvidenceAnswerer, GateConfig
from luma_rag.datasets.vocab import (
    COLOR_RGB,
    COLOR_WORDS,
    POSITIONS,
    SHAPE_WORDS,
    SHAPES,
    SIZE_WORDS,
    SIZES,
)
from luma_rag.encoders.base import check_batch, check_texts, l2_normalize
from luma_rag.errors import InvalidInputError, UnsupportedMediaError

CHECKPOINTS = Path(__file__).resolve().parents[2] / "luma_rag/encoders/checkpoints"
TINY_CLIP = CHECKPOINTS / "luma-tiny-clip"
CLAP = CHECKPOINTS / "luma-tiny-clap"
_COLORS = tuple(COLOR_RGB)
_AXES = {name: i for i, name in enumerate((*_COLORS, *SHAPES, *POSITIONS, *SIZES))}
_POSITION_WORDS = {"upper": "top", "lower": "bottom", "middle": "center", "centre": "center"}


class ShapeEncoder:
    """A deterministic :class:`~luma_rag.encoders.base.Encoder` for LUMA-Shapes-like data.

    Text: one axis per colour, shape, position and size word (synonyms included) plus a small
    hash-seeded jitter. Images: the axes of the dominant saturated colour, of where it sits and
    of how much of the frame it covers.
    """

    name = "test-shape-encoder"
    dim = len(_AXES) + 8
    modalities = frozenset({"text", "image"})

    def __init__(self) -> None:
        words: dict[str, str] = {}
        for color, synonyms in COLOR_WORDS.items():
            words.update(dict.fromkeys(synonyms, color))
        for shape, forms in SHAPE_WORDS.items():
            for pair in forms:
                words.update(dict.fromkeys(pair, shape))
        for size, synonyms in SIZE_WORDS.items():
            words.update(dict.fromkeys(synonyms, size))
        words.update({p: p for p in POSITIONS} | _POSITION_WORDS)
        self._words = words

    def _jitter(self, key: bytes, scale: float) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.dim) * scale

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        out = []
        for text in check_texts(texts):
            v = self._jitter(text.encode(), 0.05)
            for word in re.findall(r"[a-z]+", text.lower()):
                if word in self._words:
                    v[_AXES[self._words[word]]] += 1.0
            out.append(v)
        return l2_normalize(np.stack(out))

    def encode_image(self, images: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
        from luma_rag.media import load_image

        out = []
        for image in check_batch(images, "images"):
            px = np.asarray(load_image(image).resize((48, 48)), dtype=np.float32)
            v = self._jitter(px.tobytes(), 0.05)
            sat = px.max(axis=2) - px.min(axis=2)
            mask = sat > 60
            if mask.sum() >= 4:
                mean = px[mask].mean(axis=0)
                rgb = np.array(list(COLOR_RGB.values()), dtype=np.float32)
                v[_AXES[_COLORS[int(np.argmin(((rgb - mean) ** 2).sum(1)))]]] += 1.0
                ys, xs = np.nonzero(mask)
                cx, cy = xs.mean() / 48 - 0.5, ys.mean() / 48 - 0.5
                if max(abs(cx), abs(cy)) < 0.12:
                    where = "center"
                elif abs(cx) >= abs(cy):
                    where = "left" if cx < 0 else "right"
                else:
                    where = "top" if cy < 0 else "bottom"
                v[_AXES[where]] += 1.0
                v[_AXES["large" if mask.mean() > 0.12 else "small"]] += 1.0
            out.append(v)
        return l2_normalize(np.stack(out))

    def encode_audio(self, clips: Sequence[Any], *, batch_size: int = 16) -> np.ndarray:
        raise UnsupportedMediaError("the test encoder does not embed audio")


def make_encoder() -> Any:
    """The real tiny CLIP when it has been trained and shipped, else :class:`ShapeEncoder`."""
    if any(TINY_CLIP.glob("*.safetensors")):
        from luma_rag.encoders import get_encoder

        return get_encoder("luma-tiny")
    return ShapeEncoder()


def open_shapes_store(root: Path, n: int = 24) -> Luma:
    """A store under ``root`` holding ``n`` LUMA-Shapes images with captions and attributes."""
    from luma_rag.datasets import generate, load_manifest

    items = load_manifest(generate(root / "corpus", n=n, seed=3, size=64, workers=1))
    luma = Luma.open(root / "store", encoder=make_encoder())
    luma.ingest_images(
        [it.image_path for it in items],
        captions=[it.caption for it in items],
        metadatas=[it.attributes.as_dict() for it in items],
        ids=[it.id for it in items],
    )
    return luma


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("app")
    open_shapes_store(root).close()
    return root


@pytest.fixture
def luma(shapes_root: Path, tmp_path: Path) -> Iterator[Luma]:
    """A private copy of the module's store (tests ingest into it)."""
    import shutil

    shutil.copytree(shapes_root / "store", tmp_path / "store")
    engine = Luma.open(tmp_path / "store", encoder=make_encoder())
    yield engine
    engine.close()


@pytest.fixture
def sample_image(shapes_root: Path) -> Path:
    return next((shapes_root / "corpus" / "images").glob("*.png"))


# -- the Blocks -----------------------------------------------------------------------------------
def test_build_app_has_three_tabs_and_imports_gradio_lazily(luma: Luma) -> None:
    import subprocess
    import sys

    code = (
        "import sys, luma_rag.app.chat, luma_rag.app.demo; "
        "print('gradio' in sys.modules, 'torch' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert out.stdout.split() == ["False", "False"]

    import gradio as gr

    from luma_rag.app.chat import TAB_LABELS, build_app, service_of

    app = build_app(luma, EvidenceAnswerer(), GateConfig(k=3, k_max=6))
    assert isinstance(app, gr.Blocks)
    tabs = [b for b in app.blocks.values() if isinstance(b, gr.Tab)]
    assert [t.label for t in tabs] == list(TAB_LABELS) == ["Chat", "Ingest", "Memory"]
    ids = {getattr(b, "elem_id", None) for b in app.blocks.values()}
    assert {"luma-question", "luma-decision", "luma-telemetry-panel", "luma-evidence"} <= ids
    assert service_of(app).gate.config.k_max == 6


# -- chat -----------------------------------------------------------------------------------------
def test_chat_handler_returns_badge_answer_and_telemetry(luma: Luma) -> None:
    from luma_rag.app.handlers import ask_handler
    from luma_rag.app.service import AppService

    service = AppService(luma, EvidenceAnswerer())
    history, badge, telemetry, gallery, citations, audio, reply = ask_handler(
        service, "a red circle on the left", None, None, []
    )
    assert reply.decision in ("answer", "widen", "clarify")
    assert 'id="luma-badge"' in badge and reply.decision.upper() in badge
    assert history[0] == {"role": "user", "content": "a red circle on the left"}
    assert history[-1]["role"] == "assistant" and reply.answer.text in history[-1]["content"]
    for label in ("γ (margin_top2)", "δ_k", "ε", "ζ", "ρ", "Safe@1", "Safe@k", "complete"):
        assert label in telemetry
    assert "latency (ms)" in telemetry and reply.telemetry["latency_ms"] > 0
    keys = {"margin_top2", "delta_k", "epsilon", "zeta_mean", "rho", "safe1", "safe_k"}
    assert keys <= reply.telemetry.keys()
    assert reply.telemetry["rho"] == pytest.approx(luma.rho["text"])
    assert gallery and all(Path(p).is_file() for p, _ in gallery)
    assert "[1]" in citations and audio is None


def test_image_query_and_bad_queries(luma: Luma, sample_image: Path) -> None:
    from luma_rag.app.handlers import ask_handler
    from luma_rag.app.service import AppService

    service = AppService(luma, EvidenceAnswerer(), max_upload_mb=1)
    history, *_, reply = ask_handler(service, "", str(sample_image), None, None)
    assert reply.query_kind == "image" and reply.question == "What does this image show?"
    assert history[0] == {"role": "user", "content": {"path": str(sample_image)}}
    # the query image itself is in the store: it comes back first, with a certified lead
    assert reply.answer.citations[0].source is not None
    assert Path(reply.answer.citations[0].source).name == sample_image.name
    with pytest.raises(InvalidInputError, match="type a question"):
        service.ask("   ")
    with pytest.raises(InvalidInputError, match="one query medium"):
        service.ask(None, image=sample_image, audio=sample_image)
    with pytest.raises(UnsupportedMediaError, match="not a supported audio"):
        service.ask(None, audio=sample_image)


def test_clarify_is_logged_as_a_knowledge_gap(luma: Luma) -> None:
    from luma_rag.app.handlers import memory_handler
    from luma_rag.app.service import AppService

    service = AppService(luma, EvidenceAnswerer())
    replies = [service.ask(q) for q in ("a shape", "something", "a small thing at the top")]
    # CLARIFY and NOT_IN_MEMORY ("something" names nothing to look for) are both gaps
    clarified = [r for r in replies if r.decision in ("clarify", "not_in_memory")]
    summary, eps, gaps = memory_handler(service)
    assert len(gaps) == len(clarified)
    assert [g[1] for g in gaps] == [r.question for r in reversed(clarified)]
    assert "hot (HNSW)" in summary and f"{len(luma)} / " in summary
    assert eps == []  # no bridge without an audio encoder


# -- ingest ---------------------------------------------------------------------------------------
def test_ingest_makes_new_items_retrievable_at_once(luma: Luma, tmp_path: Path) -> None:
    from PIL import Image

    from luma_rag.app.handlers import ingest_handler
    from luma_rag.app.service import AppService

    service = AppService(luma, EvidenceAnswerer())
    path = tmp_path / "magenta.png"
    Image.new("RGB", (64, 64), (128, 128, 128)).save(path)
    note = tmp_path / "note.txt"
    note.write_text("the purple hexagon at the bottom is the rarest shape", encoding="utf-8")
    before = len(luma)
    seen: list[tuple[int, int]] = []
    status, ok = ingest_handler(
        service, [str(path), str(note)], "a grey square", None, lambda d, t, _: seen.append((d, t))
    )
    assert ok and "Stored 2 items" in status and seen == [(1, 2), (2, 2)]
    assert len(luma) == before + 2
    hit = luma.query("the purple hexagon at the bottom is the rarest shape", k=1).hits[0]
    assert hit.modality == "text" and hit.metadata["filename"] == "note.txt"
    stored = [h for h in luma.query("a grey square", k=40).hits if h.modality == "image"]
    copy = next(h for h in stored if h.text == "a grey square")
    assert copy.source is not None and Path(copy.source).parent == luma.path / "uploads"


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("broken.png", b"\x89PNG\r\n\x1a\n not really a png", "broken.png"),
        ("empty.jpg", b"", "empty"),
        ("script.exe", b"MZ\x90\x00", "unsupported file type"),
        ("latin1.txt", "café".encode("latin-1"), "UTF-8"),
        ("huge.png", b"\x00" * (1024 * 1024 + 1), "limit is 1 MB"),
    ],
)
def test_bad_upload_reports_an_error_and_leaves_the_store_unchanged(
    luma: Luma, tmp_path: Path, sample_image: Path, name: str, content: bytes, match: str
) -> None:
    from luma_rag.app.handlers import ingest_handler
    from luma_rag.app.service import AppService

    service = AppService(luma, EvidenceAnswerer(), max_upload_mb=1)
    bad = tmp_path / name
    bad.write_bytes(content)
    stats, ids = luma.stats(), set(luma.ids())
    # a good file in the same upload is not stored either: all or nothing
    status, ok = ingest_handler(service, [str(sample_image), str(bad)], None, "a note", None)
    assert not ok and "Not stored" in status and match in status and "luma-error" in status
    assert luma.stats() == stats and set(luma.ids()) == ids
    assert not (luma.path / "uploads").exists() or not any((luma.path / "uploads").iterdir())


def test_failure_mid_ingest_rolls_back(luma: Luma, tmp_path: Path, sample_image: Path) -> None:
    from luma_rag.app.service import AppService

    service = AppService(luma, EvidenceAnswerer())
    clip = tmp_path / "speech.wav"
    clip.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")  # accepted by suffix; no audio encoder
    stats, ids = luma.stats(), set(luma.ids())
    with pytest.raises(UnsupportedMediaError, match="nothing was stored"):
        service.ingest([sample_image, clip], caption="a shape")
    assert luma.stats()["total"] == stats["total"] and set(luma.ids()) == ids
    assert not any((luma.path / "uploads").iterdir())


def test_video_upload_is_stored_as_video(luma: Luma, tmp_path: Path) -> None:
    from luma_rag.app.service import AppService
    from luma_rag.datasets import generate, load_manifest

    item = load_manifest(
        generate(tmp_path / "clips", n=1, seed=5, size=64, video=True, video_format="gif")
    )[0]
    assert item.video_path is not None
    report = AppService(luma, EvidenceAnswerer()).ingest([item.video_path], caption=item.caption)
    (stored,) = luma.get(report.ids)
    assert stored["modality"] == "video" and stored["text"] == item.caption
    assert Path(stored["source"]).suffix == ".gif" and Path(stored["source"]).is_file()


def test_audio_upload_query_and_bridge_history(tmp_path: Path) -> None:
    import wave

    from luma_rag.app.handlers import memory_handler
    from luma_rag.app.service import AppService

    if not (CLAP / "model.safetensors").is_file():
        pytest.skip("the tiny CLAP checkpoint is not built in this checkout")
    clip = tmp_path / "tone.wav"
    t = np.arange(16_000 * 2) / 16_000
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(clip), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(samples.tobytes())
    with Luma.open(tmp_path / "s", encoder=make_encoder(), audio_encoder="luma-tiny-clap") as luma:
        service = AppService(luma, EvidenceAnswerer())
        service.ingest([clip], caption="a steady beep")
        reply = service.ask(None, audio=clip)
        assert reply.query_kind == "audio" and reply.question == "What does this audio clip say?"
        assert reply.audio and Path(reply.audio[0][0]).parent == luma.path / "uploads"
        assert reply.telemetry["epsilon"] is not None
        summary, eps, gaps = memory_handler(service)
        assert eps and eps[0]["refresh"] == 1 and "no bridge" not in summary
        assert all(g[1] == "audio query: tone.wav" for g in gaps)


def test_nothing_to_ingest_is_an_error(luma: Luma) -> None:
    from luma_rag.app.service import AppService

    with pytest.raises(InvalidInputError, match="nothing to ingest"):
        AppService(luma, EvidenceAnswerer()).ingest([], text="  ")


# -- demo -----------------------------------------------------------------------------------------
def test_demo_reports_a_missing_production_model_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from luma_rag.app.demo import main

    monkeypatch.setenv("LUMA_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    status = main(["--production", "--store", str(tmp_path / "s"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 1 and "demo:" in err and "ViT-B-32" in err
    assert not (tmp_path / "s").exists()


def test_chat_answers_with_the_shipped_tiny_llava(luma: Luma, shapes_root: Path) -> None:
    """The demo's default answerer: the chat shows its reply, and a colour question about the
    top image is answered with that image's colour (held-out colour accuracy 0.996)."""
    import dataclasses

    from luma_rag.answer import OFFLINE_LLAVA_MODEL, LlavaAnswerer, gated_query
    from luma_rag.app.handlers import ask_handler
    from luma_rag.app.service import AppService
    from luma_rag.datasets import load_manifest
    from luma_rag.datasets.questions import make_question, parse_answer

    pytest.importorskip("transformers")
    answerer = LlavaAnswerer(OFFLINE_LLAVA_MODEL, device="cpu")
    items = load_manifest(shapes_root / "corpus")
    rng = np.random.default_rng(0)
    questions = [make_question(it.attributes, "color", rng) for it in items[:6]]
    service = AppService(luma, answerer)
    replies = [ask_handler(service, q.text, None, None, [])[-1] for q in questions]
    assert all(r.answer.text.strip() for r in replies)
    # All six are on-topic. The relevance floor is calibrated on question-like queries too
    # (luma_rag/relevance_queries.py), so a small store no longer refuses most of what it was
    # asked: on this 24-item store with tiny CLIP v3 (one question per item and kind, drawn
    # as here), colour questions called NOT_IN_MEMORY fell from 3 of 24 to 1 of 24 ("What is
    # the color of the star?", 0.187 against a floor of 0.188; it is among these six), all
    # five kinds from 13 of 120 to 3 of 120.
    on_topic = [r for r in replies if r.decision != "not_in_memory"]
    assert len(on_topic) >= 5, [r.decision for r in replies]
    assert all(r.decision in ("answer", "widen", "clarify") for r in on_topic)
    right = 0
    for q in questions:  # answered from the top image, whatever the gate would decide
        decision = gated_query(luma, q.retrieval_text)
        forced = dataclasses.replace(
            decision, decision="answer", k_used=1, evidence=decision.hits[:1], clarification=None
        )
        top = luma.get([decision.hits[0].id])[0]["metadata"]
        right += parse_answer(answerer.answer(q.text, forced).text, "color") == top["color"]
    assert right >= 5, f"{right}/6 colour answers match the top image"


# -- serving: only referenced media, bounded questions, a few requests at once (issue 11) -------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_app_serves_referenced_media_but_not_the_store_files(
    luma: Luma, sample_image: Path
) -> None:
    import urllib.error
    import urllib.request

    from luma_rag.app.chat import DEFAULT_CONCURRENCY, build_app, launch_app, service_of

    app = build_app(luma, EvidenceAnswerer())
    service = service_of(app)
    served = service.served_paths()
    assert str(sample_image.resolve()) in served or str(sample_image) in served
    assert not any(Path(p).name == "records.sqlite" for p in served)
    assert any(Path(p).name == "records.sqlite" for p in service.blocked_paths())
    url = launch_app(app, port=_free_port(), prevent_thread_lock=True, quiet=True)
    try:
        assert app._queue.default_concurrency_limit == DEFAULT_CONCURRENCY > 1

        def status(path: Path) -> int:
            try:
                with urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=10) as r:
                    return int(r.status)
            except urllib.error.HTTPError as e:
                return int(e.code)

        image = next(p for p in served if p.endswith(".png"))
        assert status(Path(image)) == 200
        for name in ("records.sqlite", "config.json"):
            assert status(luma.path / name) in (403, 404), name
    finally:
        app.close()


def test_question_length_is_limited(luma: Luma) -> None:
    from luma_rag.app.service import AppService

    service = AppService(luma, EvidenceAnswerer(), max_question_chars=50)
    assert service.ask("a red circle").decision in ("answer", "widen", "clarify")
    with pytest.raises(InvalidInputError, match="the limit is 50"):
        service.ask("a red circle " * 10)
    with pytest.raises(InvalidInputError):
        AppService(luma, EvidenceAnswerer(), max_question_chars=0)


def test_telemetry_symbols_are_explained_and_examples_shown(luma: Luma) -> None:
    import gradio as gr

    from luma_rag.app.chat import build_app
    from luma_rag.app.render import TELEMETRY_HELP, telemetry_html

    panel = telemetry_html({"margin_top2": 0.1, "rho": 0.05})
    for symbol in ("γ", "δ_k", "ε", "ζ", "ρ"):
        assert symbol in TELEMETRY_HELP and f"<b>{symbol}</b>:" in panel
    app = build_app(
        luma, EvidenceAnswerer(), examples=["What color is the circle?"], note="**synthetic**"
    )
    blocks = list(app.blocks.values())
    assert any(isinstance(b, gr.Dataset) for b in blocks)  # gr.Examples renders a Dataset
    assert any(isinstance(b, gr.Markdown) and "synthetic" in str(b.value) for b in blocks)


def test_demo_examples_are_answerable_questions(shapes_root: Path) -> None:
    from luma_rag.app.demo import example_questions
    from luma_rag.datasets import load_manifest

    items = load_manifest(shapes_root / "corpus")
    questions = example_questions(items)
    assert len(questions) == 4 and all(q.endswith("?") for q in questions)
    assert len(set(questions)) == 4


def test_cited_s3_media_are_displayed_through_their_resolver(
    luma: Luma, sample_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evidence stored as ``s3://`` is shown from the file its registered resolver fetches
    (the S3 media store registers one); a URI no resolver knows is left out, not an error."""
    import shutil

    from luma_rag.app.service import AppService, _displayable
    from luma_rag.media import sources

    fetched = tmp_path / "fetched.png"
    shutil.copyfile(sample_image, fetched)
    monkeypatch.setitem(sources._resolvers, "s3", lambda uri: str(fetched))
    question = "a small red circle on the left"
    vec = luma.encoder.encode_text([question])  # type: ignore[union-attr]
    luma.add_vectors(vec, ids=["remote"], modality="image", sources=["s3://b/media/x.png"])
    reply = AppService(luma, EvidenceAnswerer()).ask(question)
    assert reply.decision in ("answer", "widen") and reply.answer.citations[0].id == "remote"
    assert reply.visual[0][0] == str(fetched) and "x.png" in reply.visual[0][1]
    assert not any(p.startswith("s3://") for p, _ in reply.visual)
    assert _displayable("gs://bucket/y.png") is None and _displayable(None) is None
    assert _displayable(str(sample_image)) == str(sample_image)
