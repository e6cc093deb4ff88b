"""Markdown tables of a gate-variant report (:mod:`luma_rag.eval.gate_variants`): one writer.

Per referent kind: one row per variant (ANSWER / WIDEN / CLARIFY shares and risks, coverage
and risk, the no-gate baseline, the ambiguous questions), a per-kind table, the verification
outcomes when a variant verified, then the ambiguous probe queries. A calibration or
verification line heads the tables when the report carries one.
"""

from __future__ import annotations

from typing import Any

from luma_rag.datasets.questions import QUESTION_KINDS

__all__ = ["gate_tables"]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _cell(r: dict[str, Any], name: str) -> str:
    part = r[name]
    return f"{_pct(part['share'])} / {_pct(part['risk'])}"


def _header(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    cal = report.get("calibration")
    if cal:
        store_rho = cal["store_rho"].get("text", float("nan"))
        lines += [
            f"Calibration ({cal['split']} split: {cal['n_items']} items, {cal['n_queries']} "
            f"queries, seed {cal['seed']}; α = {cal['alpha']}, δ = {cal['delta']}): "
            f"ρ = {cal['rho']:.4f} (store ρ_text = {store_rho:.4f}); "
            f"at that ρ {cal['n_certified']} calibration queries are Safe@1, {cal['n_errors']} "
            f"with a wrong top-1 (risk {_pct(cal['risk'])}, p = {cal['p_value']}), "
            f"feasible: {cal['feasible']}.",
            "",
        ]
    if "kind_accuracy" in report:
        acc = ", ".join(f"{k} {v:.3f}" for k, v in report["kind_accuracy"].items())
        vcfg = report["verify"]
        lines += [
            f"Answerer per-kind val accuracy: {acc}; verified with: "
            f"{', '.join(report['reliable_kinds'])} (accuracy >= {vcfg['min_kind_accuracy']}); "
            f"top {vcfg['k_verify']} hits verified.",
            "",
        ]
    gate = report.get("gate", {})
    lines += [
        f"{report.get('n_gallery', '?')} test images, {report.get('n_questions', '?')} questions "
        f"per referent kind (seed {report.get('seed', '?')}); gate k = {gate.get('k', '?')}, "
        f"k_max = {gate.get('k_max', '?')}.",
        "",
    ]
    return lines


def _variant_rows(variants: dict[str, Any]) -> list[str]:
    lines = [
        "| variant | ANSWER share / risk (top-1 matches) | ANSWER risk w/o shape "
        "| WIDEN share / risk | CLARIFY share | gated coverage / risk | ANSWER correct "
        "| no gate (top-1) risk | ambiguous: ANSWER share / risk |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, g in variants.items():
        a, ns, amb = g["all"], g["no_shape"], g["ambiguous"]
        lines.append(
            f"| {name} | {_cell(a, 'answer')} ({_pct(a['answer']['top1_relevant'])}) "
            f"| {_pct(ns['answer']['risk'])} (n {ns['answer']['n']}) | {_cell(a, 'widen')} "
            f"| {_pct(a['clarify']['share'])} | {_pct(a['coverage'])} / {_pct(a['risk'])} "
            f"| {_pct(a['answer']['accuracy_if_answered'])} | {_pct(a['baseline']['risk'])} "
            f"| {_cell(amb, 'answer') if amb['n'] else '–'} |"
        )
    return lines


def _kind_rows(variants: dict[str, Any]) -> list[str]:
    lines = [
        "| kind (n) | "
        + " | ".join(f"{name}: ANSWER share / risk; coverage / risk" for name in variants)
        + " | no gate risk |",
        "|---|" + "---|" * (len(variants) + 1),
    ]
    for kind in QUESTION_KINDS:
        first = next(iter(variants.values()))["by_kind"][kind]
        cells = " | ".join(
            f"{_cell(g['by_kind'][kind], 'answer')}; "
            f"{_pct(g['by_kind'][kind]['coverage'])} / {_pct(g['by_kind'][kind]['risk'])}"
            for g in variants.values()
        )
        lines.append(f"| {kind} ({first['n']}) | {cells} | {_pct(first['baseline']['risk'])} |")
    return lines


def _outcome_rows(outcomes: dict[str, dict[str, int]]) -> list[str]:
    plain = {"answer", "widen", "clarify"}
    if all(set(counts) <= plain for counts in outcomes.values()):
        return []  # nothing verified: the outcomes are the decisions shown above
    lines = ["", "| variant | outcomes |", "|---|---|"]
    for name, counts in outcomes.items():
        lines.append(f"| {name} | {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))} |")
    return lines


def gate_tables(report: dict[str, Any]) -> str:
    """The markdown tables of any :mod:`luma_rag.eval.gate_variants` report.

    Args:
        report: What :func:`~luma_rag.eval.gate_variants.run_variants` (or one of its
            presets) returned.

    Returns:
        Markdown text: header lines, per referent kind a variant table, a per-kind table and
        the verification outcomes (if any), then the ambiguous-probe table.
    """
    lines = _header(report)
    names: list[str] = []
    for referent, variants in report["referents"].items():
        names = list(variants)
        first = next(iter(variants.values()))["all"]
        lines += [f"Referents: {referent} (n = {first['n']})", ""]
        lines += [*_variant_rows(variants), "", *_kind_rows(variants)]
        lines += _outcome_rows(report.get("outcomes", {}).get(referent, {}))
        lines.append("")
    lines += [
        "| ambiguous query | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for p in report["probe"]:
        cells = " | ".join(f"{p[n]['decision'].upper()} (k {p[n]['k_used']})" for n in names)
        lines.append(f'| {p["question"]} ("{p["query"]}") | {cells} |')
    return "\n".join(lines)
