"""Audio input/output: load, validate, mix to mono, resample (soxr), crop/pad, save atomically.

Accepted sources (everywhere a ``source`` is taken):

- a path (``str`` / ``os.PathLike``; a leading ``~`` is expanded) to any file libsndfile reads (wav, flac, ogg/vorbis, opus, mp3, aiff, ...)
  or to a media container FFmpeg reads through PyAV (mp4, m4a, mov, mkv, webm, aac, avi, ...: the datasets'
  videos, phone and browser recordings). A video's audio stream is used (the first one, or the one FFmpeg
  marks as the best); its video is never decoded;
- the raw ``bytes`` (or ``bytearray`` / ``memoryview``) of such a file;
- a numpy array, with ``sample_rate`` given. Layouts: ``[n]`` (mono); ``[n, channels]`` (soundfile's
  layout) when the last axis has at most :data:`MAX_CHANNELS` entries; otherwise ``[channels, n]`` when the
  first axis has at most :data:`MAX_CHANNELS` entries. So a 2-D array is read as ``[n, channels]``
  whenever that is possible (``[4, 2]`` is 4 frames of stereo), and anything else is an error.
  dtypes: float16/32/64, or int8/16/32 PCM (scaled by ``1 / 2**(bits-1)``);
- a ``(sample_rate, array)`` tuple, as a Gradio ``Audio`` component delivers it.

Decoding is block by block (libsndfile) or frame by frame (FFmpeg), each block mixed to mono at once, and
stops once a requested crop is decoded, so memory stays at the mono output and a crop of a long file costs
no more than the crop. A FLAC whose header does not give its length is decoded by FFmpeg (libsndfile cannot
read past the unknown length); :func:`audio_info` reports such a length as unknown, never as the header's
placeholder.

Validation (every failure raises :class:`~seeingsounds.errors.AudioLoadError` naming the source — its path,
``"<bytes>"`` or ``"<array>"`` — and the reason): missing file, unreadable/corrupt data, a media file without
an audio stream, zero-length audio,
NaN/inf samples, a sample rate outside ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]`` (1 kHz .. 768 kHz), wrong array
shape or dtype, a truncated file (an interrupted download or copy) that holds no audio at all. Silent audio and
very short clips are valid. A truncated file that still holds some audio is read as far as it goes, with a
warning (logger ``seeingsounds.audio.io``) naming the file and the seconds declared vs present.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from seeingsounds import __version__
from seeingsounds.errors import AudioLoadError, ConfigError
from seeingsounds.paths import atomic_path, file_sha256, free_space

log = logging.getLogger(__name__)

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

#: suffixes libsndfile reads (the class-per-folder scan and the manifest builders pick these up)
SOUNDFILE_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")
#: suffixes of media containers read through PyAV/FFmpeg (videos, phone and browser recordings)
CONTAINER_SUFFIXES = (".mp4", ".m4a", ".m4v", ".mov", ".mkv", ".webm", ".aac", ".avi", ".3gp")
#: every suffix :func:`load_audio` reads
AUDIO_SUFFIXES = SOUNDFILE_SUFFIXES + CONTAINER_SUFFIXES
#: how error messages list what is readable
SUPPORTED_TEXT = "wav, flac, ogg/vorbis, opus, mp3, aiff; mp4, m4a, mov, mkv, webm, aac (audio of videos too)"
#: FFmpeg demuxer names (parts of ``container.format.name``) that a source libsndfile refuses may be; other
#: demuxers FFmpeg guesses for unreadable bytes (e.g. a broken wav) are not taken as a media file
_CONTAINER_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "aac", "avi",
                                "mpegts", "asf", "flv"})
#: libsndfile's frame count when a header does not give the length (SF_COUNT_MAX; e.g. a streamed FLAC)
_UNKNOWN_FRAMES = (1 << 63) - 1
#: libsndfile's log line for a WAV ``data`` / AIFF ``SSND`` chunk longer than the file: declared and present bytes
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: a declared chunk size at least this large is a streaming writer's placeholder (0xFFFFFFFF, 0x7FFFFFFF, ...),
#: written when the length was not known yet, not a promise of that many bytes
_PLACEHOLDER_BYTES = 0x7FFF0000
#: bytes per sample of libsndfile's PCM/float subtypes (to tell a truncated file's declared length in seconds)
_SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}
#: (name, declared bytes, present bytes) of the truncated files already warned about in this process
_TRUNCATIONS_TOLD: set[tuple[str, int, int]] = set()

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
#: the tag :func:`save_audio` writes in a file's ``software`` and ``comment`` fields (mp3 keeps only the
#: comment), by which :func:`written_by_seeingsounds_audio` knows our own files
SOFTWARE_TAG = f"seeingsounds {__version__}"
#: libsndfile's error code for a failed system call (a write to a full disk among them; its errno is not kept)
_SF_ERR_SYSTEM = 2
#: free bytes under which a failed libsndfile write is taken for a full disk
_FULL_DISK_SLACK = 1 << 16
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


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: native rate, channels, length in frames (``None``: not in the header)."""

    sample_rate: int
    channels: int
    frames: int | None
    reader: str  # "libsndfile" or "ffmpeg"
    format: str  # libsndfile's format (e.g. "WAV") or FFmpeg's demuxer name (e.g. "mov,mp4,m4a,3gp,3g2,mj2")

    @property
    def seconds(self) -> float | None:
        """Duration from the header, or ``None`` when the header does not give it (never a placeholder)."""
        return None if self.frames is None else self.frames / self.sample_rate


def _checked_target(name: str, source: Any) -> tuple[Any, str | None]:
    """(what libsndfile/FFmpeg open: a path string (raw bytes for a name that is not UTF-8) or a BytesIO,
    the path's suffix or None for bytes)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()  # a ~ the shell left alone (quoted, or --opt=~/a.wav)
        if not path.exists():
            raise AudioLoadError(name, "file not found")
        if not path.is_file():
            raise AudioLoadError(name, "not a file")
        if path.stat().st_size == 0:
            raise AudioLoadError(name, "the file is empty (zero length)")
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:  # a name that is not UTF-8 (e.g. Latin-1 bytes): open it by its raw bytes
            return os.fsencode(path), path.suffix.lower()
        return str(path), path.suffix.lower()
    data = bytes(source)
    if not data:
        raise AudioLoadError(name, "the bytes are empty (zero length)")
    return io.BytesIO(data), None


def _is_media_container(target: Any) -> bool:
    """Whether the first bytes are an mp4/m4a/mov (``ftyp``), Matroska/WebM (EBML) or AVI header: such a file
    named ``.mp3`` or ``.wav`` (a download saved under another suffix) goes to FFmpeg, not to libsndfile,
    which takes it for MPEG audio and fails in the middle of decoding it."""
    try:
        if isinstance(target, io.BytesIO):
            head = target.getvalue()[:12]
        else:
            with open(target, "rb") as f:
                head = f.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")


def _rewound(target: Any) -> Any:
    if isinstance(target, io.BytesIO):
        target.seek(0)
    return target


@contextmanager
def _open_media(name: str, source: Any) -> Iterator[tuple[str, Any]]:
    """Open ``source`` with libsndfile, or with FFmpeg (PyAV) when it is a media container libsndfile cannot
    read or a file whose length libsndfile cannot know; yields ``("libsndfile", SoundFile)`` or
    ``("ffmpeg", (container, audio stream))``."""
    import soundfile as sf

    target, suffix = _checked_target(name, source)
    sf_error: str | None = None
    if suffix not in CONTAINER_SUFFIXES and not _is_media_container(target):
        try:
            handle = sf.SoundFile(target)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            sf_error = getattr(exc, "error_string", None) or str(exc)
        else:
            if handle.frames != _UNKNOWN_FRAMES:
                with handle:
                    _check_truncation(name, handle)
                    yield "libsndfile", handle
                return
            handle.close()  # length not in the header: libsndfile cannot read past it; FFmpeg can
    with contextlib.ExitStack() as stack:
        if isinstance(target, bytes):  # FFmpeg opens a non-UTF-8 name through a Python file object
            target = stack.enter_context(open(target, "rb"))
        container = stack.enter_context(_open_container(name, _rewound(target), suffix, sf_error))
        yield "ffmpeg", (container, _audio_stream(name, container))


def _check_truncation(name: str, handle: Any) -> None:
    """Refuse a file whose header declares audio that the file no longer holds at all (a download or copy
    cut short); warn, naming the seconds declared and present, when some of it is there."""
    match = _SHORT_CHUNK.search(handle.extra_info or "")
    if match is None:
        return
    declared, present = int(match.group(1)), int(match.group(2))
    if declared >= _PLACEHOLDER_BYTES or present >= declared:
        return
    if handle.frames <= 0 or present <= 0:
        width = _SAMPLE_BYTES.get(handle.subtype)
        length = (f"{declared / (width * handle.channels) / handle.samplerate:.2f} s" if width and handle.samplerate
                  else f"{declared} bytes")
        raise AudioLoadError(name, f"the file is truncated: its header declares {length} of audio but it holds "
                                   "none (an interrupted download or copy?); copy or export it again")
    declared_frames = handle.frames + (declared - present) // max(1, present // handle.frames)
    key = (name, declared, present)
    if key not in _TRUNCATIONS_TOLD:  # once per file, not again for every read of it
        _TRUNCATIONS_TOLD.add(key)
        rate = handle.samplerate or 1
        log.warning("audio %s is truncated: its header declares %.2f s but the file holds only %.3f s (%d of %d "
                    "frames); using what is there (copy or export it again for the whole sound)",
                    name, declared_frames / rate, handle.frames / rate, handle.frames, declared_frames)


def _open_container(name: str, target: Any, suffix: str | None, sf_error: str | None) -> Any:
    # deferred on purpose: FFmpeg's libraries take ~0.15 s to load and only media containers need them
    import av

    try:
        container = av.open(target, mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        detail = sf_error if sf_error is not None else f"FFmpeg: {_ffmpeg_reason(exc)}"
        raise AudioLoadError(name, f"unreadable or corrupt audio ({detail}); supported: {SUPPORTED_TEXT}") from None
    demuxers = set(container.format.name.split(","))
    if sf_error is not None and not demuxers & _CONTAINER_FORMATS:
        container.close()  # FFmpeg guessed something for bytes libsndfile refused: libsndfile's reason stands
        raise AudioLoadError(name, f"unreadable or corrupt audio ({sf_error}); supported: {SUPPORTED_TEXT}")
    return container


def _ffmpeg_reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__


def _audio_stream(name: str, container: Any) -> Any:
    streams = container.streams
    if not streams.audio:
        held = ", ".join(f"{len(group)} {kind} stream(s)" for kind, group in
                         (("video", streams.video), ("subtitle", streams.subtitles), ("data", streams.data)) if group)
        raise AudioLoadError(name, f"the file has no audio stream (it holds {held or 'no streams'}); "
                                   "use a video with sound or extract its audio")
    try:
        stream = container.streams.best("audio") or streams.audio[0]
    except Exception:  # noqa: BLE001 - older PyAV without best(): the first audio stream
        stream = streams.audio[0]
    for other in streams:  # demux(stream) yields only the audio's packets; the others are dropped unread
        if other.index != stream.index:
            try:
                other.discard = type(other.discard).all
            except (AttributeError, TypeError, ValueError):  # a PyAV without the Discard enum: demux filters
                pass
    return stream


def _mono_blocks_ffmpeg(name: str, container: Any, stream: Any) -> Iterator[np.ndarray]:
    """The audio stream as mono float32 blocks, one per decoded frame, in order."""
    import av  # deferred with _open_container's import

    resampler = av.AudioResampler(format="fltp")  # any sample format -> planar float32, same layout and rate
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                for converted in resampler.resample(frame):
                    planes = converted.to_ndarray()  # [channels, n]
                    if planes.shape[1]:
                        yield planes.mean(axis=0, dtype=np.float32) if planes.shape[0] > 1 else planes[0].copy()
        for converted in resampler.resample(None):
            planes = converted.to_ndarray()
            if planes.shape[1]:
                yield planes.mean(axis=0, dtype=np.float32) if planes.shape[0] > 1 else planes[0].copy()
    except (av.FFmpegError, ValueError) as exc:
        raise AudioLoadError(name, f"corrupt audio data (FFmpeg: {_ffmpeg_reason(exc)})") from None


def _mono_blocks_soundfile(name: str, handle: Any, limit: float) -> Iterator[np.ndarray]:
    import soundfile as sf

    remaining = limit
    try:
        while remaining > 0:
            want = int(min(BLOCK_FRAMES, remaining))
            block = handle.read(want, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                return
            yield block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy()
            remaining -= block.shape[0]
            if block.shape[0] < want:
                return
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioLoadError(name, f"corrupt audio data ({getattr(exc, 'error_string', None) or exc})") from None


def _frames_for(max_seconds: float | None, sr: int, target_sr: int | None = None) -> int | None:
    if max_seconds is None:
        return None
    ratio = 1 if target_sr is None else max(1, math.ceil(sr / target_sr))
    return int(math.ceil(max_seconds * sr)) + _RESAMPLE_MARGIN * ratio


def _decode_file(
    name: str, source: Any, max_seconds: float | None, target_sr: int | None = None
) -> tuple[np.ndarray, int]:
    """Decode block by block (frame by frame for FFmpeg), mixing each block to mono, and stop once
    ``max_seconds`` (+ the resampling margin) are decoded, so memory stays at the mono output size."""
    with _open_media(name, source) as (reader, handle):
        if reader == "libsndfile":
            sr = _check_rate(name, handle.samplerate)
            max_frames = _frames_for(max_seconds, sr, target_sr)
            blocks = _mono_blocks_soundfile(name, handle, math.inf if max_frames is None else max_frames)
        else:
            container, stream = handle
            sr = _check_rate(name, stream.codec_context.sample_rate or stream.rate)
            max_frames = _frames_for(max_seconds, sr, target_sr)
            blocks = _mono_blocks_ffmpeg(name, container, stream)
        chunks: list[np.ndarray] = []
        have = 0
        for block in blocks:
            chunks.append(block)
            have += len(block)
            if max_frames is not None and have >= max_frames:
                break
    if not chunks:
        raise AudioLoadError(name, "the audio has no samples (zero length)")
    wave = np.concatenate(chunks).astype(np.float32, copy=False)
    return (wave[:max_frames] if max_frames is not None else wave), sr


def audio_info(source: str | os.PathLike | bytes | bytearray | memoryview) -> AudioInfo:
    """Check that a file (or bytes) is readable audio from its header, without decoding it all.

    For FFmpeg containers the first audio frame is decoded too, so a file without a decodable audio
    stream is refused here with the same :class:`AudioLoadError` (and reason) :func:`load_audio` gives.
    """
    name = source_name(source)
    if not isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        raise AudioLoadError(name, f"audio_info takes a path or bytes, got {type(source).__name__}")
    with _open_media(name, source) as (reader, handle):
        if reader == "libsndfile":
            sr = _check_rate(name, handle.samplerate)
            if handle.frames <= 0:
                raise AudioLoadError(name, "the audio has no samples (zero length)")
            return AudioInfo(sr, handle.channels, int(handle.frames), reader, handle.format)
        container, stream = handle
        sr = _check_rate(name, stream.codec_context.sample_rate or stream.rate)
        if next(_mono_blocks_ffmpeg(name, container, stream), None) is None:
            raise AudioLoadError(name, "the audio has no samples (zero length)")
        frames = None
        if stream.duration is not None and stream.time_base is not None:
            frames = int(round(float(stream.duration * stream.time_base) * sr))
        elif container.duration is not None:  # microseconds (AV_TIME_BASE)
            frames = int(round(container.duration / 1_000_000 * sr))
        channels = len(stream.codec_context.layout.channels) or 1
        return AudioInfo(sr, int(channels), frames if frames and frames > 0 else None, reader, container.format.name)


def stream_audio(source: str | os.PathLike, *, max_seconds: float | None = None) -> tuple[int, Iterator[np.ndarray]]:
    """A file's native rate, checked now from its header (:func:`audio_info`), and its audio as mono float32
    blocks decoded only as they are read, so memory stays at one block however long the file is (live mode
    plays an hour-long recording). Float samples are scanned for NaN/inf now (block by block); a NaN/inf
    block of another source raises :class:`AudioLoadError` when it is reached. ``max_seconds`` stops the
    blocks after that much sound."""
    if max_seconds is not None and not 0 < max_seconds < math.inf:
        raise ConfigError(f"max_seconds must be a positive number of seconds or None, got {max_seconds!r}")
    name = source_name(source)
    rate = audio_info(source).sample_rate
    limit = math.inf if max_seconds is None else math.ceil(max_seconds * rate)
    with _open_media(name, source) as (reader, handle):  # only float samples can be NaN/inf: scan those now
        if reader == "libsndfile" and handle.subtype in ("FLOAT", "DOUBLE"):
            for block in _mono_blocks_soundfile(name, handle, limit):
                if not np.isfinite(block).all():
                    raise AudioLoadError(name, "the audio contains NaN or infinite samples")

    def blocks() -> Iterator[np.ndarray]:
        left = limit
        with _open_media(name, source) as (reader, handle):
            decoded = (_mono_blocks_soundfile(name, handle, limit) if reader == "libsndfile"
                       else _mono_blocks_ffmpeg(name, *handle))
            for block in decoded:
                if not np.isfinite(block).all():
                    raise AudioLoadError(name, "the audio contains NaN or infinite samples")
                block = block[: int(min(left, len(block)))]
                left -= len(block)
                yield block
                if left <= 0:
                    return

    return rate, blocks()


def audio_seconds(source: str | os.PathLike | bytes | bytearray | memoryview) -> float:
    """Duration in seconds: the header's when it gives one, else counted by decoding (frame by frame)."""
    seconds = audio_info(source).seconds
    if seconds is not None:
        return seconds
    wave, sr = read_audio(source)
    return len(wave) / sr


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


def read_audio(source: AudioSource, sample_rate: int | None = None, *,
               max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 waveform at the source's own rate, and that rate (validated like :func:`load_audio`).

    With ``max_seconds``, decoding stops a little past that length (:data:`_RESAMPLE_MARGIN` frames), so a
    longer source comes back longer than ``max_seconds`` — enough to refuse it — without being decoded whole
    (a file whose header gives no length cannot be refused from the header).
    """
    if max_seconds is not None and not 0 < max_seconds < math.inf:
        raise ConfigError(f"max_seconds must be a positive number of seconds or None, got {max_seconds!r}")
    wave, sr, _ = _decode(source, sample_rate, max_seconds)
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
    """Write ``wave`` ([n] or [n, channels]) atomically (temp file + ``os.replace``); format from the suffix,
    tagged :data:`SOFTWARE_TAG`.

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
    width = _SAMPLE_BYTES.get(subtype or sf.default_subtype(fmt)) if fmt in ("WAV", "AIFF") else None
    needed = wave.shape[0] * channels * width if width else None  # uncompressed: the size is known
    with atomic_path(path, suffix=f".tmp{suffix}", needed=needed) as tmp:
        try:
            with sf.SoundFile(str(tmp), "w", samplerate=sr, channels=channels, format=fmt, subtype=subtype) as f:
                f.software = f.comment = SOFTWARE_TAG
                for start in range(0, wave.shape[0], BLOCK_FRAMES):
                    f.write(wave[start : start + BLOCK_FRAMES])
        except sf.LibsndfileError as exc:
            # libsndfile says only "System error." for a failed write: a disk without space left is a full disk
            # (atomic_path turns the OSError into one DiskFullError line and removes the temporary file)
            if exc.code == _SF_ERR_SYSTEM and (free_space(tmp.parent) or 0) < _FULL_DISK_SLACK:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
            raise
    return path


def written_by_seeingsounds_audio(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a sound file :func:`save_audio` wrote (its ``software`` or ``comment`` field names
    the program), so that a rerun may replace it when another file is never replaced."""
    import soundfile as sf

    try:
        with sf.SoundFile(_checked_target(source_name(path), path)[0]) as handle:
            tags = (handle.software or "", handle.comment or "")
    except (AudioLoadError, sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
        return False
    return any(tag.startswith("seeingsounds ") for tag in tags)


def audio_fingerprint(source: AudioSource, sample_rate: int | None = None) -> str:
    """sha256 hex of a file's bytes (path or bytes), or of an array's dtype, shape, bytes and sample rate."""
    if isinstance(source, tuple) and len(source) == 2:
        sample_rate, source = source
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).expanduser().is_file():
            raise AudioLoadError(name, "file not found")
        return file_sha256(Path(source).expanduser())
    digest = hashlib.sha256()
    if isinstance(source, (bytes, bytearray, memoryview)):
        digest.update(bytes(source))
    elif isinstance(source, np.ndarray):
        sr = _check_rate(name, sample_rate)
        array = np.ascontiguousarray(source)
        digest.update(f"{array.dtype.str}{array.shape}@{sr}:".encode())
        digest.update(array.tobytes())
    else:
        raise AudioLoadError(name, f"expected a path, bytes or a numpy array, got {type(source).__name__}")
    return digest.hexdigest()
