"""The ``luma`` command line: build a store from a folder, query it, inspect it.

Every command calls the library; none holds retrieval logic of its own::

    luma generate --out data/shapes --n 200          # a LUMA-Shapes corpus
    luma ingest data/shapes                          # images + captions + attributes
    luma query "two red circles" -k 5
    luma query --image photo.png --filter '{"split": "test"}' --json
    luma query --vector q.npy                        # a raw (dim,) float vector, no encoder
    luma calibrate                                   # rho on the store's own items
    luma stats
    luma gaps
    luma check PATH | luma repair PATH              # verify a store / rebuild its snapshots
    luma eval | eval-answers | train-clip | train-clap | train-llava | bench | demo ...
                                                     # delegated to their own components

One module per subcommand group: :mod:`~luma_rag.cli.ingest`, :mod:`~luma_rag.cli.query`,
:mod:`~luma_rag.cli.calibrate`,
:mod:`~luma_rag.cli.info` (stats, gaps, generate), :mod:`~luma_rag.cli.components`
(delegated), :mod:`~luma_rag.cli.answers` (the gate experiments' options). Nothing heavy is
imported before a command runs, so ``luma --help`` does not load torch.

The store is ``--store``, else ``$LUMA_STORE``, else ``./luma-store``. ``--json`` prints one
JSON document on stdout for scripts. Exit status: 0 success; 1 an error, reported on stderr
without a traceback (also when some files of an ``ingest`` were skipped); 2 a usage error or a
component that is not installed; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from luma_rag.cli import calibrate, info, ingest, maintenance, query
from luma_rag.cli._common import DEFAULT_AUDIO_MODEL, DEFAULT_MODEL, DEFAULT_STORE, ENV_STORE
from luma_rag.cli._common import error as _error
from luma_rag.cli.components import DELEGATES as _DELEGATES
from luma_rag.cli.components import delegate
from luma_rag.errors import LumaError

__all__ = ["main"]

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``luma`` command line.

    Args:
        argv: arguments without the program name (None: ``sys.argv[1:]``).

    Returns:
        The exit status (0 success, 1 error, 2 usage error or component not installed).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list and args_list[0] in _DELEGATES:
            return delegate(args_list[0], args_list[1:], _DELEGATES)
        try:
            args = _parser().parse_args(args_list)
        except SystemExit as e:  # --help, --version, usage errors: argparse already printed
            return e.code if isinstance(e.code, int) else 2
        if args.verbose:
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        command: Callable[[argparse.Namespace], int] = args.run
        return command(args)
    except LumaError as e:
        _error(str(e))
        return 1
    except BrokenPipeError:  # `luma query ... | head`
        sys.stderr.close()
        return 1
    except OSError as e:
        _error(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _parser() -> argparse.ArgumentParser:
    from luma_rag import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON on stdout")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    common.add_argument("--verbose", "-v", action="store_true", help="log library INFO messages")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store",
        type=Path,
        default=None,
        help=f"store directory (default: ${ENV_STORE}, else ./{DEFAULT_STORE})",
    )
    models = argparse.ArgumentParser(add_help=False)
    models.add_argument(
        "--model",
        default=None,
        help="CLIP-space encoder (default: the one the store was ingested with, else "
        f"{DEFAULT_MODEL})",
    )
    models.add_argument(
        "--audio-model",
        default=None,
        help=f"CLAP encoder for audio (default: the store's, else {DEFAULT_AUDIO_MODEL})",
    )

    parser = argparse.ArgumentParser(
        prog="luma", description="LUMA-RAG: lifelong multimodal retrieval with Safe@k."
    )
    parser.add_argument("--version", action="version", version=f"luma-rag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ingest.add_parser(sub, [common, store, models])
    query.add_parser(sub, [common, store, models])
    calibrate.add_parser(sub, [common, store, models])
    info.add_parsers(sub, common, store)
    maintenance.add_parsers(sub, common)
    for name, (module, what, _) in _DELEGATES.items():  # dispatched in main(), listed here
        sub.add_parser(name, help=f"{what} ({module}); arguments are passed on", add_help=False)
    return parser
