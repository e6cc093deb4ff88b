"""Spoken captions: espeak-ng to 16 kHz mono 16-bit PCM, resampled with plain numpy.

espeak-ng is run as a subprocess with the text on stdin and the WAV on stdout (``--stdout``),
so nothing is written to shared temporary files and any number of calls may run at once. Its
22 050 Hz output is resampled to 16 kHz in the frequency domain with numpy (:func:`resample`,
no SciPy needed), so the same text, voice, rate and pitch give the same samples.
"""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from luma_rag.errors import (
    InvalidInputError,
    LumaError,
    MissingDependencyError,
    UnsupportedMediaError,
)

__all__ = [
    "SAMPLE_RATE",
    "VOICES",
    "SpeechParams",
    "find_espeak",
    "read_wav",
    "resample",
    "synthesize",
    "write_wav",
]

#: Sample rate of every WAV written by LUMA-Shapes.
SAMPLE_RATE: Final = 16_000
#: espeak-ng English voices and voice variants the generator draws from.
VOICES: Final = ("en", "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029")
VARIANTS: Final = ("", "+m1", "+m3", "+f2", "+f3", "+f4")
RATE_RANGE: Final = (140, 190)
PITCH_RANGE: Final = (30, 70)
_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SpeechParams:
    """How one caption is spoken.

    Attributes:
        voice: espeak-ng voice with optional variant, e.g. "en-gb+f3".
        rate: Words per minute (espeak-ng ``-s``).
        pitch: Pitch 0-99 (espeak-ng ``-p``).
    """

    voice: str
    rate: int
    pitch: int


def find_espeak() -> str:
    """Return the path of the espeak-ng executable.

    Raises:
        MissingDependencyError: espeak-ng is not on ``PATH``.
    """
    path = shutil.which("espeak-ng")
    if path is None:
        raise MissingDependencyError(
            "espeak-ng is required to speak LUMA-Shapes captions (--audio) and is not on PATH; "
            "install it with `apt-get install espeak-ng` (Debian/Ubuntu) or "
            "`brew install espeak-ng` (macOS), or generate without audio"
        )
    return path


def _parse_wav(data: bytes) -> tuple[int, np.ndarray]:
    """Parse espeak-ng's streamed WAV (its RIFF and data sizes are placeholders)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise LumaError("espeak-ng did not return a WAV stream; check `espeak-ng --version`")
    pos, rate, channels, bits = 12, 0, 0, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[pos + 8 : pos + 24])
        elif chunk == b"data":
            if channels != 1 or bits != 16:
                raise LumaError(f"espeak-ng gave {channels} channel(s) of {bits} bits, not 1x16")
            body = data[pos + 8 :]
            body = body[: len(body) - len(body) % 2]
            return rate, np.frombuffer(body, dtype="<i2").astype(np.int16)
        pos += 8 + size + size % 2
    raise LumaError("espeak-ng returned a WAV without a data chunk")


def _smooth_length(n: int) -> int:
    """Smallest ``m >= n`` whose prime factors are all 2, 3, 5 or 7 (fast FFT sizes)."""
    m = max(1, n)
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def resample(x: np.ndarray, up: int, down: int, rolloff: float = 0.9) -> np.ndarray:
    """Resample by the rational factor ``up / down`` in the frequency domain.

    The signal is zero-padded (so the FFT's wrap-around falls in silence), transformed, cut
    to the output band with a raised-cosine taper from ``rolloff`` x the lower Nyquist
    frequency down to zero at that frequency, and transformed back. numpy's FFT is
    single-threaded and deterministic, so equal inputs give equal outputs.

    Args:
        x: ``(n,)`` signal, any real dtype.
        up: Upsampling factor, >= 1.
        down: Downsampling factor, >= 1.
        rolloff: Start of the taper as a fraction of the lower Nyquist frequency, in (0, 1].

    Returns:
        ``(ceil(n * up / down),)`` float64 signal.

    Raises:
        InvalidInputError: A factor is < 1 or ``rolloff`` is out of range.
    """
    if up < 1 or down < 1:
        raise InvalidInputError(f"up and down must be >= 1, got {up} and {down}")
    if not 0.0 < rolloff <= 1.0:
        raise InvalidInputError(f"rolloff must be in (0, 1], got {rolloff}")
    g = math.gcd(up, down)
    up, down = up // g, down // g
    signal = np.asarray(x, dtype=np.float64).ravel()
    n_out = -(-signal.size * up // down)
    if up == down or signal.size == 0:
        return signal.copy()
    margin = 2048 + down  # zeros after the signal absorb the circular wrap-around
    blocks = _smooth_length(-(-(signal.size + margin) // down))
    n_in_fft, n_out_fft = blocks * down, blocks * up
    spectrum = np.fft.rfft(signal, n_in_fft)
    n_bins = min(spectrum.size, n_out_fft // 2 + 1)
    band = np.arange(n_bins, dtype=np.float64) / (min(n_in_fft, n_out_fft) / 2.0)  # 1 = Nyquist
    if rolloff < 1.0:
        ramp = np.clip((1.0 - band) / (1.0 - rolloff), 0.0, 1.0)
        taper = 0.5 - 0.5 * np.cos(np.pi * ramp)
    else:
        taper = (band < 1.0).astype(np.float64)
    out_spectrum = np.zeros(n_out_fft // 2 + 1, dtype=np.complex128)
    out_spectrum[:n_bins] = spectrum[:n_bins] * taper
    y = np.fft.irfft(out_spectrum, n_out_fft) * (up / down)
    return y[:n_out]


def synthesize(text: str, params: SpeechParams, espeak: str | None = None) -> np.ndarray:
    """Speak ``text`` with espeak-ng.

    Args:
        text: What to say (plain text; passed on stdin, never through a shell).
        params: Voice, rate and pitch.
        espeak: Path of espeak-ng; found on ``PATH`` when ``None``.

    Returns:
        ``(n,)`` int16 mono samples at :data:`SAMPLE_RATE`.

    Raises:
        MissingDependencyError: espeak-ng is missing or lacks the voice.
        LumaError: espeak-ng failed.
    """
    exe = espeak or find_espeak()
    cmd = [exe, "-v", params.voice, "-s", str(params.rate), "-p", str(params.pitch), "--stdout"]
    try:
        proc = subprocess.run(
            cmd, input=text.encode("utf-8"), capture_output=True, timeout=_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LumaError(f"could not run espeak-ng ({exe}): {e}") from e
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip()
        if "voice does not exist" in message:
            raise MissingDependencyError(
                f"espeak-ng has no voice {params.voice!r}; install the full data with "
                "`apt-get install espeak-ng espeak-ng-data`"
            )
        raise LumaError(f"espeak-ng exited with {proc.returncode}: {message}")
    rate, samples = _parse_wav(proc.stdout)
    if rate == SAMPLE_RATE:
        return samples
    resampled = resample(samples, SAMPLE_RATE, rate)
    return np.clip(np.rint(resampled), -32768, 32767).astype(np.int16)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write mono 16-bit PCM.

    Args:
        path: Destination ``.wav``.
        samples: ``(n,)`` int16 samples.
        rate: Sample rate in Hz.
    """
    pcm = np.ascontiguousarray(samples, dtype="<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


def read_wav(path: str | Path) -> tuple[int, np.ndarray]:
    """Read a mono 16-bit PCM WAV written by :func:`write_wav`.

    Args:
        path: Source ``.wav``.

    Returns:
        ``(rate, samples)`` with ``samples`` an ``(n,)`` int16 array.

    Raises:
        UnsupportedMediaError: Not a mono 16-bit PCM WAV.
    """
    try:
        with wave.open(str(path), "rb") as f:
            if f.getnchannels() != 1 or f.getsampwidth() != 2:
                raise UnsupportedMediaError(
                    f"{path}: {f.getnchannels()} channel(s) of {8 * f.getsampwidth()} bits; "
                    "expected mono 16-bit PCM"
                )
            rate, frames = f.getframerate(), f.readframes(f.getnframes())
    except (wave.Error, EOFError) as e:
        raise UnsupportedMediaError(f"{path}: not a readable WAV ({e})") from e
    return rate, np.frombuffer(frames, dtype="<i2").astype(np.int16)
