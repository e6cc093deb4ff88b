"""Shape-focused batches of the tiny CLIP's training (``luma_rag.training.clip_focus``)."""

from __future__ import annotations

import numpy as np
import pytest

from luma_rag.datasets.vocab import SHAPES
from luma_rag.training.clip_focus import focus_weights, shape_errors

torch = pytest.importorskip("torch")

PENTAGON, HEXAGON = SHAPES.index("pentagon"), SHAPES.index("hexagon")


class _Blind:
    """An image tower that tells every shape apart except pentagon from hexagon."""

    def eval(self) -> None:
        pass

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        code = pixels[:, 0, 0, 0].long()
        code = torch.where(code == HEXAGON, torch.full_like(code, PENTAGON), code)
        return torch.nn.functional.one_hot(code, len(SHAPES)).float()


def _codes(per_shape: int) -> torch.Tensor:
    return torch.arange(len(SHAPES)).repeat_interleave(per_shape)


def test_shape_errors_find_the_shapes_the_embedding_merges() -> None:
    codes = _codes(40)[torch.randperm(8 * 40, generator=torch.Generator().manual_seed(0))]
    pixels = codes.float()[:, None, None, None].expand(-1, 3, 2, 2).contiguous()
    errors = shape_errors(_Blind(), pixels, codes, torch, batch=50)
    assert errors.shape == (len(SHAPES),)
    others = [i for i in range(len(SHAPES)) if i not in (PENTAGON, HEXAGON)]
    assert np.all(errors[others] == 0.0)
    # Two identical clusters: the probe reads them as one shape, about half of each is wrong.
    assert errors[PENTAGON] + errors[HEXAGON] == pytest.approx(1.0, abs=0.2)
    assert min(errors[PENTAGON], errors[HEXAGON]) > 0.2


def test_focus_weights_share_the_mass_by_count_and_by_error() -> None:
    codes = torch.cat([_codes(10), torch.full((20,), HEXAGON)])  # hexagons three times as many
    errors = np.zeros(len(SHAPES))
    errors[PENTAGON], errors[HEXAGON] = 0.3, 0.1
    share = lambda w: np.bincount(codes.numpy(), weights=w.numpy(), minlength=len(SHAPES))  # noqa: E731
    uniform = focus_weights(codes, errors, 0.0, torch)
    assert float(uniform.sum()) == pytest.approx(1.0)
    np.testing.assert_allclose(uniform.numpy(), 1 / len(codes))
    focused = focus_weights(codes, errors, 1.0, torch)
    np.testing.assert_allclose(share(focused)[[PENTAGON, HEXAGON]], [0.75, 0.25])
    assert share(focused).sum() == pytest.approx(1.0)
    half = share(focus_weights(codes, errors, 0.5, torch))
    np.testing.assert_allclose(half, 0.5 * share(uniform) + 0.5 * share(focused))
    # A perfect probe gives nothing to focus on: the weights stay by count.
    np.testing.assert_allclose(focus_weights(codes, np.zeros(len(SHAPES)), 1.0, torch), uniform)
