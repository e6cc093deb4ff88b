"""The answer gate (ANSWER / WIDEN / CLARIFY) and the answerers that act on its decision.

Example:
    >>> from luma_rag.answer import EvidenceAnswerer, GateConfig, gated_query
    >>> decision = gated_query(luma, "a red circle on the left", config=GateConfig(k=5))
    >>> EvidenceAnswerer().answer("a red circle on the left", decision).text

Nothing here imports torch or transformers until :class:`LlavaAnswerer` loads its model, and
nothing here knows the synthetic corpus: its verifier is
:class:`luma_rag.datasets.verifier.AttributeVerifier`; the coverage / risk experiments live in
:mod:`luma_rag.eval.gate_variants`.
"""

from __future__ import annotations

from luma_rag.answer.base import Answer, Answerer, Citation, Evidence, StreamingAnswerer
from luma_rag.answer.calibrate import (
    GateCalibration,
    RadiusCalibrationConfig,
    calibrate_gate_radius,
)
from luma_rag.answer.clarify import clarifying_question, describe_hit
from luma_rag.answer.consensus import ConsensusAnswerer, ConsensusConfig
from luma_rag.answer.evidence import EvidenceAnswerer
from luma_rag.answer.gate import (
    Decision,
    GateConfig,
    GateDecision,
    GatedRetriever,
    GateNumbers,
    decide,
    gated_query,
)
from luma_rag.answer.llava import DEFAULT_LLAVA_MODEL, OFFLINE_LLAVA_MODEL, LlavaAnswerer
from luma_rag.answer.prompts import build_messages, build_prompt_text
from luma_rag.answer.scored import ScoredVerifyConfig, ScoredVerifyingAnswerer
from luma_rag.answer.text_model import TextModelAnswerer
from luma_rag.answer.verify import Verifier, VerifyConfig, VerifyingAnswerer
from luma_rag.answer.verify_vlm import VlmVerifier, answer_gated, verified_answerer

__all__ = [
    "DEFAULT_LLAVA_MODEL",
    "OFFLINE_LLAVA_MODEL",
    "Answer",
    "Answerer",
    "Citation",
    "ConsensusAnswerer",
    "ConsensusConfig",
    "Decision",
    "Evidence",
    "EvidenceAnswerer",
    "GateCalibration",
    "GateConfig",
    "GateDecision",
    "GateNumbers",
    "GatedRetriever",
    "LlavaAnswerer",
    "RadiusCalibrationConfig",
    "ScoredVerifyConfig",
    "ScoredVerifyingAnswerer",
    "StreamingAnswerer",
    "TextModelAnswerer",
    "Verifier",
    "VerifyConfig",
    "VerifyingAnswerer",
    "VlmVerifier",
    "answer_gated",
    "build_messages",
    "build_prompt_text",
    "calibrate_gate_radius",
    "clarifying_question",
    "decide",
    "describe_hit",
    "gated_query",
    "verified_answerer",
]
