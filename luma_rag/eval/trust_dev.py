"""The cheap dev loop of issue #17: every VLM call cached on disk, every rule re-scored in seconds.

Running the answerer is what makes a gate evaluation slow (the tiny LLaVA: about 0.5 s a call
on a shared CPU, about five calls a question). Decision rules only *read* those calls: the
yes-score of "Does this image show <referent>?" per (question, hit) and the answer text per
(question, hit). So:

1. :func:`collect` builds each gallery's store (the dev corpus's test split, its val split,
   and its train split cut into galleries of the test split's size — the dev corpus is never
   trained on), draws targeted questions, and keeps each question's gate decision and what
   makes an answer right (:class:`DevCase`); the off-topic questions
   (:data:`~luma_rag.eval.offtopic.OFF_TOPIC`) are gated over the test gallery;
2. :func:`prefill` asks every yes/no check of the top ``k`` hits and every answer from them,
   in big batches, through a :class:`~luma_rag.eval.gate_questions.CachedAnswerer` whose cache
   :class:`VlmCache` persists as JSON (keyed by the answerer's checkpoint: a retrained model
   starts a fresh cache);
3. :func:`replay` runs any answerer (a decision rule) over the cases with the cached calls.

Dev only: the corpus seed 6262 / question seed 6363 pair; the held-out pair is the lead's.

Command line (fills the cache, prints each rule's figures)::

    python -m luma_rag.datasets.shapes --out data/dev6262 --n 1200 --seed 6262
    python -m luma_rag.eval.trust_dev_search --data data/dev6262
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from luma_rag.answer.base import Answer, Answerer
from luma_rag.answer.gate import GateConfig, GateDecision, GatedRetriever
from luma_rag.answer.relevance_auto import store_relevance
from luma_rag.answer.verify_vlm import VlmVerifier, single_hit_decision
from luma_rag.datasets.attributes import relevant
from luma_rag.datasets.manifest import ShapeItem
from luma_rag.datasets.questions import Question, parse_answer
from luma_rag.eval.gate_questions import CachedAnswerer, gallery, questions, split_items, uncited
from luma_rag.eval.offtopic import OFF_TOPIC
from luma_rag.results import Hit

__all__ = [
    "DEV_TEST_SEED",
    "DevCase",
    "VlmCache",
    "collect",
    "dev_galleries",
    "figures",
    "model_tag",
    "prefill",
    "replay",
    "stage",
]

logger = logging.getLogger(__name__)

#: Question seed of the dev test split (the dev pair: corpus 6262, questions 6363).
DEV_TEST_SEED = 6363


@dataclasses.dataclass(frozen=True)
class DevCase:
    """One targeted (or off-topic) question, its gate decision and what a right answer is.

    Attributes:
        gallery: Which gallery (store) it was asked over ("test", "val", "train-3", ...).
        text: The question the answerer gets.
        decision: The gate's decision (queried with the referent; off-topic: the text).
        kind: The asked attribute (None: off-topic).
        value: The target's value of it (None: off-topic).
        target: The intended item's id (None: off-topic).
        matching: Ids of the gallery items the referent matches.
        good: Ids of the matching items whose value is the target's (answering from any of
            them is right unless ``ambiguous``).
        ambiguous: Matching items disagree on the asked attribute.
    """

    gallery: str
    text: str
    decision: GateDecision
    kind: str | None = None
    value: Any = None
    target: str | None = None
    matching: frozenset[str] = frozenset()
    good: frozenset[str] = frozenset()
    ambiguous: bool = False

    @property
    def off_topic(self) -> bool:
        """Whether the corpus cannot answer it."""
        return self.kind is None

    def right(self, text: str) -> bool:
        """Whether an answer text names the target's value."""
        return self.kind is not None and parse_answer(uncited(text), self.kind) == self.value


def model_tag(answerer: Any) -> str:
    """What identifies an answerer's replies: its checkpoint's hash when it has local weights."""
    inner = getattr(answerer, "inner", answerer)
    name = getattr(inner, "model_id", None)
    files: list[Path] = []
    if isinstance(name, str):
        with contextlib.suppress(Exception):  # a model that is not local: tagged by name
            from luma_rag.encoders.registry import resolve_model

            root = Path(resolve_model(name, default_backend="llava").location)
            files = sorted(root.glob("*.safetensors")) if root.is_dir() else []
    if not files:
        return f"{type(inner).__name__}:{name}"
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return f"{type(inner).__name__}:{name}:{digest.hexdigest()[:16]}"


class VlmCache:
    """A :class:`CachedAnswerer` (``top_only``) whose replies persist as JSON.

    Each entry is one VLM call: the prompt, the image (hit id) it was shown, the reply text,
    the P("yes") it reported (``telemetry["verdict_yes"]``) and the probability of its reply
    (``telemetry["answer_confidence"]``), each when any. A file written for
    another ``tag`` (another checkpoint) is ignored.
    """

    def __init__(self, bot: CachedAnswerer, path: str | Path, tag: str) -> None:
        self.bot, self.path, self.tag = bot, Path(path), tag

    def load(self) -> int:
        """Read the file into the answerer's cache; returns how many entries were read."""
        if not self.path.exists():
            return 0
        data = json.loads(self.path.read_text())
        if data.get("tag") != self.tag:
            logger.warning("vlm cache %s is for %s, not %s: ignored", self.path, data.get("tag"),
                           self.tag)  # fmt: skip
            return 0
        for question, top, text, yes, *more in data["entries"]:
            telemetry = {} if yes is None else {"verdict_yes": yes}
            if more and more[0] is not None:
                telemetry["answer_confidence"] = more[0]
            answer = Answer(text, single_hit_decision(_stub(top)), [], telemetry)
            self.bot.cache[(question, False, top)] = answer
        return len(data["entries"])

    def save(self) -> None:
        """Write the answerer's cache (its non-CLARIFY entries)."""
        entries = [
            [q, top, a.text, a.telemetry.get("verdict_yes"), a.telemetry.get("answer_confidence")]
            for (q, clarify, top), a in self.bot.cache.items()
            if not clarify
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"tag": self.tag, "entries": entries}))
        tmp.replace(self.path)


def _stub(hit_id: str | None) -> Hit:
    return Hit(str(hit_id), 0.0, "hot", 0, "image")


def dev_galleries(data_dir: str | Path, size: int | None = None) -> dict[str, list[ShapeItem]]:
    """``{"test": ..., "val": ..., "train-0": ..., ...}``: the test and val splits, and the
    train split cut into galleries of ``size`` items (default: the test split's size)."""
    test, val = split_items(data_dir, "test"), split_items(data_dir, "val")
    train = split_items(data_dir, "train")
    size = size or len(test)
    out = {"test": test, "val": val}
    for i in range(len(train) // size):
        out[f"train-{i}"] = train[i * size : (i + 1) * size]
    return out


def _case(name: str, target: ShapeItem, q: Question, d: GateDecision,
          items: Sequence[ShapeItem]) -> DevCase:  # fmt: skip
    value = getattr(target.attributes, q.kind)
    matching = [it for it in items if relevant(q.named, it.attributes)]
    good = frozenset(it.id for it in matching if getattr(it.attributes, q.kind) == value)
    return DevCase(
        name, q.text, d, q.kind, value, target.id, frozenset(it.id for it in matching), good,
        ambiguous=len(good) < len(matching),
    )  # fmt: skip


def collect(
    data_dir: str | Path,
    plan: dict[str, tuple[int, int]],
    *,
    encoder: Any = "luma-tiny",
    off_topic: bool = True,
) -> list[DevCase]:
    """Gate decisions for ``plan``'s galleries: ``{gallery name: (n questions, seed)}``.

    The off-topic questions are gated over the ``"test"`` gallery (when it is planned and
    ``off_topic``). Galleries are named as :func:`dev_galleries` names them; ``"name@tag"``
    is gallery ``name`` again, with its own questions.
    """
    galleries = dev_galleries(data_dir)
    cfg = GateConfig(k=10, k_max=10)
    cases: list[DevCase] = []
    for name, (n, seed) in plan.items():
        items = galleries[name.split("@")[0]]  # "val@cal": the val gallery, other questions
        with _gate(items, encoder, cfg) as gate:
            for target, q in questions(items, n, seed, "full"):
                cases.append(_case(name, target, q, gate.query(q.retrieval_text), items))
            if off_topic and name == "test":
                cases += [DevCase(name, t, gate.query(t)) for t in OFF_TOPIC]
        logger.info("trust_dev: gallery %s gated (%d cases so far)", name, len(cases))
    return cases


@contextlib.contextmanager
def _gate(items: Sequence[ShapeItem], encoder: Any, cfg: GateConfig) -> Iterator[GatedRetriever]:
    with gallery(items, encoder, "luma-trust-dev-") as luma:
        yield GatedRetriever(luma, cfg, record_gaps=False, relevance=store_relevance(luma))


def prefill(
    bot: CachedAnswerer,
    checker: VlmVerifier,
    cases: Sequence[DevCase],
    k: int,
    *,
    answer_floor: float = 0.1,
) -> None:
    """Ask every yes/no check of the top ``k`` hits of each case's decision (NOT_IN_MEMORY
    aside: nothing verifies it), then every answer a rule may read — from the top hit, and
    from each hit whose yes-score reaches ``answer_floor`` — each prompt once, in batches."""
    pools = [
        (c.text, list(c.decision.hits[:k]))
        for c in cases
        if c.decision.hits and c.decision.decision != "not_in_memory"
    ]
    yes = iter(checker.scores([(q, h) for q, hits in pools for h in hits]))
    asks = []
    for q, hits in pools:
        for i, (h, p) in enumerate(zip(hits, yes, strict=False)):
            if i == 0 or p >= answer_floor:
                asks.append((q, single_hit_decision(h)))
    bot.answer_many(asks)


def replay(cases: Sequence[DevCase], answerer: Answerer) -> list[Answer]:
    """``answerer``'s answer per case (with a cached bot underneath: seconds)."""
    return [answerer.answer(c.text, c.decision) for c in cases]


def _answered_from(answer: Answer) -> str | None:
    info = answer.telemetry.get("verification") or {}
    if "answered_from" in info:
        return str(info["answered_from"])
    ev = answer.decision.evidence
    return ev[0].id if ev else None


def stage(case: DevCase, answer: Answer, k: int) -> str | None:
    """Which stage made an ANSWER / WIDEN wrong (None: right, or not answered).

    ``"off-topic"`` (an off-topic question answered at all); ``"retrieval"`` (no item whose
    value is right among the top ``k`` hits); ``"ambiguous"`` (answered from an item the
    referent also matches, with another value); ``"verification"`` (answered from an item the
    referent does not match although a right one was in the top ``k``); ``"answer text"`` (from a
    right item, read wrong)."""
    if answer.decision.decision not in ("answer", "widen"):
        return None
    if case.off_topic:
        return "off-topic"
    if case.right(answer.text):
        return None
    lead = _answered_from(answer)
    if lead in case.good:
        return "answer text"
    if not any(h.id in case.good for h in case.decision.hits[:k]):
        return "retrieval"
    return "ambiguous" if lead in case.matching else "verification"


def figures(cases: Sequence[DevCase], answers: Sequence[Answer], k: int) -> dict[str, Any]:
    """Coverage, risk (all, ANSWER, WIDEN), answered share per kind, off-topic refused, and
    the wrong answers per stage (:func:`stage`)."""
    on = [(c, a) for c, a in zip(cases, answers, strict=True) if not c.off_topic]
    off = [a for c, a in zip(cases, answers, strict=True) if c.off_topic]
    out: dict[str, Any] = {"n": len(on)}
    for name in ("answer", "widen"):
        part = [c.right(a.text) for c, a in on if a.decision.decision == name]
        out[name] = {"n": len(part), "wrong": part.count(False)}
    done = out["answer"]["n"] + out["widen"]["n"]
    wrong = out["answer"]["wrong"] + out["widen"]["wrong"]
    out["coverage"] = done / len(on) if on else None
    out["risk"] = wrong / done if done else None
    out["answered_by_kind"] = {}
    for kind in sorted({str(c.kind) for c, _ in on}):
        sub = [a.decision.decision in ("answer", "widen") for c, a in on if c.kind == kind]
        out["answered_by_kind"][kind] = sum(sub) / len(sub)
    out["off_topic"] = {
        "n": len(off),
        "refused": sum(a.decision.decision not in ("answer", "widen") for a in off),
    }
    stages = [stage(c, a, k) for c, a in zip(cases, answers, strict=True)]
    out["wrong_by_stage"] = {s: stages.count(s) for s in sorted({s for s in stages if s})}
    return out
