"""The variants of issue #17's held-out evaluation (:mod:`luma_rag.eval.trust`): which gate
each reads and which answerer answers it, all sharing one cached answerer and yes/no cache."""

from __future__ import annotations

import dataclasses

from luma_rag.answer.base import Answerer
from luma_rag.answer.readable import ReadableAnswerer
from luma_rag.answer.scored import (
    SESSION6_SCORED,
    SESSION7_SCORED,
    ScoredVerifyConfig,
    ScoredVerifyingAnswerer,
)
from luma_rag.answer.verify import VerifyConfig, VerifyingAnswerer
from luma_rag.answer.verify_vlm import VlmVerifier
from luma_rag.eval.gate_questions import CachedAnswerer
from luma_rag.eval.trust_calibrate import legacy_verified

__all__ = ["DEFAULT_VARIANT", "LEGACY_VARIANT", "SESSION6_VARIANT", "SESSION7_VARIANT", "variants"]

#: The variant the targets are checked on: the library's default verified path
#: (``verified_answerer(bot)``: the guarded score-gap path, :class:`ScoredVerifyConfig`).
DEFAULT_VARIANT = "gate+verify"
#: Session 6's score-gap path without the guards (:data:`SESSION6_SCORED`).
SESSION6_VARIANT = "gate+scored-verify (session 6)"
#: Session 7's default: the guarded path, ANSWER by the certificate's Safe@1 only.
SESSION7_VARIANT = "gate+verify (session 7)"
#: The default before: yes/no strings over ``k_verify`` hits on ANSWER / WIDEN (VerifyConfig).
LEGACY_VARIANT = "gate+yes-no-verify"


def variants(
    bot: CachedAnswerer, checker: VlmVerifier, k_verify: int, verify: bool, attr_verify: bool,
    cal_verify: bool | None, scored: ScoredVerifyConfig, legacy: bool,
) -> dict[str, tuple[str, Answerer]]:  # fmt: skip
    """``name -> (gate it reads, answerer)``; ``cal_verify`` None: no calibrated variants."""
    out: dict[str, tuple[str, Answerer]] = {"gate": ("gate", ReadableAnswerer(bot))}
    cfg = VerifyConfig(k_verify=k_verify)
    if verify:
        default = ScoredVerifyingAnswerer(bot, checker, scored)
        out[DEFAULT_VARIANT] = ("gate", ReadableAnswerer(default))
    if verify and legacy:
        session7 = ScoredVerifyingAnswerer(bot, checker, SESSION7_SCORED)
        out[SESSION7_VARIANT] = ("gate", ReadableAnswerer(session7))
        session6 = ScoredVerifyingAnswerer(bot, checker, SESSION6_SCORED)
        out[SESSION6_VARIANT] = ("gate", ReadableAnswerer(session6))
        out[LEGACY_VARIANT] = ("gate", ReadableAnswerer(legacy_verified(bot, checker, cfg)))
        rescue = dataclasses.replace(cfg, rescue_clarify=True)
        out["gate+verify+rescue"] = (
            "gate",
            ReadableAnswerer(legacy_verified(bot, checker, rescue)),
        )
    if cal_verify is not None:
        ltt = legacy_verified(bot, checker, cfg) if cal_verify else bot
        out["gate+ltt"] = ("ltt", ReadableAnswerer(ltt))
    if attr_verify:
        from luma_rag.datasets.verifier import AttributeVerifier, answerer_kind_accuracy

        acc = answerer_kind_accuracy(bot.inner)
        acfg = VerifyConfig(k_verify=k_verify, abstain_unreliable=acc is not None)
        check = AttributeVerifier(bot, kind_accuracy=acc, min_accuracy=acfg.min_kind_accuracy)
        out["gate+attr-verify"] = (
            "gate",
            ReadableAnswerer(VerifyingAnswerer(bot, check, acfg, kind_accuracy=acc)),
        )
    return out
