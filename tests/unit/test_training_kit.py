"""The one-command model kit (``luma_rag.training.kit``): its plan, its scheduler, a tiny run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from luma_rag.errors import ConfigError, LumaError
from luma_rag.training.kit import KitConfig, Task, main, plan, run_tasks


def _script(code: str) -> tuple[str, ...]:
    return ("-c", code)


def _writes(path: Path, needs: Path | None = None) -> tuple[str, ...]:
    """A task that fails unless ``needs`` exists, then writes its thread count to ``path``."""
    check = f"assert __import__('pathlib').Path({str(needs)!r}).exists(); " if needs else ""
    code = f"import os, sys; {check}open({str(path)!r}, 'w').write(os.environ['OMP_NUM_THREADS'])"
    return _script(code)


def test_tasks_run_after_their_deps_with_one_thread_each_unless_alone(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    tasks = [
        Task("a", _writes(a)),
        Task("b", _writes(b)),
        Task("c", _writes(c, needs=b), deps=("a", "b")),
    ]
    done, not_run = run_tasks(tasks, jobs=2, lone_threads=None, logs=tmp_path / "logs")
    assert not not_run and [done[n]["returncode"] for n in "abc"] == [0, 0, 0]
    # a and b were ready together: one thread each; c ran alone: both "cores"
    assert (a.read_text(), b.read_text(), c.read_text()) == ("1", "1", "2")
    assert done["c"]["start_s"] >= max(done["a"]["start_s"], done["b"]["start_s"])
    assert all(done[n]["wall_s"] >= 0 and done[n]["cpu_s"] >= 0 for n in "abc")


def test_a_failed_task_stops_its_dependents(tmp_path: Path) -> None:
    tasks = [
        Task("bad", _script("raise SystemExit(3)")),
        Task("after", _writes(tmp_path / "after"), deps=("bad",)),
    ]
    done, not_run = run_tasks(tasks, jobs=1, lone_threads=None, logs=tmp_path / "logs")
    assert done["bad"]["returncode"] == 3
    assert [t.name for t in not_run] == ["after"] and not (tmp_path / "after").exists()


def _flag(task: Task, name: str) -> str:
    return task.argv[task.argv.index(name) + 1]


def test_plan_wires_each_trainer_to_what_it_needs(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    tasks = {t.name: t for t in plan(KitConfig(), data, out)}
    corpora = {n for n in tasks if n.startswith("corpus:")}
    assert corpora == {f"corpus:{n}" for n in ("clip_shapes16k", "shapes2k", "clap_a", "clap_b")}
    # the LLaVA's tower is the kit's CLIP (v4 recipe); the CLAP anchors to the same CLIP
    assert "clip-v2" not in tasks
    assert {"--bind-background", "--achromatic-p", "--shape-weight"} <= set(tasks["clip"].argv)
    assert set(tasks["llava"].deps) == {"clip", "corpus:clip_shapes16k"}
    assert _flag(tasks["llava"], "--clip-weights").startswith(str(out / "luma-tiny-clip"))
    assert set(tasks["clap"].deps) == {"clip", "corpus:shapes2k", "corpus:clap_a", "corpus:clap_b"}
    assert _flag(tasks["clap"], "--anchor-weights").startswith(str(out / "luma-tiny-clip"))
    # a corpus already there is not generated again; the CLIP v2 recipe as the tower
    (data / "clap_a").mkdir(parents=True)
    (data / "clap_a" / "manifest.jsonl").write_text("")
    tasks = {t.name: t for t in plan(KitConfig(llava_tower="v2", bf16=True), data, out)}
    assert "corpus:clap_a" not in tasks
    assert "--achromatic-p" not in tasks["clip-v2"].argv
    assert "--bind-background" not in tasks["clip-v2"].argv
    assert set(tasks["llava"].deps) == {"clip-v2", "corpus:clip_shapes16k"}
    assert _flag(tasks["llava"], "--clip-weights").startswith(str(out / "clip-v2"))
    assert all("--bf16" in tasks[n].argv for n in ("clip", "clip-v2", "clap", "llava"))
    with pytest.raises(ConfigError):
        KitConfig(llava_tower=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ConfigError):
        KitConfig(jobs=0)


def test_command_line_defaults_are_the_configs() -> None:
    from luma_rag.training.kit import _parser

    args = _parser().parse_args(["--data", "d", "--out", "o"])
    assert args.llava_tower == KitConfig().llava_tower == "clip"
    assert args.jobs == KitConfig().jobs


@pytest.mark.slow
def test_tiny_kit_trains_loadable_models_and_reports_times(tmp_path: Path) -> None:
    from luma_rag.answer.llava import LlavaAnswerer
    from luma_rag.encoders.clap.backend import ClapEncoder
    from luma_rag.encoders.registry import get_encoder

    out = tmp_path / "out"
    argv = ["--tiny", "--bf16", "--llava-tower", "clip", "--data", str(tmp_path / "data")]
    assert main([*argv, "--out", str(out)]) == 0
    report = json.loads((out / "kit.json").read_text())
    assert set(report["tasks"]) == {"corpus:tiny", "clip", "clap", "llava"}
    for name in ("clip", "clap", "llava"):
        task = report["tasks"][name]
        assert task["returncode"] == 0 and task["wall_s"] > 0 and task["cpu_s"] > 0
        assert json.loads((out / f"luma-tiny-{name}" / "training.json").read_text())["config"][
            "bf16"
        ]
    assert report["total_wall_s"] >= max(t["wall_s"] for t in report["tasks"].values())
    weights = out / "luma-tiny-clip" / "open_clip_model.safetensors"
    clip = get_encoder("luma-tiny-clip", str(weights))
    assert clip.encode_text(["a red circle"]).shape == (1, clip.dim)
    assert ClapEncoder(out / "luma-tiny-clap").encode_text(["a red circle"]).shape[0] == 1
    answerer = LlavaAnswerer(str(out / "luma-tiny-llava"))
    answerer.load()
    assert answerer.loaded and answerer.load_info["path"]
    # the CLAP anchored to the CLIP this kit trained, the LLaVA's tower is that CLIP too
    digest = report_digest(out / "luma-tiny-clip" / "open_clip_model.safetensors")
    clap = json.loads((out / "luma-tiny-clap" / "training.json").read_text())
    llava = json.loads((out / "luma-tiny-llava" / "training.json").read_text())
    assert clap["anchor"]["sha256"] == digest == llava["vision_tower"]["sha256"]


def report_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_failing_kit_writes_its_report_and_raises(tmp_path: Path) -> None:
    from luma_rag.training.kit import run_kit

    data = tmp_path / "data"
    (data / "tiny").mkdir(parents=True)
    (data / "tiny" / "manifest.jsonl").write_text("not json\n")  # the trainers cannot read it
    with pytest.raises(LumaError, match="clip"):
        run_kit(data, tmp_path / "out", KitConfig(tiny=True, llava_tower="clip"))
    report = json.loads((tmp_path / "out" / "kit.json").read_text())
    assert report["tasks"]["clip"]["returncode"] != 0
    assert set(report["not_run"]) == {"clap", "llava"}
