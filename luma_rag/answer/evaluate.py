"""Coverage and risk of gated answering on LUMA-Shapes held-out questions.

A store is filled with the test split's images (unseen shape/colour combinations) and their
captions. Each question targets one item: it asks one attribute ("What color is the small
circle on the left?") about a referent naming some of the item's other attributes; the
referent ("a small circle on the left") is what the store is queried with. The gate decides
ANSWER, WIDEN or CLARIFY, and the answerer answers the question from the decision's evidence.

* An answer is **correct** when it names the target's value of the asked attribute
  (:func:`~luma_rag.datasets.questions.parse_answer`). When every gallery item the referent
  matches shares that value, any of them gives the correct answer (group-aware); when they
  disagree the question is **ambiguous**: only the target's value counts, and the gate should
  not answer it confidently.
* **coverage**: share of questions answered (ANSWER or WIDEN); **risk**: share of the
  answered that are wrong. CLARIFY answers nothing.
* **top-1 matches**: share of a decision's questions whose top hit matches everything the
  referent names; it separates retrieval errors from the answerer's.
* The **no-gate baseline** always answers from the top-1 hit (the same answerer, given an
  ANSWER decision over the same hits): coverage 1.

:func:`compare_gates` compares gate variants on the same test questions: the gate with the
store's ρ, with a ρ calibrated on the corpus's **val** split (disjoint items, other question
seed; :mod:`luma_rag.answer.calibrate`), and each with answer-level consensus
(:mod:`luma_rag.answer.consensus`).

Command line::

    python -m luma_rag.datasets.shapes --out data/eval-images --n 1200 --seed 7
    python -m luma_rag.answer.evaluate --data data/eval-images --questions 400 --seed 0
    python -m luma_rag.answer.evaluate --data data/eval-images --compare --alpha 0.1
    python -m luma_rag.answer.evaluate --data data/eval-images --verify --k-verify 40

:func:`compare_verification` (``--verify``) compares, on the same questions, the gate alone
with the gate + evidence verification (:mod:`luma_rag.answer.verify`: the top hits are checked
against the referent's reliably readable attributes, and verified hits must agree), with and
without abstention on question kinds the answerer reads unreliably. The verifier looks at the
top ``k_verify`` hits of the gate's own ranking (fetched that deep; the gate's decision and
evidence are unchanged), so that a second item fitting the referent is seen.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from luma_rag.answer.base import Answer, Answerer
from luma_rag.answer.calibrate import GateCalibration, RadiusCalibrationConfig, calibrate_gate
from luma_rag.answer.consensus import ConsensusAnswerer, ConsensusConfig
from luma_rag.answer.gate import GateConfig, GateDecision, GatedRetriever
from luma_rag.answer.verify import AttributeVerifier, VerifyConfig, VerifyingAnswerer
from luma_rag.datasets.attributes import relevant
from luma_rag.datasets.manifest import ShapeItem, load_manifest
from luma_rag.datasets.questions import QUESTION_KINDS, Question, make_question, parse_answer
from luma_rag.errors import InvalidInputError, LumaError

__all__ = [
    "AMBIGUOUS_QUERIES",
    "GATE_VARIANTS",
    "VERIFY_VARIANTS",
    "compare_gates",
    "compare_tables",
    "compare_verification",
    "evaluate_gated_answers",
    "main",
    "markdown_table",
    "verification_tables",
]

logger = logging.getLogger(__name__)

#: ``(question, retrieval text)`` pairs that name nothing that tells the gallery apart.
AMBIGUOUS_QUERIES: Final = (
    ("What color is the shape?", "a shape"),
    ("What shape is it?", "an object"),
    ("Where is the shape?", "a picture of a shape"),
    ("How big is the object?", "an image"),
    ("What color is the figure?", "a figure"),
)


#: How much of the target a question's referent names: every other attribute, or a random
#: subset (each of size, colour, shape, position with probability 1/2).
Referent = Literal["full", "random"]
_FULL_REFERENT: Final = ("size", "color", "shape", "position")


@dataclasses.dataclass
class _Record:
    kind: str
    decision: str
    ambiguous: bool
    correct: bool
    baseline_correct: bool
    answer: str
    top1_relevant: bool


def _answer_top1(decision: GateDecision, k: int) -> GateDecision:
    """An ANSWER decision over the same hits: what a system without the gate would do."""
    return dataclasses.replace(
        decision, decision="answer", k_used=1, evidence=decision.hits[:k], clarification=None
    )


def _questions(
    items: Sequence[ShapeItem], n: int, seed: int, referent: Referent
) -> list[tuple[ShapeItem, Question]]:
    rng = np.random.default_rng([seed, 7])
    picks = rng.integers(len(items), size=n)
    named = _FULL_REFERENT if referent == "full" else None
    return [
        (
            items[int(i)],
            make_question(items[int(i)].attributes, QUESTION_KINDS[j % 5], rng, named=named),
        )
        for j, i in enumerate(picks)
    ]


def _ambiguous(q: Question, target: ShapeItem, gallery: Sequence[ShapeItem]) -> bool:
    """Whether items the referent matches disagree on the asked attribute."""
    value = getattr(target.attributes, q.kind)
    return any(
        relevant(q.named, it.attributes) and getattr(it.attributes, q.kind) != value
        for it in gallery
    )


def _rates(records: Sequence[_Record]) -> dict[str, Any]:
    n = len(records)
    answered = [r for r in records if r.decision in ("answer", "widen")]
    out: dict[str, Any] = {"n": n, "coverage": len(answered) / n if n else None}
    out["risk"] = float(np.mean([not r.correct for r in answered])) if answered else None
    for name in ("answer", "widen", "clarify"):
        part = [r for r in records if r.decision == name]
        out[name] = {
            "n": len(part),
            "share": len(part) / n if n else None,
            "risk": float(np.mean([not r.correct for r in part]))
            if part and name != "clarify"
            else None,
            "accuracy_if_answered": float(np.mean([r.correct for r in part]))
            if part and name != "clarify"
            else None,
            "top1_relevant": float(np.mean([r.top1_relevant for r in part])) if part else None,
        }
    out["baseline"] = {
        "coverage": 1.0 if n else None,
        "risk": float(np.mean([not r.baseline_correct for r in records])) if n else None,
    }
    return out


def _check_referents(referents: Sequence[str]) -> None:
    for referent in referents:
        if referent not in ("full", "random"):
            raise InvalidInputError(f"referent must be 'full' or 'random', got {referent!r}")


def _default_answerer() -> Answerer:
    """The shipped tiny LLaVA on CPU, short answers."""
    from luma_rag.answer.llava import OFFLINE_LLAVA_MODEL, LlavaAnswerer

    return LlavaAnswerer(OFFLINE_LLAVA_MODEL, device="cpu", max_new_tokens=8)


@contextlib.contextmanager
def _gallery(items: Sequence[ShapeItem], encoder: Any, prefix: str) -> Iterator[Any]:
    """A temporary store holding ``items``' images (closed and deleted afterwards)."""
    from luma_rag.engine import Luma
    from luma_rag.eval.experiments import ingest_items

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        luma = Luma.open(tmp, encoder=encoder)
        try:
            ingest_items(luma, items)
            yield luma
        finally:
            luma.close()


def evaluate_gated_answers(
    data_dir: str | Path,
    answerer: Answerer | None = None,
    *,
    n_questions: int = 400,
    seed: int = 0,
    gate: GateConfig | None = None,
    encoder: Any = "luma-tiny",
    referent: Referent = "full",
) -> dict[str, Any]:
    """Coverage / risk of the gate + answerer against the no-gate baseline (module docstring).

    Args:
        data_dir: A LUMA-Shapes corpus; its test split is the gallery and the targets.
        answerer: Default ``LlavaAnswerer("luma-tiny-llava", device="cpu")``.
        n_questions: Targeted questions (kinds in turn, targets drawn with ``seed``).
        seed: Seed of targets and questions.
        gate: Gate settings (default ``GateConfig()``).
        encoder: The store's encoder (an :class:`~luma_rag.encoders.base.Encoder` or name).
        referent: ``"full"``: questions name every attribute of the target but the asked one
            ("What color is the small circle on the left?"); ``"random"``: a random subset
            ("What color is the circle?"), so many are ambiguous.

    Returns:
        ``{"all", "unambiguous", "ambiguous", "by_kind", "ambiguous_probe", ...}``: each a
        :func:`_rates` dict (coverage, risk, per-decision shares and risks, baseline risk).

    Raises:
        InvalidInputError: No test split, or ``n_questions < 1``.
    """
    _check_referents([referent])
    if n_questions < 1:
        raise InvalidInputError(f"n_questions must be >= 1, got {n_questions}")
    items = _split_items(data_dir, "test")
    bot = answerer or _default_answerer()
    cfg = gate or GateConfig()
    started = time.perf_counter()
    with _gallery(items, encoder, "luma-gate-eval-") as luma:
        retriever = GatedRetriever(luma, cfg, record_gaps=False)
        by_id = {it.id: it for it in items}
        records = []
        for target, q in _questions(items, n_questions, seed, referent):
            decision = retriever.query(q.retrieval_text)
            records.append(
                _record(
                    q,
                    bot.answer(q.text, decision),
                    _Context.of(q, target, decision, bot, cfg.k, items, by_id),
                )
            )
        probe = [_probe(retriever, bot, question, text) for question, text in AMBIGUOUS_QUERIES]
    return {
        "n_gallery": len(items),
        "gate": dataclasses.asdict(cfg),
        "n_questions": n_questions,
        "seed": seed,
        "referent": referent,
        "all": _rates(records),
        "unambiguous": _rates([r for r in records if not r.ambiguous]),
        "ambiguous": _rates([r for r in records if r.ambiguous]),
        "by_kind": {k: _rates([r for r in records if r.kind == k]) for k in QUESTION_KINDS},
        "ambiguous_probe": probe,
        "seconds": round(time.perf_counter() - started, 1),
    }


@dataclasses.dataclass(frozen=True)
class _Context:
    """What scoring one question's answers needs, whatever variant answered it."""

    value: Any  # the intended item's value of the asked attribute
    baseline: Answer  # the no-gate answer: always from the top-1 hit
    ambiguous: bool
    top: ShapeItem | None

    @classmethod
    def of(
        cls,
        q: Question,
        target: ShapeItem,
        decision: GateDecision,
        answerer: Answerer,
        k: int,
        items: Sequence[ShapeItem],
        by_id: dict[str, ShapeItem],
    ) -> _Context:
        return cls(
            value=getattr(target.attributes, q.kind),
            baseline=answerer.answer(q.text, _answer_top1(decision, k)),
            ambiguous=_ambiguous(q, target, items),
            top=by_id.get(decision.hits[0].id) if decision.hits else None,
        )


def _record(q: Question, answer: Answer, ctx: _Context) -> _Record:
    """Score one answer (and the no-gate baseline's) against the intended item's value."""
    return _Record(
        kind=q.kind,
        decision=answer.decision.decision,
        ambiguous=ctx.ambiguous,
        correct=parse_answer(answer.text, q.kind) == ctx.value,
        baseline_correct=parse_answer(ctx.baseline.text, q.kind) == ctx.value,
        answer=answer.text,
        top1_relevant=ctx.top is not None and relevant(q.named, ctx.top.attributes),
    )


def _probe(
    retriever: GatedRetriever, answerer: Answerer, question: str, text: str
) -> dict[str, Any]:
    decision = retriever.query(text)
    answer = answerer.answer(question, decision)
    return {
        "question": question,
        "query": text,
        "decision": decision.decision,
        "k_used": decision.k_used,
        "answer": answer.text,
    }


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def markdown_table(report: dict[str, Any]) -> str:
    """The coverage / risk table of :func:`evaluate_gated_answers`'s report, in markdown."""
    rows = [
        "| questions | n | ANSWER share / risk (top-1 matches) | WIDEN share / risk "
        "| CLARIFY share | gated coverage / risk | no gate (top-1) risk |",
        "|---|---|---|---|---|---|---|",
    ]
    groups = [("all", "all"), ("unambiguous", "unambiguous"), ("ambiguous", "ambiguous")]
    groups += [(f"kind: {k}", k) for k in QUESTION_KINDS]
    for label, key in groups:
        r = report[key] if key in report else report["by_kind"][key]
        if not r["n"]:
            continue
        rows.append(
            f"| {label} | {r['n']} | {_pct(r['answer']['share'])} / {_pct(r['answer']['risk'])} "
            f"({_pct(r['answer']['top1_relevant'])}) "
            f"| {_pct(r['widen']['share'])} / {_pct(r['widen']['risk'])} "
            f"| {_pct(r['clarify']['share'])} | {_pct(r['coverage'])} / {_pct(r['risk'])} "
            f"| {_pct(r['baseline']['risk'])} |"
        )
    rows += ["", "| ambiguous query | decision | k | answer |", "|---|---|---|---|"]
    rows += [
        f'| {p["question"]} (retrieval: "{p["query"]}") | {p["decision"].upper()} '
        f"| {p['k_used']} | {p['answer']} |"
        for p in report["ambiguous_probe"]
    ]
    return "\n".join(rows)


# -- comparing gate variants: store ρ / calibrated ρ, with and without consensus -----------------

#: ``(name, calibrated ρ, consensus)`` per compared variant, in table order.
GATE_VARIANTS: Final = (
    ("gate, store ρ", False, False),
    ("gate, store ρ + consensus", False, True),
    ("gate, calibrated ρ", True, False),
    ("gate, calibrated ρ + consensus", True, True),
)
#: The kind each ambiguous probe question asks (for the consensus normaliser).
_PROBE_KINDS: Final = ("color", "shape", "position", "size", "color")


class _CachedAnswerer:
    """Memoises an answerer on what its prompt depends on (variants share most calls)."""

    def __init__(self, inner: Answerer) -> None:
        self.inner = inner
        self.cache: dict[tuple[Any, ...], Answer] = {}
        self.calls = 0

    def answer(self, question: str, decision: GateDecision) -> Answer:
        key = (
            question,
            decision.decision,
            decision.k_used,
            tuple(h.id for h in decision.evidence),
            decision.clarification,
        )
        if key not in self.cache:
            self.calls += 1
            self.cache[key] = self.inner.answer(question, decision)
        return dataclasses.replace(self.cache[key], decision=decision)


def _normaliser(kind: str) -> Callable[[str], str | None]:
    def read(text: str) -> str | None:
        value = parse_answer(text, kind)
        return None if value is None else str(value)

    return read


def _split_items(data_dir: str | Path, split: str) -> list[ShapeItem]:
    items = [it for it in load_manifest(Path(data_dir)) if it.split == split]
    if not items:
        raise InvalidInputError(f"{data_dir} has no {split}-split items; generate a larger corpus")
    return items


def _calibrate_on_split(
    data_dir: str | Path,
    split: str,
    *,
    n_questions: int,
    seed: int,
    referents: Sequence[Referent],
    config: RadiusCalibrationConfig,
    encoder: Any,
) -> tuple[GateCalibration, dict[str, Any]]:
    """Calibrate ρ with a store of ``split``'s items and their own questions (top-1 labels)."""
    items = _split_items(data_dir, split)
    queries: list[tuple[str, frozenset[str]]] = []
    for referent in referents:
        for _, q in _questions(items, n_questions, seed, referent):
            right = frozenset(it.id for it in items if relevant(q.named, it.attributes))
            queries.append((q.retrieval_text, right))
    with _gallery(items, encoder, "luma-gate-cal-") as luma:
        store_rho = dict(luma.rho)
        cal, radii = calibrate_gate(luma, queries, config)
    finite = np.asarray([r for r in radii if math.isfinite(r)])
    info = {
        "split": split,
        "n_items": len(items),
        "n_queries": len(queries),
        "seed": seed,
        "referents": list(referents),
        "store_rho": store_rho,
        "critical_radius_median": float(np.median(finite)) if finite.size else None,
        **cal.to_dict(),
    }
    return cal, info


def _groups(records: Sequence[_Record]) -> dict[str, Any]:
    return {
        "all": _rates(records),
        "unambiguous": _rates([r for r in records if not r.ambiguous]),
        "ambiguous": _rates([r for r in records if r.ambiguous]),
        "no_shape": _rates([r for r in records if r.kind != "shape"]),
        "by_kind": {k: _rates([r for r in records if r.kind == k]) for k in QUESTION_KINDS},
    }


def compare_gates(
    data_dir: str | Path,
    answerer: Answerer | None = None,
    *,
    n_questions: int = 400,
    seed: int = 0,
    referents: Sequence[Referent] = ("full", "random"),
    gate: GateConfig | None = None,
    encoder: Any = "luma-tiny",
    calibration_split: str = "val",
    calibration_questions: int = 400,
    calibration_seed: int = 1,
    calibration: RadiusCalibrationConfig | None = None,
    consensus: ConsensusConfig | None = None,
) -> dict[str, Any]:
    """Coverage / risk of the :data:`GATE_VARIANTS` on the test split's questions.

    ρ is calibrated on ``calibration_split`` (default ``val``: other items, other shape/colour
    combinations, questions drawn with ``calibration_seed``), never on the test items; the
    calibration target is the top-1 matching the referent, for every referent kind asked.

    Returns:
        ``{"calibration", "referents": {referent: {variant: groups}}, "probe", ...}``, where
        ``groups`` holds :func:`_rates` dicts for all / unambiguous / ambiguous / no_shape
        questions and per kind.

    Raises:
        InvalidInputError: a split without items, or ``n_questions < 1``.
    """
    if n_questions < 1 or calibration_questions < 1:
        raise InvalidInputError("n_questions and calibration_questions must be >= 1")
    if calibration_split == "test":
        raise InvalidInputError("calibrate on a split other than the test split")
    _check_referents(referents)
    started = time.perf_counter()
    base = gate or GateConfig()
    cal, cal_info = _calibrate_on_split(
        data_dir,
        calibration_split,
        n_questions=calibration_questions,
        seed=calibration_seed,
        referents=referents,
        config=calibration or RadiusCalibrationConfig(),
        encoder=encoder,
    )
    items = _split_items(data_dir, "test")
    bot = _CachedAnswerer(answerer or _default_answerer())
    ccfg = consensus or ConsensusConfig()
    agree: dict[str, ConsensusAnswerer] = {
        k: ConsensusAnswerer(bot, ccfg, normalise=_normaliser(k)) for k in QUESTION_KINDS
    }
    out: dict[str, Any] = {
        "calibration": cal_info,
        "gate": dataclasses.asdict(base),
        "consensus": dataclasses.asdict(ccfg),
        "n_gallery": len(items),
        "n_questions": n_questions,
        "seed": seed,
        "referents": {},
    }
    by_id = {it.id: it for it in items}
    with _gallery(items, encoder, "luma-gate-cmp-") as luma:
        gates = {
            False: GatedRetriever(luma, base, record_gaps=False),
            True: GatedRetriever(luma, cal.gate_config(base), record_gaps=False),
        }
        for referent in referents:
            records: dict[str, list[_Record]] = {name: [] for name, _, _ in GATE_VARIANTS}
            for target, q in _questions(items, n_questions, seed, referent):
                decisions = {c: g.query(q.retrieval_text) for c, g in gates.items()}
                ctx = _Context.of(q, target, decisions[False], bot, base.k, items, by_id)
                for name, calibrated, checked in GATE_VARIANTS:
                    who: Answerer = agree[q.kind] if checked else bot
                    records[name].append(_record(q, who.answer(q.text, decisions[calibrated]), ctx))
            out["referents"][referent] = {n: _groups(r) for n, r in records.items()}
        out["probe"] = [
            _compare_probe(gates, agree[kind], bot, question, text)
            for (question, text), kind in zip(AMBIGUOUS_QUERIES, _PROBE_KINDS, strict=True)
        ]
    out["answerer_calls"] = bot.calls
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def _compare_probe(
    gates: dict[bool, GatedRetriever],
    checked: Answerer,
    plain: Answerer,
    question: str,
    text: str,
) -> dict[str, Any]:
    decisions = {c: g.query(text) for c, g in gates.items()}
    row: dict[str, Any] = {"question": question, "query": text}
    for name, calibrated, use in GATE_VARIANTS:
        ans = (checked if use else plain).answer(question, decisions[calibrated])
        row[name] = {"decision": ans.decision.decision, "answer": ans.text}
    return row


def _cell(r: dict[str, Any], name: str) -> str:
    part = r[name]
    return f"{_pct(part['share'])} / {_pct(part['risk'])}"


def compare_tables(report: dict[str, Any]) -> str:
    """Markdown tables of :func:`compare_gates`'s report."""
    cal = report["calibration"]
    lines = [
        f"Calibration ({cal['split']} split: {cal['n_items']} items, {cal['n_queries']} "
        f"queries, seed {cal['seed']}; α = {cal['alpha']}, δ = {cal['delta']}): "
        f"ρ = {cal['rho']:.4f} (store ρ_text = {cal['store_rho'].get('text', float('nan')):.4f}); "
        f"at that ρ {cal['n_certified']} calibration queries are Safe@1, {cal['n_errors']} "
        f"with a wrong top-1 (risk {_pct(cal['risk'])}, p = {cal['p_value']}), "
        f"feasible: {cal['feasible']}.",
        "",
    ]
    for referent, variants in report["referents"].items():
        lines += [
            f"Referents: {referent} (n = {next(iter(variants.values()))['all']['n']})",
            "",
            "| variant | ANSWER share / risk (top-1 matches) | ANSWER risk w/o shape "
            "| WIDEN share / risk "
            "| CLARIFY share | gated coverage / risk | no gate (top-1) risk "
            "| ambiguous: ANSWER share / risk |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, g in variants.items():
            a, ns, amb = g["all"], g["no_shape"], g["ambiguous"]
            lines.append(
                f"| {name} | {_cell(a, 'answer')} ({_pct(a['answer']['top1_relevant'])}) "
                f"| {_pct(ns['answer']['risk'])} "
                f"(n {ns['answer']['n']}) | {_cell(a, 'widen')} | {_pct(a['clarify']['share'])} "
                f"| {_pct(a['coverage'])} / {_pct(a['risk'])} | {_pct(a['baseline']['risk'])} "
                f"| {_cell(amb, 'answer') if amb['n'] else '–'} |"
            )
        lines += [
            "",
            "| kind (n) | "
            + " | ".join(f"{name}: ANSWER share / risk" for name in variants)
            + " | no gate risk |",
            "|---|" + "---|" * (len(variants) + 1),
        ]
        for kind in QUESTION_KINDS:
            first = next(iter(variants.values()))["by_kind"][kind]
            cells = " | ".join(_cell(g["by_kind"][kind], "answer") for g in variants.values())
            lines.append(f"| {kind} ({first['n']}) | {cells} | {_pct(first['baseline']['risk'])} |")
        lines.append("")
    names = [name for name, _, _ in GATE_VARIANTS]
    lines += [
        "| ambiguous query | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for p in report["probe"]:
        cells = " | ".join(p[n]["decision"].upper() for n in names)
        lines.append(f'| {p["question"]} ("{p["query"]}") | {cells} |')
    return "\n".join(lines)


# -- verification: gate alone / + verified evidence / + abstention on unreliable kinds ----------

#: ``(name, verify, abstain)`` per compared variant, in table order.
VERIFY_VARIANTS: Final = (
    ("gate", False, False),
    ("gate + abstention", False, True),
    ("gate + verification", True, False),
    ("gate + verification + abstention", True, True),
)


class _Abstaining:
    """The gate alone with abstention only: unreliable kinds go to the verifying answerer
    (which refuses them before verifying anything), the rest straight to the answerer."""

    def __init__(self, inner: VerifyingAnswerer) -> None:
        self.inner = inner

    def answer(self, question: str, decision: GateDecision) -> Answer:
        kind = self.inner.kind_of(question)
        if decision.decision != "clarify" and self.inner.unreliable(kind):
            return self.inner.answer(question, decision)
        return self.inner.answerer.answer(question, decision)


def compare_verification(
    data_dir: str | Path,
    answerer: Answerer | None = None,
    *,
    n_questions: int = 400,
    seed: int = 0,
    referents: Sequence[Referent] = ("full", "random"),
    gate: GateConfig | None = None,
    encoder: Any = "luma-tiny",
    verify: VerifyConfig | None = None,
    kind_accuracy: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Coverage / risk of the :data:`VERIFY_VARIANTS` on the test split's questions.

    The verifier is an :class:`~luma_rag.answer.verify.AttributeVerifier` over the same
    answerer; reliable kinds and abstention read the per-kind **val** accuracy of the
    answerer's checkpoint (``kind_accuracy`` overrides it), never the test questions.

    Returns:
        ``{"referents": {referent: {variant: groups}}, "probe", "kind_accuracy",
        "reliable_kinds", ...}`` with :func:`_groups` dicts per variant.

    Raises:
        InvalidInputError: no test split, ``n_questions < 1``, a bad referent, or no per-kind
            accuracy for the answerer.
    """
    from luma_rag.answer.verify import answerer_kind_accuracy

    if n_questions < 1:
        raise InvalidInputError(f"n_questions must be >= 1, got {n_questions}")
    _check_referents(referents)
    started = time.perf_counter()
    raw = answerer or _default_answerer()
    acc = kind_accuracy if kind_accuracy is not None else answerer_kind_accuracy(raw)
    if acc is None:
        raise InvalidInputError("no per-kind accuracy for the answerer: pass kind_accuracy=")
    base = gate or GateConfig()
    vcfg = verify or VerifyConfig()
    bot = _CachedAnswerer(raw)
    verifier = AttributeVerifier(bot, kind_accuracy=acc, min_accuracy=vcfg.min_kind_accuracy)
    plain_cfg = dataclasses.replace(vcfg, abstain_unreliable=False)
    abstain_cfg = dataclasses.replace(vcfg, abstain_unreliable=True)
    checked = VerifyingAnswerer(bot, verifier, plain_cfg, kind_accuracy=acc)
    strict = VerifyingAnswerer(bot, verifier, abstain_cfg, kind_accuracy=acc)
    variants: dict[str, Answerer] = {
        "gate": bot,
        "gate + abstention": _Abstaining(strict),
        "gate + verification": checked,
        "gate + verification + abstention": strict,
    }
    items = _split_items(data_dir, "test")
    by_id = {it.id: it for it in items}
    out: dict[str, Any] = {
        "gate": dataclasses.asdict(base),
        "verify": dataclasses.asdict(vcfg),
        "kind_accuracy": acc,
        "reliable_kinds": list(verifier.reliable_kinds),
        "n_gallery": len(items),
        "n_questions": n_questions,
        "seed": seed,
        "referents": {},
        "outcomes": {},
    }
    with _gallery(items, encoder, "luma-gate-verify-") as luma:
        retriever = GatedRetriever(luma, base, record_gaps=False)
        # The same gate, fetching the ranking k_verify deep for the verifier to look at.
        fetch_k = max(base.k, vcfg.k_verify)
        deep_retriever = GatedRetriever(
            luma, dataclasses.replace(base, fetch_k=fetch_k), record_gaps=False
        )
        for referent in referents:
            records: dict[str, list[_Record]] = {name: [] for name, _, _ in VERIFY_VARIANTS}
            outcomes: dict[str, dict[str, int]] = {name: {} for name, _, _ in VERIFY_VARIANTS}
            for target, q in _questions(items, n_questions, seed, referent):
                decision = retriever.query(q.retrieval_text)
                deep = deep_retriever.query(q.retrieval_text)
                ctx = _Context.of(q, target, decision, bot, base.k, items, by_id)
                for name, verifies, _ in VERIFY_VARIANTS:
                    ans = variants[name].answer(q.text, deep if verifies else decision)
                    info = ans.telemetry.get("verification") or {}
                    outcome = str(info.get("outcome", decision.decision))
                    outcomes[name][outcome] = outcomes[name].get(outcome, 0) + 1
                    records[name].append(_record(q, ans, ctx))
            out["referents"][referent] = {n: _groups(r) for n, r in records.items()}
            out["outcomes"][referent] = outcomes
        out["probe"] = []
        for question, text in AMBIGUOUS_QUERIES:
            decision = retriever.query(text)
            deep = deep_retriever.query(text)
            row: dict[str, Any] = {"question": question, "query": text}
            for name, verifies, _ in VERIFY_VARIANTS:
                ans = variants[name].answer(question, deep if verifies else decision)
                row[name] = {"decision": ans.decision.decision, "answer": ans.text}
            out["probe"].append(row)
    out["answerer_calls"] = bot.calls
    out["verifier_reads"] = verifier.reads
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def verification_tables(report: dict[str, Any]) -> str:
    """Markdown tables of :func:`compare_verification`'s report."""
    acc = ", ".join(f"{k} {v:.3f}" for k, v in report["kind_accuracy"].items())
    vcfg = report["verify"]
    lines = [
        f"Answerer per-kind val accuracy: {acc}; verified with: "
        f"{', '.join(report['reliable_kinds'])} (accuracy >= {vcfg['min_kind_accuracy']}); "
        f"top {vcfg['k_verify']} hits verified; {report['n_gallery']} test images, "
        f"{report['n_questions']} questions per referent (seed {report['seed']}).",
        "",
    ]
    for referent, variants in report["referents"].items():
        first = next(iter(variants.values()))["all"]
        lines += [
            f"Referents: {referent} (n = {first['n']}; no-gate baseline: coverage 100 %, "
            f"risk {_pct(first['baseline']['risk'])})",
            "",
            "| variant | ANSWER share / risk | WIDEN share / risk | CLARIFY share "
            "| answered coverage / risk | ANSWER correct | ambiguous: ANSWER share / risk |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, g in variants.items():
            a, amb = g["all"], g["ambiguous"]
            lines.append(
                f"| {name} | {_cell(a, 'answer')} | {_cell(a, 'widen')} "
                f"| {_pct(a['clarify']['share'])} | {_pct(a['coverage'])} / {_pct(a['risk'])} "
                f"| {_pct(a['answer']['accuracy_if_answered'])} "
                f"| {_cell(amb, 'answer') if amb['n'] else '–'} |"
            )
        lines += [
            "",
            "| kind (n) | "
            + " | ".join(f"{name}: answered coverage / risk" for name in variants)
            + " | no gate risk |",
            "|---|" + "---|" * (len(variants) + 1),
        ]
        for kind in QUESTION_KINDS:
            k0 = next(iter(variants.values()))["by_kind"][kind]
            cells = " | ".join(
                f"{_pct(g['by_kind'][kind]['coverage'])} / {_pct(g['by_kind'][kind]['risk'])}"
                for g in variants.values()
            )
            lines.append(f"| {kind} ({k0['n']}) | {cells} | {_pct(k0['baseline']['risk'])} |")
        outcomes = report.get("outcomes", {}).get(referent, {})
        if outcomes:
            lines += ["", "| variant | outcomes |", "|---|---|"]
            for name, counts in outcomes.items():
                shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                lines.append(f"| {name} | {shown} |")
        lines.append("")
    names = [name for name, _, _ in VERIFY_VARIANTS]
    lines += ["| ambiguous query | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for p in report["probe"]:
        cells = " | ".join(p[n]["decision"].upper() for n in names)
        lines.append(f'| {p["question"]} ("{p["query"]}") | {cells} |')
    return "\n".join(lines)


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _parser() -> argparse.ArgumentParser:
    d = GateConfig()
    p = argparse.ArgumentParser(
        prog="python -m luma_rag.answer.evaluate",
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

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        answerer = LlavaAnswerer(args.model or OFFLINE_LLAVA_MODEL, device="cpu", max_new_tokens=8)
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
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.verify:
        print(verification_tables(report))
    else:
        print(compare_tables(report) if args.compare else markdown_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
