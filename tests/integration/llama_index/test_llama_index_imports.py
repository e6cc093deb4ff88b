"""The public surface of ``llama_index.vector_stores.lumarag``, and its namespace packaging."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import llama_index.vector_stores.lumarag as luma_pkg

REPO = Path(__file__).resolve().parents[3]
PORTION = REPO / "integrations" / "llama_index"


def test_all() -> None:
    assert luma_pkg.__all__ == [
        "LLMAnswerer",
        "LumaEmbedding",
        "LumaGatedQueryEngine",
        "LumaVectorStore",
        "to_luma_filter",
    ]
    for name in luma_pkg.__all__:
        assert getattr(luma_pkg, name).__module__.startswith("llama_index.vector_stores.lumarag")


def test_namespace_portions_have_no_init() -> None:
    # as LlamaIndex's integrations: llama_index and llama_index.vector_stores are namespaces
    assert not (PORTION / "__init__.py").exists()
    assert not (PORTION / "vector_stores" / "__init__.py").exists()
    assert (PORTION / "vector_stores" / "lumarag" / "py.typed").exists()


def test_merges_with_llama_index_core() -> None:
    import llama_index
    import llama_index.core
    import llama_index.vector_stores

    assert getattr(llama_index, "__file__", None) is None  # still a namespace package
    assert Path(llama_index.core.__file__).parent.parent.parent != REPO / "integrations"
    assert getattr(llama_index.vector_stores, "__file__", None) is None
    assert Path(luma_pkg.__file__).parent == PORTION / "vector_stores" / "lumarag"


def _run(code: str, cwd: Path) -> str:
    """Run ``code`` in a fresh interpreter outside the repo: only installed code is found."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_installed_package_imports_beside_core(tmp_path: Path) -> None:
    out = _run(
        "import llama_index.core, llama_index.vector_stores.lumarag as m; print(m.__file__)",
        tmp_path,
    )
    assert Path(out).parent == PORTION / "vector_stores" / "lumarag"
    top = importlib.metadata.distribution("luma-rag").read_text("top_level.txt") or ""
    assert "llama_index" in top.split()


def test_import_loads_no_model_stack(tmp_path: Path) -> None:
    out = _run(
        "import sys, llama_index.vector_stores.lumarag; "
        "print(sorted(m for m in ('torch', 'open_clip', 'transformers') if m in sys.modules))",
        tmp_path,
    )
    assert out == "[]"
