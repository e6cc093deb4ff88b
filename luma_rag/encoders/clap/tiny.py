"""Architecture of ``luma-tiny-clap``: a transformers ``ClapModel`` small enough to train on a CPU.

The production CLAP (``laion/clap-htsat-unfused``) reads 10 s of 48 kHz audio as a 64-bin log-mel
spectrogram into an HTSAT (Swin) audio tower of depths (2, 2, 6, 2), and captions into a
12-layer RoBERTa; both project to 512-d. ``luma-tiny-clap`` keeps every piece and shrinks it:

* audio: 16 kHz (what LUMA-Shapes speaks), 32 mel bins from a 512-point FFT every 256 samples
  (16 ms), up to 8 s per clip (501 frames; shorter clips are repeated, then zero-padded, as
  ``ClapFeatureExtractor`` does). HTSAT folds the ``(frames, mels)`` spectrogram into a square
  image of side ``spec_size`` (``spec_size // mels`` time chunks stacked along frequency), so
  ``spec_size=128`` gives room for ``128 * 4 = 512`` frames. Four Swin stages of width
  32-64-128-256, depths (1, 1, 2, 1);
* text: a 2-layer RoBERTa of width 128 over the byte-level BPE of
  :mod:`luma_rag.encoders.clap.tokenizer`;
* both towers project to 128-d, the width of ``luma-tiny-clip``, so the CLAP -> CLIP bridge is
  square for the tiny pair, as it is (512 -> 512) for the production pair.

:class:`TinyClapSpec` holds these numbers; :func:`build_model`, :func:`build_feature_extractor`
and :func:`build_processor` turn them into transformers objects. Only
:mod:`luma_rag.training.train_clap` needs them: a trained checkpoint carries its own
``config.json`` and ``processor_config.json``, and loads with ``ClapModel.from_pretrained``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from luma_rag._config import ConfigBase, check
from luma_rag.errors import MissingDependencyError

__all__ = [
    "TinyClapSpec",
    "build_feature_extractor",
    "build_model",
    "build_processor",
]


@dataclass(frozen=True)
class TinyClapSpec(ConfigBase):
    """Sizes of ``luma-tiny-clap``; the defaults are the shipped checkpoint's.

    Attributes:
        sampling_rate: Audio sample rate in Hz.
        n_fft: STFT window length in samples.
        hop_length: STFT hop in samples.
        n_mels: Mel bins (``ClapAudioConfig.num_mel_bins``, the extractor's ``feature_size``).
        max_length_s: Clip length the extractor pads or crops to, whole seconds.
        f_min: Lowest mel frequency in Hz.
        f_max: Highest mel frequency in Hz, at most ``sampling_rate / 2``.
        spec_size: Side of HTSAT's square spectrogram image; a multiple of ``n_mels``.
        patch_size: HTSAT patch size (and stride).
        window_size: Swin attention window.
        audio_width: Width of the first Swin stage; doubles at each stage.
        audio_depths: Swin blocks per stage.
        audio_heads: Attention heads per stage.
        text_width: RoBERTa hidden size.
        text_layers: RoBERTa layers.
        text_heads: RoBERTa attention heads.
        text_ffn: RoBERTa feed-forward width.
        max_text_tokens: Longest tokenized caption, ``<s>`` and ``</s>`` included.
        vocab_size: Upper bound of the BPE vocabulary.
        projection_dim: Width of the joint embedding space.
        dropout: Dropout of the text tower (the audio tower uses none).
    """

    sampling_rate: int = 16_000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 32
    max_length_s: int = 8
    f_min: float = 50.0
    f_max: float = 8_000.0
    spec_size: int = 128
    patch_size: int = 8
    window_size: int = 4
    audio_width: int = 48
    audio_depths: tuple[int, ...] = field(default=(1, 2, 1))
    audio_heads: tuple[int, ...] = field(default=(2, 4, 8))
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_ffn: int = 256
    max_text_tokens: int = 64
    vocab_size: int = 2048
    projection_dim: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("sampling_rate", "n_fft", "hop_length", "n_mels", "max_length_s"):
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        check(
            0 <= self.f_min < self.f_max <= self.sampling_rate / 2,
            f"need 0 <= f_min < f_max <= sampling_rate / 2, got {self.f_min}, {self.f_max}",
        )
        check(
            self.spec_size % self.n_mels == 0 and self.spec_size >= self.n_mels,
            f"spec_size ({self.spec_size}) must be a multiple of n_mels ({self.n_mels})",
        )
        check(
            self.frames <= self.spec_size * self.freq_ratio,
            f"{self.max_length_s} s at hop {self.hop_length} gives {self.frames} frames; HTSAT "
            f"with spec_size={self.spec_size} takes at most {self.spec_size * self.freq_ratio}; "
            "raise hop_length or spec_size, or lower max_length_s",
        )
        stages = len(self.audio_depths)
        check(
            stages >= 1 and len(self.audio_heads) == stages,
            "audio_depths and audio_heads need one entry per stage",
        )
        final = self.spec_size // self.patch_size // 2 ** (stages - 1)
        check(
            final >= self.freq_ratio and final % self.freq_ratio == 0,
            f"the last Swin stage is {final} patches wide; it must be a multiple of "
            f"spec_size // n_mels = {self.freq_ratio}: use fewer stages or a larger spec_size",
        )
        check(
            final >= self.window_size,
            f"the last Swin stage is {final} patches wide, less than window_size "
            f"{self.window_size} (transformers' CLAP needs every stage >= the window)",
        )
        for i, heads in enumerate(self.audio_heads):
            check(
                (self.audio_width * 2**i) % heads == 0,
                f"audio stage {i} width {self.audio_width * 2**i} is not divisible by {heads}",
            )
        check(
            self.text_width % self.text_heads == 0,
            f"text_width {self.text_width} is not divisible by text_heads {self.text_heads}",
        )
        check(
            self.max_text_tokens >= 3, f"max_text_tokens must be >= 3, got {self.max_text_tokens}"
        )
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def freq_ratio(self) -> int:
        """How many time chunks HTSAT stacks along frequency (``spec_size // n_mels``)."""
        return self.spec_size // self.n_mels

    @property
    def frames(self) -> int:
        """Spectrogram frames of one padded clip."""
        return self.max_length_s * self.sampling_rate // self.hop_length + 1

    @property
    def audio_hidden(self) -> int:
        """Width of the last Swin stage (input of the audio projection)."""
        return self.audio_width * 2 ** (len(self.audio_depths) - 1)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as e:
        raise MissingDependencyError.for_extra("transformers", "models") from e
    return transformers


def build_model(spec: TinyClapSpec, vocab_size: int) -> Any:
    """Build a randomly initialised ``ClapModel`` (seed torch first for reproducible weights).

    Args:
        spec: Sizes.
        vocab_size: Size of the tokenizer's vocabulary (``len(tokenizer)``).

    Returns:
        A ``transformers.ClapModel`` in training mode.
    """
    tf = _transformers()
    text = tf.ClapTextConfig(
        vocab_size=vocab_size,
        hidden_size=spec.text_width,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads,
        intermediate_size=spec.text_ffn,
        max_position_embeddings=spec.max_text_tokens + 2,  # RoBERTa positions start at pad + 1
        hidden_dropout_prob=spec.dropout,
        attention_probs_dropout_prob=spec.dropout,
    )
    audio = tf.ClapAudioConfig(
        num_mel_bins=spec.n_mels,
        spec_size=spec.spec_size,
        patch_size=spec.patch_size,
        patch_stride=(spec.patch_size, spec.patch_size),
        window_size=spec.window_size,
        patch_embeds_hidden_size=spec.audio_width,
        hidden_size=spec.audio_hidden,
        depths=list(spec.audio_depths),
        num_attention_heads=list(spec.audio_heads),
        num_hidden_layers=len(spec.audio_depths),
        hidden_dropout_prob=0.0,
        enable_fusion=False,
    )
    config = tf.ClapConfig(
        text_config=text.to_dict(),
        audio_config=audio.to_dict(),
        projection_dim=spec.projection_dim,
    )
    return tf.ClapModel(config)


def build_feature_extractor(spec: TinyClapSpec) -> Any:
    """Build the ``ClapFeatureExtractor`` matching ``spec`` (unfused: ``rand_trunc``).

    Clips longer than ``max_length_s`` are cropped at a random offset by the extractor
    itself; :class:`~luma_rag.encoders.clap.backend.ClapEncoder` crops them deterministically
    before they get there.
    """
    tf = _transformers()
    return tf.ClapFeatureExtractor(
        feature_size=spec.n_mels,
        sampling_rate=spec.sampling_rate,
        hop_length=spec.hop_length,
        max_length_s=spec.max_length_s,
        fft_window_size=spec.n_fft,
        frequency_min=spec.f_min,
        frequency_max=spec.f_max,
        truncation="rand_trunc",
        padding="repeatpad",
    )


def build_processor(spec: TinyClapSpec, tokenizer: Any) -> Any:
    """Build the ``ClapProcessor`` of ``spec`` around ``tokenizer``.

    Args:
        spec: Sizes.
        tokenizer: From :func:`~luma_rag.encoders.clap.tokenizer.build_tokenizer`.

    Returns:
        A ``transformers.ClapProcessor``.
    """
    tf = _transformers()
    return tf.ClapProcessor(feature_extractor=build_feature_extractor(spec), tokenizer=tokenizer)
