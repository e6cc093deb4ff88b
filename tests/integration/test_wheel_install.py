"""The built wheel, installed in a clean virtual environment with only the extras the README
documents, runs the README's LangChain quickstart (issue 15: ``pip install 'luma-rag[langchain]'``
then ``encoder="luma-tiny"`` failed for want of torch).

No network: the wheel is built from this checkout (``--no-build-isolation``) and installed with
``--no-index --no-deps``; the third-party packages come from the project's environment,
layered under the clean one by a ``.pth`` line (that directory's own ``.pth`` files — the
project's editable install among them — are not processed, so ``luma_rag`` comes from the
wheel). What makes the test real is the check after the run: every distribution the snippet
imported must be required by ``luma-rag[<documented extras>]`` (transitively, from the
installed metadata). A missing extra in the README (or in ``pyproject.toml``) fails here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")

pytestmark = pytest.mark.slow

#: Runs in the clean environment: which distributions did the snippet import?
_PROBE = r"""
import importlib.metadata as md, json, re, sys
snippet = open(sys.argv[1], encoding="utf-8").read()
exec(compile(snippet, "README.md", "exec"), {"__name__": "readme"})
import luma_rag
dists = md.packages_distributions()
used = sorted({d for m in list(sys.modules) for d in dists.get(m.split(".")[0], [])})

def name(req):
    return re.split(r"[ ;<>=!~\[(]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")

def requires(dist, extras):
    out = set()
    for req in md.requires(dist) or []:
        spec, _, marker = req.partition(";")
        found = re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if marker.strip() and found and not set(found) & extras:
            continue
        out.add(name(spec))
    return out

extras = set(sys.argv[2].split(","))
closure, todo = set(), requires("luma-rag", extras)
while todo:
    dist = todo.pop()
    if dist in closure:
        continue
    closure.add(dist)
    try:
        todo |= requires(dist, set())
    except md.PackageNotFoundError:
        pass
print(json.dumps({"luma_rag": luma_rag.__file__, "used": used, "closure": sorted(closure)}))
"""


def _documented(section: str) -> tuple[list[str], str]:
    """The extras of the ``pip install 'luma-rag[...]'`` line and the first Python block of a
    README section."""
    body = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    extras = re.search(r"pip install 'luma-rag\[([a-z,-]+)\]'", body)
    block = re.search(r"```python\n(.*?)```", body, flags=re.DOTALL)
    assert extras and block, f"README's {section} section lost its install line or example"
    return extras.group(1).split(","), block.group(1)


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def test_wheel_with_documented_extras_runs_the_langchain_quickstart(tmp_path: Path) -> None:
    extras, snippet = _documented("LangChain")
    wheels, source = tmp_path / "wheels", tmp_path / "source"
    source.mkdir()  # a copy: the build writes build/ and egg-info beside the sources
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("luma_rag", "integrations"):
        shutil.copytree(ROOT / name, source / name, ignore=skip)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*build, "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("luma_rag-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "zz_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (tmp_path / "snippet.py").write_text(snippet, encoding="utf-8")
    (tmp_path / "probe.py").write_text(_PROBE, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [str(python), str(tmp_path / "probe.py"), str(tmp_path / "snippet.py"), ",".join(extras)],
        capture_output=True,
        text=True,
        cwd=work,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(report["luma_rag"]).is_relative_to(env_dir)  # the wheel, not the checkout
    closure = {_norm(n) for n in report["closure"]} | {"luma-rag"}
    missing = sorted(_norm(d) for d in report["used"] if _norm(d) not in closure)
    assert not missing, (
        f"the README's LangChain example imports {missing}, which "
        f"'luma-rag[{','.join(extras)}]' does not install; fix the extras or the README"
    )
    assert "torch" in closure  # encoder="luma-tiny" needs the model stack
