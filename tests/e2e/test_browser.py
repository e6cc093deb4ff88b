"""The chat app in a real browser: ask a typed question, then an image query; screenshot it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from luma_rag.datasets import load_manifest

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.e2e.conftest import Browser, ServedApp

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(150),
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),  # Gradio's own pandas deprecations
]

DECISIONS = ("ANSWER", "WIDEN", "CLARIFY")
_IDLE = """() => [...document.querySelectorAll('[data-testid="status-tracker"]')]
    .every(e => e.classList.contains('hide'))"""


def settle(page: Page) -> None:
    """Wait until no Gradio event is pending (every status tracker hidden)."""
    page.wait_for_function(_IDLE)


def test_ask_and_image_query_in_chromium(
    served_app: ServedApp, browser: Browser, artifacts: Path
) -> None:
    page = browser.page
    page.goto(served_app.url, wait_until="domcontentloaded")

    # a typed question, submitted with Enter
    question = page.locator("#luma-question textarea, #luma-question input").first
    question.fill("a green star at the top")
    question.press("Enter")
    badge = page.locator("#luma-badge")
    badge.wait_for(state="visible")
    assert badge.inner_text().strip() in DECISIONS
    chat = page.locator("#luma-chat")
    chat.get_by_text("a green star at the top").first.wait_for()
    assert re.search(r"\b(ANSWER|WIDEN|CLARIFY)\b", chat.inner_text())
    telemetry = page.locator("#luma-telemetry").inner_text()
    for label in ("γ (margin_top2)", "δ_k", "ε", "ζ", "ρ", "Safe@1", "Safe@k", "latency"):
        assert label in telemetry

    # an uploaded image as the query: the store holds that very image, so it is cited first
    item = load_manifest(served_app.corpus)[5]
    page.locator("#luma-query-image input[type=file]").set_input_files(str(item.image_path))
    page.locator("#luma-query-image img").first.wait_for(state="visible")
    page.locator("#luma-ask").click()
    # The decision depends on the calibrated image radius ρ (near-identical renders of other
    # shapes may not be excluded), so the badge may be any of the three; the evidence may not.
    citations = page.locator("#luma-citations")
    citations.get_by_text("score 1.000").first.wait_for()
    assert item.caption in citations.inner_text()
    assert badge.inner_text().strip() in DECISIONS
    page.locator("#luma-evidence img").first.wait_for(state="visible")
    assert page.locator("#luma-evidence img").count() >= 1

    settle(page)
    shot = artifacts / "e2e-chat.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert not browser.blocked, f"the page tried to leave 127.0.0.1: {browser.blocked[:5]}"


def test_ingest_errors_and_memory_tab_in_chromium(
    served_app: ServedApp, browser: Browser, artifacts: Path, tmp_path: Path
) -> None:
    page = browser.page
    page.goto(served_app.url, wait_until="domcontentloaded")
    before = len(served_app.luma)

    # a corrupt image is refused in the UI and stores nothing
    page.get_by_role("tab", name="Ingest").click()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    page.locator("#luma-ingest-files input[type=file]").set_input_files(str(bad))
    page.locator("#luma-ingest-files .file-preview").wait_for(state="visible")
    page.locator("#luma-ingest").click()
    error = page.locator("#luma-ingest-status .luma-error")
    error.wait_for(state="visible")
    assert "Not stored" in error.inner_text() and "broken.png" in error.inner_text()
    assert len(served_app.luma) == before

    # with the bad file removed, a typed text is stored and can be asked for at once
    page.locator("#luma-ingest-files button[aria-label='Clear']").click()
    page.locator("#luma-ingest-files .file-preview").wait_for(state="detached")
    page.locator("#luma-ingest-text textarea").fill("the purple hexagon is the rarest shape")
    page.locator("#luma-ingest").click()
    page.locator("#luma-ingest-status .luma-ok").wait_for(state="visible")
    assert len(served_app.luma) == before + 1

    page.get_by_role("tab", name="Chat").click()
    question = page.locator("#luma-question textarea, #luma-question input").first
    question.fill("the purple hexagon is the rarest shape")
    page.locator("#luma-ask").click()
    page.locator("#luma-citations").get_by_text("the rarest shape").first.wait_for()

    # the memory tab: tier counts against the budget, ε history, knowledge gaps
    page.get_by_role("tab", name="Memory").click()
    summary = page.locator("#luma-memory")
    summary.wait_for(state="visible")
    page.get_by_text(f"{before + 1} / ").first.wait_for()
    assert "hot (HNSW)" in summary.inner_text()
    settle(page)
    page.screenshot(path=str(artifacts / "e2e-memory.png"), full_page=True)
    assert not browser.blocked, f"the page tried to leave 127.0.0.1: {browser.blocked[:5]}"
