"""Prompts for vision-language answerers, one per gate decision. Pure functions.

:func:`build_messages` returns a conversation in the format of Hugging Face chat templates
(``processor.apply_chat_template(conversation, add_generation_prompt=True)``): one user turn
whose content is an optional ``{"type": "image"}`` placeholder followed by the text. LLaVA-1.5
takes one image, so only the best image / video hit of the evidence is shown as an image (see
:class:`~luma_rag.answer.base.Evidence`); every piece of evidence, that one included, is also
listed as numbered text.
"""

from __future__ import annotations

from typing import Any

from luma_rag.answer.base import Evidence
from luma_rag.answer.gate import GateDecision
from luma_rag.errors import InvalidInputError

__all__ = ["INSTRUCTIONS", "build_messages", "build_prompt_text"]

#: What the model is told to do, per decision. ``{k}``: the certified set size;
#: ``{clarification}``: the gate's clarifying question.
INSTRUCTIONS: dict[str, str] = {
    "answer": (
        "Answer the question using the evidence below. Evidence [1] is the certified best "
        "match; the other items are context. Cite the items you use by number, like [1]. "
        "If the evidence does not answer the question, say so."
    ),
    "widen": (
        "No single item is certainly the best match, but items [1] to [{k}] together form a "
        "stable set. Answer from all of them, cite the items that support your answer by "
        "number, and say so if they disagree."
    ),
    "clarify": (
        "The evidence cannot settle the question: the leading candidates below are too close "
        "to tell apart. Do not answer the question. Ask the user one short question that would "
        'tell them apart, for example: "{clarification}"'
    ),
    "not_in_memory": (
        "Nothing in memory answers the question: no stored item is relevant to it. Do not "
        "answer it from your own knowledge. Say that nothing in memory answers it and ask "
        'the user to add material or rephrase, for example: "{clarification}"'
    ),
}

_MAX_ITEM_CHARS = 400


def _clip(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def build_prompt_text(question: str, decision: GateDecision, *, with_image: bool = True) -> str:
    """The text part of the prompt: instructions, numbered evidence, the question.

    Args:
        question: The user's question; non-empty.
        decision: The gate's decision (its evidence is listed).
        with_image: Whether the evidence's image is attached; adds a line naming which
            piece of evidence it is.

    Returns:
        The prompt text.

    Raises:
        InvalidInputError: empty question or unknown decision.
    """
    if not isinstance(question, str) or not question.strip():
        raise InvalidInputError("the question must be a non-empty string")
    template = INSTRUCTIONS.get(decision.decision)
    if template is None:
        raise InvalidInputError(f"unknown gate decision {decision.decision!r}")
    evidence = Evidence.from_decision(decision)
    parts = [
        template.format(
            k=decision.k_used,
            clarification=decision.clarification or "Which one do you mean?",
        )
    ]
    if evidence.hits:
        lines = [_clip(line, _MAX_ITEM_CHARS) for line in evidence.lines()]
        parts.append("Evidence:\n" + "\n".join(lines))
    else:
        parts.append("Evidence: none was found.")
    if with_image and evidence.image_index is not None:
        parts.append(f"The image shows evidence [{evidence.image_index + 1}].")
    parts.append(f"Question: {question.strip()}")
    return "\n\n".join(parts)


def build_messages(
    question: str, decision: GateDecision, *, with_image: bool = True
) -> list[dict[str, Any]]:
    """The chat conversation for ``question`` under ``decision``.

    Args:
        question: The user's question; non-empty.
        decision: The gate's decision: ANSWER, WIDEN and CLARIFY each get their own
            instructions (:data:`INSTRUCTIONS`).
        with_image: Put an image placeholder first when the evidence has an image (the
            caller passes that image to the processor); False to send text only.

    Returns:
        ``[{"role": "user", "content": [{"type": "image"}?, {"type": "text", "text": ...}]}]``.

    Raises:
        InvalidInputError: empty question or unknown decision.
    """
    has_image = with_image and Evidence.from_decision(decision).image_index is not None
    content: list[dict[str, Any]] = [{"type": "image"}] if has_image else []
    content.append(
        {"type": "text", "text": build_prompt_text(question, decision, with_image=has_image)}
    )
    return [{"role": "user", "content": content}]
