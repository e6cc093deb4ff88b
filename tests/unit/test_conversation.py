"""Conversation memory: turns stored as items, follow-ups answered from them, retention, switch."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from luma_rag import Luma
from luma_rag.answer import EvidenceAnswerer
from luma_rag.conversation import (
    TURN_MODALITY,
    TURNS_DIR,
    Conversation,
    ConversationConfig,
    TurnMemory,
)
from luma_rag.errors import ConfigError, InvalidInputError

WHERE = {"left": "on the left", "right": "on the right", "top": "at the top",
         "bottom": "at the bottom", "center": "in the center"}  # fmt: skip


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    from luma_rag.datasets import generate, load_manifest

    root = tmp_path_factory.mktemp("conv")
    items = load_manifest(generate(root / "corpus", n=24, seed=9, size=64, workers=1))
    with Luma.open(root / "store", encoder="luma-tiny") as luma:
        luma.ingest_images(
            [it.image_path for it in items],
            captions=[it.caption for it in items],
            metadatas=[it.attributes.as_dict() for it in items],
            ids=[it.id for it in items],
        )
    return root, items


@pytest.fixture
def luma(shapes: tuple[Path, list[Any]], tmp_path: Path) -> Iterator[Luma]:
    shutil.copytree(shapes[0] / "store", tmp_path / "store")
    engine = Luma.open(tmp_path / "store", encoder="luma-tiny")
    yield engine
    engine.close()


def _question(it: Any) -> str:
    a = it.attributes
    return f"the {a.size} {a.color} {a.shape} {WHERE[a.position]}"


def _answered_first(chat: Conversation, items: list[Any]) -> tuple[Any, Any]:
    """Ask about items until one is answered (not CLARIFY); return (item, answer)."""
    for it in items:
        reply = chat.ask(_question(it))
        if reply.decision.decision != "clarify":
            return it, reply
    raise AssertionError("no question was answered")


def test_config_checks_and_cues() -> None:
    cfg = ConversationConfig()
    assert cfg.refers_back("show me the red circle AGAIN")
    assert cfg.refers_back("which circle did you find before?")
    assert not cfg.refers_back("which shape is red?")
    assert not cfg.refers_back("a beforehand note")  # word boundaries
    assert cfg.strip_cues("show me the red circle again") == "the red circle"
    assert cfg.strip_cues("again?") == "again?"  # nothing left: the question itself
    for bad in ({"window_s": 0}, {"max_turns": 0}, {"k_turns": 0}, {"min_score": 2.0}):
        with pytest.raises(ConfigError):
            ConversationConfig(**bad)
    assert ConversationConfig.from_json(cfg.to_json()) == cfg


def test_a_follow_up_is_answered_from_the_earlier_turn_and_cites_it(
    luma: Luma, shapes: tuple[Path, list[Any]]
) -> None:
    _, items = shapes
    with Conversation(luma, EvidenceAnswerer(), session="alice") as chat:
        item, first = _answered_first(chat, items)
        assert first.telemetry["source"] == "store" and first.telemetry["turn_id"]
        first_item = first.citations[0].id
        a = item.attributes
        follow = chat.ask(f"show me the {a.color} {a.shape} again")
        assert follow.telemetry["source"] == "turn"
        assert follow.citations[0].modality == TURN_MODALITY
        assert follow.citations[0].id == first.telemetry["turn_id"]
        assert follow.citations[1].id == first_item  # what the earlier answer rested on
        assert _question(item) in follow.text and "[1]" in follow.text
        assert follow.decision.decision == "answer" and follow.decision.numbers.safe1
        # without the cue words the question goes to the store as usual
        plain = chat.ask(f"the {a.color} {a.shape}")
        assert plain.telemetry["source"] == "store"
        turns = chat.memory.turns("alice")
    assert len(turns) == 3  # every answered turn is remembered, follow-ups too
    t = turns[0]
    assert t["question"] == _question(item) and t["answer"] == first.text
    assert t["decision"] == first.decision.decision and t["session"] == "alice"
    assert t["citations"][0]["id"] == first_item and "safe1" in t["certificate"]
    stored = luma.path / TURNS_DIR
    with Luma.open(stored) as turn_store:
        got = turn_store.get([first.telemetry["turn_id"]])[0]
        assert got["modality"] == TURN_MODALITY and got["text"].startswith("Q: ")


def test_sessions_do_not_see_each_others_turns(luma: Luma, shapes: tuple[Path, list[Any]]) -> None:
    _, items = shapes
    with TurnMemory(luma) as memory:
        alice = Conversation(luma, EvidenceAnswerer(), session="alice", memory=memory)
        bob = Conversation(luma, EvidenceAnswerer(), session="bob", memory=memory)
        item, _ = _answered_first(alice, items)
        a = item.attributes
        assert bob.ask(f"show me the {a.color} {a.shape} again").telemetry["source"] == "store"
        assert alice.ask(f"show me the {a.color} {a.shape} again").telemetry["source"] == "turn"
        assert memory.forget("alice") >= 2 and memory.turns("alice") == []
        assert len(memory.turns("bob")) == 1


def test_memory_off_stores_and_recalls_nothing(luma: Luma, shapes: tuple[Path, list[Any]]) -> None:
    _, items = shapes
    off = ConversationConfig(enabled=False)
    with Conversation(luma, EvidenceAnswerer(), session="s", config=off) as chat:
        item, first = _answered_first(chat, items)
        a = item.attributes
        follow = chat.ask(f"show me the {a.color} {a.shape} again")
        assert first.telemetry["turn_id"] is None and follow.telemetry["source"] == "store"
        assert chat.memory.turns("s") == []


def test_retention_by_time_window_and_budget(luma: Luma, shapes: tuple[Path, list[Any]]) -> None:
    _, items = shapes
    cfg = ConversationConfig(window_s=100.0, max_turns=2)
    with Conversation(luma, EvidenceAnswerer(), session="s", config=cfg) as chat:
        for t, it in zip((1000.0, 1010.0, 1020.0), items, strict=False):
            chat.ask(_question(it), now=t)
        kept = chat.memory.turns("s")
        assert [k["time"] for k in kept] == [1010.0, 1020.0]  # budget: the oldest went
        chat.ask(_question(items[3]), now=1115.0)  # 1010 is now older than 100 s
        assert [k["time"] for k in chat.memory.turns("s")] == [1020.0, 1115.0]
        chat.ask(_question(items[4]), now=5000.0)
        assert [k["time"] for k in chat.memory.turns("s")] == [5000.0]


def test_turns_survive_a_restart_and_deleted_evidence_is_not_cited(
    luma: Luma, shapes: tuple[Path, list[Any]]
) -> None:
    _, items = shapes
    with Conversation(luma, EvidenceAnswerer(), session="s") as chat:
        item, first = _answered_first(chat, items)
    with Conversation(luma, EvidenceAnswerer(), session="s") as chat:  # a new process would too
        a = item.attributes
        again = chat.ask(f"show me the {a.color} {a.shape} again")
        assert again.telemetry["source"] == "turn"
        assert again.citations[1].id == first.citations[0].id
        luma.delete([first.citations[0].id])
        later = chat.ask(f"the {a.color} {a.shape} you found earlier")
        assert later.telemetry["source"] == "turn"
        assert first.citations[0].id not in [c.id for c in later.citations]


def test_bad_input(luma: Luma) -> None:
    with (
        Conversation(luma, EvidenceAnswerer(), session="s") as chat,
        pytest.raises(InvalidInputError),
    ):
        chat.ask("  ")
    with pytest.raises(InvalidInputError, match="session"):
        Conversation(luma, EvidenceAnswerer(), session="")
    with _bare(luma) as bare, pytest.raises(ConfigError, match="encoder"):
        TurnMemory(bare)


def _bare(luma: Luma) -> Luma:
    from luma_rag import LumaConfig

    return Luma.open(luma.path.parent / "bare", LumaConfig(dim=8))
