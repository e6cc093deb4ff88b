"""The demo (luma_rag/app/demo.py, demo_store.py, examples.py, phases.py, check_examples.py):
it serves with progress lines throughout, reopens its store on a second start, its example
questions each have one right answer, and batched audio ingest stores what per-clip ingest
stores. Start-up speed is measured by ``python -m luma_rag.app.demo --timings --no-serve``,
not here.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest

from luma_rag import Luma
from luma_rag.app.examples import DemoQuestion, demo_questions, verdict
from luma_rag.app.phases import Phases

REPO = Path(__file__).resolve().parents[2]
CHECKPOINTS = REPO / "luma_rag/encoders/checkpoints"
_STAMP = re.compile(r"^demo: \[ *(\d+\.\d) s\] ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- progress and timings -------------------------------------------------------------------------
def test_phases_stamp_every_line_and_time_each_phase() -> None:
    now = [0.0]
    cpu = [0.0]
    out = io.StringIO()
    phases = Phases("demo", stream=out, clock=lambda: now[0], cpu_clock=lambda: cpu[0])
    with phases.phase("load CLIP", "luma-tiny"):
        now[0], cpu[0] = 2.5, 4.0
    with phases.counter("ingest images", 64) as advance:
        advance(32)
        now[0] = 3.0
        advance(32)
    with pytest.raises(RuntimeError), phases.phase("ingest spoken captions"):
        now[0] = 4.0
        raise RuntimeError("boom")
    lines = out.getvalue().splitlines()
    assert lines[0] == "demo: [   0.0 s] load CLIP (luma-tiny) ..."
    assert lines[1] == "demo: [   2.5 s] load CLIP: done in 2.5 s (CPU 4.0 s)"
    assert lines[2:4] == [
        "demo: [   2.5 s] ingest images 32/64",
        "demo: [   3.0 s] ingest images 64/64",
    ]
    assert "ingest spoken captions: failed in 1.0 s" in lines[-1]
    assert phases.records == [("load CLIP", 2.5, 4.0), ("ingest spoken captions", 1.0, 0.0)]
    table = phases.table()
    assert re.search(r"load CLIP +2\.5 +4\.0 +62\.5%", table), table
    assert re.search(r"total until serving +4\.0 +4\.0", table), table


# -- example questions ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list:
    from luma_rag.datasets import generate, load_manifest

    root = tmp_path_factory.mktemp("demo-corpus")
    return load_manifest(generate(root, n=60, seed=11, size=64, workers=1))


def test_each_example_question_describes_one_item(corpus: list) -> None:
    from luma_rag.datasets.questions import parse_answer

    questions = demo_questions(corpus, 4)
    assert [q.kind for q in questions] == ["color", "shape", "position", "size"]
    assert len({q.item_id for q in questions}) == 4
    by_id = {it.id: it for it in corpus}
    for q in questions:
        target = by_id[q.item_id].attributes
        assert q.answer == str(getattr(target, q.kind)) and q.text.endswith("?")
        named = [k for k in ("size", "color", "shape", "position") if k != q.kind]
        alike = [
            it
            for it in corpus
            if all(getattr(it.attributes, k) == getattr(target, k) for k in named)
            and it.attributes.count == target.count
        ]
        assert [it.id for it in alike] == [q.item_id]  # the referent singles the item out
        assert parse_answer(q.answer, q.kind) == getattr(target, q.kind)


def test_an_ambiguous_first_item_is_skipped(corpus: list) -> None:
    """Two items alike in everything but colour: a colour question about them has no single
    right answer, so the colour example is about another item."""
    import dataclasses

    twin = dataclasses.replace(
        corpus[1],
        id="twin",
        attributes=dataclasses.replace(corpus[0].attributes, color="white"),
    )
    if corpus[0].attributes.color == "white":
        twin = dataclasses.replace(
            twin, attributes=dataclasses.replace(corpus[0].attributes, color="red")
        )
    questions = demo_questions([corpus[0], twin, *corpus[2:]], 1)
    assert questions and questions[0].item_id not in (corpus[0].id, "twin")


def test_verdict_reads_answers_against_the_right_one() -> None:
    q = DemoQuestion("What color is the small star on the left?", "color", "red", "x")
    assert verdict(q, "answer", "It is crimson [1].") == "right"
    assert verdict(q, "widen", "red") == "right"
    assert verdict(q, "answer", "blue [1]") == "wrong"
    assert verdict(q, "answer", "red or blue") == "wrong"  # names another value too
    assert verdict(q, "answer", "") == "wrong"
    assert verdict(q, "clarify", "Do you mean the red star?") == "no answer"
    assert verdict(q, "not_in_memory", "red") == "no answer"


# -- batched audio ingest -------------------------------------------------------------------------
def _tone(path: Path, hz: float) -> Path:
    t = np.arange(16_000) / 16_000
    samples = (0.3 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="module")
def audio_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    """A new store with the tiny CLIP + CLAP (ρ measured, bridge warm-started once), closed:
    tests copy it. Returns (directory, CLIP encoder, CLAP encoder)."""
    from luma_rag.encoders import get_encoder

    assert (CHECKPOINTS / "luma-tiny-clap/model.safetensors").is_file(), "tiny CLAP not shipped"
    clip, clap = get_encoder("luma-tiny"), get_encoder("luma-tiny-clap")
    root = tmp_path_factory.mktemp("audio-store") / "store"
    Luma.open(root, encoder=clip, audio_encoder=clap).close()
    return root, clip, clap


def _copy(audio_store: tuple[Path, object, object], to: Path, *, audio: bool = True) -> Luma:
    import shutil

    root, clip, clap = audio_store
    shutil.copytree(root, to)
    return Luma.open(to, encoder=clip, audio_encoder=clap if audio else None)  # type: ignore[arg-type]


def test_ingest_audio_batch_stores_what_per_clip_ingest_stores(
    tmp_path: Path, audio_store: tuple[Path, object, object]
) -> None:
    clips = [_tone(tmp_path / f"t{i}.wav", 220.0 * (i + 1)) for i in range(4)]
    captions = ["a low hum", "a beep", "a high beep", "a whistle"]
    metas = [{"n": i} for i in range(4)]
    ids = [f"a{i}" for i in range(4)]
    stores = {}
    for how in ("one", "batch"):
        luma = _copy(audio_store, tmp_path / how)
        assert luma.bridge is not None and luma.bridge.fitted  # warm-started at attach
        if how == "one":
            for i, clip in enumerate(clips):
                luma.ingest(audio=clip, caption=captions[i], metadata=metas[i], id=ids[i])
        else:
            assert luma.ingest_audio(clips, captions=captions, metadatas=metas, ids=ids) == ids
        stores[how] = luma
    one, batch = (stores[h].get(ids) for h in ("one", "batch"))
    for a, b in zip(one, batch, strict=True):
        keys = ("modality", "text", "source", "metadata")
        assert [a[k] for k in keys] == [b[k] for k in keys]
        assert b["modality"] == "audio" and b["source"].endswith(".wav")
        assert float(np.dot(a["vector"], b["vector"])) > 0.99
    assert stores["one"].bridge.pairs_seen == stores["batch"].bridge.pairs_seen  # type: ignore[union-attr]
    hit = stores["batch"].query(audio=clips[2], k=1).hits[0]
    assert hit.id == "a2" and hit.modality == "audio"
    for luma in stores.values():
        luma.close()


def test_ingest_audio_refuses_bad_input_and_stores_nothing(
    tmp_path: Path, audio_store: tuple[Path, object, object]
) -> None:
    from luma_rag.errors import ConfigError, InvalidInputError, LumaError

    clip = _tone(tmp_path / "t.wav", 440.0)
    with _copy(audio_store, tmp_path / "s") as luma:
        with pytest.raises(InvalidInputError):
            luma.ingest_audio(str(clip))  # type: ignore[arg-type]  # a path, not a list
        with pytest.raises(InvalidInputError):
            luma.ingest_audio([clip], captions=["a", "b"])
        with pytest.raises(LumaError):
            luma.ingest_audio([clip, tmp_path / "missing.wav"])
        assert len(luma) == 0
    with _copy(audio_store, tmp_path / "v", audio=False) as luma, pytest.raises(ConfigError):
        luma.ingest_audio([clip])


# -- the demo as a user starts it -----------------------------------------------------------------
def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "integrations")])
    return env


@pytest.mark.slow
def test_demo_serves_with_progress_then_reopens_its_store(tmp_path: Path) -> None:
    """`make demo` on a fresh store: HTTP 200 on a free 127.0.0.1 port, a stamped line for
    every phase; a second start reopens the store (no generation, no ingest). Then the
    example questions run through check_examples on that store."""
    port, store = _free_port(), tmp_path / "demo"
    cmd = [sys.executable, "-m", "luma_rag.app.demo", "--store", str(store), "--port", str(port)]
    cmd += ["--n", "48", "--n-audio", "10", "--timings"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        deadline, status = time.monotonic() + 600, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    status = r.status
                    break
            except OSError:
                time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert status == 200, f"demo did not serve (exit {proc.poll()}):\n{err[-3000:]}"
    stamped = [line for line in err.splitlines() if _STAMP.match(line)]
    text = "\n".join(stamped)
    for phase in ("import torch", "load CLIP", "load CLAP", "open the store", "load LLaVA"):
        assert f"] {phase} (" in text or f"] {phase} ..." in text, phase
    for done in (
        "generate the corpus",
        "ingest images",
        "ingest captions",
        "ingest spoken captions",
        "build the app",
    ):
        assert re.search(rf"\] {done}: done in \d+\.\d s", text), done
    assert "] import torch (1 CPU thread(s)) ..." in text  # --threads defaults to 1
    assert "ingest images 48/48" in text and "ingest captions 48/48" in text
    assert "ingest spoken captions 10/10" in text
    assert "total until serving" in err and "serving on http://127.0.0.1:" in text
    times = [float(_STAMP.match(line).group(1)) for line in stamped]  # type: ignore[union-attr]
    assert times == sorted(times) and len(stamped) >= 20
    # a second start: the store is reopened, nothing generated or ingested
    again = subprocess.run(
        [*cmd, "--no-serve"],  # the same arguments: nothing left to make
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reopening the demo store" in again.stderr
    for phase in ("generate the corpus", "ingest images", "ingest captions", "ingest spoken"):
        assert phase not in again.stderr, phase
    assert "106 items in" in again.stderr and "not serving" in again.stderr  # 48 + 48 + 10
    # the example questions, through the app's code path, judged against the manifest
    check = subprocess.run(
        [sys.executable, "-m", "luma_rag.app.check_examples", *cmd[3:5], *cmd[7:11]],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    rows = [line for line in check.stdout.splitlines() if " -> " in line]
    assert len(rows) == 4, check.stdout + check.stderr[-2000:]
    assert all(re.search(r" -> (RIGHT|WRONG|NO ANSWER) \(right: \w+;", r) for r in rows), rows
    right = sum(" -> RIGHT (" in r for r in rows)
    assert f"{right}/4 right" in check.stdout
    assert check.returncode == (0 if right == 4 else 1)


def test_a_picture_its_caption_and_its_spoken_caption_are_linked(corpus: list) -> None:
    """The three renderings of an item carry its id under the demo gate's link key, so the
    gate reads them as one thing (GateConfig.link_key), and items stay distinct groups; the
    medium key tells them apart."""
    from luma_rag.app.demo_store import LINK_KEY, MEDIUM_KEY, _metadata, demo_gate_config

    assert demo_gate_config().link_key == LINK_KEY
    for medium in ("picture", "caption", "speech"):
        metas = [_metadata(it, medium) for it in corpus]
        assert [m[LINK_KEY] for m in metas] == [it.id for it in corpus]
        assert len({m[LINK_KEY] for m in metas}) == len(corpus)
        assert {m[MEDIUM_KEY] for m in metas} == {medium}


def test_demo_searches_a_question_by_its_referent() -> None:
    """The demo's gate searches a typed question without its interrogative frame."""
    from luma_rag.app.demo_store import demo_search_text

    assert demo_search_text("What colour is the small circle on the left?") == (
        "the small circle on the left"
    )
    assert demo_search_text("a red circle") == "a red circle"


def test_readme_lists_the_default_demo_corpus_examples() -> None:
    """The README's example-question table is what the app shows on the default corpus
    (seed 0, 300 items): the items are drawn (not rendered) as ``generate`` draws them."""
    import inspect
    from types import SimpleNamespace

    from luma_rag.app.demo import build_parser
    from luma_rag.datasets import generate
    from luma_rag.datasets.sampling import plan_item

    args = build_parser().parse_args([])
    defaults = inspect.signature(generate).parameters
    kwargs = {k: defaults[k].default for k in ("size", "fps", "split_seed")}
    items = [
        SimpleNamespace(
            id=f"shape-{i:06d}",
            attributes=plan_item(args.seed, i, video=False, **kwargs).attributes,
        )
        for i in range(args.n)
    ]
    readme = (REPO / "README.md").read_text()
    for q in demo_questions(items, 4):  # type: ignore[arg-type]
        assert f"| {q.text} | {q.answer} ({q.item_id}) |" in readme, q
