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
                        [--no-verify] [--no-audio] [--threads 1] [--timings] [--no-serve]

Progress: every phase (imports, model loads, corpus generation, each ingest batch, building
the app) prints a stamped line ``demo: [  t s] ...`` on stderr; ``--timings`` prints how long
each phase took before serving, ``--no-serve`` stops there (a start-up benchmark).

* default: ``luma-tiny`` (CLIP) + ``luma-tiny-clap``, answers by the shipped tiny LLaVA
  (``luma-tiny-llava``: it answers what shape, colour, size, position or count the top image
  shows) on the library's default verified path (the score-gap path): before answering it
  asks the pictures of the top 3 linked groups a yes/no question ("Does this image show the
  small circle?"), scores each by its own P("yes"), and answers only from the pictures it
  verifies and that agree (``--no-verify``: answer without the checks); the cited evidence
  beside it;
* a typed question is searched without its interrogative frame ("What colour is the small
  circle?" → "the small circle", :func:`~luma_rag.app.demo_store.demo_search_text`); each
  picture's caption is stored beside it as a linked text item, so the question is ranked
  against text, and the answer is read from the picture of the group the gate answered from;
* ``--evidence-only``: answers by ``EvidenceAnswerer`` (a cited summary, no language model);
* ``--llava MODEL``: answers by LLaVA-1.5 loaded from a local directory;
* ``--production``: ``ViT-B-32`` / ``openai`` + ``laion/clap-htsat-unfused`` + LLaVA-1.5, all
  from local files (``$LUMA_MODEL_DIR`` or the Hugging Face cache); a model that is not on
  disk is reported and the demo exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from luma_rag.app.demo_store import (
    DEFAULT_STORE,
    Demo,
    demo_gate_config,
    demo_search_text,
    prepare,
)
from luma_rag.app.examples import demo_questions
from luma_rag.app.phases import Phases
from luma_rag.errors import LumaError

if TYPE_CHECKING:
    from luma_rag.datasets import ShapeItem

__all__ = ["Demo", "build_parser", "example_questions", "main", "parse_args", "prepare"]

logger = logging.getLogger(__name__)


def build_parser(
    prog: str = "python -m luma_rag.app.demo",
    description: str = "LUMA-RAG chat demo over a LUMA-Shapes sample (offline, tiny models).",
) -> argparse.ArgumentParser:
    """The demo's arguments (``check_examples`` takes the same, to open the same store)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
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
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="answer without verifying the evidence (default: verified)",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--no-audio", action="store_true", help="skip spoken captions and CLAP")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the tiny models gain nothing from more)",
    )
    p.add_argument(
        "--timings", action="store_true", help="print the start-up phases' timings before serving"
    )
    p.add_argument(
        "--no-serve",
        action="store_true",
        help="prepare the store, build the app, exit (with --timings: a start-up benchmark)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status (0 after the server stops, 1 on an error)."""
    args = build_parser().parse_args(argv)
    if args.n < 1 or args.n_audio < 0 or args.threads < 1:
        print("demo: --n and --threads must be >= 1, --n-audio >= 0", file=sys.stderr)
        return 2
    phases = Phases()
    try:
        demo = prepare(args, phases)
    except LumaError as e:  # ModelNotAvailableError, MissingDependencyError, a bad store
        print(f"demo: {e}", file=sys.stderr)
        return 1
    engine, items = demo.engine, demo.items
    try:
        with phases.phase("build the app", "imports gradio"):
            from luma_rag.app.chat import build_app, launch_app

            app = build_app(
                engine,
                demo.answerer,
                demo_gate_config(),
                max_upload_mb=args.max_upload_mb,
                examples=example_questions(items),
                search_text=demo_search_text,
                note=(
                    f"The memory holds a **synthetic** corpus: {len(items)} LUMA-Shapes images "
                    "of rendered shapes (shape, colour, size, position, count) with their "
                    "captions (stored as text beside each picture)"
                    + (", and spoken captions" if demo.has_audio else "")
                    + ". Ask about those; photos of the real world are not in it."
                ),
            )
        with phases.phase("relevance test", "calibrated on the store's texts once, then read"):
            from luma_rag.app.chat import service_of

            service_of(app).gate.relevance  # noqa: B018 - done now, not on the first question
        if args.timings:
            print(phases.table(), file=sys.stderr, flush=True)
        if args.no_serve:
            phases.say(f"{len(engine)} items in {demo.store}; ready (--no-serve: not serving)")
            return 0
        phases.say(
            f"{len(engine)} items in {demo.store}; serving on http://{args.host}:{args.port} "
            "(Ctrl-C to stop)"
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The demo's arguments (``python -m luma_rag.app.demo --help``)."""
    return build_parser().parse_args(argv)


def _stop_on_sigterm() -> None:
    """Let SIGTERM stop the server like Ctrl-C, so the store is closed cleanly."""
    if threading.current_thread() is threading.main_thread():

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)


def example_questions(items: Sequence[ShapeItem], n: int = 4) -> list[str]:
    """Questions the demo corpus answers, one per kind, each with one right answer.

    Args:
        items: The corpus.
        n: How many.

    Returns:
        e.g. ``["What size is the red star on the left?", ...]``; see
        :func:`luma_rag.app.examples.demo_questions` for how they are chosen.
    """
    return [q.text for q in demo_questions(items, n)]


if __name__ == "__main__":
    raise SystemExit(main())
