"""Browser end-to-end fixtures: the chat app served on 127.0.0.1, and Debian's Chromium.

The browser is the system Chromium (``apt-get install chromium``, done by the project's setup)
driven by Playwright's Python package; Playwright's own browser downloads are never used. The
page may reach the app's loopback address only: every other request is aborted and recorded.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from luma_rag import Luma

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class ServedApp:
    """The app under test: its URL, store and the corpus its images came from."""

    url: str
    luma: Luma
    corpus: Path


@dataclass
class Browser:
    """A page in a fresh Chromium profile, and the off-loopback requests it tried."""

    page: Any
    blocked: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; missing is a failure (the project's setup installs it), not a skip."""
    path = shutil.which(str(CHROMIUM)) or shutil.which("chromium")
    if path is None:
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests need Debian's package; "
            "run `apt-get install chromium` (scripts/setup_env.sh does this as root)",
            pytrace=False,
        )
    return Path(path)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``test-artifacts/`` at the repository root (gitignored): screenshots go there."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def served_app(tmp_path: Path) -> Iterator[ServedApp]:
    """The chat app on a small LUMA-Shapes store, served on 127.0.0.1 in a background thread."""
    from luma_rag.answer import EvidenceAnswerer
    from luma_rag.app.chat import build_app, launch_app
    from tests.unit.test_app import open_shapes_store

    luma = open_shapes_store(tmp_path)
    app = build_app(luma, EvidenceAnswerer())
    try:
        url = launch_app(app, port=_free_port(), prevent_thread_lock=True, quiet=True)
        yield ServedApp(url, luma, tmp_path / "corpus")
    finally:
        app.close()
        luma.close()


@pytest.fixture
def browser(chromium: Path, served_app: ServedApp, tmp_path: Path) -> Iterator[Browser]:
    """A Chromium page (fresh user-data-dir) that may only talk to the app's address."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the browser tests need Playwright's Python package: "
            "`pip install playwright` (never `playwright install`: the system Chromium is used)",
            pytrace=False,
        )
    origin = served_app.url.rstrip("/")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": 1280, "height": 1000},
        )
        result = Browser(context.pages[0] if context.pages else context.new_page())

        def guard(route: Any) -> None:
            url = route.request.url
            if url.startswith(origin) or url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                result.blocked.append(url)
                route.abort()

        context.route("**/*", guard)
        result.page.set_default_timeout(30_000)
        try:
            yield result
        finally:
            context.close()
