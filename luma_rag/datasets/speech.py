"""Spoken captions: espeak-ng to 16 kHz mono 16-bit PCM, resampled with plain numpy.

espeak-ng is run as a subprocess with the text on stdin and the WAV on stdout (``--stdout``),
so nothing is written to shared temporary files and any number of calls may run at once. Its
22 050 Hz output is resampled to 16 kHz in the frequency domain with numpy
(:func:`luma_rag.media.audio.resample`, no SciPy needed), so the same text, voice, rate and
pitch give the same samples. ``resample`` and ``read_wav`` are re-exported from
:mod:`luma_rag.media.audio`, where every decoder and resampler lives.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from luma_rag.errors import LumaError, MissingDependencyError
from luma_rag.media.audio import read_pcm16 as read_wav
from luma_rag.media.audio import resample

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
