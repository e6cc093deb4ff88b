"""``luma eval-answers``: coverage / risk of gated answering with the tiny LLaVA on LUMA-Shapes.

The experiments are :mod:`luma_rag.eval.gate_variants` (one variant runner) and their tables
:func:`luma_rag.eval.gate_tables.gate_tables`; this module only parses options::

    luma generate --out data/eval-images --n 1200 --seed 7
    luma eval-answers --data data/eval-images --questions 400 --seed 0
    luma eval-answers --data data/eval-images --compare --alpha 0.1
    luma eval-answers --data data/eval-images --verify --k-verify 40
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from luma_rag._json import to_jsonable
from luma_rag.answer.calibrate import RadiusCalibrationConfig
from luma_rag.answer.consensus import ConsensusConfig
from luma_rag.answer.gate import GateConfig
from luma_rag.answer.verify import VerifyConfig
from luma_rag.errors import LumaError

__all__ = ["main"]


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _parser() -> argparse.ArgumentParser:
    d = GateConfig()
    p = argparse.ArgumentParser(
        prog="luma eval-answers",
        description="Coverage / risk of gated answering with the tiny LLaVA on LUMA-Shapes.",
    )
    p.add_argument("--data", required=True, type=Path, help="LUMA-Shapes corpus (test split)")
    p.add_argument("--model", default=None, help="LLaVA id or directory (default: tiny)")
    p.add_argument("--questions", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--referent", choices=("full", "random"), default="full")
    p.add_argument("--k", type=int, default=d.k)
    p.add_argument("--k-max", type=int, default=d.k_max)
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    p.add_argument(
        "--compare",
        action="store_true",
        help="compare store ρ / calibrated ρ, with and without consensus (both referents)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="compare the gate with evidence verification and abstention (both referents)",
    )
    p.add_argument(
        "--k-verify",
        type=int,
        default=VerifyConfig().k_verify,
        help="hits verified per question (--verify): the gate's ranking, fetched this deep",
    )
    p.add_argument("--alpha", type=float, default=0.1, help="calibration target risk")
    p.add_argument(
        "--delta",
        type=_optional_float,
        default=0.1,
        help="calibration confidence; 'none' for the empirical risk (no correction)",
    )
    p.add_argument(
        "--consensus-rho",
        type=float,
        default=None,
        help="radius of the consensus contender bound (default: the query's own ρ)",
    )
    p.add_argument("--calibration-questions", type=int, default=400)
    p.add_argument("--calibration-seed", type=int, default=1)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the markdown table; returns the exit status."""
    from luma_rag.answer.llava import OFFLINE_LLAVA_MODEL, LlavaAnswerer
    from luma_rag.eval.gate_tables import gate_tables
    from luma_rag.eval.gate_variants import (
        compare_gates,
        compare_verification,
        evaluate_gated_answers,
    )

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        answerer = LlavaAnswerer(args.model or OFFLINE_LLAVA_MODEL, device="cpu", max_new_tokens=16)
        gate = GateConfig(k=args.k, k_max=args.k_max)
        if args.verify:
            report = compare_verification(
                args.data,
                answerer,
                n_questions=args.questions,
                seed=args.seed,
                gate=gate,
                verify=VerifyConfig(k_verify=args.k_verify),
            )
        elif args.compare:
            report = compare_gates(
                args.data,
                answerer,
                n_questions=args.questions,
                seed=args.seed,
                gate=gate,
                calibration_questions=args.calibration_questions,
                calibration_seed=args.calibration_seed,
                calibration=RadiusCalibrationConfig(alpha=args.alpha, delta=args.delta),
                consensus=ConsensusConfig(rho=args.consensus_rho),
            )
        else:
            report = evaluate_gated_answers(
                args.data,
                answerer,
                n_questions=args.questions,
                seed=args.seed,
                gate=gate,
                referent=args.referent,
            )
    except LumaError as e:
        print(f"luma: error: {e}", file=sys.stderr)
        return 2
    if args.json is not None:
        args.json.write_text(json.dumps(to_jsonable(report), indent=2) + "\n", encoding="utf-8")
    print(gate_tables(report))
    return 0
