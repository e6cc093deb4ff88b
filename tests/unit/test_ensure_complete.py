"""A plain search keeps ANN speed; ``ensure_complete=True`` (what the gate asks) rescans exactly."""

from __future__ import annotations

import numpy as np

from luma_rag.memory import HotTierConfig


def test_plain_search_does_not_rescan_but_ensure_complete_does(make_store, make_vectors):
    vecs = make_vectors(600, 32, seed=11)
    luma = make_store(32, hot_budget=1000, hot=HotTierConfig(exact_below=0))  # HNSW: no bound
    luma.add_vectors(vecs)
    exact = vecs @ vecs[5]
    plain = luma.search(vecs[5], k=3)
    assert plain.telemetry.safe1 and not plain.telemetry.complete
    assert plain.telemetry.stages_ms["rescan"] == 0.0
    sure = luma.search(vecs[5], k=3, ensure_complete=True)
    assert sure.telemetry.complete and sure.telemetry.stages_ms["rescan"] > 0.0
    assert np.allclose([h.score for h in sure.hits], np.sort(exact)[::-1][:3], atol=1e-5)
