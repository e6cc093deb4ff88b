"""Model kit v2 building blocks: hard negatives, referent pools, training-only losses,
compositional evaluation and yes/no verification questions (no trained model needed)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag.datasets.attributes import ShapeAttributes, relevant
from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.datasets.questions import (
    VERIFY_TEMPLATES,
    make_verification,
    question_words,
    verification_words,
)
from luma_rag.datasets.shapes import ShapeItem
from luma_rag.datasets.vocab import COLORS, SHAPES
from luma_rag.training.clip_texts import (
    REQUIREMENT_KEYS,
    SWAPPABLE,
    attribute_codes,
    build_text_pools,
    requirement,
    swap_one,
)
from luma_rag.training.compositional import evaluate_referents, linear_probe, wilson


def _attrs(rng: np.random.Generator) -> ShapeAttributes:
    count = int(rng.integers(1, 3))
    return ShapeAttributes(
        shape=SHAPES[int(rng.integers(len(SHAPES)))],
        color=COLORS[int(rng.integers(len(COLORS)))],
        size="small" if count == 2 else ("small", "large")[int(rng.integers(2))],
        position=("left", "right", "top", "bottom", "center")[int(rng.integers(5))],
        count=count,
        background=("plain", "noise", "stripes")[int(rng.integers(3))],
    )


def _items(n: int, seed: int = 0) -> list[ShapeItem]:
    from luma_rag.datasets.captions import make_captions

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = _attrs(rng)
        caps = make_captions(a, rng, k=3, mention_background=bool(i % 2))
        out.append(
            ShapeItem(
                id=f"it{i}",
                image=f"it{i}.png",
                caption=caps[0],
                captions=tuple(caps),
                audio=None,
                video=None,
                split="train",
                attributes=a,
                root=Path("/nowhere"),
            )
        )
    return out


def test_swap_one_changes_exactly_one_attribute() -> None:
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(400):
        a = _attrs(rng)
        b = swap_one(a, rng)
        changed = {k for k in SWAPPABLE if getattr(a, k) != getattr(b, k)}
        assert changed and b.background == a.background
        if b.count == 2 and a.count == 1:
            assert changed <= {"count", "size"} and b.size == "small"
        else:
            assert len(changed) == 1
        seen |= changed
    assert seen == set(SWAPPABLE)


def test_text_pools_describe_their_item_except_the_negatives() -> None:
    items = _items(30)
    pools = build_text_pools(items, np.random.default_rng(0), referents=3, negatives=2)
    assert pools.requirements.shape == (len(pools.texts), len(REQUIREMENT_KEYS))
    codes = attribute_codes(items)
    for i, it in enumerate(items):
        for kind in range(3):
            start, count = pools.starts[i, kind], pools.counts[i, kind]
            assert count == (len(it.captions), 3, 2)[kind]
            for row in range(start, start + count):
                req = pools.requirements[row]
                matches = bool(np.all((req < 0) | (req == codes[i])))
                # captions and referents describe the item; a hard negative never does
                assert matches == (kind != 2), pools.texts[row]
                assert pools.is_negative[row] == (kind == 2)
                named = parse_query_attributes(pools.texts[row])
                assert relevant(named, it.attributes) == matches


def test_background_swaps_only_in_negatives_of_items_whose_caption_names_it() -> None:
    items = _items(40, seed=5)
    names = ["background" in parse_query_attributes(it.caption) for it in items]
    assert any(names) and not all(names)

    def swapped(swap_background: bool) -> list[set[str]]:
        pools = build_text_pools(
            items,
            np.random.default_rng(6),
            referents=0,
            negatives=60,
            swap_background=swap_background,
        )
        out = []
        for i, it in enumerate(items):
            start, count = pools.starts[i, 2], pools.counts[i, 2]
            out.append(
                {
                    key
                    for text in pools.texts[start : start + count]
                    for key, value in parse_query_attributes(text).items()
                    if str(getattr(it.attributes, key)) != str(value)
                }
            )
        return out

    on, off = swapped(True), swapped(False)
    assert all(("background" in keys) == named for keys, named in zip(on, names, strict=True))
    assert not any("background" in keys for keys in off)


def test_requirement_codes_follow_relevance() -> None:
    items = _items(40, seed=3)
    codes = attribute_codes(items)
    rng = np.random.default_rng(4)
    for _ in range(50):
        a = items[int(rng.integers(len(items)))].attributes.as_dict()
        named = {k: a[k] for k in REQUIREMENT_KEYS if rng.random() < 0.4}
        req = np.array(requirement(named))
        got = np.all((req < 0) | (req == codes), axis=1)
        want = [relevant(named, it.attributes) for it in items]
        np.testing.assert_array_equal(got, want)


def test_group_loss_prefers_aligned_embeddings_and_skips_texts_without_images() -> None:
    torch = pytest.importorskip("torch")
    from luma_rag.training.clip_losses import group_clip_loss, relevance

    codes = torch.tensor([[0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    reqs = torch.tensor([[0, -1, -1, -1, -1, -1], [1, 1, -1, -1, -1, -1], [2, 0, 0, 0, 0, 0]])
    rel = relevance(codes, reqs)
    assert rel.tolist() == [[True, False, False], [False, True, False]]
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), dim=1)
    good = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    bad = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    scale = torch.tensor(10.0)
    low, high = (
        group_clip_loss(img, good, scale, rel, torch),
        group_clip_loss(img, bad, scale, rel, torch),
    )
    assert torch.isfinite(low) and low < high
    # the third text (no relevant image) must not enter the text->image term: moving it
    # towards an image can only matter through the image->text term
    closer = good.clone()
    closer[2] = torch.tensor([1.0, 0.0, 0.0])
    assert group_clip_loss(img, closer, scale, rel, torch) > low


def test_attribute_loss_skips_colour_of_grey_images_and_to_gray() -> None:
    torch = pytest.importorskip("torch")
    from luma_rag.training.clip_losses import attribute_heads, attribute_loss, to_gray

    torch.manual_seed(0)
    heads = attribute_heads(8, torch)
    img = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    codes = torch.tensor([[0, 1, 0, 2, 1, 0]] * 4)
    gray = torch.tensor([True, True, True, True])
    heads.zero_grad()
    attribute_loss(heads, img, codes, gray, torch).backward()
    assert heads["color"].weight.grad is None or float(heads["color"].weight.grad.abs().sum()) == 0
    assert float(heads["shape"].weight.grad.abs().sum()) > 0
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.3, 0.25])
    px = torch.randn(3, 3, 4, 4)
    out = to_gray(px, torch.tensor([True, False, True]), mean, std)
    raw = out * std[None, :, None, None] + mean[None, :, None, None]
    assert torch.allclose(raw[0, 0], raw[0, 1], atol=1e-5) and torch.allclose(
        raw[2, 1], raw[2, 2], atol=1e-5
    )
    assert torch.equal(out[1], px[1])


class _AttributeEncoder:
    """Embeds an image as one-hot (shape) and/or (colour) of its item; texts by parsing."""

    def __init__(self, items: Sequence[ShapeItem], use_shape: bool, use_color: bool) -> None:
        self.by_path = {str(it.image_path): it.attributes for it in items}
        self.use_shape, self.use_color = use_shape, use_color

    def _vec(self, shape: str | None, color: str | None) -> np.ndarray:
        v = np.zeros(len(SHAPES) + len(COLORS) + 1, dtype=np.float32)
        if shape is not None and self.use_shape:
            v[SHAPES.index(shape)] = 1
        if color is not None and self.use_color:
            v[len(SHAPES) + COLORS.index(color)] = 1
        v[-1] = 0.01
        return v / np.linalg.norm(v)

    def encode_image(self, images: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
        return np.stack(
            [self._vec(a.shape, a.color) for a in (self.by_path[str(p)] for p in images)]
        )

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        parsed = [parse_query_attributes(t) for t in texts]
        return np.stack([self._vec(q.get("shape"), q.get("color")) for q in parsed])


def test_linear_probe_reads_shape_only_when_the_embedding_has_it() -> None:
    items = _items(300, seed=5)
    fit, test = items[:200], items[200:]
    with_shape = linear_probe(_AttributeEncoder(items, True, True), fit, test)  # type: ignore[arg-type]
    colour_only = linear_probe(_AttributeEncoder(items, False, True), fit, test)  # type: ignore[arg-type]
    assert with_shape["accuracy"] == 1.0 and with_shape["n"] == 100
    assert colour_only["accuracy"] < 0.4
    lo, hi = with_shape["wilson95"]
    assert lo < 1.0 == hi


def test_referent_top1_counts_group_relevance() -> None:
    items = _items(60, seed=6)
    both = evaluate_referents(_AttributeEncoder(items, True, True), items)  # type: ignore[arg-type]
    blind = evaluate_referents(_AttributeEncoder(items, False, False), items)  # type: ignore[arg-type]
    assert both["n"] == 5 * len(items) and set(both["by_kind"]) >= {"shape", "color"}
    assert both["top1"] > blind["top1"]


def test_wilson_interval() -> None:
    lo, hi = wilson(21, 22)
    assert 0.77 < lo < 0.79 and hi > 0.99
    assert wilson(0, 0) == (0.0, 1.0)


def test_verification_answers_match_the_claim() -> None:
    rng = np.random.default_rng(7)
    words = set(question_words()) | set(verification_words())
    assert not set(verification_words()) & set(question_words())
    answers = []
    for i in range(300):
        a = _attrs(rng)
        v = make_verification(a, rng, truthful=i % 2 == 0)
        assert (
            v.answer
            == ("yes" if relevant(v.claimed, a) else "no")
            == ("yes" if i % 2 == 0 else "no")
        )
        named = parse_query_attributes(v.text)
        for key in ("shape", "color", "size", "position"):
            assert named.get(key) == v.claimed.get(key)
        assert any(v.text.startswith(t.split("{")[0]) for t in VERIFY_TEMPLATES)
        assert set(re.findall(r"[a-z]+", v.text.lower())) <= words
        # the trained reply: what the image shows of the claimed keys, then the verdict
        claim, seen, verdict = v.reply.split(" : ")
        assert verdict == v.answer
        claimed_keys = [k for k in ("size", "color", "shape", "position") if k in v.claimed]
        assert claim.split() == [str(v.claimed[k]) for k in claimed_keys]
        assert seen.split() == [str(getattr(a, k)) for k in claimed_keys]
        assert (claim == seen) == (v.answer == "yes")
        assert set(seen.split()) <= words
        answers.append(v.answer)
    assert {"yes", "no"} <= words
