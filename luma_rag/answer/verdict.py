"""A continuous yes/no verdict: the probability a generative model gives "yes" over "no".

A yes/no reply read as a string ("yes" → verified) throws away how sure the model was. When
the answerer generated its reply with scores (transformers ``generate(...,
output_scores=True, return_dict_in_generate=True)``), :func:`verdict_probabilities` reads, at
the reply's **last** "yes" / "no" token (the verdict: a model that describes before it judges,
like the tiny LLaVA's ``large hexagon : large star : no``, puts it last; a plain "Yes, it
does." has it first and only), the probability mass of the "yes" tokens against the "no"
tokens at that step: ``P(yes) / (P(yes) + P(no))``, conditioned on what the model generated
before it. :class:`~luma_rag.answer.llava.LlavaAnswerer` reports it as
``Answer.telemetry["verdict_yes"]``; an answerer that does not gets a 0 / 1 score from its
parsed reply (:func:`verdict_score`), so verification works with any VLM.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Final

__all__ = ["VERDICT_KEY", "verdict_probabilities", "verdict_score", "yes_no_token_ids"]

logger = logging.getLogger(__name__)

#: Telemetry key of a reply's P("yes") at its verdict token, in [0, 1].
VERDICT_KEY: Final = "verdict_yes"
_SPELLINGS: Final = ("yes", "Yes", "YES", " yes", " Yes", "no", "No", "NO", " no", " No")


def yes_no_token_ids(tokenizer: Any) -> tuple[frozenset[int], frozenset[int]]:
    """Ids of the single tokens that spell "yes" / "no" (any case, with or without a space).

    Cached on the tokenizer object (``_luma_yes_no``) when it accepts attributes.
    """
    cached = getattr(tokenizer, "_luma_yes_no", None)
    if cached is not None:
        return cached
    yes: set[int] = set()
    no: set[int] = set()
    for word in _SPELLINGS:
        try:
            ids = tokenizer.encode(word, add_special_tokens=False)
        except (TypeError, ValueError, KeyError):
            continue
        if len(ids) == 1 and tokenizer.unk_token_id != ids[0]:
            (yes if word.strip().lower() == "yes" else no).add(int(ids[0]))
    out = (frozenset(yes), frozenset(no - yes))
    with contextlib.suppress(AttributeError):  # a tokenizer with __slots__: recomputed per call
        tokenizer._luma_yes_no = out
    return out


def verdict_probabilities(gen: Any, width: int, tokenizer: Any) -> list[float | None]:
    """Per row of a ``generate`` output, ``P(yes) / (P(yes) + P(no))`` at its verdict token.

    Args:
        gen: ``generate(..., output_scores=True, return_dict_in_generate=True)``'s output
            (``sequences``: (rows, width + new) int64; ``scores``: one (rows, vocab) float
            tensor per new token).
        width: The prompt length (the new tokens start there).
        tokenizer: The model's tokenizer (for the ids of "yes" / "no").

    Returns:
        One probability per row; ``None`` for a row whose reply holds no "yes" / "no" token
        (before its end token), or when ``gen`` carries no scores.
    """
    if not hasattr(gen, "sequences") or not getattr(gen, "scores", None):
        rows = int(gen.sequences.shape[0] if hasattr(gen, "sequences") else gen.shape[0])
        return [None] * rows
    import torch

    yes, no = yes_no_token_ids(tokenizer)
    if not yes or not no:
        return [None] * int(gen.sequences.shape[0])
    yes_ids, no_ids = sorted(yes), sorted(no)
    eos = tokenizer.eos_token_id
    new = gen.sequences[:, width:]
    out: list[float | None] = []
    for row in range(new.shape[0]):
        step_at = None
        for step in range(min(new.shape[1], len(gen.scores))):
            token = int(new[row, step])
            if eos is not None and token == int(eos):
                break
            if token in yes or token in no:
                step_at = step
        if step_at is None:
            out.append(None)
            continue
        logp = torch.log_softmax(gen.scores[step_at][row].float(), dim=-1)
        ly = float(torch.logsumexp(logp[yes_ids], dim=0))
        ln = float(torch.logsumexp(logp[no_ids], dim=0))
        if not (math.isfinite(ly) or math.isfinite(ln)):
            out.append(None)
            continue
        top = max(ly, ln)
        out.append(math.exp(ly - top) / (math.exp(ly - top) + math.exp(ln - top)))
    return out


def verdict_score(telemetry: Any, verdict: bool | None) -> float:
    """A reply's yes-score in [0, 1]: its reported ``verdict_yes`` when there is one, else the
    parsed verdict as 1 (yes) / 0 (no) / 0.5 (unclear)."""
    value = telemetry.get(VERDICT_KEY) if isinstance(telemetry, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return min(1.0, max(0.0, float(value)))
    return 0.5 if verdict is None else float(verdict)
