"""Subcommands that belong to other components: ``luma NAME ARGS`` runs ``module.main(ARGS)``.

The evaluation suite, the gate experiments, the tiny-model trainings, the benchmark and the
demo app each keep their own argument parser; the ``luma`` command lists them and hands their
arguments on, importing the component only when it runs (so ``luma --help`` stays fast).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Final

from luma_rag.cli._common import error

__all__ = ["DELEGATES", "delegate"]

#: ``luma NAME ...`` hands its arguments to ``module.main(argv)``: name -> (module, what, hint).
DELEGATES: Final[dict[str, tuple[str, str, str]]] = {
    "eval": ("luma_rag.eval.run", "the evaluation suite", ""),
    "eval-answers": ("luma_rag.cli.answers", "coverage / risk of gated answering", ""),
    "train-clip": ("luma_rag.training.train_clip", "training the tiny CLIP", ""),
    "train-clap": ("luma_rag.training.train_clap", "training the tiny CLAP", ""),
    "train-llava": ("luma_rag.training.train_llava", "training the tiny LLaVA", ""),
    "bench": ("bench.run", "the benchmark", "; it ships with the source tree: run it there"),
    "demo": ("luma_rag.app.demo", "the demo app", ""),
    "serve": ("luma_rag.app.server", "the HTTP service (OpenAPI, Prometheus /metrics)", ""),
}


def delegate(name: str, argv: list[str], delegates: Mapping[str, tuple[str, str, str]]) -> int:
    """Run ``luma NAME ARGS`` as ``module.main(ARGS)``; exit 2 when the component is missing."""
    module_name, what, hint = delegates[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            error(
                f"`luma {name}` needs {what} ({module_name}), which is not installed yet in "
                f"this build of LUMA-RAG{hint}"
            )
            return 2
        error(f"`luma {name}` needs the package {e.name!r}, which is not installed ({e})")
        return 1
    entry = getattr(module, "main", None)
    if not callable(entry):
        error(f"`luma {name}`: {module_name} has no main(); the component is not installed yet")
        return 2
    try:
        status = entry(argv)
    except SystemExit as e:  # the component's argparse: --help, usage errors
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return int(status or 0)
