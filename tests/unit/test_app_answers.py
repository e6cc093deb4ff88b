"""What the chat app answers from and shows: each linked group read through its picture
(luma_rag/app/group_picture.py), the picture-only verified path
(luma_rag/app/visual_verifier.py), the text a question is searched with, ρ and where it came
from in the telemetry panel, and the start-up timer (luma_rag/app/time_to_serve.py)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from luma_rag import Luma
from luma_rag.answer import EvidenceAnswerer, GateConfig
from luma_rag.answer.verify_vlm import single_hit_decision
from luma_rag.app.group_picture import pictures_for_groups
from luma_rag.results import Hit, QueryResult
from tests.unit.test_app import make_encoder, open_shapes_store


def _hit(id_: str, modality: str, doc: str | None, score: float) -> Hit:
    meta = {} if doc is None else {"doc_id": doc}
    source = f"/media/{id_}.png" if modality == "image" else None
    return Hit(id_, score, "hot", 0, modality, meta, f"text of {id_}", source)


def _grounded():  # type: ignore[no-untyped-def]
    from luma_rag.relevance import RelevanceVerdict

    return RelevanceVerdict(True, "relevant", 0.9, 0.1, 1.0, 0.5, "calibrated")


def _decision(kind: str, hits: list[Hit]):
    base = single_hit_decision(hits[0])
    return dataclasses.replace(base, decision=kind, evidence=tuple(hits), hits=tuple(hits))


class _Search:
    """A stand-in for the filtered query: the group's members, best first."""

    def __init__(self, members: list[Hit]) -> None:
        self.members = members
        self.calls: list[tuple[dict[str, object], int]] = []

    def __call__(self, filters: dict[str, object], k: int) -> QueryResult:
        self.calls.append((filters, k))
        hits = [h for h in self.members if h.metadata.get("doc_id") == filters["doc_id"]]
        return QueryResult(hits=hits[:k], telemetry=None, certificate=None)  # type: ignore[arg-type]


def test_each_group_is_read_through_its_picture_at_its_best_rank() -> None:
    """Captions of docs A and B rank first; A's picture is among the hits, B's is fetched with
    the group filter. Each group appears once, by its picture, at its caption's rank and
    score; the link key is gone from what a clarifying question would read."""
    cap_a, cap_b = _hit("a-caption", "text", "a", 0.9), _hit("b-caption", "text", "b", 0.8)
    pic_a, pic_b = _hit("a", "image", "a", 0.4), _hit("b", "image", "b", 0.3)
    loose = _hit("t", "text", None, 0.35)
    search = _Search([cap_b, pic_b])
    hits = [cap_a, cap_b, pic_a, loose]
    out = pictures_for_groups(_decision("clarify", hits), "doc_id", search)
    assert [h.id for h in out.hits] == ["a", "b", "t"]
    assert [h.score for h in out.hits] == [0.9, 0.8, 0.35]
    assert [h.modality for h in out.hits] == ["image", "image", "text"]
    assert all("doc_id" not in h.metadata for h in out.hits[:2])
    assert search.calls == [({"doc_id": "b"}, 10)]  # A's picture was already there
    widen = dataclasses.replace(_decision("widen", [cap_a, pic_a]), k_used=2)
    assert pictures_for_groups(widen, "doc_id", search).k_used == 1  # one group, one citation
    from luma_rag.answer.base import Evidence

    assert Evidence.from_decision(out).image.id == "a"  # type: ignore[union-attr]


def test_the_group_picture_step_leaves_what_it_cannot_improve_alone() -> None:
    caption = _hit("a-caption", "text", "a", 0.9)
    picture = _hit("a", "image", "a", 0.4)
    search = _Search([caption, picture])
    refused = _decision("not_in_memory", [caption, picture])
    assert pictures_for_groups(refused, "doc_id", search) is refused
    unlinked = _decision("answer", [caption])
    assert pictures_for_groups(unlinked, None, search) is unlinked
    no_key = _decision("answer", [_hit("t", "text", None, 0.9)])
    assert pictures_for_groups(no_key, "doc_id", search) is no_key
    lonely = _decision("widen", [_hit("c-caption", "text", "c", 0.9)])
    assert pictures_for_groups(lonely, "doc_id", search) is lonely  # no picture in "c"
    assert search.calls == [({"doc_id": "c"}, 10)]


def test_a_reply_whose_written_claim_differs_from_what_it_saw_is_a_no() -> None:
    from luma_rag.app.visual_verifier import written_verdict

    assert written_verdict("yellow circle center : yellow diamond center : yes") is False
    assert written_verdict("Yellow circle  center : yellow circle center : no") is True
    assert written_verdict("yes") is None and written_verdict("a : b : maybe") is None
    assert written_verdict("It is red: yes") is None
    # the paired form ("--verify-reply pairs"): the words decide, not the written judgements
    assert written_verdict("yellow yellow yes circle diamond yes center center yes : yes") is False
    assert written_verdict("Yellow yellow yes circle circle no : no") is True
    assert written_verdict("yellow yellow : yes") is None


class _FakeVlm:
    """Answers from the first image of the evidence: a yes/no prompt with a written claim
    ("<claim> : <seen> : yes", P(yes) 0.7 whatever it saw, like the tiny LLaVA's weak
    verdict token), any other question with the picture's colour."""

    def __init__(self, colours: dict[str, str]) -> None:
        self.colours = colours
        self.prompts: list[tuple[str, str]] = []

    def answer(self, question: str, decision):  # type: ignore[no-untyped-def]
        from luma_rag.answer.base import Answer, Evidence

        image = Evidence.from_decision(decision).image
        seen = self.colours.get(image.id, "none") if image is not None else "none"
        self.prompts.append((question, image.id if image is not None else ""))
        if question.startswith("Does this image show"):
            claim = "red" if " red " in f" {question} " else "blue"
            text, tel = f"{claim} : {seen} : yes", {"verdict_yes": 0.7}
        else:
            text, tel = seen, {"answer_confidence": 0.99}
        return Answer(text, decision, list(Evidence.from_decision(decision).citations), tel)


def test_a_caption_hit_is_verified_and_answered_on_its_groups_picture() -> None:
    """The app's verified path: the group pictures stand for the captions; the model
    "verifies" every picture (P(yes) 0.7) but writes that only A's shows red, so the answer
    is A's colour, cited, from A's picture; the text hits were never shown to it."""
    from luma_rag.answer.readable import readable
    from luma_rag.answer.scored import ScoredVerifyingAnswerer
    from luma_rag.app.visual_verifier import picture_verified_answerer

    cap_a, cap_b = _hit("a-caption", "text", "a", 0.9), _hit("b-caption", "text", "b", 0.88)
    pic_a, pic_b = _hit("a", "image", "a", 0.4), _hit("b", "image", "b", 0.39)
    decision = _decision("clarify", [cap_a, cap_b])
    decision = dataclasses.replace(decision, relevance=_grounded())
    shown = pictures_for_groups(decision, "doc_id", _Search([pic_a, pic_b]))
    vlm = _FakeVlm({"a": "red", "b": "blue"})
    bot = picture_verified_answerer(vlm)  # type: ignore[arg-type]
    assert isinstance(bot, ScoredVerifyingAnswerer)
    out = readable(bot).answer("What colour is the red square?", shown)
    assert out.decision.decision in ("answer", "widen")
    assert out.text.startswith("red") and "[1]" in out.text
    assert out.decision.evidence[0].id == "a"
    assert out.telemetry["verification"]["scores"] == {"a": 0.7, "b": 0.0}
    assert {img for _, img in vlm.prompts} == {"a", "b"}


def test_a_picture_only_model_scores_text_evidence_zero_and_asks_pictures_once() -> None:
    from luma_rag.answer.verify_vlm import VlmVerifier
    from luma_rag.app.visual_verifier import VisualOnlyVerifier

    vlm = _FakeVlm({"a": "red", "b": "blue"})
    check = VisualOnlyVerifier(VlmVerifier(vlm))  # type: ignore[arg-type]
    hits = [_hit("a-caption", "text", "a", 0.9), _hit("a", "image", "a", 0.5),
            _hit("b", "image", "b", 0.4), _hit("a-audio", "audio", "a", 0.3)]  # fmt: skip
    q = "Is it a red square?"
    assert check.scores([(q, h) for h in hits]) == [0.0, 0.7, 0.0, 0.0]
    assert check.many(q, hits) == [None, True, False, None]
    assert len(vlm.prompts) == 2  # each picture asked once, the answers cached


# -- the app --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def luma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Luma]:
    root = tmp_path_factory.mktemp("app-answers")
    open_shapes_store(root).close()
    engine = Luma.open(root / "store", encoder=make_encoder())
    yield engine
    engine.close()


def test_the_gate_searches_the_search_text_and_the_answerer_gets_the_question(
    luma: Luma,
) -> None:
    from luma_rag.app.service import AppService

    service = AppService(luma, EvidenceAnswerer(), search_text=lambda q: "a red circle")
    searched: list[str | None] = []
    query = service.gate.query

    def spy(text: str | None = None, **kw: object):
        searched.append(text)
        return query(text, **kw)  # type: ignore[arg-type]

    service.gate.query = spy  # type: ignore[method-assign]
    reply = service.ask("What colour is the thing I mean?")
    assert searched == ["a red circle"] and reply.question == "What colour is the thing I mean?"
    blank = AppService(luma, EvidenceAnswerer(), search_text=lambda q: "  ")
    blank.gate.query = spy  # type: ignore[method-assign]
    blank.ask("a blue square")
    assert searched[-1] == "a blue square"  # nothing left of it: the question as typed


def test_the_panel_shows_rho_and_where_it_came_from(luma: Luma) -> None:
    from luma_rag.app.handlers import ask_handler
    from luma_rag.app.render import TELEMETRY_HELP
    from luma_rag.app.service import AppService

    service = AppService(luma, EvidenceAnswerer(), GateConfig(k=3))
    _, _, telemetry, _, _, _, reply = ask_handler(service, "a red circle", None, None, [])
    assert reply.telemetry["rho_source"] == "calibrated"  # the tiny CLIP's ρ, measured on open
    assert 'data-key="rho_source"' in telemetry and ">calibrated<" in telemetry
    assert "ρ source" in TELEMETRY_HELP and "<b>ρ source</b>:" in telemetry
    user = AppService(luma, EvidenceAnswerer(), GateConfig(k=3, rho=0.05))
    reply = user.ask("a red circle")
    assert reply.telemetry["rho"] == pytest.approx(0.05)
    assert reply.telemetry["rho_source"] in ("user", "unset")


# -- the start-up timer ---------------------------------------------------------------------------
def test_the_timer_reads_cpu_seconds_and_stops_when_the_demo_exits() -> None:
    from luma_rag.app.time_to_serve import free_port, process_cpu_seconds, wait_for_200

    cpu = process_cpu_seconds(os.getpid())
    if cpu is not None:  # Linux /proc
        assert cpu > 0
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert wait_for_200(f"http://127.0.0.1:{port}/", proc, timeout=60) is False
    assert proc.wait() == 3


def test_the_timer_reports_a_demo_that_fails(tmp_path: Path) -> None:
    """A demo that exits before serving (bad arguments) is reported, exit status 1."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "luma_rag.app.time_to_serve",
            "--timeout",
            "120",
            "--",
            "--n",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 1 and "no HTTP 200" in out.stdout, out.stdout + out.stderr[-2000:]


def test_an_off_topic_question_is_not_in_memory_in_the_chat(luma: Luma) -> None:
    """The fourth outcome in the chat: its own badge, the gate's words, no evidence shown."""
    from luma_rag.app.handlers import ask_handler
    from luma_rag.app.service import AppService

    service = AppService(luma, EvidenceAnswerer())
    history, badge, _, gallery, citations, _, reply = ask_handler(
        service, "who won the 1998 world cup?", None, None, []
    )
    assert reply.decision == "not_in_memory"
    assert history[-1]["content"].startswith("**NOT IN MEMORY** · Nothing in memory answers this")
    assert 'data-decision="not_in_memory"' in badge and ">NOT IN MEMORY<" in badge
    assert gallery == [] and "No evidence cited" in citations


def test_a_clarify_shows_the_gates_own_question_in_the_chat(luma: Luma) -> None:
    from luma_rag.app.handlers import ask_handler
    from luma_rag.app.service import AppService

    service = AppService(luma, EvidenceAnswerer(), GateConfig(k=3, rho=0.5))  # nothing certifies
    history, *_, reply = ask_handler(service, "a shape", None, None, [])
    assert reply.decision == "clarify" and reply.answer.decision.clarification
    assert history[-1]["content"] == f"**CLARIFY** · {reply.answer.decision.clarification}"
