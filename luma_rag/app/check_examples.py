"""``python -m luma_rag.app.check_examples``: the demo's example questions, asked and judged.

Opens the demo store exactly as ``python -m luma_rag.app.demo`` does (same arguments, same
models, same answerer; a missing store is made first, with progress), asks each example
question shown in the app through the app's own code path
(:meth:`luma_rag.app.service.AppService.ask`: gate, then the answerer), and prints one line
per question — question → decision → answer → right / wrong / no answer — judged against the
corpus manifest (the one item the question's referent describes; see
:mod:`luma_rag.app.examples`). It also says whether the top cited item is that item.

Exit status: 0 when every answer is right, 1 when one is not (or on an error), 2 on bad
arguments. Run it after replacing the checkpoints to see what the demo now answers::

    python -m luma_rag.app.check_examples            # the default store, stores/demo
    python -m luma_rag.app.check_examples --store /tmp/demo --questions 8
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from luma_rag.app.demo import build_parser
from luma_rag.app.demo_store import demo_gate_config, demo_search_text, prepare
from luma_rag.app.examples import DemoQuestion, Verdict, demo_questions, verdict
from luma_rag.app.phases import Phases
from luma_rag.errors import LumaError

__all__ = ["Checked", "ask_examples", "main"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checked:
    """One example asked through the app.

    Attributes:
        question: The example and its right answer.
        decision: The gate's decision.
        answer: The reply's text.
        verdict: ``"right"``, ``"wrong"`` or ``"no answer"``.
        top_id: The id of the first cited item (None: nothing cited).
        why: The gate's reason, its slack and ρ (with ``rho_source``), and the verification
            outcome, in one line.
    """

    question: DemoQuestion
    decision: str
    answer: str
    verdict: Verdict
    top_id: str | None
    why: str = ""


def ask_examples(service: object, questions: Sequence[DemoQuestion]) -> list[Checked]:
    """Ask each question through ``service.ask`` (an :class:`~luma_rag.app.service.AppService`).

    Returns:
        One :class:`Checked` per question, in order.
    """
    from luma_rag.app.service import AppService

    if not isinstance(service, AppService):
        raise TypeError(f"service must be an AppService, got {type(service).__name__}")
    out = []
    for q in questions:
        reply = service.ask(q.text)
        text = reply.answer.text
        cited = reply.answer.citations
        top = cited[0].id if cited else None
        final = reply.answer.decision
        checked = reply.answer.telemetry.get("verification") or {}
        why = (
            f"gate: {final.reason}; slack {final.numbers.slack:.3f}, rho "
            f"{final.numbers.rho:.3f} ({final.numbers.rho_source})"
            + (f"; verification: {checked.get('outcome')}" if checked else "")
        )
        out.append(Checked(q, reply.decision, text, verdict(q, reply.decision, text), top, why))
    return out


def _line(c: Checked) -> str:
    one_line = " ".join(c.answer.split())
    on_target = "top-1 is the item" if c.top_id == c.question.item_id else f"top-1 {c.top_id}"
    return (
        f"{c.question.text} -> {c.decision.upper()} -> {one_line!r} -> {c.verdict.upper()} "
        f"(right: {c.question.answer}; {c.question.item_id}; {on_target})\n    {c.why}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Ask the examples; returns 0 when all are right, 1 otherwise or on an error."""
    from luma_rag.app.service import AppService

    parser = build_parser(
        prog="python -m luma_rag.app.check_examples",
        description="Ask the demo's example questions through the app and judge the answers.",
    )
    parser.add_argument("--questions", type=int, default=4, help="how many examples (4)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.n_audio < 0 or args.questions < 1:
        print("check_examples: --n and --questions must be >= 1", file=sys.stderr)
        return 2
    phases = Phases("check_examples")
    try:
        demo = prepare(args, phases)
    except LumaError as e:
        print(f"check_examples: {e}", file=sys.stderr)
        return 1
    try:
        questions = demo_questions(demo.items, args.questions)
        service = AppService(
            demo.engine, demo.answerer, demo_gate_config(), search_text=demo_search_text
        )
        checked = ask_examples(service, questions)
    except LumaError as e:
        print(f"check_examples: {e}", file=sys.stderr)
        return 1
    finally:
        demo.engine.close()
    for c in checked:
        print(_line(c))
    right = sum(c.verdict == "right" for c in checked)
    wrong = sum(c.verdict == "wrong" for c in checked)
    print(
        f"{right}/{len(checked)} right, {wrong} wrong, {len(checked) - right - wrong} "
        f"not answered (store {demo.store}, answerer {type(demo.answerer).__name__})"
    )
    return 0 if checked and right == len(checked) else 1


if __name__ == "__main__":
    raise SystemExit(main())
