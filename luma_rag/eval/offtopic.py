"""Questions a LUMA-Shapes store cannot answer: general knowledge, other objects, nonsense.

Evaluation data only (:mod:`luma_rag.eval.trust`): nothing calibrates on it. Sixty questions
in three groups of twenty; "other objects" deliberately reuse colour and position words the
corpus knows ("a red sports car", "a green apple on the left") so that a test of word overlap
alone cannot pass them.
"""

from __future__ import annotations

from typing import Final

__all__ = ["OFF_TOPIC", "OFF_TOPIC_GROUPS"]

OFF_TOPIC_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "general knowledge": (
        "who won the 1998 world cup?",
        "what is the boiling point of water?",
        "what is the capital of France?",
        "who wrote Hamlet?",
        "how many moons does Jupiter have?",
        "when did the Berlin wall fall?",
        "what is the speed of light?",
        "who painted the Mona Lisa?",
        "what is the tallest mountain on earth?",
        "how do vaccines work?",
        "what is the population of Tokyo?",
        "which planet is closest to the sun?",
        "what does DNA stand for?",
        "who invented the telephone?",
        "what year did the Titanic sink?",
        "how far is the moon from the earth?",
        "what is the chemical formula of salt?",
        "who was the first person on the moon?",
        "what currency is used in Japan?",
        "how many bones are in the human body?",
    ),
    "other objects": (
        "a red sports car",
        "a green apple on the left",
        "a dog playing in the park",
        "a cat sleeping on a sofa",
        "a bowl of ramen",
        "a blue bicycle near the top",
        "a yellow taxi in the city",
        "a brown horse on the right",
        "a white sailboat on the sea",
        "a purple umbrella in the rain",
        "an orange basketball at the bottom",
        "a pink flamingo standing in water",
        "a black piano in a concert hall",
        "a wooden chair in the middle",
        "a glass of red wine",
        "a snowy mountain at sunset",
        "a laptop on a desk",
        "a pair of running shoes",
        "a birthday cake with candles",
        "a green frog on a leaf",
    ),
    "nonsense": (
        "asdf qwerty zxcv",
        "blorp snarf wibble",
        "colorless green ideas sleep furiously",
        "xkcd lorem ipsum dolor",
        "the the the the",
        "zzzz",
        "purple monkey dishwasher",
        "flibbertigibbet quux",
        "qwop plonk",
        "glorp on the zibble",
        "hmm",
        "?!?!",
        "banana telephone syntax",
        "kjhgf lkjhg",
        "wug wugs wugging",
        "frobnicate the baz",
        "mimsy borogoves outgrabe",
        "ipsum factum blah",
        "nope nope nope",
        "snark hunting grommet",
    ),
}

OFF_TOPIC: Final[tuple[str, ...]] = tuple(q for g in OFF_TOPIC_GROUPS.values() for q in g)
