"""``python -m luma_rag.app.demo`` (``luma demo``): the chat app over a LUMA-Shapes sample,
with the shipped tiny models.

Media are recorded by absolute path (the store directory is resolved first), so the store
answers from its images wherever it is opened from; moving the store directory afterwards
breaks those paths (regenerate it, or keep it in place).

On first run it generates a LUMA-Shapes sample into the store directory (images with
captions; spoken captions too when espeak-ng and the tiny CLAP checkpoint are available),
ingests it with the captions and attributes as metadata (and the first ``--n-audio`` spoken
captions, through the CLAP→CLIP bridge), and serves the app on
http://127.0.0.1:7860 (localhost unless ``--host`` says otherwise). Later runs reopen the store.

Usage::

    python -m luma_rag.app.demo [--store PATH] [--n 300] [--n-audio 100] [--host 127.0.0.1]
                        [--port 7860] [--production] [--llava MODEL] [--evidence-only]
                        [--no-audio]

* default: ``luma-tiny`` (CLIP) + ``luma-tiny-clap``, answers by the shipped tiny LLaVA
  (``luma-tiny-llava``: it answers what shape, colour, size, position or count the top image
  shows), with the cited evidence beside it;
* ``--evidence-only``: answers by ``EvidenceAnswerer`` (a cited summary, no language model);
* ``--llava MODEL``: answers by LLaVA-1.5 loaded from a local directory;
* ``--production``: ``ViT-B-32`` / ``openai`` + ``laion/clap-htsat-unfused`` + LLaVA-1.5, all
  from local files (``$LUMA_MODEL_DIR`` or the Hugging Face cache); a model that is not on
  disk is reported and the demo exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from luma_rag.errors import LumaError, ModelNotAvailableError

if TYPE_CHECKING:
    from luma_rag.answer import Answerer
    from luma_rag.datasets import ShapeItem
    from luma_rag.encoders.base import Encoder
    from luma_rag.engine import Luma

__all__ = ["main"]

logger = logging.getLogger(__name__)

TINY_MODELS: Final = ("luma-tiny", "luma-tiny-clap")
PRODUCTION_MODELS: Final = ("ViT-B-32/openai", "laion/clap-htsat-unfused")
DEFAULT_STORE: Final = Path("stores/demo")
CORPUS_DIR: Final = "shapes"
_BATCH: Final = 32


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m luma_rag.app.demo",
        description="LUMA-RAG chat demo over a LUMA-Shapes sample (offline, tiny models).",
    )
    p.add_argument(
        "--store",
        type=Path,
        default=None,
        help=f"store directory (default {DEFAULT_STORE}, or {DEFAULT_STORE}-production)",
    )
    p.add_argument("--n", type=int, default=300, help="LUMA-Shapes items on first run (300)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument(
        "--n-audio",
        type=int,
        default=100,
        help="spoken captions stored on first run (default 100; the rest serve as queries)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="upload limit (20 MB)")
    p.add_argument(
        "--production",
        action="store_true",
        help="ViT-B-32/openai + laion/clap-htsat-unfused + LLaVA-1.5 from local files",
    )
    p.add_argument(
        "--llava",
        metavar="MODEL_DIR",
        default=None,
        help="answer with LLaVA from this local directory (default: luma-tiny-llava)",
    )
    p.add_argument(
        "--evidence-only",
        action="store_true",
        help="answer with a cited summary of the evidence, no language model",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--no-audio", action="store_true", help="skip spoken captions and CLAP")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status (0 after the server stops, 1 on an error)."""
    args = _parser().parse_args(argv)
    if args.n < 1 or args.n_audio < 0:
        print("demo: --n must be >= 1 and --n-audio >= 0", file=sys.stderr)
        return 2
    store = (
        args.store
        or (
            DEFAULT_STORE.with_name(DEFAULT_STORE.name + "-production")
            if args.production
            else DEFAULT_STORE
        )
    ).resolve()  # media are recorded by absolute path: the store opens from anywhere
    device = args.device or _default_device()
    try:
        engine, has_audio = _open_store(store, args, device)
    except LumaError as e:  # ModelNotAvailableError, MissingDependencyError, a bad store
        print(f"demo: {e}", file=sys.stderr)
        return 1
    try:
        answerer = _answerer(args, device)
        items = _corpus(store / CORPUS_DIR, args.n, args.seed, audio=has_audio)
        _ingest(engine, items, n_audio=0)  # images first: their captions feed the bridge
        _calibrate(engine)  # production models: rho and the bridge from these items
        _ingest(engine, items, n_audio=args.n_audio if has_audio else 0)
        from luma_rag.app.chat import build_app, launch_app

        app = build_app(
            engine,
            answerer,
            max_upload_mb=args.max_upload_mb,
            examples=example_questions(items),
            note=(
                f"The memory holds a **synthetic** corpus: {len(items)} LUMA-Shapes images of "
                "rendered shapes (shape, colour, size, position, count) with their captions"
                + (", and spoken captions" if has_audio else "")
                + ". Ask about those; photos of the real world are not in it."
            ),
        )
        print(
            f"demo: {len(engine)} items in {store}; serving on http://{args.host}:{args.port} "
            "(Ctrl-C to stop)",
            file=sys.stderr,
        )
        _stop_on_sigterm()
        launch_app(app, host=args.host, port=args.port)
    except LumaError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo: stopped", file=sys.stderr)
    finally:
        engine.close()
    return 0


def _stop_on_sigterm() -> None:
    """Let SIGTERM stop the server like Ctrl-C, so the store is closed cleanly."""
    if threading.current_thread() is threading.main_thread():

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)


# -- models ---------------------------------------------------------------------------------------
def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _open_store(store: Path, args: argparse.Namespace, device: str) -> tuple[Luma, bool]:
    """Open (or create) the store with its encoders; returns it and whether audio is on.

    Raises:
        ModelNotAvailableError: a model is not on disk (the tiny CLAP only disables audio).
    """
    from luma_rag import Luma
    from luma_rag.encoders import get_encoder
    from luma_rag.encoders.resolve import check_encoder_name

    if args.production:
        name, audio_name = PRODUCTION_MODELS
        check_encoder_name(name, "clip")  # both looked up before either is loaded
        if not args.no_audio:
            check_encoder_name(audio_name, "audio")
        encoder = get_encoder(name, device=device)
        audio = None if args.no_audio else _clap(audio_name, device)
    else:
        encoder = get_encoder(TINY_MODELS[0], device=device)
        audio = None
        if not args.no_audio:
            try:
                audio = _clap(TINY_MODELS[1], device)
            except ModelNotAvailableError as e:
                print(f"demo: continuing without audio ({e})", file=sys.stderr)
    engine = Luma.open(store, encoder=encoder, audio_encoder=audio)
    return engine, audio is not None


def _clap(name: str, device: str) -> Encoder:
    from luma_rag.encoders import get_encoder

    return get_encoder(name, device=device)


def _answerer(args: argparse.Namespace, device: str) -> Answerer:
    """EvidenceAnswerer, or LLaVA (loaded now, so a missing model fails before serving)."""
    from luma_rag.answer import (
        DEFAULT_LLAVA_MODEL,
        OFFLINE_LLAVA_MODEL,
        EvidenceAnswerer,
        LlavaAnswerer,
    )

    if args.evidence_only:
        return EvidenceAnswerer()
    model = args.llava or (DEFAULT_LLAVA_MODEL if args.production else OFFLINE_LLAVA_MODEL)
    answerer = LlavaAnswerer(model, device=device)
    print(f"demo: loading LLaVA from {model} ...", file=sys.stderr)
    answerer.load()
    info = answerer.load_info
    print(
        f"demo: LLaVA {info['model']} on {info['device']}, {info['precision']}, "
        f"{info['memory_bytes'] / 2**20:,.1f} MiB",
        file=sys.stderr,
    )
    return answerer


# -- the corpus -----------------------------------------------------------------------------------
def _corpus(out: Path, n: int, seed: int, *, audio: bool) -> list[ShapeItem]:
    """The LUMA-Shapes sample in ``out``: generated on first run, else read back."""
    from luma_rag.datasets import generate, load_manifest

    if (out / "manifest.jsonl").is_file():
        return load_manifest(out)
    speak = audio and shutil.which("espeak-ng") is not None
    print(
        f"demo: generating {n} LUMA-Shapes items in {out}"
        f"{' with spoken captions' if speak else ''} ...",
        file=sys.stderr,
    )
    return load_manifest(generate(out, n=n, seed=seed, audio=speak, progress=True))


def _ingest(engine: Luma, items: Sequence[ShapeItem], *, n_audio: int) -> None:
    """Ingest the items not yet in the store: images with captions, then spoken captions.

    Only the first ``n_audio`` spoken captions are stored (one encoder call each); the other
    clips stay in the corpus directory, ready to be used as audio queries.
    """
    images = [it for it in items if it.id not in engine]
    spoken = [
        it for it in items[:n_audio] if it.audio_path is not None and f"{it.id}-audio" not in engine
    ]
    if spoken and engine.bridge is not None and not engine.bridge.fitted:
        need = engine.bridge.config.resolved_min_pairs - engine.bridge.pairs_seen
        print(
            f"demo: no spoken captions stored: the CLAP->CLIP bridge needs {need} more caption "
            "pairs (run the demo with a larger --n); audio queries are refused until then",
            file=sys.stderr,
        )
        spoken = []
    if not images and not spoken:
        return
    with _progress(len(images) + len(spoken), "ingest") as advance:
        for i in range(0, len(images), _BATCH):
            batch = images[i : i + _BATCH]
            engine.ingest_images(
                [it.image_path for it in batch],
                captions=[it.caption for it in batch],
                metadatas=[_metadata(it) for it in batch],
                ids=[it.id for it in batch],
            )
            advance(len(batch))
        for it in spoken:
            engine.ingest(
                audio=it.audio_path,
                caption=it.caption,
                metadata=_metadata(it),
                id=f"{it.id}-audio",
            )
            advance(1)


def _calibrate(engine: Luma) -> None:
    """Measure the radii ρ the store lacks on its own items (production models), with progress."""
    if engine.encoder is None or all(
        m in engine.rho for m in ("text", "image", "video")
    ):  # the tiny models were calibrated on attach; a reopened store keeps its radii
        return
    print("demo: calibrating rho on the store's items ...", file=sys.stderr)

    def report(stage: str, done: int, total: int) -> None:
        print(f"demo: calibrate {stage} {done}/{total}", file=sys.stderr)

    measured = engine.calibrate(progress=report)
    print(f"demo: rho {measured}", file=sys.stderr)


def example_questions(items: Sequence[ShapeItem], n: int = 4) -> list[str]:
    """Questions the demo corpus answers: one per kind about the first items (full referents).

    Args:
        items: The corpus.
        n: How many.

    Returns:
        e.g. ``["What color is the small circle on the left?", ...]``.
    """
    import numpy as np

    from luma_rag.datasets.questions import make_question

    rng = np.random.default_rng(0)
    kinds = ("color", "shape", "position", "size")
    named = ("size", "color", "shape", "position")
    return [
        make_question(it.attributes, kinds[i % len(kinds)], rng, named=named).text
        for i, it in enumerate(items[:n])
    ]


def _metadata(item: ShapeItem) -> dict[str, Any]:
    return {**item.attributes.as_dict(), "split": item.split}


@contextmanager
def _progress(total: int, label: str) -> Iterator[Any]:
    """A tqdm bar on stderr (a plain counter without tqdm); yields ``advance(n)``."""
    try:
        from tqdm import tqdm
    except ImportError:
        done = [0]

        def count(n: int) -> None:
            done[0] += n
            print(f"\r{label} {done[0]}/{total}", end="", file=sys.stderr, flush=True)

        yield count
        print(file=sys.stderr)
        return
    with tqdm(total=total, desc=label, unit="item", file=sys.stderr) as bar:
        yield bar.update


if __name__ == "__main__":
    raise SystemExit(main())
