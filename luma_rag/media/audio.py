"""Safe audio loading and resampling: mono float32 at the model's rate, typed errors.

Every clip the encoder sees goes through :func:`load_audio`, which

* reads WAV (PCM 8/16/24/32-bit) with the standard library's :mod:`wave`, and any other format
  libsndfile knows (FLAC, OGG, float WAV, ...) with ``soundfile`` when it is installed;
* checks the declared length before decoding (a header claiming hours is refused unread);
* accepts in-memory clips as ``(samples, sample_rate)`` or, for a bare array, samples already
  at the target rate;
* mixes channels down to mono, resamples with :func:`resample` (numpy, frequency domain,
  deterministic; no SciPy), and refuses empty, silent (all-zero), NaN / infinite, corrupt and
  unsupported input with :class:`~luma_rag.errors.UnsupportedMediaError`.

:func:`read_pcm16` reads the mono 16-bit WAV files LUMA-Shapes writes.
"""

from __future__ import annotations

import math
import os
import wave
from struct import error as struct_error
from typing import Any, Final, TypeAlias

import numpy as np

from luma_rag.errors import InvalidInputError, UnsupportedMediaError

__all__ = ["MAX_SECONDS", "AudioSource", "load_audio", "read_pcm16", "resample"]

#: Longest clip :func:`load_audio` decodes, in seconds (about 110 MB of float32 at 48 kHz).
MAX_SECONDS: Final = 600.0
#: A clip whose peak magnitude is below this (full scale = 1.0) is "silent".
SILENCE_PEAK: Final = 1e-6
_MAX_RATE: Final = 384_000
_MAX_CHANNELS: Final = 64

#: What :func:`load_audio` accepts: a path, ``(samples, sample_rate)`` or bare samples at the
#: target rate. Arrays are ``(n,)`` or ``(n, channels)`` (``(channels, n)`` is recognised when
#: the channel axis is the shorter one and holds at most 8 channels).
AudioSource: TypeAlias = "str | os.PathLike[str] | tuple[np.ndarray, int] | np.ndarray"


def load_audio(source: AudioSource, target_rate: int, *, max_seconds: float = MAX_SECONDS) -> Any:
    """Load one clip as mono float32 samples at ``target_rate``.

    Args:
        source: Path of a sound file; ``(samples, sample_rate)``; or samples at ``target_rate``.
            Integer samples are scaled to [-1, 1] by their dtype's range, float samples are
            taken as they are.
        target_rate: Sample rate of the result in Hz.
        max_seconds: Refuse clips longer than this (checked before decoding files).

    Returns:
        ``(n,)`` float32 C-contiguous samples, ``n >= 1``.

    Raises:
        UnsupportedMediaError: Missing, empty, corrupt or unsupported file; a bad array or
            sample rate; zero-length, silent, NaN or infinite samples; a clip over
            ``max_seconds``.
    """
    if isinstance(source, str | os.PathLike):
        what = os.fspath(source)
        samples, rate = _read_file(what, max_seconds)
    elif isinstance(source, tuple):
        if len(source) != 2:
            raise UnsupportedMediaError(
                f"an in-memory clip is (samples, sample_rate), got a tuple of {len(source)}"
            )
        what = "<array>"
        samples, rate = _as_samples(source[0], what), _check_rate(source[1], what)
    elif isinstance(source, np.ndarray):
        what = "<array>"
        samples, rate = _as_samples(source, what), target_rate
    else:
        raise UnsupportedMediaError(
            "an audio clip must be a path, (samples, sample_rate) or a numpy array, got "
            f"{type(source).__name__}"
        )
    mono = _to_mono(samples, what, channels_last=isinstance(source, str | os.PathLike))
    _check_signal(mono, rate, what, max_seconds)
    if rate != target_rate:
        g = math.gcd(rate, target_rate)
        mono = resample(mono, target_rate // g, rate // g)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _check_rate(rate: object, what: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer):
        raise UnsupportedMediaError(f"audio {what}: sample_rate must be an int, got {rate!r}")
    if not 1 <= int(rate) <= _MAX_RATE:
        raise UnsupportedMediaError(f"audio {what}: sample_rate {rate} is out of [1, {_MAX_RATE}]")
    return int(rate)


def _as_samples(data: object, what: str) -> np.ndarray:
    arr = np.asarray(data)
    if arr.dtype.kind not in "iuf":
        raise UnsupportedMediaError(
            f"audio {what}: samples must be int or float, got dtype {arr.dtype}"
        )
    if arr.ndim not in (1, 2):
        raise UnsupportedMediaError(
            f"audio {what}: samples must be (n,) or (n, channels), got shape {arr.shape}"
        )
    if arr.dtype.kind == "f":
        return arr.astype(np.float64)
    info = np.iinfo(arr.dtype)
    if arr.dtype.kind == "u":  # unsigned PCM is centred on the middle of its range
        mid = (int(info.max) + 1) / 2
        return (arr.astype(np.float64) - mid) / mid
    return arr.astype(np.float64) / (int(info.max) + 1)


def _to_mono(samples: np.ndarray, what: str, *, channels_last: bool) -> np.ndarray:
    if samples.ndim == 1:
        return samples
    n, c = samples.shape
    if not channels_last and 1 <= n <= 8 and c > n:  # an array given as (channels, n)
        samples, (n, c) = samples.T, (c, n)
    if c > _MAX_CHANNELS:
        raise UnsupportedMediaError(
            f"audio {what}: {c} channels; expected (n,) or (n, channels) with few channels"
        )
    if n == 0 or c == 0:
        return np.zeros(0, dtype=np.float64)
    return samples.mean(axis=1)


def _check_signal(mono: np.ndarray, rate: int, what: str, max_seconds: float) -> None:
    if mono.size == 0:
        raise UnsupportedMediaError(f"audio {what} has no samples (zero length)")
    if mono.size > max_seconds * rate:
        raise UnsupportedMediaError(
            f"audio {what} lasts {mono.size / rate:.1f} s, more than max_seconds={max_seconds}; "
            "cut it into shorter clips"
        )
    if not np.all(np.isfinite(mono)):
        raise UnsupportedMediaError(f"audio {what} contains NaN or infinite samples")
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise UnsupportedMediaError(f"audio {what} is silent (every sample is zero)")


class _WavFormatError(UnsupportedMediaError):
    """A WAV encoding the standard library does not decode (float, extensible)."""


def _read_file(path: str, max_seconds: float) -> tuple[np.ndarray, int]:
    if not os.path.isfile(path):
        raise UnsupportedMediaError(f"no audio file at {path}")
    if os.path.getsize(path) == 0:
        raise UnsupportedMediaError(f"audio file {path} is empty")
    with open(path, "rb") as f:
        head = f.read(12)
    is_wav = head[:4] == b"RIFF" and head[8:12] == b"WAVE"
    if is_wav:
        try:
            return _read_wav(path, max_seconds)
        except UnsupportedMediaError as e:
            if not isinstance(e, _WavFormatError):
                raise
            # Float or WAVE_FORMAT_EXTENSIBLE: the stdlib cannot read it, libsndfile can.
            return _read_soundfile(path, max_seconds, reason=str(e))
    return _read_soundfile(path, max_seconds, reason="it is not a WAV file")


def _read_wav(path: str, max_seconds: float) -> tuple[np.ndarray, int]:
    try:
        with wave.open(path, "rb") as f:
            channels, width, rate, n = (
                f.getnchannels(),
                f.getsampwidth(),
                f.getframerate(),
                f.getnframes(),
            )
            _check_rate(rate, path)
            if n > max_seconds * rate:
                raise UnsupportedMediaError(
                    f"audio {path} declares {n / rate:.1f} s, more than max_seconds={max_seconds}"
                )
            frames = f.readframes(n)
    except UnsupportedMediaError:  # ours, from the checks above (it is also a ValueError)
        raise
    except wave.Error as e:
        if "unknown format" in str(e):
            raise _WavFormatError(f"audio {path}: WAV encoding not readable by `wave` ({e})") from e
        raise UnsupportedMediaError(f"audio {path} is not a readable WAV file: {e}") from e
    except (EOFError, OSError, RuntimeError, ValueError, struct_error) as e:  # bad chunks
        raise UnsupportedMediaError(f"audio {path} is corrupt or truncated: {e}") from e
    if channels < 1 or width not in (1, 2, 3, 4):
        raise UnsupportedMediaError(
            f"audio {path}: {channels} channel(s) of {8 * width} bits is not supported"
        )
    usable = len(frames) - len(frames) % (width * channels)
    raw = np.frombuffer(frames[:usable], dtype=np.uint8)
    if width == 1:
        ints: np.ndarray = raw  # 8-bit WAV is unsigned
    elif width == 3:  # 24-bit little-endian: widen to int32 keeping the sign
        triples = raw.reshape(-1, 3).astype(np.int32)
        value = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        ints = np.where(value >= 1 << 23, value - (1 << 24), value).astype(np.int32) << 8
    else:
        ints = raw.view(f"<i{width}")
    return _as_samples(ints.reshape(-1, channels), path), rate


def _read_soundfile(path: str, max_seconds: float, *, reason: str) -> tuple[np.ndarray, int]:
    try:
        import soundfile
    except ImportError as e:
        raise UnsupportedMediaError(
            f"audio {path} cannot be read without soundfile ({reason}); convert it to PCM WAV "
            "or `pip install soundfile`"
        ) from e
    try:
        info = soundfile.info(path)
        if info.frames > max_seconds * info.samplerate:
            raise UnsupportedMediaError(
                f"audio {path} declares {info.frames / info.samplerate:.1f} s, more than "
                f"max_seconds={max_seconds}"
            )
        data, rate = soundfile.read(path, dtype="float64", always_2d=True)
    except UnsupportedMediaError:
        raise
    except Exception as e:  # libsndfile raises its own error types (LibsndfileError, ...)
        raise UnsupportedMediaError(f"audio {path} could not be decoded: {e}") from e
    return _as_samples(data, path), _check_rate(int(rate), path)


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


def read_pcm16(path: str | os.PathLike[str]) -> tuple[int, np.ndarray]:
    """Read a mono 16-bit PCM WAV (as LUMA-Shapes writes them) without converting its samples.

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
