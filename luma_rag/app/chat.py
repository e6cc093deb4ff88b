"""The Gradio chat app: a thin :class:`gradio.Blocks` around an open store and an answerer.

Three tabs:

* **Chat** — a typed question, or an uploaded image / audio clip as the query; the answer with
  its decision badge (ANSWER / WIDEN / CLARIFY), the cited evidence (image and video
  thumbnails, the top audio clip with a player, a numbered list of every citation) and the
  telemetry behind the certificate (γ, δ_k, ε, ζ, ρ, Safe@1, Safe@k, completeness, latency).
* **Ingest** — upload text, images (with an optional caption), audio and video; new items are
  searchable at once; a bad upload is reported and stores nothing.
* **Memory** — hot / warm counts against the hot budget, the bridge's ε history, recent
  knowledge gaps (queries the gate could not settle).

Gradio is imported inside :func:`build_app` and :func:`launch_app`, so importing this module
is cheap; no model is loaded here (the caller opens the store with its encoders).

Example:
    >>> from luma_rag import Luma
    >>> from luma_rag.answer import EvidenceAnswerer
    >>> luma = Luma.open("stores/demo", encoder="luma-tiny")
    >>> app = build_app(luma, EvidenceAnswerer())
    >>> launch_app(app, port=7860)  # http://127.0.0.1:7860
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from luma_rag.answer import Answerer, EvidenceAnswerer, GateConfig
from luma_rag.app.handlers import Message, ask_handler, ingest_handler, memory_handler
from luma_rag.app.render import (
    empty_badge_html,
    telemetry_html,
)
from luma_rag.app.service import DEFAULT_MAX_UPLOAD_MB, AppService
from luma_rag.errors import LumaError, MissingDependencyError
from luma_rag.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES

if TYPE_CHECKING:
    import gradio as gr

    from luma_rag.engine import Luma

__all__ = [
    "TAB_LABELS",
    "ask_handler",
    "build_app",
    "ingest_handler",
    "launch_app",
    "memory_handler",
    "service_of",
]

logger = logging.getLogger(__name__)

TAB_LABELS: Final = ("Chat", "Ingest", "Memory")
#: Requests the app serves at once by default.
DEFAULT_CONCURRENCY: Final = 4
_INGEST_TYPES: Final = sorted({".txt", ".md"} | IMAGE_SUFFIXES | AUDIO_SUFFIXES | VIDEO_SUFFIXES)
_SERVICE_ATTR: Final = "luma_service"


def _gradio() -> Any:
    try:
        import gradio
    except ImportError as e:
        raise MissingDependencyError(
            "gradio is required for the chat app; install it with `pip install 'luma-rag[app]'`"
        ) from e
    return gradio


def service_of(app: gr.Blocks) -> AppService:
    """The :class:`~luma_rag.app.service.AppService` behind an app made by :func:`build_app`."""
    service = getattr(app, _SERVICE_ATTR, None)
    if not isinstance(service, AppService):
        raise TypeError("this Blocks was not made by luma_rag.app.chat.build_app")
    return service


def _answerer_note(answerer: Answerer) -> str:
    if isinstance(answerer, EvidenceAnswerer):
        return (
            "Answers come from **EvidenceAnswerer**: a cited summary of the retrieved evidence, "
            "without a language model (start the demo with `--llava MODEL_DIR` for LLaVA)."
        )
    inner = getattr(answerer, "answerer", None)  # a wrapper: ReadableAnswerer, VerifyingAnswerer
    if inner is not None and callable(getattr(answerer, "verifier", None)):
        return (
            f"Answers come from **{type(inner).__name__}**, which first checks its evidence "
            "with yes/no questions (scored by its own P(yes), on each group's picture) and "
            "answers only from evidence it verifies and that agrees; otherwise it asks."
        )
    if inner is not None:
        return _answerer_note(inner)
    return f"Answers come from **{type(answerer).__name__}**, grounded in the cited evidence."


# -- the UI ---------------------------------------------------------------------------------------
def build_app(
    engine: Luma,
    answerer: Answerer,
    gate_config: GateConfig | None = None,
    *,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    title: str = "LUMA-RAG",
    examples: Sequence[str] = (),
    note: str | None = None,
    search_text: Callable[[str], str] | None = None,
) -> gr.Blocks:
    """Build the chat app around an open store.

    Args:
        engine: An open :class:`~luma_rag.engine.Luma` with an encoder attached (any object
            implementing the :class:`~luma_rag.encoders.base.Encoder` protocol).
        answerer: The :class:`~luma_rag.answer.Answerer` (e.g. ``EvidenceAnswerer()``).
        gate_config: Gate settings (default :class:`~luma_rag.answer.GateConfig`).
        max_upload_mb: Largest upload or media query accepted (also enforced by
            :func:`launch_app`).
        title: Page title and heading.
        examples: Example questions shown under the question box (ones the store answers).
        note: A line of markdown under the heading, e.g. what the memory holds.
        search_text: Maps a typed question to the text the gate searches with (see
            :class:`~luma_rag.app.service.AppService`); None: the question as typed.

    Returns:
        The :class:`gradio.Blocks`; launch it with :func:`launch_app` (which sets the upload
        limit and the paths the app may serve).

    Raises:
        MissingDependencyError: gradio is not installed.
    """
    gr = _gradio()
    service = AppService(
        engine, answerer, gate_config, max_upload_mb=max_upload_mb, search_text=search_text
    )

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f"# {title}\nLifelong multimodal retrieval with Safe@k certificates.")
        if note:
            gr.Markdown(note, elem_id="luma-note")
        with gr.Tabs():
            with gr.Tab(TAB_LABELS[0], id="chat", elem_id="luma-tab-chat"):
                _chat_tab(gr, service, examples)
            with gr.Tab(TAB_LABELS[1], id="ingest", elem_id="luma-tab-ingest"):
                ingest_done = _ingest_tab(gr, service)
            with gr.Tab(TAB_LABELS[2], id="memory", elem_id="luma-tab-memory") as memory_tab:
                refresh, outputs = _memory_tab(gr, service)
        memory_tab.select(refresh, None, outputs)
        ingest_done.then(refresh, None, outputs)
        app.load(refresh, None, outputs)
    app.luma_service = service
    return app


def _chat_tab(gr: Any, service: AppService, examples: Sequence[str]) -> None:
    gr.Markdown(_answerer_note(service.answerer))
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label="Chat", elem_id="luma-chat", height=360)
            question = gr.Textbox(
                label="Question",
                placeholder="e.g. a red circle on the left — press Enter to ask",
                elem_id="luma-question",
                max_length=service.max_question_chars,
            )
            if examples:
                gr.Examples(
                    [[e] for e in examples], [question], label="Try", elem_id="luma-examples"
                )
            with gr.Row():
                image = gr.Image(
                    label="…or an image as the query",
                    type="filepath",
                    sources=["upload"],
                    height=160,
                    elem_id="luma-query-image",
                )
                audio = gr.Audio(
                    label="…or an audio clip as the query",
                    type="filepath",
                    sources=["upload"],
                    elem_id="luma-query-audio",
                )
            with gr.Row():
                ask = gr.Button("Ask", variant="primary", elem_id="luma-ask")
                clear = gr.Button("Clear", elem_id="luma-clear")
        with gr.Column(scale=2):
            gr.Markdown("### Decision")
            badge = gr.HTML(empty_badge_html(), elem_id="luma-decision")
            gr.Markdown("### Telemetry")
            telemetry = gr.HTML(telemetry_html({}), elem_id="luma-telemetry-panel")
    gr.Markdown("### Cited evidence")
    with gr.Row():
        gallery = gr.Gallery(
            label="Images and video",
            columns=5,
            height=220,
            object_fit="contain",
            elem_id="luma-evidence",
        )
        with gr.Column():
            citations = gr.HTML("", elem_id="luma-citations")
            evidence_audio = gr.Audio(
                label="Top audio evidence",
                interactive=False,
                visible=False,
                elem_id="luma-evidence-audio",
            )

    def on_ask(
        q: str | None, img: str | None, aud: str | None, history: list[Message] | None
    ) -> tuple[Any, ...]:
        try:
            out = ask_handler(service, q, img, aud, history)
        except LumaError as e:
            raise gr.Error(str(e)) from e
        sound = gr.update(value=out[5], visible=out[5] is not None)
        return (*out[:5], sound, "", None, None)

    results = [chatbot, badge, telemetry, gallery, citations, evidence_audio]
    outputs = [*results, question, image, audio]
    inputs = [question, image, audio, chatbot]
    ask.click(on_ask, inputs, outputs, api_name="ask")
    question.submit(on_ask, inputs, outputs, api_name=False)
    clear.click(
        lambda: (
            [],
            empty_badge_html(),
            telemetry_html({}),
            [],
            "",
            gr.update(value=None, visible=False),
            "",
            None,
            None,
        ),
        None,
        outputs,
        api_name=False,
    )


def _ingest_tab(gr: Any, service: AppService) -> Any:
    gr.Markdown(
        f"Upload text (.txt, .md), images, audio or video (up to {service.max_upload_mb:g} MB "
        "each). All files of one upload are stored together or not at all; new items are "
        "searchable at once."
    )
    files = gr.File(
        label="Files",
        file_count="multiple",
        file_types=_INGEST_TYPES,
        type="filepath",
        elem_id="luma-ingest-files",
    )
    caption = gr.Textbox(
        label="Caption (optional): what the media show or say", elem_id="luma-ingest-caption"
    )
    text = gr.Textbox(label="…or type a text to store", lines=3, elem_id="luma-ingest-text")
    button = gr.Button("Ingest", variant="primary", elem_id="luma-ingest")
    status = gr.HTML("", elem_id="luma-ingest-status")

    def on_ingest(
        paths: list[str] | None,
        cap: str | None,
        txt: str | None,
        progress: Any = gr.Progress(),  # noqa: B008 - Gradio injects progress this way
    ) -> tuple[Any, ...]:
        def report(done: int, total: int, label: str) -> None:
            progress((done, total), desc=f"stored {label}")

        html_status, ok = ingest_handler(service, paths, cap, txt, report)
        if not ok:
            gr.Warning("Upload rejected: nothing was stored (see the status box).", duration=5)
            return html_status, gr.skip(), gr.skip(), gr.skip()
        return html_status, None, "", ""

    return button.click(
        on_ingest, [files, caption, text], [status, files, caption, text], api_name="ingest"
    )


def _memory_tab(gr: Any, service: AppService) -> tuple[Callable[[], tuple[Any, ...]], list[Any]]:
    summary = gr.HTML("", elem_id="luma-memory-summary")
    plot = gr.LinePlot(
        x="refresh",
        y="epsilon",
        title="Bridge drift ε per refresh",
        x_title="refresh",
        y_title="ε = ‖T_new − T_prev‖₂",
        height=240,
        elem_id="luma-epsilon-plot",
    )
    gaps = gr.Dataframe(
        headers=["time (UTC)", "query", "clarifying question"],
        label="Recent knowledge gaps (queries the gate asked to clarify)",
        interactive=False,
        wrap=True,
        elem_id="luma-gaps",
    )
    button = gr.Button("Refresh", elem_id="luma-memory-refresh")

    def refresh() -> tuple[Any, ...]:
        import pandas as pd

        html_summary, eps, gap_rows = memory_handler(service)
        frame = pd.DataFrame(eps, columns=["refresh", "epsilon", "pairs"])
        table = pd.DataFrame(gap_rows, columns=["time (UTC)", "query", "clarifying question"])
        return html_summary, gr.update(value=frame, visible=bool(eps)), table

    outputs = [summary, plot, gaps]
    button.click(refresh, None, outputs, api_name=False)
    return refresh, outputs


def launch_app(
    app: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    allowed_paths: Sequence[str | os.PathLike[str]] = (),
    prevent_thread_lock: bool = False,
    quiet: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> str:
    """Launch an app from :func:`build_app` on ``host:port`` (localhost unless told otherwise).

    The upload limit of the app's service becomes Gradio's ``max_file_size``. Only the media
    files the store references, its ``uploads/`` directory and ``allowed_paths`` may be
    served as evidence; the store's own files (records, vectors, snapshots, config) are
    blocked. ``concurrency`` requests run at once (retrieval in parallel; the answerer one
    call at a time). Nothing is shared publicly and Gradio's analytics stay off.

    Returns:
        The local URL, e.g. ``"http://127.0.0.1:7860/"``.
    """
    service = service_of(app)
    paths = [*service.served_paths(), *(os.fspath(p) for p in allowed_paths)]
    app.queue(default_concurrency_limit=concurrency)
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=prevent_thread_lock,
        show_error=True,
        quiet=quiet,
        max_file_size=service.max_upload_bytes,
        allowed_paths=paths,
        blocked_paths=service.blocked_paths(),
        ssr_mode=False,
        enable_monitoring=False,
        mcp_server=False,
        pwa=False,
    )
    return str(app.local_url)
