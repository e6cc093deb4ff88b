"""Making the demo store ready: models loaded, the LUMA-Shapes sample generated and ingested.

:func:`prepare` is what ``python -m luma_rag.app.demo`` runs before it serves, and what
``python -m luma_rag.app.check_examples`` runs before it asks — so both see the same store,
models and answerer. A first run generates the corpus into ``<store>/shapes``, ingests the
images (captions and attributes as metadata) and the first ``--n-audio`` spoken captions,
all in batches; later runs find everything in place and only load the models. Every phase
prints a stamped progress line (:class:`~luma_rag.app.phases.Phases`).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from luma_rag.app.phases import Phases
from luma_rag.errors import ModelNotAvailableError

if TYPE_CHECKING:
    from luma_rag.answer import Answerer, GateConfig
    from luma_rag.datasets import ShapeItem
    from luma_rag.engine import Luma

__all__ = [
    "CORPUS_DIR",
    "DEFAULT_STORE",
    "LINK_KEY",
    "MEDIUM_KEY",
    "Demo",
    "demo_gate_config",
    "demo_search_text",
    "prepare",
    "store_dir",
]

logger = logging.getLogger(__name__)

TINY_MODELS: Final = ("luma-tiny", "luma-tiny-clap")
PRODUCTION_MODELS: Final = ("ViT-B-32/openai", "laion/clap-htsat-unfused")
DEFAULT_STORE: Final = Path("stores/demo")
CORPUS_DIR: Final = "shapes"
_BATCH: Final = 32
_AUDIO_BATCH: Final = 25
_CAPTION_BATCH: Final = 100
#: Metadata key linking an item's picture, its caption and its spoken caption (the corpus item
#: id): the demo's gate treats them as one thing (``GateConfig.link_key``), not as rival
#: answers.
LINK_KEY: Final = "doc_id"
#: Metadata key saying which rendering of a corpus item an item is: ``"picture"``,
#: ``"caption"`` (the picture's caption as a text item) or ``"speech"`` (the spoken caption).
MEDIUM_KEY: Final = "medium"


def demo_search_text(question: str) -> str:
    """What the demo's gate searches a typed question with: the question without its
    interrogative frame ("What colour is the small circle?" → "the small circle";
    :func:`~luma_rag.answer.verify_vlm.referent_of`, English question grammar only, nothing
    about the corpus). The frame names the attribute asked, which the evidence need not
    match; the answerer still gets the whole question."""
    from luma_rag.answer.verify_vlm import referent_of

    return referent_of(question)


def demo_gate_config() -> GateConfig:
    """The demo's gate settings: the defaults, with a picture and its spoken caption linked."""
    from luma_rag.answer import GateConfig

    return GateConfig(link_key=LINK_KEY)


@dataclass(frozen=True)
class Demo:
    """What :func:`prepare` made ready: everything the app serves.

    Attributes:
        engine: The open store (the caller closes it).
        answerer: The answerer (loaded).
        items: The corpus, in manifest order.
        has_audio: Whether the CLAP encoder (and spoken captions) are in use.
        store: The store directory (absolute).
    """

    engine: Luma
    answerer: Answerer
    items: list[ShapeItem]
    has_audio: bool
    store: Path


def prepare(args: argparse.Namespace, phases: Phases) -> Demo:
    """Open the store with its models, generate and ingest the corpus if needed (first run).

    Args:
        args: The demo's parsed arguments (:func:`parse_args`).
        phases: Where progress lines and timings go.

    Returns:
        The :class:`Demo`; its store is open (close it).

    Raises:
        LumaError: a model is missing, the store cannot be opened, ingest failed.
    """
    store = store_dir(args)
    reopen = (store / CORPUS_DIR / "manifest.jsonl").is_file()
    phases.say(
        f"{'reopening' if reopen else 'first run: making'} the demo store {store}"
        + ("" if reopen else " (generate, ingest, calibrate; later runs reopen it)")
    )
    with phases.phase("import torch", f"{_torch_threads(args)} CPU thread(s)"):
        device = args.device or _default_device()
        _set_threads(_torch_threads(args))
    engine, has_audio = _open_store(store, args, device, phases)
    try:
        answerer = _answerer(args, device, phases)
        items = _corpus(store / CORPUS_DIR, args.n, args.seed, audio=has_audio, phases=phases)
        _ingest(engine, items, n_audio=0, phases=phases)  # images first: captions feed the bridge
        _calibrate(engine, phases)  # production models: rho and the bridge from these items
        _ingest(engine, items, n_audio=args.n_audio if has_audio else 0, phases=phases)
    except BaseException:
        engine.close()
        raise
    return Demo(engine, answerer, items, has_audio, store)


def store_dir(args: argparse.Namespace) -> Path:
    """The demo's store directory, absolute (media are recorded by absolute path, so the
    store opens from anywhere): ``--store``, else ``stores/demo`` (``-production``)."""
    default = (
        DEFAULT_STORE.with_name(DEFAULT_STORE.name + "-production")
        if args.production
        else DEFAULT_STORE
    )
    return Path(args.store or default).resolve()


# -- models ---------------------------------------------------------------------------------------
def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_threads(args: argparse.Namespace) -> int:
    """``--threads`` (default 1: see :func:`_set_threads`)."""
    return max(1, int(getattr(args, "threads", None) or 1))


def _set_threads(n: int) -> None:
    """Run torch's CPU ops on ``n`` threads (the demo is an application: it may choose).

    The tiny models' matrices are small, so a second intra-op thread buys little and, on a
    shared machine, costs much: threads that wait for a descheduled partner spin. Measured
    on the 2-core development machine at load ≈ 5 (one run each): the tiny CLIP encoding 256
    captions took 0.10 CPU-s / 0.5 s wall on one thread and 1.57 CPU-s / 4.5 s on two.
    """
    import torch

    torch.set_num_threads(n)


def _open_store(
    store: Path, args: argparse.Namespace, device: str, phases: Phases
) -> tuple[Luma, bool]:
    """Open (or create) the store with its encoders; returns it and whether audio is on.

    Raises:
        ModelNotAvailableError: a model is not on disk (the tiny CLAP only disables audio).
    """
    from luma_rag import Luma
    from luma_rag.encoders import get_encoder
    from luma_rag.encoders.resolve import check_encoder_name

    if args.production:
        name, audio_name = PRODUCTION_MODELS
        check_encoder_name(name, "clip")  # both looked up before either is loaded
        if not args.no_audio:
            check_encoder_name(audio_name, "audio")
        with phases.phase("load CLIP", name):
            encoder = get_encoder(name, device=device)
        audio = None
        if not args.no_audio:
            with phases.phase("load CLAP", audio_name):
                audio = get_encoder(audio_name, device=device)
    else:
        with phases.phase("load CLIP", TINY_MODELS[0]):
            encoder = get_encoder(TINY_MODELS[0], device=device)
        audio = None
        if not args.no_audio:
            try:
                with phases.phase("load CLAP", TINY_MODELS[1]):
                    audio = get_encoder(TINY_MODELS[1], device=device)
            except ModelNotAvailableError as e:
                phases.say(f"continuing without audio ({e})")
    fresh = not (store / "config.json").is_file()
    with phases.phase(
        "open the store",
        "new: rho measured once on the shipped calibration inputs"
        if fresh and not args.production
        else "",
    ):
        engine = Luma.open(store, encoder=encoder, audio_encoder=audio)
    return engine, audio is not None


def _answerer(args: argparse.Namespace, device: str, phases: Phases) -> Answerer:
    """EvidenceAnswerer, or LLaVA (loaded now, so a missing model fails before serving) on
    the library's default score-gap verified path unless ``--no-verify``: before it answers,
    LLaVA scores a yes/no check of the pictures among its top evidence
    (:func:`~luma_rag.app.visual_verifier.picture_verified_answerer`; LLaVA reads pictures,
    so captions and speech score 0; the app shows it each group's picture,
    :func:`~luma_rag.app.group_picture.pictures_for_groups`)."""
    from luma_rag.answer import (
        DEFAULT_LLAVA_MODEL,
        OFFLINE_LLAVA_MODEL,
        EvidenceAnswerer,
        LlavaAnswerer,
    )
    from luma_rag.app.visual_verifier import picture_verified_answerer

    if args.evidence_only:
        return EvidenceAnswerer()
    model = args.llava or (DEFAULT_LLAVA_MODEL if args.production else OFFLINE_LLAVA_MODEL)
    answerer = LlavaAnswerer(model, device=device)
    with phases.phase("load LLaVA", model):
        answerer.load()
    info = answerer.load_info
    phases.say(
        f"LLaVA {info['model']} on {info['device']}, {info['precision']}, "
        f"{info['memory_bytes'] / 2**20:,.1f} MiB"
        + ("" if getattr(args, "no_verify", False) else "; answers verified (scored yes/no checks)")
    )
    return answerer if getattr(args, "no_verify", False) else picture_verified_answerer(answerer)


# -- the corpus -----------------------------------------------------------------------------------
def _corpus(out: Path, n: int, seed: int, *, audio: bool, phases: Phases) -> list[ShapeItem]:
    """The LUMA-Shapes sample in ``out``: generated on first run, else read back."""
    from luma_rag.datasets import generate, load_manifest

    if (out / "manifest.jsonl").is_file():
        return load_manifest(out)
    speak = audio and shutil.which("espeak-ng") is not None
    with phases.phase(
        "generate the corpus", f"{n} LUMA-Shapes items{' with spoken captions' if speak else ''}"
    ):
        return load_manifest(generate(out, n=n, seed=seed, audio=speak, progress=True))


def _ingest(engine: Luma, items: Sequence[ShapeItem], *, n_audio: int, phases: Phases) -> None:
    """Ingest the items not yet in the store: images, their captions as text, spoken captions.

    All in batches (one encoder pass per model and batch). Each picture's caption is also
    stored as a text item linked to it (``<id>-caption``): a typed question is text, and the
    tiny CLIP ranks text against text far more sharply than text against pictures or against
    speech bridged into its text space (``python -m luma_rag.app.check_examples --explain``
    shows the rankings). Only the first ``n_audio`` spoken captions are stored; the other
    clips stay in the corpus directory, ready to be used as audio queries.
    """
    images = [it for it in items if it.id not in engine]
    captions = [it for it in items if f"{it.id}-caption" not in engine]
    spoken = [
        it for it in items[:n_audio] if it.audio_path is not None and f"{it.id}-audio" not in engine
    ]
    if spoken and engine.bridge is not None and not engine.bridge.fitted:
        need = engine.bridge.config.resolved_min_pairs - engine.bridge.pairs_seen
        phases.say(
            f"no spoken captions stored: the CLAP->CLIP bridge needs {need} more caption "
            "pairs (run the demo with a larger --n); audio queries are refused until then"
        )
        spoken = []
    if images:
        with (
            phases.phase("ingest images", f"{len(images)}, batches of {_BATCH}"),
            phases.counter("ingest images", len(images)) as advance,
        ):
            for i in range(0, len(images), _BATCH):
                batch = images[i : i + _BATCH]
                engine.ingest_images(
                    [it.image_path for it in batch],
                    captions=[it.caption for it in batch],
                    metadatas=[_metadata(it, "picture") for it in batch],
                    ids=[it.id for it in batch],
                )
                advance(len(batch))
    if captions:
        with (
            phases.phase(
                "ingest captions", f"{len(captions)} as text, batches of {_CAPTION_BATCH}"
            ),
            phases.counter("ingest captions", len(captions)) as advance,
        ):
            for i in range(0, len(captions), _CAPTION_BATCH):
                batch = captions[i : i + _CAPTION_BATCH]
                engine.ingest_texts(
                    [it.caption for it in batch],
                    metadatas=[_metadata(it, "caption") for it in batch],
                    ids=[f"{it.id}-caption" for it in batch],
                )
                advance(len(batch))
    if spoken:
        with (
            phases.phase("ingest spoken captions", f"{len(spoken)}, batches of {_AUDIO_BATCH}"),
            phases.counter("ingest spoken captions", len(spoken)) as advance,
        ):
            for i in range(0, len(spoken), _AUDIO_BATCH):
                batch = spoken[i : i + _AUDIO_BATCH]
                engine.ingest_audio(
                    [it.audio_path for it in batch if it.audio_path is not None],
                    captions=[it.caption for it in batch],
                    metadatas=[_metadata(it, "speech") for it in batch],
                    ids=[f"{it.id}-audio" for it in batch],
                )
                advance(len(batch))


def _calibrate(engine: Luma, phases: Phases) -> None:
    """Measure the radii ρ the store lacks on its own items (production models), with progress."""
    if engine.encoder is None or all(
        m in engine.rho for m in ("text", "image", "video")
    ):  # the tiny models were calibrated on attach; a reopened store keeps its radii
        return

    def report(stage: str, done: int, total: int) -> None:
        phases.say(f"calibrate {stage} {done}/{total}")

    with phases.phase("calibrate rho", "on the store's items"):
        measured = engine.calibrate(progress=report)
    phases.say(f"rho {measured}")


def _metadata(item: ShapeItem, medium: str) -> dict[str, Any]:
    return {**item.attributes.as_dict(), "split": item.split, LINK_KEY: item.id, MEDIUM_KEY: medium}
