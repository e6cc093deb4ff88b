"""The text tokenizer of ``luma-tiny-clap``: a small byte-level BPE built offline.

CLAP's text tower is RoBERTa, whose tokenizer is a byte-level BPE with ``<s>`` / ``</s>``
around every sequence. :func:`build_tokenizer` trains the same kind of tokenizer with the
``tokenizers`` library on the texts it is given (LUMA-Shapes captions) plus
:data:`ENGLISH_WORDS`, a short list of common words so that everyday queries do not fall apart
into single bytes. Text is NFKC-normalised and lower-cased inside the tokenizer, so "Red Circle"
and "red circle" give the same ids through ``ClapProcessor`` too. Special tokens sit at
RoBERTa's ids (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` 4), which are the
defaults of ``ClapTextConfig``. No file is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from luma_rag.errors import InvalidInputError, MissingDependencyError

__all__ = ["ENGLISH_WORDS", "SPECIAL_TOKENS", "build_tokenizer"]

#: ``(token, id)`` pairs in RoBERTa's order; ``ClapTextConfig`` defaults agree (pad 1, bos 0,
#: eos 2).
SPECIAL_TOKENS: Final = (("<s>", 0), ("<pad>", 1), ("</s>", 2), ("<unk>", 3), ("<mask>", 4))

_WORD_LIST = """
    a an the one two three four five six seven eight nine ten some any many few several all
    both each every no none not and or but if then than so because with without of in on at to
    from by for into onto over under above below near far beside between behind across along
    through around about up down left right top bottom middle center centre side corner edge
    i you he she it we they me him her us them my your his its our their this that these those
    here there where when what which who whom whose why how is are was were be been being am
    do does did done have has had having can could will would shall should may might must
    show shows showing find finding search look looking see seen hear heard listen play give
    get make made take want need like please tell say said speak spoken voice sound sounds
    audio clip recording music noise song speech word words sentence caption description
    image images picture pictures photo photos video videos frame scene drawing painting
    rendering render shape shapes object objects thing things item items figure figures form
    circle circles round ring dot dots oval ellipse square squares box boxes rectangle cube
    triangle triangles star stars hexagon hexagons pentagon pentagons octagon polygon cross
    crosses plus sign signs diamond diamonds rhombus line lines arrow heart moon sun
    color colors colour colours colored coloured red orange yellow green cyan blue purple pink
    brown white black grey gray gold golden silver dark light bright pale deep vivid
    small smaller smallest large larger largest big bigger biggest tiny little huge giant
    long short tall wide narrow thick thin high low full empty half whole single pair couple
    move moves moved moving go goes going went slide sliding drift drifting glide gliding
    head heading travel travelling traveling fall falling rise rising sink sinking fly flying
    fast slow quick still static stationary upward upwards downward downwards leftward
    rightward background backdrop foreground plain flat uniform solid noisy grainy speckled
    striped stripes stripy pattern patterned texture textured clear blurry sharp soft smooth
    rough old new good bad same different other another more most less least very too also
    only just again once twice first second last next before after during while until now
    today yesterday tomorrow time day night morning evening year people person man woman
    child dog cat bird car house tree water fire air earth sky sea city room door window
    table chair book page text number name way part place world life hand eye head face
    yes okay hello thanks thank
"""
#: Common English words added to the tokenizer's training text (once each), beside the corpus.
ENGLISH_WORDS: Final = tuple(_WORD_LIST.split())


def _require_tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as e:
        raise MissingDependencyError.for_extra("tokenizers", "models") from e
    return tokenizers


def build_tokenizer(
    texts: Iterable[str], *, vocab_size: int = 2048, model_max_length: int = 64
) -> Any:
    """Train a byte-level BPE on ``texts`` and :data:`ENGLISH_WORDS`; wrap it for transformers.

    Deterministic: the same texts in the same order give the same vocabulary and merges.

    Args:
        texts: Training texts (captions); an iterable is consumed once.
        vocab_size: Upper bound on the vocabulary, >= 261 (256 bytes and 5 special tokens).
            Training stops earlier once every pair occurs only once.
        model_max_length: Longest tokenized sequence, special tokens included; longer inputs
            are truncated by the processor.

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` whose ``save_pretrained`` writes
        ``tokenizer.json`` and ``tokenizer_config.json`` that ``ClapProcessor`` loads.

    Raises:
        InvalidInputError: ``vocab_size`` or ``model_max_length`` is out of range.
        MissingDependencyError: ``tokenizers`` or ``transformers`` is not installed.
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise InvalidInputError(f"vocab_size must be >= 261, got {vocab_size}")
    if model_max_length < 3:
        raise InvalidInputError(f"model_max_length must be >= 3, got {model_max_length}")
    tk = _require_tokenizers()
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError as e:
        raise MissingDependencyError.for_extra("transformers", "models") from e

    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.normalizer = tk.normalizers.Sequence(
        [tk.normalizers.NFKC(), tk.normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=[token for token, _ in SPECIAL_TOKENS],
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [*texts, " ".join(ENGLISH_WORDS)]
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    ids = {token: tokenizer.token_to_id(token) for token, _ in SPECIAL_TOKENS}
    if ids != dict(SPECIAL_TOKENS):  # the trainer puts special tokens first, in order
        raise InvalidInputError(f"special tokens got ids {ids}, expected {dict(SPECIAL_TOKENS)}")
    tokenizer.post_processor = tk.processors.RobertaProcessing(
        ("</s>", ids["</s>"]), ("<s>", ids["<s>"]), trim_offsets=True, add_prefix_space=True
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=model_max_length,
    )
