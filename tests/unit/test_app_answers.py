"""What the chat app answers from and shows: the answered group's own picture
(luma_rag/app/group_picture.py), the text a question is searched with, ρ and where it came
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
from luma_rag.app.group_picture import lead_with_group_picture
from luma_rag.results import Hit, QueryResult
from tests.unit.test_app import make_encoder, open_shapes_store


def _hit(id_: str, modality: str, doc: str | None, score: float) -> Hit:
    meta = {} if doc is None else {"doc_id": doc}
    source = f"/media/{id_}.png" if modality == "image" else None
    return Hit(id_, score, "hot", 0, modality, meta, f"text of {id_}", source)


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


def test_an_answer_from_a_caption_shows_its_own_groups_picture() -> None:
    """The caption of doc A answers; another doc's picture is in the evidence, A's is not:
    A's picture is fetched with the group filter and leads evidence and hits."""
    caption = _hit("a-caption", "text", "a", 0.9)
    other = _hit("b", "image", "b", 0.5)
    picture = _hit("a", "image", "a", 0.4)
    search = _Search([caption, picture])
    out = lead_with_group_picture(_decision("answer", [caption, other]), "doc_id", search)
    assert [h.id for h in out.evidence] == ["a", "a-caption", "b"]
    assert [h.id for h in out.hits] == ["a", "a-caption", "b"]
    assert search.calls == [({"doc_id": "a"}, 10)]
    # the answerer is shown A's picture, not B's
    from luma_rag.answer.base import Evidence

    assert Evidence.from_decision(out).image.id == "a"  # type: ignore[union-attr]


def test_the_group_picture_step_leaves_other_decisions_alone() -> None:
    caption = _hit("a-caption", "text", "a", 0.9)
    picture = _hit("a", "image", "a", 0.4)
    search = _Search([caption, picture])
    clarify = _decision("clarify", [caption, picture])
    assert lead_with_group_picture(clarify, "doc_id", search) is clarify
    visual_first = _decision("answer", [picture, caption])
    assert lead_with_group_picture(visual_first, "doc_id", search) is visual_first
    unlinked = _decision("answer", [caption])
    assert lead_with_group_picture(unlinked, None, search) is unlinked
    no_key = _decision("answer", [_hit("t", "text", None, 0.9)])
    assert lead_with_group_picture(no_key, "doc_id", search) is no_key
    lonely = _decision("widen", [_hit("c-caption", "text", "c", 0.9)])
    assert lead_with_group_picture(lonely, "doc_id", search) is lonely  # no picture in "c"
    assert search.calls == [({"doc_id": "c"}, 10)]


def test_a_group_picture_already_in_the_evidence_is_moved_first_without_a_search() -> None:
    caption = _hit("a-caption", "text", "a", 0.9)
    other = _hit("b", "image", "b", 0.6)
    picture = _hit("a", "image", "a", 0.5)
    search = _Search([])
    out = lead_with_group_picture(_decision("widen", [caption, other, picture]), "doc_id", search)
    assert [h.id for h in out.evidence] == ["a", "a-caption", "b"] and not search.calls


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


def test_a_picture_only_model_is_asked_about_pictures_only() -> None:
    """Text and audio hits are "cannot tell" (None), never a yes from a model shown no image;
    the pictures are asked in one batch, in order."""
    from luma_rag.app.visual_verifier import VisualOnlyVerifier, picture_verified_answerer

    class Inner:
        def __init__(self) -> None:
            self.batches: list[list[str]] = []

        def many(self, question: str, hits: list[Hit]) -> list[bool | None]:
            self.batches.append([h.id for h in hits])
            return [h.id == "a" for h in hits]

    inner = Inner()
    check = VisualOnlyVerifier(inner)  # type: ignore[arg-type]
    hits = [
        _hit("a-caption", "text", "a", 0.9),
        _hit("a", "image", "a", 0.5),
        _hit("b", "image", "b", 0.4),
        _hit("a-audio", "audio", "a", 0.3),
    ]
    assert check.many("What colour is it?", hits) == [None, True, False, None]
    assert inner.batches == [["a", "b"]]
    assert check("What colour is it?", hits[0]) is None and inner.batches == [["a", "b"]]
    bot = picture_verified_answerer(EvidenceAnswerer())
    assert isinstance(bot.verifier, VisualOnlyVerifier)
