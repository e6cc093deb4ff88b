"""Safe@k certificates: per-candidate perturbation bounds, Safe@1 / Safe@k, completeness.

A retrieval result is *safe at k* when no perturbation of the query and of the items within
their stated radii can change the top-k set. The radii come from three sources (see
``DESIGN.md``, "Safe@k — the certificate, stated soundly"):

* ε — bridge drift, on the query (ε_q) and on items projected through the bridge (ε_i);
* ζ — product-quantization error of an item whose score comes from codes (ζ_i);
* ρ — the encoder radius: how far two inputs that mean the same land apart.

With a query-side radius ``r = ρ + ε_q`` and item-side radii ``e_i = ε_i + ζ_i``, the corrected
Lemma 1 bounds how far each score can move: for unit ``u``, ``v`` and any ``Δu``, ``Δv``,

    |⟨u+Δu, v+Δv⟩ − ⟨u, v⟩| = |⟨Δu, v⟩ + ⟨u, Δv⟩ + ⟨Δu, Δv⟩| ≤ ‖Δu‖ + ‖Δv‖ + ‖Δu‖·‖Δv‖

(the paper drops the last term). Every candidate then has an interval ``[s_i − τ_i, s_i + τ_i]``
holding its perturbed score, and the certificate compares intervals:

* Safe@1 ⇔ ``s_1 − τ_1 > max_{j≥2} (s_j + τ_j)``;
* Safe@k ⇔ ``min_{i≤k} (s_i − τ_i) > max_{j>k} (s_j + τ_j)``.

Inequalities are strict, so tied scores are never safe. With a uniform τ = ε + ζ these are the
paper's ``γ > 2(ε+ζ)`` and ``δ_k > 2(ε+ζ)``.

Read in this order: :mod:`~luma_rag.safety.bounds` (τ per candidate), :mod:`~luma_rag.safety.
certificate` (Safe@1 / Safe@k, completeness), :mod:`~luma_rag.safety.geometry` (the pairwise
refinement that uses one shared query perturbation). Everything is pure float64 numpy and runs
once per query; :mod:`luma_rag.pipeline` calls it in that order.
"""

from luma_rag.safety.bounds import SafetyConfig, perturbation_bound, score_rounding_error
from luma_rag.safety.certificate import Certificate, certify, completeness, smallest_safe_k
from luma_rag.safety.geometry import refine_with_geometry

__all__ = [
    "Certificate",
    "SafetyConfig",
    "certify",
    "completeness",
    "perturbation_bound",
    "refine_with_geometry",
    "score_rounding_error",
    "smallest_safe_k",
]
