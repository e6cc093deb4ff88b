"""Safe@1 over groups of linked items: several stored items that render one thing.

A picture and its spoken caption, the chunks of one document, the frames of one clip: when
items share a link key (a user-given value in their metadata, e.g. ``doc_id``, LlamaIndex's
``ref_doc_id``, LangChain's ``source``), they are not competing answers. The item-level
certificate (:mod:`luma_rag.safety.certificate`) sees two near-equal hits and refuses Safe@1;
the question a reader of the answer asks is only *which thing* is on top.

The statement. Candidates ``1..n`` have exact scores ``s_i`` (sorted descending) and
per-item bounds ``τ_i`` (:func:`~luma_rag.safety.bounds.perturbation_bound` plus the rounding
allowance η); each carries a group label ``g(i)``. Let ``G = g(1)``, the top item's group.
Under any perturbation within the bounds the perturbed scores are ``s'_i``.

    Group-Safe@1 ⇔ ∃ i ∈ G such that, for every j ∉ G, s'_i > s'_j under every perturbation.

Then the perturbed top-1 item is in ``G`` whatever the perturbation: the perturbed maximum
is at least ``s'_i``, which beats every item outside ``G``. Only ``G`` can be certified:
any certified group must contain the unperturbed top-1 (the zero perturbation is allowed).

Two sufficient tests, each sound, and the verdict is their OR (``slack = max`` of both):

* **per item** (DESIGN.md, "Safe@k"): ``max_{i∈G}(s_i − τ_i) > max_{j∉G}(s_j + τ_j)``. The
  *group margin* — the best score of the top group minus the best score of any other group
  — is the quantity this compares against the bounds, exactly as γ = s₁ − s₂ is for Safe@1;
  with uniform τ it reads ``margin > 2τ``.
* **pairwise** (one query perturbation moves every score together, as in
  :func:`~luma_rag.safety.geometry.refine_with_geometry`): with ``‖Δu‖ ≤ r`` and
  ``‖Δv_i‖ ≤ e_i``, ``|(s'_i − s'_j) − (s_i − s_j)| ≤ r·‖v_i − v_j‖ + (1 + r)(e_i + e_j)``,
  so ``i`` stays ahead of ``j`` when ``s_i − s_j`` exceeds that (scaled by ``multiplier / 2``,
  distances bounded from above in float64, plus 2η for the two float scores). The group
  slack is ``max_{i∈G} min_{j∉G} margin_ij``: one member must beat every outsider.

Items beyond the listed candidates (the certificate covered ``n`` but only the first ``m``
were listed, so their groups and vectors are unknown) are counted as rivals of unknown group
through ``rival_ceiling``, an upper bound on their perturbed scores (e.g. the last listed
score plus their largest τ); a member must beat it with its own lower bound ``s_i − τ_i``.
Treating an unlisted item of ``G`` as a rival is conservative, never unsound.

What this does not cover: items outside the candidate set. A caller answering from a
certified group still needs completeness at 1 (``Telemetry.complete_at >= 1``): nothing
outside the candidates can overtake the top-1 under the same bounds. As the top-1 is in
``G``, that keeps the perturbed top of the whole store in ``G``.

Property-tested in ``tests/unit/test_safety_groups.py``: whenever Group-Safe@1 is claimed, no
sampled perturbation within the bounds (including the adversarial ones that move the query
towards a rival) puts an item of another group on top.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from luma_rag._json import to_jsonable
from luma_rag.errors import InvalidInputError
from luma_rag.safety.bounds import as_vector, check_radius, score_rounding_error
from luma_rag.safety.certificate import ranked
from luma_rag.safety.geometry import pair_distances

__all__ = ["GroupCertificate", "certify_groups", "group_labels"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupCertificate:
    """Group-Safe@1 for one ranked candidate list (see the module docstring).

    Attributes:
        safe: No perturbation within the bounds puts an item of another group on top.
        group: The top item's group label (None when there are no candidates).
        members: Indices of the listed candidates in that group, best first.
        margin: Group margin: best score of the top group minus the best score of any other
            listed group (NaN when no other group is listed).
        slack: How far the test is from failing (``safe`` ⇔ ``slack > 0``): the larger of
            the per-item and the pairwise slack; ``+inf`` with no rival at all, NaN with no
            candidates.
        witness: Index of the member whose bound beats every rival (None when not safe).
    """

    safe: bool
    group: Hashable | None
    members: tuple[int, ...]
    margin: float
    slack: float
    witness: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary; NaN and ±inf become ``None``, the label a string."""

        return to_jsonable(
            {
                "safe": self.safe,
                "group": None if self.group is None else str(self.group),
                "members": self.members,
                "margin": self.margin,
                "slack": self.slack,
                "witness": self.witness,
            }
        )


def group_labels(
    ids: Sequence[str], metadatas: Sequence[Any], link_key: str
) -> list[tuple[str, str]]:
    """Group labels for items: ``("link", value)`` when the metadata has ``link_key`` set to
    a string or number, else ``("id", item id)`` (an item nobody linked is its own group).

    Args:
        ids: Item ids, ``(n,)``.
        metadatas: Their metadata mappings (anything without ``.get`` counts as no metadata).
        link_key: The metadata key whose equal values link items.

    Returns:
        One hashable label per item, in order.
    """
    if len(ids) != len(metadatas):
        raise InvalidInputError(f"{len(ids)} ids but {len(metadatas)} metadata entries")
    out: list[tuple[str, str]] = []
    for item_id, meta in zip(ids, metadatas, strict=True):
        value = meta.get(link_key) if hasattr(meta, "get") else None
        ok = isinstance(value, str | int | float) and not isinstance(value, bool)
        if ok and value != "" and not (isinstance(value, float) and math.isnan(value)):
            out.append(("link", str(value)))
        else:
            out.append(("id", str(item_id)))
    return out


def certify_groups(
    scores: ArrayLike,
    tau: ArrayLike,
    groups: Sequence[Hashable],
    *,
    rival_ceiling: float = -math.inf,
    vectors: ArrayLike | None = None,
    r: float = 0.0,
    e: ArrayLike | None = None,
    multiplier: float = 2.0,
    score_dtype: Any = np.float32,
) -> GroupCertificate:
    """Group-Safe@1 of a ranked candidate list (the module docstring states it).

    Args:
        scores: Exact scores of the listed candidates, float ``(m,)``, sorted descending.
        tau: Their per-item bounds (rounding allowance included), float ``(m,)``, ``>= 0``.
        groups: One hashable group label per candidate, ``(m,)``.
        rival_ceiling: Upper bound on the perturbed score of any candidate that is not
            listed (``-inf``: every candidate is listed).
        vectors: The candidates' unit vectors, float ``(m, d)`` as the scores were computed
            from, for the pairwise test; None: the per-item test only.
        r: Query-side radius ρ + ε_q (pairwise test). e: item-side radii ``(m,)``, each at
            least the item's ε_i + ζ_i (default zeros).
        multiplier: Scale of the perturbation terms (2.0: sound).
        score_dtype: dtype the scores were computed in (the rounding allowance).

    Returns:
        The :class:`GroupCertificate`.

    Raises:
        InvalidInputError: shapes that disagree, unsorted or non-finite scores, bad radii.
    """
    s, t = ranked(scores, tau)
    m = int(s.size)
    if len(groups) != m:
        raise InvalidInputError(f"need one group label per candidate: {m} scores, {len(groups)}")
    ceiling = float(rival_ceiling)
    if math.isnan(ceiling):
        raise InvalidInputError("rival_ceiling must be a number (-inf: no unlisted candidate)")
    if m == 0:
        return GroupCertificate(False, None, (), math.nan, math.nan, None)
    top = groups[0]
    inside = np.array([g == top for g in groups], dtype=bool)
    members = tuple(int(i) for i in np.flatnonzero(inside))
    rivals = np.flatnonzero(~inside)
    margin = float(s[0] - s[rivals[0]]) if rivals.size else math.nan
    floors = s[inside] - t[inside]
    rival_top = max(float((s[rivals] + t[rivals]).max(initial=-np.inf)), ceiling)
    per_member = floors - rival_top  # per-item test, one entry per member
    if vectors is not None and rivals.size:
        per_member = np.maximum(
            per_member,
            _pairwise(s, t, inside, rivals, ceiling, vectors, r, e, multiplier, score_dtype),
        )
    with np.errstate(invalid="ignore"):
        best = int(np.argmax(per_member))
    slack = float(per_member[best])
    if math.isinf(rival_top) and rival_top < 0:
        slack = math.inf  # nothing outside the group, listed or not
    safe = slack > 0
    cert = GroupCertificate(safe, top, members, margin, slack, members[best] if safe else None)
    logger.debug("group certificate: %s", cert.to_dict())
    return cert


def _pairwise(
    s: np.ndarray,
    t: np.ndarray,
    inside: np.ndarray,
    rivals: np.ndarray,
    ceiling: float,
    vectors: ArrayLike,
    r: float,
    e: ArrayLike | None,
    multiplier: float,
    score_dtype: Any,
) -> np.ndarray:
    """Pairwise slack per member: ``min_j (s_i − s_j − need_ij)``, and ``s_i − τ_i − ceiling``."""
    v = np.asarray(vectors, dtype=np.float64)
    m = s.size
    radii = np.zeros(m) if e is None else as_vector("e", e)
    r = check_radius("r", r)
    if v.ndim != 2 or v.shape[0] != m or radii.shape != (m,):
        raise InvalidInputError(
            f"scores ({m},), vectors (m, d) and e (m,) must agree; got {v.shape} and {radii.shape}"
        )
    if not np.all(np.isfinite(radii)) or np.any(radii < 0):
        raise InvalidInputError("e must be finite and >= 0")
    eta = score_rounding_error(max(1, v.shape[1]), score_dtype)
    idx = np.flatnonzero(inside)
    order = np.concatenate([idx, rivals])  # members first, so pair_distances' rows are theirs
    dist = pair_distances(v[order], idx.size)[:, idx.size :]  # (members, rivals)
    item = radii[idx, None] + radii[None, rivals]
    need = (r * dist + (1.0 + r + eta) * item) * (float(multiplier) / 2.0) + 2.0 * eta
    pair = (s[idx, None] - s[None, rivals] - need).min(axis=1)
    return np.minimum(pair, (s[idx] - t[idx]) - ceiling)
