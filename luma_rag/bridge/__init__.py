"""The CLAP → CLIP bridge: streaming orthogonal Procrustes with a recorded drift.

Audio lives in CLAP space, everything else in CLIP space. The bridge keeps the correlation
``M = Σ x_clapᵀ y_clip`` over co-occurring pairs (a caption through both text towers, or an
audio clip and its caption) and, every ``refresh_every`` pairs, replaces the map with the
orthogonal Procrustes solution ``T = U Vᵀ`` from the SVD ``M = U S Vᵀ``. ``T`` has shape
``(source_dim, target_dim)`` and maps a CLAP row vector into CLIP space: ``y ≈ x @ T``.

Each refresh records the drift ``ε = ‖T_new − T_prev‖₂`` (spectral norm). An item projected at
version ``v`` has moved by at most :meth:`ProcrustesBridge.drift_since` ``(v)`` since then — the
sum of the later ε, by the triangle inequality. That number feeds the Safe@k certificate.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> bridge = ProcrustesBridge(BridgeConfig(source_dim=8, target_dim=8, refresh_every=64))
    >>> q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    >>> x = rng.standard_normal((64, 8))
    >>> bridge.add_pairs(x, x @ q)  # 64 pairs: the first refresh
    [0.0]
    >>> bool(np.allclose(bridge.project(x[:2]), x[:2] @ q / np.linalg.norm(x[:2], axis=1)[:, None],
    ...                  atol=1e-5))
    True
"""

from luma_rag.bridge.config import BridgeConfig
from luma_rag.bridge.procrustes import ProcrustesBridge

__all__ = ["BridgeConfig", "ProcrustesBridge"]
