"""Follow-up questions answered from earlier turns, on held-out LUMA-Shapes.

Per session: three questions about three gallery items of distinct (colour, shape) ("the small
red circle on the left"), then one follow-up per question that refers back ("show me the red
circle again", "which circle did you find before?", ...). A follow-up is right when the item
its answer rests on (the first cited item that is not a turn) is the item the original answer
rested on, and the answer is not a CLARIFY. Also one *unfounded* follow-up per session (cue
words, but about a (colour, shape) never discussed): how often is it wrongly answered from a
turn? Memory on vs. off (``ConversationConfig(enabled=False)``, i.e. the plain gate), with
``min_score`` chosen on a validation seed to maximise (right − unfounded answered from a turn).

``python -m luma_rag.eval.conversation --sessions 60 --seed 5404 --val-seed 5202``
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from luma_rag.answer import Answer, EvidenceAnswerer, GateConfig, GatedRetriever
from luma_rag.conversation import TURN_MODALITY, Conversation, ConversationConfig, TurnMemory
from luma_rag.datasets import ShapeItem, generate, load_manifest
from luma_rag.engine import Luma
from luma_rag.eval.composite import wilson_interval

__all__ = ["evaluate_followups", "main"]

logger = logging.getLogger(__name__)

WHERE: Final = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}
FOLLOWUPS: Final = (
    "show me the {color} {shape} again",
    "which {shape} did you find before?",
    "the {color} one you showed earlier",
    "what was the {size} {shape} you found?",
)
MIN_SCORES: Final = (-1.0, 0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _question(it: ShapeItem) -> str:
    a = it.attributes
    return f"the {a.size} {a.color} {a.shape} {WHERE[a.position]}"


def _followup(it: ShapeItem, j: int) -> str:
    a = it.attributes
    return FOLLOWUPS[j % len(FOLLOWUPS)].format(color=a.color, shape=a.shape, size=a.size)


def _item_of(answer: Answer) -> str | None:
    """The item an answer rests on: its first cited non-turn item (None for CLARIFY)."""
    if answer.decision.decision == "clarify":
        return None
    return next((c.id for c in answer.citations if c.modality != TURN_MODALITY), None)


def _sessions(items: Sequence[ShapeItem], n: int, seed: int) -> list[tuple[list[int], int]]:
    """n sessions: three items of distinct (colour, shape), plus one never-discussed item."""
    rng = np.random.default_rng(seed)
    out: list[tuple[list[int], int]] = []
    while len(out) < n:
        pick = rng.choice(len(items), size=4, replace=False).tolist()
        combos = {(items[i].attributes.color, items[i].attributes.shape) for i in pick}
        if len(combos) == 4:
            out.append((pick[:3], pick[3]))
    return out


@dataclass(frozen=True)
class _FollowUp:
    """One follow-up, answered both ways: from the best earlier turn, and by the store."""

    expected: str | None  # the item the original answer rested on (None: unfounded)
    turn_score: float  # cosine of the best earlier turn (-inf: no turn decision)
    from_turn: str | None  # the item the turn answer rests on
    from_store: str | None  # the item the plain gate's answer rests on


def _observe(
    luma: Luma, items: Sequence[ShapeItem], sessions: Sequence[tuple[list[int], int]]
) -> list[_FollowUp]:
    """Ask each session's questions (remembered), then answer each follow-up both ways.

    Mirrors :meth:`Conversation.ask` for a question that refers back: the turn answer is used
    when the gate over earlier turns has evidence scoring at least ``min_score``, so one pass
    serves every threshold. Follow-ups are not remembered (each comes right after the three
    questions of its session).
    """
    out: list[_FollowUp] = []
    store_gate = GatedRetriever(luma, GateConfig(), record_gaps=False)
    with TurnMemory(luma, ConversationConfig()) as memory:
        memory.forget()
        for s, (topic, other) in enumerate(sessions):
            chat = Conversation(luma, EvidenceAnswerer(), session=f"s{s}", memory=memory)
            firsts = [_item_of(chat.ask(_question(items[i]))) for i in topic]
            asks: list[tuple[str | None, str]] = [
                (first, _followup(items[i], s + j))
                for j, (i, first) in enumerate(zip(topic, firsts, strict=True))
                if first is not None
            ]
            asks.append((None, _followup(items[other], s)))
            for expected, question in asks:
                if not memory.config.refers_back(question):
                    raise RuntimeError(f"follow-up template without a cue: {question!r}")
                decision = memory.recall(chat.session, question)
                turn_item, score = None, -math.inf
                if decision is not None and decision.evidence:
                    turn_item = _item_of(chat._from_turns(decision))
                    score = decision.evidence[0].score
                plain = EvidenceAnswerer().answer(question, store_gate.query(question))
                out.append(_FollowUp(expected, score, turn_item, _item_of(plain)))
    return out


def _score(observed: Sequence[_FollowUp], min_score: float | None) -> dict[str, Any]:
    """Figures with memory at ``min_score`` (None: memory off, the plain gate)."""
    founded = [f for f in observed if f.expected is not None]
    unfounded = [f for f in observed if f.expected is None]

    def answer(f: _FollowUp) -> tuple[str | None, bool]:
        use = min_score is not None and f.turn_score >= min_score
        return (f.from_turn, True) if use else (f.from_store, False)

    got = [answer(f) for f in founded]
    right = sum(item == f.expected for (item, _), f in zip(got, founded, strict=True))
    n = len(founded)
    lo, hi = wilson_interval(right, n)
    return {
        "followups": n,
        "right": right / n if n else None,
        "right_ci95": [lo, hi],
        "answered": sum(item is not None for item, _ in got) / n if n else None,
        "from_turn": sum(turn for _, turn in got) / n if n else None,
        "unfounded": len(unfounded),
        "unfounded_from_turn": (
            sum(answer(f)[1] for f in unfounded) / len(unfounded) if unfounded else None
        ),
    }


def evaluate_followups(
    sessions: int = 60,
    seed: int = 5404,
    val_seed: int = 5202,
    *,
    gallery: int = 150,
    encoder: str = "luma-tiny",
) -> dict[str, Any]:
    """Choose ``min_score`` on ``val_seed``, then report memory on / off on ``seed``."""
    out: dict[str, Any] = {"config": {"sessions": sessions, "seed": seed, "val_seed": val_seed,
                                      "gallery": gallery, "encoder": encoder}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name, corpus_seed in (("val", val_seed), ("test", seed)):
            root = Path(tmp) / name
            corpus = generate(root / "corpus", n=gallery, seed=corpus_seed, size=64, workers=1)
            items = load_manifest(corpus)
            with Luma.open(root / "store", encoder=encoder) as luma:
                luma.ingest_images(
                    [it.image_path for it in items],
                    captions=[it.caption for it in items],
                    metadatas=[it.attributes.as_dict() for it in items],
                    ids=[it.id for it in items],
                )
                observed = _observe(luma, items, _sessions(items, sessions, corpus_seed))
            if name == "val":
                grid = {m: _score(observed, m) for m in MIN_SCORES}
                # right follow-ups minus unfounded ones answered from a turn; ties: stricter
                best = max(
                    MIN_SCORES,
                    key=lambda m: (
                        (grid[m]["right"] or 0.0) - (grid[m]["unfounded_from_turn"] or 0.0),
                        m,
                    ),
                )
                out["val"] = {str(m): r for m, r in grid.items()}
                out["min_score"] = best
            else:
                out["test"] = {"memory": _score(observed, out["min_score"]),
                               "no_memory": _score(observed, None)}  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the follow-up evaluation and print the figures (JSON with ``--out``)."""
    p = argparse.ArgumentParser(prog="python -m luma_rag.eval.conversation", description=__doc__)
    p.add_argument("--sessions", type=int, default=60)
    p.add_argument("--seed", type=int, default=5404)
    p.add_argument("--val-seed", type=int, default=5202)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    res = evaluate_followups(args.sessions, args.seed, args.val_seed)
    print("min_score chosen on validation:", res["min_score"])
    for name, r in res["test"].items():
        print(name, json.dumps(r))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "conversation.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
