"""Log-mel features of the tiny CLAP's training clips, and SpecAugment.

``ClapFeatureExtractor`` computes log-mels frame by frame in numpy, too slow to call at every
step; :class:`LogMel` computes the same features (``rand_trunc``: Slaney filters, power, dB)
with ``torch.stft``, and :func:`log_mels` checks them against the extractor on the first clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from luma_rag.datasets.shapes import ShapeItem
from luma_rag.encoders.clap.audio import load_audio
from luma_rag.encoders.clap.tiny import TinyClapSpec
from luma_rag.errors import InvalidInputError, LumaError

__all__ = ["LogMel", "audio_path", "log_mels", "repeat_pad", "spec_augment"]

#: Largest dB difference tolerated between the training features and ClapFeatureExtractor's.
_FEATURE_TOLERANCE_DB: Final = 0.05


def repeat_pad(wave: np.ndarray, n: int) -> np.ndarray:
    """Cut to ``n`` samples, or repeat then zero-pad to ``n`` (ClapFeatureExtractor's repeatpad)."""
    if wave.size >= n:
        return wave[:n]
    tiled = np.tile(wave, n // wave.size)
    return np.pad(tiled, (0, n - tiled.size))


class LogMel:
    """``ClapFeatureExtractor``'s log-mel (``rand_trunc``: Slaney filters, power, dB) in torch."""

    def __init__(self, extractor: Any, torch: Any) -> None:
        self.torch = torch
        self.n_fft, self.hop = int(extractor.fft_window_size), int(extractor.hop_length)
        self.window = torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64)
        self.filters = torch.from_numpy(np.asarray(extractor.mel_filters_slaney, np.float64))

    def __call__(self, waves: np.ndarray) -> Any:
        """``(b, n)`` float waves -> float32 ``(b, frames, mels)`` dB."""
        torch = self.torch
        x = torch.from_numpy(np.asarray(waves, dtype=np.float64))
        spec = torch.stft(
            x,
            self.n_fft,
            self.hop,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.real**2 + spec.imag**2  # (b, freq, frames)
        mel = torch.einsum("bft,fm->btm", power, self.filters).clamp_min(1e-10)
        return (10.0 * torch.log10(mel)).float()


def log_mels(items: Sequence[ShapeItem], spec: TinyClapSpec, extractor: Any, torch: Any) -> Any:
    """float16 ``(n, frames, mels)`` log-mels of the items' clips, checked against the extractor."""
    logmel = LogMel(extractor, torch)
    n = spec.max_length_s * spec.sampling_rate
    out = []
    for start in range(0, len(items), 256):
        waves = [
            repeat_pad(load_audio(audio_path(it), spec.sampling_rate).astype(np.float64), n)
            for it in items[start : start + 256]
        ]
        mels = logmel(np.stack(waves))
        if start == 0:
            reference = extractor(waves[:4], sampling_rate=spec.sampling_rate)["input_features"]
            gap = float(np.max(np.abs(np.asarray(reference)[:, 0] - mels[:4].numpy())))
            if gap > _FEATURE_TOLERANCE_DB:
                raise LumaError(f"training log-mels differ from ClapFeatureExtractor's by {gap} dB")
        out.append(mels.half())
    return torch.cat(out)


def audio_path(item: ShapeItem) -> Path:
    if item.audio_path is None:
        raise InvalidInputError(f"{item.id} has no audio; generate the corpus with --audio")
    return item.audio_path


def spec_augment(feats: Any, cfg: Any, gen: Any, torch: Any) -> Any:
    """SpecAugment: replace random time and mel bands by each spectrogram's mean."""
    b, frames, mels = feats.shape
    out = feats.clone()
    fill = out.mean(dim=(1, 2), keepdim=True).expand(b, frames, mels)
    keep = torch.ones(b, frames, mels, dtype=torch.bool)
    for _ in range(cfg.time_masks):
        width = torch.randint(0, frames // 12 + 1, (b,), generator=gen)
        start = (torch.rand(b, generator=gen) * (frames - width)).long()
        t = torch.arange(frames)[None, :]
        keep &= ~((t >= start[:, None]) & (t < (start + width)[:, None]))[:, :, None]
    for _ in range(cfg.freq_masks):
        width = torch.randint(0, mels // 8 + 1, (b,), generator=gen)
        start = (torch.rand(b, generator=gen) * (mels - width)).long()
        f = torch.arange(mels)[None, :]
        keep &= ~((f >= start[:, None]) & (f < (start + width)[:, None]))[:, None, :]
    return torch.where(keep, out, fill)
