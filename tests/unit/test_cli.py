"""The ``luma`` command line, run in-process through :func:`luma_rag.cli.main`.

Stores are built with ``add_vectors`` and queried with ``--vector``; the ingest tests use a
hashing stand-in encoder (patched into the engine's name resolver) so they run without model
weights. One round trip with the shipped ``luma-tiny`` runs only once its checkpoint exists.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag import Luma, LumaConfig, engine
from luma_rag.cli import main
from luma_rag.cli.ingest import _notes_from_captions
from luma_rag.errors import InvalidInputError, UnsupportedMediaError
from luma_rag.media import load_image

DIM = 16
N = 40
CHECKPOINT_DIR = Path(engine.__file__).parent / "encoders" / "checkpoints" / "luma-tiny-clip"
HAS_TINY = any(CHECKPOINT_DIR.glob("*.safetensors"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` -> (exit status, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A closed 16-d store of 40 items (ids item-<i>, color red/blue, text, source)."""
    vecs = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    path = tmp_path / "store"
    with Luma.open(path, LumaConfig(dim=DIM)) as luma:
        luma.add_vectors(
            vecs,
            metadata=[{"color": ("red", "blue")[i % 2], "n": i} for i in range(N)],
            ids=[f"item-{i}" for i in range(N)],
            texts=[f"text {i}" for i in range(N)],
            sources=[f"/data/f{i}.png" for i in range(N)],
        )
        luma.record_gap("what is a blue star?", {"candidates": ["item-1"], "margin": 0.01})
    return path, vecs


@pytest.fixture
def query_file(tmp_path: Path, store: tuple[Path, np.ndarray]) -> Path:
    """``q.npy``: the vector of item-3."""
    path = tmp_path / "q.npy"
    np.save(path, store[1][3])
    return path


# -- stats / gaps / query on a vector store ------------------------------------------------------
def test_stats_json(capsys: pytest.CaptureFixture[str], store: tuple[Path, np.ndarray]) -> None:
    code, out, _ = run(capsys, "stats", "--store", str(store[0]), "--json")
    stats = json.loads(out)
    assert code == 0
    assert stats["total"] == N and stats["dim"] == DIM and stats["hot"] == N


def test_stats_table_uses_luma_store_env(
    capsys: pytest.CaptureFixture[str],
    store: tuple[Path, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LUMA_STORE", str(store[0]))
    code, out, _ = run(capsys, "stats")
    assert code == 0
    assert "total" in out and str(N) in out and "hot_bytes" in out


def test_query_vector_json(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, np.ndarray], query_file: Path
) -> None:
    code, out, _ = run(
        capsys, "query", "--vector", str(query_file), "-k", "3", "--store", str(store[0]), "--json"
    )
    result = json.loads(out)
    assert code == 0
    top = result["hits"][0]
    assert len(result["hits"]) == 3
    assert top["id"] == "item-3" and top["score"] == pytest.approx(1.0, abs=1e-5)
    assert top["metadata"] == {"color": "blue", "n": 3}
    assert (top["text"], top["source"], top["tier"]) == ("text 3", "/data/f3.png", "hot")
    tel = result["telemetry"]
    assert {"margin_top2", "delta_k", "epsilon", "zeta_max", "rho", "safe1", "safek"} <= set(tel)
    assert tel["k"] == 3 and tel["safe1"] is True


def test_query_vector_table(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, np.ndarray], query_file: Path
) -> None:
    code, out, _ = run(capsys, "query", "--vector", str(query_file), "--store", str(store[0]))
    assert code == 0
    assert "/data/f3.png" in out.splitlines()[1]
    for label in ("γ", "δ_k", "ε", "ζ", "ρ", "Safe@1", "Safe@10", "complete", "latency"):
        assert label in out


def test_query_filter(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, np.ndarray], query_file: Path
) -> None:
    code, out, _ = run(
        capsys,
        "query",
        "--vector",
        str(query_file),
        "--filter",
        '{"color": "red", "n": {"$lt": 10}}',
        "--store",
        str(store[0]),
        "--json",
    )
    hits = json.loads(out)["hits"]
    assert code == 0
    assert sorted(h["metadata"]["n"] for h in hits) == [0, 2, 4, 6, 8]


def test_gaps(capsys: pytest.CaptureFixture[str], store: tuple[Path, np.ndarray]) -> None:
    code, out, _ = run(capsys, "gaps", "--store", str(store[0]), "--json")
    gaps = json.loads(out)
    assert code == 0
    assert [g["query"] for g in gaps] == ["what is a blue star?"]
    assert gaps[0]["candidates"] == ["item-1"]
    code, out, _ = run(capsys, "gaps", "--store", str(store[0]))
    assert code == 0 and "blue star" in out and "clarifying question" in out


def test_gaps_table_shows_the_clarifying_question(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, np.ndarray]
) -> None:
    with Luma.open(store[0]) as luma:
        luma.record_gap("the shape?", {"clarification": "Did you mean the red or the blue one?"})
    code, out, _ = run(capsys, "gaps", "--store", str(store[0]))
    row = next(line for line in out.splitlines() if "the shape?" in line)
    assert code == 0 and "Did you mean the red or the blue one?" in row and "{" not in row


def test_delete(capsys: pytest.CaptureFixture[str], store: tuple[Path, np.ndarray]) -> None:
    path = str(store[0])
    code, _, err = run(capsys, "delete", "item-1", "nope", "--store", path)
    assert code == 1 and "nope" in err and "nothing was deleted" in err
    code, out, _ = run(capsys, "delete", "item-1", "item-2", "item-1", "--store", path, "--json")
    assert code == 0 and json.loads(out)["deleted"] == ["item-1", "item-2"]
    assert json.loads(out)["items"] == N - 2
    code, out, _ = run(capsys, "delete", "item-1", "item-3", "--missing-ok", "--store", path)
    assert code == 0 and out.startswith("deleted 1 item(s)") and "1 not found" in out
    with Luma.open(store[0]) as luma:
        assert len(luma) == N - 3 and "item-3" not in luma and "item-4" in luma


def test_wrong_dimension_message(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    wrong = tmp_path / "w.npy"
    np.save(wrong, np.ones(DIM + 3, dtype=np.float32))
    code, _, err = run(capsys, "query", "--vector", str(wrong), "--store", str(store[0]))
    assert code == 1 and f"got {DIM + 3}-d, but the store holds {DIM}-d" in err


def test_progress_without_a_terminal_prints_plain_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from luma_rag.cli import _common

    monkeypatch.setattr(_common, "PLAIN_EVERY_S", 0.0)
    with _common.Progress(3, "ingest", enabled=True) as progress:  # stderr is captured: no TTY
        for _ in range(3):
            progress.advance(1)
    err = capsys.readouterr().err
    assert err.splitlines() == ["ingest 1/3", "ingest 2/3", "ingest 3/3"] and "\r" not in err
    with _common.Progress(3, "ingest", enabled=False) as progress:
        progress.advance(3)
    assert capsys.readouterr().err == ""


def test_status_lines_name_the_phase_and_its_time(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from luma_rag.cli import _common

    with _common.status("loading luma-tiny", enabled=True):
        pass
    assert capsys.readouterr().err == "luma: loading luma-tiny ...\n"  # fast: no "done" line
    monkeypatch.setattr(_common, "SLOW_PHASE_S", -1.0)
    with _common.status("loading luma-tiny", enabled=True):
        pass
    assert "loading luma-tiny: done in" in capsys.readouterr().err
    with _common.status("loading luma-tiny", enabled=False):
        pass
    assert capsys.readouterr().err == ""


def test_captions_help_explains_per_file_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "ingest", "--help")
    flat = " ".join(out.split())
    assert code == 0 and '"metadata"' in flat and "--filter" in flat and "relative to DIR" in flat


# -- errors: message on stderr, no traceback, exit 1 (2 for usage) ---------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--filter", "{color: red}"], "--filter is not valid JSON"),
        (["--filter", "[1, 2]"], "--filter must be a JSON object"),
        (["--filter", '{"color": {"$near": 1}}'], "$near"),
    ],
)
def test_query_filter_errors(
    capsys: pytest.CaptureFixture[str],
    store: tuple[Path, np.ndarray],
    query_file: Path,
    argv: list[str],
    message: str | None,
) -> None:
    code, _, err = run(
        capsys, "query", "--vector", str(query_file), "--store", str(store[0]), *argv
    )
    assert code == (0 if message is None else 1)
    if message is not None:
        assert message in err and "Traceback" not in err


def test_missing_store_is_not_created(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for command in ("stats", "gaps"):
        code, _, err = run(capsys, command, "--store", str(tmp_path / "nope"))
        assert code == 1 and "no LUMA store at" in err
    code, _, err = run(capsys, "query", "hello", "--store", str(tmp_path / "nope"))
    assert code == 1 and "no LUMA store at" in err
    assert not (tmp_path / "nope").exists()


def test_missing_media_file(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    for flag in ("--image", "--audio", "--video", "--vector"):
        code, _, err = run(capsys, "query", flag, str(tmp_path / "x.png"), "--store", str(store[0]))
        assert code == 1 and f"{flag} {tmp_path / 'x.png'}: no such file" in err


def test_unknown_model(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "query", "hi", "--model", "no-such-model", "--store", str(store[0]))
    assert code == 1 and "no-such-model" in err and "Traceback" not in err
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello")
    code, _, err = run(
        capsys, "ingest", str(tmp_path / "docs"), "--model", "no-such-model", "--store",
        str(tmp_path / "new"),
    )  # fmt: skip
    assert code == 1 and "no-such-model" in err
    assert not (tmp_path / "new").exists()


def test_bad_vector_files(
    capsys: pytest.CaptureFixture[str], store: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    pickled, wrong_dim, matrix = tmp_path / "p.npy", tmp_path / "w.npy", tmp_path / "m.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(wrong_dim, np.ones(DIM + 1, dtype=np.float32))
    np.save(matrix, np.ones((2, DIM), dtype=np.float32))
    for path, message in ((pickled, "not a plain numeric"), (wrong_dim, "17"), (matrix, "(2, 16)")):
        code, _, err = run(capsys, "query", "--vector", str(path), "--store", str(store[0]))
        assert code == 1 and message in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["query", "--store", "s"],  # no query
        ["query", "a", "--image", "b.png"],  # two queries
        ["query", "a", "-k", "0"],
        ["ingest", "d", "--only", "image,smell"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and err and "Traceback" not in err


# -- delegated components ------------------------------------------------------------------------
def test_missing_component_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        sys.modules["luma_rag.cli"]._DELEGATES,
        "eval",
        ("luma_rag.no_such_component.run", "the evaluation suite", ""),
    )
    code, _, err = run(capsys, "eval", "--anything")
    assert code == 2 and "not installed yet" in err and "luma_rag.no_such_component.run" in err


def test_component_gets_its_arguments(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Sequence[str]] = []
    fake = types.ModuleType("luma_cli_fake_demo")

    def fake_main(argv: Sequence[str]) -> int:
        seen.append(argv)
        return 3

    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "luma_cli_fake_demo", fake)
    monkeypatch.setitem(
        sys.modules["luma_rag.cli"]._DELEGATES, "demo", ("luma_cli_fake_demo", "the demo", "")
    )
    code, _, _ = run(capsys, "demo", "--port", "7860")
    assert code == 3 and seen == [["--port", "7860"]]


# -- ingest with a stand-in encoder --------------------------------------------------------------
class HashEncoder:
    """Deterministic 16-d stand-in: a text or an image's pixels seed its vector."""

    name = "hash-16"
    dim = DIM
    modalities = frozenset({"text", "image"})

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        return _rows([t.lower().encode() for t in texts])

    def encode_image(self, images: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
        return _rows([load_image(p).tobytes() for p in images])

    def encode_audio(self, clips: Sequence[Any], *, batch_size: int = 16) -> np.ndarray:
        raise UnsupportedMediaError("hash-16 embeds no audio")


def _rows(keys: list[bytes]) -> np.ndarray:
    out = np.empty((len(keys), DIM), dtype=np.float32)
    for i, key in enumerate(keys):
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(DIM)
        out[i] = v / np.linalg.norm(v)
    return out


@pytest.fixture
def hash_model(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make ``--model hash-16`` resolve to :class:`HashEncoder`."""
    resolve = engine._resolve_encoder
    monkeypatch.setattr(
        engine,
        "_resolve_encoder",
        lambda e, *role: HashEncoder() if e == "hash-16" else resolve(e, *role),
    )
    return "hash-16"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 32-px LUMA-Shapes items, generated once through ``luma generate``."""
    out = tmp_path_factory.mktemp("shapes") / "corpus"
    assert main(["generate", "--out", str(out), "--n", "4", "--size", "32", "--quiet"]) == 0
    return out


def test_generate(capsys: pytest.CaptureFixture[str], shapes: Path, tmp_path: Path) -> None:
    assert len((shapes / "manifest.jsonl").read_text().splitlines()) == 4
    code, _, err = run(capsys, "generate", "--out", str(shapes), "--n", "2", "--quiet")
    assert code == 1 and "--overwrite" in err  # an existing corpus is never replaced silently


def test_ingest_folder_and_query_round_trip(
    capsys: pytest.CaptureFixture[str], shapes: Path, tmp_path: Path, hash_model: str
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in (shapes / "images").iterdir():
        (corpus / "images").mkdir(exist_ok=True)
        (corpus / "images" / p.name).write_bytes(p.read_bytes())
    (corpus / "manifest.jsonl").write_text((shapes / "manifest.jsonl").read_text())
    (corpus / "notes").mkdir()
    (corpus / "notes" / "a.txt").write_text("A red circle on grey\n")
    (corpus / ".hidden.txt").write_text("never ingested")
    (corpus / "broken.png").write_bytes(b"")  # empty: refused before decoding
    captions = tmp_path / "captions.jsonl"
    captions.write_text(
        json.dumps({"file": "shape-000001.png", "caption": "my caption", "metadata": {"album": 7}})
        + "\n"
    )
    store = str(tmp_path / "store")
    argv = ["ingest", str(corpus), "--store", store, "--model", hash_model]
    code, out, err = run(capsys, *argv, "--captions", str(captions), "--json")
    summary = json.loads(out)
    assert code == 1  # one file was skipped
    assert summary["by_modality"] == {"image": 4, "text": 1} and summary["ingested"] == 5
    assert [s["file"] for s in summary["skipped"]] == ["broken.png"]
    assert "skipped broken.png" in err

    code, out, _ = run(capsys, "query", "a red circle on grey", "--store", store, "--json")
    hits = json.loads(out)["hits"]  # the store remembers its model: no --model needed
    assert code == 0
    assert hits[0]["id"].endswith("a.txt") and hits[0]["text"] == "A red circle on grey"
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)

    image = corpus / "images" / "shape-000001.png"
    code, out, _ = run(
        capsys, "query", "--image", str(image), "-k", "2", "--store", store, "--json"
    )
    top = json.loads(out)["hits"][0]
    assert top["source"] == str(image.resolve()) and top["text"] == "my caption"
    assert top["metadata"]["album"] == 7 and top["metadata"]["item"] == "shape-000001"
    assert {"shape", "color", "split"} <= set(top["metadata"])

    (corpus / "broken.png").unlink()
    code, out, _ = run(capsys, *argv)  # re-ingesting the same files replaces them
    assert code == 0 and out.startswith("ingested 5 item(s) (4 image, 1 text)")
    code, out, _ = run(capsys, "stats", "--store", store, "--json")
    assert json.loads(out)["total"] == 5 and json.loads(out)["model"] == "hash-16"


def test_ingest_nothing_to_do(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "ingest", str(tmp_path / "empty"), "--store", str(tmp_path / "s"))
    assert code == 1 and "nothing to ingest" in err
    code, _, err = run(capsys, "ingest", str(tmp_path / "missing"), "--store", str(tmp_path / "s"))
    assert code == 1 and "does not exist" in err


def test_caption_files(tmp_path: Path) -> None:
    headed, bare, bad = tmp_path / "h.csv", tmp_path / "b.csv", tmp_path / "x.jsonl"
    headed.write_text('file,caption\n./a.png,a red circle\nb.png,"two, blue"\n')
    bare.write_text("a.png,a red circle\n")
    bad.write_text('{"file": "a.png"}\n[1]\n')
    assert _notes_from_captions(headed) == {
        "a.png": ("a red circle", {}),
        "b.png": ("two, blue", {}),
    }
    assert _notes_from_captions(bare) == {"a.png": ("a red circle", {})}
    with pytest.raises(InvalidInputError, match=r"x\.jsonl:2"):
        _notes_from_captions(bad)


# -- the shipped model ---------------------------------------------------------------------------
@pytest.mark.skipif(not HAS_TINY, reason="luma-tiny checkpoint not shipped yet")
def test_luma_tiny_round_trip(
    capsys: pytest.CaptureFixture[str], shapes: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "store")
    code, out, _ = run(capsys, "ingest", str(shapes), "--store", store, "--json")
    assert code == 0 and json.loads(out)["by_modality"] == {"image": 4}
    image = shapes / "images" / "shape-000002.png"
    code, out, _ = run(
        capsys, "query", "--image", str(image), "-k", "4", "--store", store, "--json"
    )
    result = json.loads(out)
    assert code == 0 and result["hits"][0]["source"] == str(image.resolve())
    code, out, _ = run(capsys, "query", "a red circle", "-k", "4", "--store", store, "--json")
    result = json.loads(out)
    assert code == 0 and [h["modality"] for h in result["hits"]] == ["image"] * 4
    assert result["telemetry"]["rho"] > 0  # text ρ calibrated when the encoder was attached


# -- entry points ----------------------------------------------------------------------------------
def test_python_dash_m_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "luma_rag", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    commands = ("ingest", "query", "stats", "gaps", "delete", "eval", "eval-answers", "bench")
    for command in (*commands, "demo", "generate", "train-clip", "train-clap", "train-llava"):
        assert command in proc.stdout


def test_eval_answers_and_training_are_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "eval-answers", "--help")
    assert code == 0 and "--compare" in out and "--verify" in out and "luma eval-answers" in out
    code, out, _ = run(capsys, "train-clip", "--help")
    assert code == 0 and "usage" in out.lower()
