"""The built wheel, installed in a clean virtual environment with only the extras the README
documents, runs the README's LangChain example (issue 15: ``pip install 'luma-rag[langchain]'``
then ``encoder="luma-tiny"`` failed for want of torch).

No network: the wheel is built from a copy of this checkout (``--no-build-isolation``) and
installed with ``--no-index --no-deps``. The clean environment then sees exactly the
distributions that ``luma-rag[<documented extras>]`` requires (transitively, read from the
wheel's metadata and the installed packages'): their files are linked into one directory on
its path, nothing else. A dependency the README's extras do not bring in is missing there, and
the example fails with ``ModuleNotFoundError``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")

pytestmark = pytest.mark.slow


def _parse(requirement: str) -> tuple[str, frozenset[str]]:
    """``"cuda-toolkit[cufile,nvrtc]==13; ..."`` -> ``("cuda-toolkit", {"cufile", "nvrtc"})``."""
    spec = requirement.split(";", 1)[0].strip()
    match = re.match(r"([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", spec)
    if match is None:
        raise ValueError(f"cannot read requirement {requirement!r}")
    extras = frozenset(e.strip() for e in (match.group(2) or "").split(",") if e.strip())
    return match.group(1).lower().replace("_", "-"), extras


def _requires(requirements: list[str], extras: frozenset[str]) -> set[tuple[str, frozenset[str]]]:
    """The requirements that apply with ``extras`` requested (each with its own extras)."""
    out = set()
    for req in requirements:
        marker = req.partition(";")[2]
        wanted = re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if wanted and not set(wanted) & extras:
            continue
        out.add(_parse(req))
    return out


def _closure(wheel: Path, extras: set[str]) -> set[str]:
    """Distributions ``luma-rag[extras]`` needs, transitively (from installed metadata),
    following the extras each requirement asks of its dependency."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = zf.read(meta_name).decode("utf-8")
    key = "Requires-Dist:"
    reqs = [line[len(key) :] for line in meta.splitlines() if line.startswith(key)]
    todo, seen = _requires(reqs, frozenset(extras)), set()
    while todo:
        item = todo.pop()
        if item in seen:
            continue
        seen.add(item)
        with contextlib.suppress(md.PackageNotFoundError):  # optional and not installed here
            todo |= _requires(md.requires(item[0]) or [], item[1])
    return {name for name, _ in seen}


def _link_distributions(names: set[str], target: Path) -> list[str]:
    """Symlink every file of the named installed distributions into ``target``."""
    linked = []
    for name in sorted(names):
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        for file in dist.files or []:
            src = Path(str(dist.locate_file(file))).resolve()
            rel = Path(str(file))
            if rel.is_absolute() or ".." in rel.parts or not src.is_file():
                continue
            dst = target / rel
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(src)
        linked.append(name)
    return linked


def _documented(section: str) -> tuple[list[str], str]:
    """The extras of the ``pip install 'luma-rag[...]'`` line and the first Python block of a
    README section."""
    body = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    extras = re.search(r"pip install 'luma-rag\[([a-z,-]+)\]'", body)
    block = re.search(r"```python\n(.*?)```", body, flags=re.DOTALL)
    assert extras and block, f"README's {section} section lost its install line or example"
    return extras.group(1).split(","), block.group(1)


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
    closure = _closure(wheel, set(extras)) - {"luma-rag"}
    deps = tmp_path / "deps"
    linked = _link_distributions(closure, deps)
    (Path(site) / "zz_documented_deps.pth").write_text(str(deps) + "\n")
    (tmp_path / "snippet.py").write_text(snippet, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    clean_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no PYTHONPATH: the wheel
    proc = subprocess.run(
        [str(python), str(tmp_path / "snippet.py")],
        capture_output=True,
        text=True,
        cwd=work,
        env=clean_env,
        timeout=900,
    )
    assert proc.returncode == 0, (
        f"the README's LangChain example fails with only 'luma-rag[{','.join(extras)}]' "
        f"installed ({len(linked)} distributions):\n{proc.stderr[-3000:]}"
    )
    where = subprocess.run(
        [str(python), "-c", "import luma_rag, langchain_lumarag; print(luma_rag.__file__)"],
        capture_output=True,
        text=True,
        cwd=work,
        env=clean_env,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(env_dir)  # the wheel, not the checkout
    assert "torch" in closure  # encoder="luma-tiny" needs the model stack
