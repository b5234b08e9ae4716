"""Audio input/output: load, validate, mix to mono, resample (soxr), crop/pad, save atomically.

Accepted sources (everywhere a ``source`` is taken):

- a path (``str`` / ``os.PathLike``) to any file libsndfile reads: wav, flac, ogg/vorbis, opus, mp3, aiff, ...
- the raw ``bytes`` (or ``bytearray`` / ``memoryview``) of such a file;
- a numpy array, with ``sample_rate`` given. Layouts: ``[n]`` (mono); ``[n, channels]`` (soundfile's
  layout) when the last axis has at most :data:`MAX_CHANNELS` entries; otherwise ``[channels, n]`` when the
  first axis has at most :data:`MAX_CHANNELS` entries. So a 2-D array is read as ``[n, channels]``
  whenever that is possible (``[4, 2]`` is 4 frames of stereo), and anything else is an error.
  dtypes: float16/32/64, or int8/16/32 PCM (scaled by ``1 / 2**(bits-1)``);
- a ``(sample_rate, array)`` tuple, as a Gradio ``Audio`` component delivers it.

Validation (every failure raises :class:`~seeingsounds.errors.AudioLoadError` naming the source — its path,
``"<bytes>"`` or ``"<array>"`` — and the reason): missing file, unreadable/corrupt data, zero-length audio,
NaN/inf samples, a sample rate outside ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]`` (1 kHz .. 768 kHz), wrong array
shape or dtype. Silent audio and very short clips are valid.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from pathlib import Path
from typing import Any, Union

import numpy as np

from seeingsounds.errors import AudioLoadError, ConfigError
from seeingsounds.paths import atomic_path

#: lowest and highest sample rate accepted for a source or a target (Hz)
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
#: a 2-D array axis with at most this many entries is a channel axis
MAX_CHANNELS = 8
#: frames decoded/written per libsndfile call (libsndfile crashes writing > ~2.09 M OGG frames at once)
BLOCK_FRAMES = 1 << 16
#: extra native frames read past the needed span so the resampler's edge does not reach the kept samples,
#: per unit of the downsampling ratio (soxr's HQ filter is ~100 input frames long per unit of the ratio)
_RESAMPLE_MARGIN = 256

#: file suffix -> (libsndfile format, subtype or None for libsndfile's default)
SAVE_FORMATS: dict[str, tuple[str, str | None]] = {
    ".wav": ("WAV", None),
    ".flac": ("FLAC", None),
    ".ogg": ("OGG", "VORBIS"),
    ".oga": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aiff": ("AIFF", None),
    ".aif": ("AIFF", None),
}
#: sample rates an encoder can write; other rates are resampled to the fallback rate before writing
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_RATE_FALLBACK = {"OPUS": (OPUS_RATES, 48000), "MPEG_LAYER_III": (MP3_RATES, 44100)}

AudioSource = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, tuple]


def source_name(source: Any) -> str:
    """How error messages name a source: its path, ``"<bytes>"`` or ``"<array>"``."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return "<array>"


def _check_rate(name: str, sr: Any) -> int:
    if sr is None:
        raise AudioLoadError(name, "an array needs its sample rate: pass sample_rate=")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer, float, np.floating)) or sr != int(sr):
        raise AudioLoadError(name, f"sample rate must be a whole number of Hz, got {sr!r}")
    sr = int(sr)
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioLoadError(
            name, f"sample rate {sr} Hz is outside the accepted {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
        )
    return sr


def _check_target(target_sr: Any, num_samples: Any) -> None:
    if isinstance(target_sr, bool) or not isinstance(target_sr, (int, np.integer)):
        raise ConfigError(f"target_sr must be an int number of Hz, got {target_sr!r}")
    if not MIN_SAMPLE_RATE <= target_sr <= MAX_SAMPLE_RATE:
        raise ConfigError(f"target_sr {target_sr} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    if num_samples is not None and (
        isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples <= 0
    ):
        raise ConfigError(f"num_samples must be a positive int or None, got {num_samples!r}")


def _array_to_mono(name: str, array: Any, max_frames: int | None) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise AudioLoadError(name, f"expected a path, bytes or a numpy array, got {type(array).__name__}")
    kind = array.dtype.kind
    if kind == "f":
        scale = 1.0
    elif kind == "i" and array.dtype.itemsize in (1, 2, 4):
        scale = 1.0 / float(2 ** (8 * array.dtype.itemsize - 1))
    else:
        raise AudioLoadError(name, f"dtype {array.dtype} is not audio: use float32 or int16/int32 PCM")
    if array.ndim == 1:
        frames = array[:, None]
    elif array.ndim == 2 and array.shape[1] <= MAX_CHANNELS:
        frames = array
    elif array.ndim == 2 and array.shape[0] <= MAX_CHANNELS:
        frames = array.T
    else:
        raise AudioLoadError(
            name,
            f"array shape {tuple(array.shape)} is not audio: use [n], [n, channels] or [channels, n] "
            f"with at most {MAX_CHANNELS} channels",
        )
    if frames.shape[0] == 0 or frames.shape[1] == 0:
        raise AudioLoadError(name, "the audio is empty (zero length)")
    if max_frames is not None:
        frames = frames[:max_frames]
    mono = frames.astype(np.float64).mean(axis=1) * scale
    return mono.astype(np.float32)


def _open(name: str, source: Any):
    import soundfile as sf

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioLoadError(name, "file not found")
        if not path.is_file():
            raise AudioLoadError(name, "not a file")
        if path.stat().st_size == 0:
            raise AudioLoadError(name, "the file is empty (zero length)")
        target: Any = str(path)
    else:
        data = bytes(source)
        if not data:
            raise AudioLoadError(name, "the bytes are empty (zero length)")
        target = io.BytesIO(data)
    try:
        return sf.SoundFile(target)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        detail = getattr(exc, "error_string", None) or str(exc)
        raise AudioLoadError(
            name, f"unreadable or corrupt audio ({detail}); supported: wav, flac, ogg/vorbis, opus, mp3, aiff"
        ) from None


def _frames_for(max_seconds: float | None, sr: int, target_sr: int | None = None) -> int | None:
    if max_seconds is None:
        return None
    ratio = 1 if target_sr is None else max(1, math.ceil(sr / target_sr))
    return int(math.ceil(max_seconds * sr)) + _RESAMPLE_MARGIN * ratio


def _decode_file(
    name: str, source: Any, max_seconds: float | None, target_sr: int | None = None
) -> tuple[np.ndarray, int]:
    """Decode block by block, mixing each block to mono, so memory stays at the mono output size."""
    import soundfile as sf

    with _open(name, source) as f:
        sr = _check_rate(name, f.samplerate)
        chunks: list[np.ndarray] = []
        max_frames = _frames_for(max_seconds, sr, target_sr)
        remaining = max_frames if max_frames is not None else math.inf
        try:
            while remaining > 0:
                want = int(min(BLOCK_FRAMES, remaining))
                block = f.read(want, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                chunks.append(block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy())
                remaining -= block.shape[0]
                if block.shape[0] < want:
                    break
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioLoadError(name, f"corrupt audio data ({getattr(exc, 'error_string', None) or exc})") from None
    if not chunks:
        raise AudioLoadError(name, "the audio has no samples (zero length)")
    return np.concatenate(chunks).astype(np.float32, copy=False), sr


def _decode(
    source: Any, sample_rate: int | None, max_seconds: float | None = None, target_sr: int | None = None
) -> tuple[np.ndarray, int, str]:
    """Return (mono float32 at native rate, native rate, name); reads at most ``max_seconds`` (+ a margin
    wide enough for resampling to ``target_sr``)."""
    if isinstance(source, tuple):
        if len(source) != 2 or not isinstance(source[1], np.ndarray):
            raise AudioLoadError("<array>", "a tuple source must be (sample_rate, array)")
        if sample_rate is not None and sample_rate != source[0]:
            raise AudioLoadError("<array>", f"sample_rate={sample_rate} contradicts the tuple's {source[0]}")
        sample_rate, source = source
    name = source_name(source)
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        if sample_rate is not None:
            raise AudioLoadError(name, "sample_rate= is only for arrays; a file carries its own rate")
        wave, sr = _decode_file(name, source, max_seconds, target_sr)
    else:
        sr = _check_rate(name, sample_rate)
        wave = _array_to_mono(name, source, _frames_for(max_seconds, sr, target_sr))
    if not np.isfinite(wave).all():
        raise AudioLoadError(name, "the audio contains NaN or infinite samples")
    return wave, sr, name


def read_audio(source: AudioSource, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 waveform at the source's own rate, and that rate (validated like :func:`load_audio`)."""
    wave, sr, _ = _decode(source, sample_rate)
    return wave, sr


def resample(wave: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """soxr high-quality resampling of a 1-D float32 waveform (returned as is when the rates match)."""
    if sr == target_sr:
        return np.asarray(wave, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(wave, dtype=np.float32), sr, target_sr, quality="HQ").astype(np.float32)


def fit_length(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Crop to ``num_samples``, or pad with zeros at the end."""
    if len(wave) >= num_samples:
        return wave[:num_samples]
    return np.concatenate([wave, np.zeros(num_samples - len(wave), dtype=wave.dtype)])


def load_audio(
    source: AudioSource,
    *,
    sample_rate: int | None = None,
    target_sr: int,
    num_samples: int | None = None,
    pad: bool = True,
) -> np.ndarray:
    """Load ``source`` as mono float32 at ``target_sr``; crop/pad (zeros at the end) to ``num_samples``.

    With ``pad=False`` a clip shorter than ``num_samples`` is returned at its own length (only cropped).

    With ``num_samples`` only the frames needed are decoded, so a long file costs no more than the clip.
    ``sample_rate`` is required for arrays and refused for files/bytes (they carry their own rate).
    """
    _check_target(target_sr, num_samples)
    max_seconds = None if num_samples is None else num_samples / target_sr
    wave, sr, name = _decode(source, sample_rate, max_seconds, int(target_sr))
    frames = len(wave)
    wave = resample(wave, sr, int(target_sr))
    if num_samples is not None and (pad or len(wave) > num_samples):
        wave = fit_length(wave, int(num_samples))
    if not len(wave):  # e.g. 1 frame at 48 kHz resampled to 16 kHz: never hand on an empty waveform
        raise AudioLoadError(name, f"the audio ({frames} frame(s) at {sr} Hz) is shorter than one sample at {target_sr} Hz")
    return np.ascontiguousarray(wave, dtype=np.float32)


def save_audio(path: str | os.PathLike, wave: np.ndarray, sr: int, *, subtype: str | None = None) -> Path:
    """Write ``wave`` ([n] or [n, channels]) atomically (temp file + ``os.replace``); format from the suffix.

    Writes block-wise. Opus files are written at 8/12/16/24/48 kHz and MP3 at the MPEG rates: another
    rate is resampled (to 48 kHz for opus, 44.1 kHz for mp3) first. Returns the path written.
    """
    import soundfile as sf

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SAVE_FORMATS:
        raise ConfigError(f"cannot save {path}: unknown suffix {suffix!r}; use one of {', '.join(SAVE_FORMATS)}")
    fmt, default_subtype = SAVE_FORMATS[suffix]
    subtype = subtype or default_subtype
    name = str(path)
    sr = _check_rate(name, sr)
    wave = np.asarray(wave)
    if (
        wave.dtype.kind != "f"
        or wave.ndim not in (1, 2)
        or wave.shape[0] == 0
        or (wave.ndim == 2 and not 1 <= wave.shape[1] <= MAX_CHANNELS)
    ):
        raise AudioLoadError(
            name,
            f"cannot save a {wave.dtype} array of shape {tuple(wave.shape)}: use float [n] or [n, channels] "
            f"(at most {MAX_CHANNELS} channels)",
        )
    if not np.isfinite(wave).all():
        raise AudioLoadError(name, "cannot save NaN or infinite samples")
    wave = wave.astype(np.float32)
    rates = _RATE_FALLBACK.get(subtype or "")
    if rates and sr not in rates[0]:
        if wave.ndim == 1:
            wave = resample(wave, sr, rates[1])
        else:
            wave = np.stack([resample(c, sr, rates[1]) for c in wave.T], axis=1)
        sr = rates[1]
    channels = 1 if wave.ndim == 1 else wave.shape[1]
    # atomic_path: temp file beside ``path``, renamed with mode 0644 (mkstemp alone leaves 0600)
    with (
        atomic_path(path, suffix=f".tmp{suffix}") as tmp,
        sf.SoundFile(str(tmp), "w", samplerate=sr, channels=channels, format=fmt, subtype=subtype) as f,
    ):
        for start in range(0, wave.shape[0], BLOCK_FRAMES):
            f.write(wave[start : start + BLOCK_FRAMES])
    return path


def audio_fingerprint(source: AudioSource, sample_rate: int | None = None) -> str:
    """sha256 hex of a file's bytes (path or bytes), or of an array's dtype, shape, bytes and sample rate."""
    if isinstance(source, tuple) and len(source) == 2:
        sample_rate, source = source
    name = source_name(source)
    digest = hashlib.sha256()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise AudioLoadError(name, "file not found")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        digest.update(bytes(source))
    elif isinstance(source, np.ndarray):
        sr = _check_rate(name, sample_rate)
        array = np.ascontiguousarray(source)
        digest.update(f"{array.dtype.str}{array.shape}@{sr}:".encode())
        digest.update(array.tobytes())
    else:
        raise AudioLoadError(name, f"expected a path, bytes or a numpy array, got {type(source).__name__}")
    return digest.hexdigest()
