"""The query-vector checks at the library boundary (``luma_rag._arrays``)."""

from __future__ import annotations

import numpy as np
import pytest

from luma_rag._arrays import as_query, as_unit_matrix
from luma_rag.errors import DimensionMismatchError, InvalidInputError


def test_as_query_float32_row_matches_the_batch_path_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    for _ in range(500):
        d = int(rng.integers(1, 600))
        q = (rng.standard_normal(d) * 10.0 ** rng.uniform(-10, 10)).astype(np.float32)
        got = as_query(q, d)
        want = as_unit_matrix(q[None, :], d, name="query")[0]
        assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == (d,)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "bad",
    [
        np.full(8, np.nan, np.float32),
        np.array([1, np.inf, 0, 0, 0, 0, 0, 0], np.float32),
        np.zeros(8, np.float32),
    ],
)
def test_as_query_float32_row_still_refuses_bad_vectors(bad: np.ndarray) -> None:
    with pytest.raises(InvalidInputError):
        as_query(bad, 8)


def test_as_query_other_inputs_take_the_checked_path() -> None:
    q = np.arange(1, 9, dtype=np.float64)
    np.testing.assert_array_equal(as_query(q, 8), as_query(q.astype(np.float32), 8))
    np.testing.assert_array_equal(as_query(q[None, :], 8), as_query(q, 8))
    with pytest.raises(DimensionMismatchError):
        as_query(np.ones(7, np.float32), 8)
    with pytest.raises(InvalidInputError):
        as_query(np.ones((2, 8), np.float32), 8)
