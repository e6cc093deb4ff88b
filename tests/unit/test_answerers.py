"""Tests of luma_rag.answer's answerers: prompts per decision, the evidence answerer, and
LlavaAnswerer on a tiny randomly initialised LLaVA saved to disk and loaded offline."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag.answer import (
    Answerer,
    Evidence,
    EvidenceAnswerer,
    GateConfig,
    GateDecision,
    LlavaAnswerer,
    StreamingAnswerer,
    build_messages,
    decide,
)
from luma_rag.errors import InvalidInputError, ModelNotAvailableError
from luma_rag.results import Hit, QueryResult, Telemetry
from luma_rag.safety import certify

# -- decisions ----------------------------------------------------------------------------------

ITEMS = [
    ("a red circle on the left", "image", {"shape": "circle", "color": "red", "position": "left"}),
    ("a blue square at the top", "image", {"shape": "square", "color": "blue", "position": "top"}),
    ("notes about circles", "text", {"shape": "circle", "color": "green", "position": "top"}),
    ("a yellow star", "audio", {"shape": "star", "color": "yellow", "position": "right"}),
    ("a white cross", "text", {"shape": "cross", "color": "white", "position": "center"}),
]


def result_for(scores: list[float], tau: float, sources: dict[int, str] | None = None) -> Any:
    cert = certify(np.asarray(scores), np.full(len(scores), tau), len(scores))
    hits = [
        Hit(
            id=f"item{i}",
            score=s,
            tier="hot",
            rank=i,
            modality=ITEMS[i][1],
            metadata=ITEMS[i][2],
            text=ITEMS[i][0],
            source=(sources or {}).get(i),
        )
        for i, s in enumerate(scores)
    ]
    tel = Telemetry(
        cert.margin_top2, cert.delta_k, 0.0, 0.0, 0.0, 0.0, tau, cert.safe1, cert.safek,
        cert.safe_prefix, True, len(scores), len(scores), 0.1,
    )  # fmt: skip
    return QueryResult(hits, tel, cert)


ANSWER_SCORES = [0.83, 0.61, 0.55, 0.40, 0.30]
WIDEN_SCORES = [0.83, 0.82, 0.50, 0.40, 0.30]
CLARIFY_SCORES = [0.83, 0.82, 0.82, 0.81, 0.80]


def decision(kind: str, sources: dict[int, str] | None = None) -> GateDecision:
    scores = {"answer": ANSWER_SCORES, "widen": WIDEN_SCORES, "clarify": CLARIFY_SCORES}[kind]
    d = decide(result_for(scores, 0.05, sources), GateConfig(k=3, k_max=4))
    assert d.decision == kind
    return d


# -- prompts ------------------------------------------------------------------------------------


def _text(conversation: list[dict[str, Any]]) -> str:
    (turn,) = conversation
    assert turn["role"] == "user"
    return str(turn["content"][-1]["text"])


def test_prompts_differ_per_decision() -> None:
    answer = _text(build_messages("What is red?", decision("answer")))
    assert "Evidence [1] is the certified best match" in answer
    assert "[1] a red circle on the left (image, score 0.830)" in answer
    assert "[3] notes about circles (text, score 0.550)" in answer
    assert answer.endswith("Question: What is red?")

    widen = _text(build_messages("What is red?", decision("widen")))
    assert "items [1] to [2] together form a stable set" in widen
    assert "[3]" not in widen

    d = decision("clarify")
    clarify = _text(build_messages("What is red?", d))
    assert "Do not answer the question" in clarify
    assert d.clarification is not None and d.clarification in clarify
    assert len({answer, widen, clarify}) == 3


def test_prompt_image_placeholder_follows_the_evidence() -> None:
    no_files = build_messages("q?", decision("answer"))
    assert [c["type"] for c in no_files[0]["content"]] == ["text"]
    with_file = build_messages("q?", decision("answer", {1: "/img/blue.png"}))
    assert [c["type"] for c in with_file[0]["content"]] == ["image", "text"]
    assert "The image shows evidence [2]." in _text(with_file)
    text_only = build_messages("q?", decision("answer", {1: "/img/blue.png"}), with_image=False)
    assert [c["type"] for c in text_only[0]["content"]] == ["text"]
    assert "The image shows" not in _text(text_only)
    # an audio item's file is not an image
    assert Evidence.from_decision(decision("widen", {3: "/a.wav"})).image is None


def test_prompt_refuses_an_empty_question() -> None:
    with pytest.raises(InvalidInputError):
        build_messages("  ", decision("answer"))


# -- evidence answerer --------------------------------------------------------------------------


def test_evidence_answerer_cites_per_decision() -> None:
    answerer = EvidenceAnswerer()
    assert isinstance(answerer, Answerer) and isinstance(answerer, StreamingAnswerer)

    a = answerer.answer("What is red?", decision("answer"))
    assert a.text.startswith("Top match [1]: a red circle on the left (image, score 0.830).")
    assert "Also relevant: [2] a blue square at the top (image, score 0.610)" in a.text
    assert "certified (Safe@1)" in a.text
    assert [(c.id, c.rank) for c in a.citations] == [("item0", 1), ("item1", 2), ("item2", 3)]
    assert a.telemetry["decision"] == "answer" and a.telemetry["safe1"] is True

    w = answerer.answer("What is red?", decision("widen"))
    assert w.text.startswith("No single item is certain, but the top 2 form a stable set")
    assert [c.id for c in w.citations] == ["item0", "item1"]

    c = answerer.answer("What is red?", decision("clarify"))
    assert c.text == c.decision.clarification and c.text.startswith("Did you mean the red circle")
    assert len(c.citations) == 3

    for kind in ("answer", "widen", "clarify"):
        d = decision(kind)
        assert "".join(answerer.stream("q", d)) == answerer.answer("q", d).text
    assert a.to_dict()["citations"][0]["id"] == "item0"
    only = answerer.answer("q", decide(result_for([0.5], 0.05)))
    assert only.text.endswith("It is the only candidate in memory.")


# -- LLaVA --------------------------------------------------------------------------------------

TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}{% endif %}{% endfor %} "
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
PATCHES = 16  # 32x32 image, 8x8 patches


def build_tiny_llava(path: Path) -> None:
    """A randomly initialised LLaVA (CLIP vision + Llama text) and its processor, saved."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;?!'\"()[]-_/\n…“”@"
    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    vocab = {t: i for i, t in enumerate(specials + list(dict.fromkeys(chars)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    processor = transformers.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        chat_template=TEMPLATE,
        num_additional_image_tokens=1,
    )
    config = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8, projection_dim=32,
        ),
        text_config=transformers.LlamaConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
            bos_token_id=1, eos_token_id=2, pad_token_id=3,
        ),
        image_token_index=vocab["<image>"],
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.LlavaForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llava")
    build_tiny_llava(path)
    return path


@pytest.fixture(scope="module")
def red_png(tmp_path_factory: pytest.TempPathFactory) -> str:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "red.png"
    Image.new("RGB", (48, 40), (220, 30, 30)).save(path)
    return str(path)


def _spy_generate(answerer: LlavaAnswerer) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    generate = answerer._model.generate

    def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return generate(**kwargs)

    answerer._model.generate = spy
    return calls


@pytest.fixture(scope="module")
def llava(tiny_llava: Path) -> LlavaAnswerer:
    answerer = LlavaAnswerer(tiny_llava, device="cpu", max_new_tokens=12)
    answerer.load()
    return answerer


def test_llava_decodes_only_new_tokens_and_sees_the_image(
    llava: LlavaAnswerer, red_png: str
) -> None:
    calls = _spy_generate(llava)
    d = decision("answer", {1: red_png})
    a = llava.answer("What colour is the circle?", d)
    (kwargs,) = calls
    assert "pixel_values" in kwargs and tuple(kwargs["pixel_values"].shape) == (1, 3, 32, 32)
    image_id = llava._processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((kwargs["input_ids"] == image_id).sum()) == PATCHES
    t = a.telemetry
    assert t["image"] == red_png and t["quantized_4bit"] is False and t["device"] == "cpu"
    assert 1 <= t["new_tokens"] <= llava.max_new_tokens
    assert t["prompt_tokens"] == kwargs["input_ids"].shape[1] > PATCHES + 100
    # one character per token: the text is at most max_new_tokens long, never the prompt
    assert len(a.text) <= llava.max_new_tokens
    for echoed in ("Question:", "Evidence", "USER:", "ASSISTANT:", "certified"):
        assert echoed not in a.text
    assert [c.id for c in a.citations] == ["item0", "item1", "item2"]


def test_llava_text_only_widen_and_clarify_and_stream(llava: LlavaAnswerer) -> None:
    calls = _spy_generate(llava)
    for kind in ("widen", "clarify"):
        d = decision(kind)
        a = llava.answer("Which shape is red?", d)
        assert a.telemetry["decision"] == kind and a.telemetry["image"] is None
        assert "pixel_values" not in calls[-1]
        assert a.telemetry["new_tokens"] <= llava.max_new_tokens
        streamed = "".join(llava.stream("Which shape is red?", d))
        assert streamed.strip() == a.text
    assert calls[0]["input_ids"].shape != calls[2]["input_ids"].shape  # own prompt per path


def test_llava_never_returns_an_empty_answer(
    llava: LlavaAnswerer, red_png: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    from luma_rag.answer.llava import NO_ANSWER_REPLY

    tokenizer = llava._processor.tokenizer
    kwargs = llava._generate_kwargs()
    assert kwargs["min_new_tokens"] == 1
    assert tokenizer.eos_token_id not in kwargs["suppress_tokens"]
    assert {tokenizer.pad_token_id, tokenizer.unk_token_id} <= set(kwargs["suppress_tokens"])

    def stop_at_once(**kw: Any) -> Any:  # a model that ends (or emits nothing visible) at once
        ids = kw["input_ids"]
        tail = torch.tensor([[tokenizer.pad_token_id, tokenizer.eos_token_id]])
        return torch.cat([ids, tail], dim=1)

    monkeypatch.setattr(llava._model, "generate", stop_at_once)
    a = llava.answer("What colour is the circle?", decision("answer", {1: red_png}))
    assert a.text == NO_ANSWER_REPLY and a.telemetry["empty_generation"] is True


def test_llava_missing_image_falls_back_to_text(llava: LlavaAnswerer, tmp_path: Path) -> None:
    missing = tmp_path / "moved-away.png"
    a = llava.answer("q?", decision("answer", {0: str(missing)}))
    assert a.telemetry["image"] is None and "image_error" in a.telemetry


@pytest.mark.parametrize("model_id", ["luma-rag-tests/no-such-llava", "{tmp}/missing-dir"])
def test_missing_model_is_reported_offline(
    model_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("transformers")
    attempts: list[Any] = []

    def no_network(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    model_id = model_id.format(tmp=tmp_path)
    answerer = LlavaAnswerer(model_id, device="cpu")
    with pytest.raises(ModelNotAvailableError) as info:
        answerer.answer("q?", decision("answer"))
    assert attempts == []
    message = str(info.value)
    assert model_id in message
    if model_id.startswith("luma-rag-tests/"):  # a hub id: the command that puts it in place
        assert f"--local-dir $LUMA_MODEL_DIR/{model_id}" in message
    else:  # a path: what the directory must hold
        assert "config.json" in message
    assert not answerer.loaded


def test_llava_argument_checks() -> None:
    for bad in (0, -1, True, 2.5):
        with pytest.raises(InvalidInputError):
            LlavaAnswerer(max_new_tokens=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        LlavaAnswerer("  ")


def test_llava_4bit_on_cpu(tiny_llava: Path, red_png: str) -> None:
    """bitsandbytes' CPU backend: NF4 weights, generation on CPU; xfail with the reason if not."""
    try:
        import bitsandbytes
    except ImportError as e:
        pytest.xfail(f"bitsandbytes is not installed: {e}")
    answerer = LlavaAnswerer(tiny_llava, device="cpu", load_in_4bit=True, max_new_tokens=6)
    try:
        answerer.load()
        a = answerer.answer("What colour?", decision("answer", {0: red_png}))
    except Exception as e:  # report exactly what this machine's bitsandbytes does
        reason = f"bitsandbytes {bitsandbytes.__version__} 4-bit on CPU: {type(e).__name__}: {e}"
        print(reason)
        pytest.xfail(reason)
    linear4 = [m for m in answerer._model.modules() if type(m).__name__ == "Linear4bit"]
    assert linear4 and a.telemetry["quantized_4bit"] is True
    assert a.telemetry["new_tokens"] <= 6 and a.telemetry["image"] == red_png
