"""Live mode: a stream of sound (a microphone, or a file played as one) becomes moving pictures.

A driver of :class:`~seeingsounds.engine.Engine`: every hop it takes the newest window of the
stream, renders it through the one render (effects, mix), predicts its conditioning, names what it
hears (the run's nearest class captions) and makes one picture from the conditioning *eased* over
the hops, always from the same seed:

* the same starting noise every frame (one seed), so the picture changes only when the conditioning
  does;
* easing: an exponential moving average, ``eased = ease * previous + (1 - ease) * new``. With
  ``ease=0`` every picture shows only its own window; with ``ease=0.6`` a new steady sound is
  ``1 - 0.6**n`` of the way into the picture after ``n`` hops (64 % after 2, 87 % after 4);
* a stream that arrives in real time is read by a thread while pictures are made: when a picture
  takes longer than a hop, the next one is made from the newest window and the hops in between are
  skipped (counted in :attr:`Frame.skipped`), so the delay from sound to picture stays bounded.
  A stream read as fast as possible (tests, benchmarks) makes one picture per hop, in order.

:func:`live_frames` is the Python API (an iterator of :class:`Frame`); :func:`file_blocks`,
:func:`microphone_blocks` and :func:`array_blocks` are the sources; :func:`record_session` is
``seeingsounds live``: frames as PNGs with provenance, a JSONL log and optionally an mp4 of the session
with its sound.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import threading
import time
from contextlib import closing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from seeingsounds.audio.effects import describe_effect
from seeingsounds.audio.io import stream_audio
from seeingsounds.audio.render import check_chain, input_samples
from seeingsounds.engine import Engine, Made
from seeingsounds.errors import ConfigError
from seeingsounds.imaging import provenance_json
from seeingsounds.paths import atomic_path
from seeingsounds.request import LoadOptions, Request, Settings, check_model_limits, sound_path
from seeingsounds.writers import OutputWriter, check_targets, output_provenance, plan_outputs, sound_provenance

if TYPE_CHECKING:
    from seeingsounds.video import SessionRecorder

log = logging.getLogger(__name__)

__all__ = ["AudioBlocks", "Frame", "LiveFeed", "LiveOptions", "LiveSession", "SessionSummary", "array_blocks", "file_blocks",
           "live_frames", "microphone_blocks", "record_session"]

#: seconds of new sound per picture
DEFAULT_HOP = 0.5
#: the shortest hop: a picture per 10 ms of sound (a tinier --hop made a picture per sample, 16000 files a second)
MIN_HOP = 0.01
#: share of the previous conditioning kept at each hop (exponential moving average)
DEFAULT_EASE = 0.6
#: seconds per block read from a file or the microphone
BLOCK_SECONDS = 0.05
#: a microphone that sends nothing for this long is an error, not a silent hang
MICROPHONE_TIMEOUT_S = 5.0
#: the session log and the frames' names in the output folder
LOG_NAME = "live.jsonl"
FRAME_PATTERN = re.compile(r"frame\d{5,}\.png")
#: the recording's frame rate, and the least picture side it shows (small pictures are scaled up, nearest)
RECORD_FPS = 10
RECORD_MIN_SIDE = 256


# ---- options and frames -------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveOptions:
    """How a stream is heard and drawn.

    Attributes:
        hop: seconds of new sound per picture.
        ease: share of the previous conditioning kept at each hop, in ``[0, 1)`` (0: no easing).
        window: seconds of the newest sound the model hears (``None``: the encoder's whole window); a
            shorter window is padded with silence at the end, as a short clip is at training, and
            follows a change sooner. At the start of a stream the window holds the sound so far.
        seconds: stop after this much sound (``None``: at the end of the stream).
    """

    hop: float = DEFAULT_HOP
    ease: float = DEFAULT_EASE
    window: float | None = None
    seconds: float | None = None

    def check(self) -> LiveOptions:
        """Refuse values that make no stream (one :class:`ConfigError` line naming the option)."""
        for label, value in (("--hop", self.hop), ("--ease", self.ease), ("--window", self.window),
                             ("--seconds", self.seconds)):
            if value is None and label in ("--window", "--seconds"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{label} must be a number, got {value!r}")
        if not self.hop >= MIN_HOP:
            raise ConfigError(f"--hop must be at least {MIN_HOP:g} s of new sound per picture (at most "
                              f"{1 / MIN_HOP:g} pictures per second of sound), got {self.hop:g}")
        if not 0.0 <= self.ease < 1.0:
            raise ConfigError(f"--ease must be in [0, 1) (share of the previous picture's conditioning kept), "
                              f"got {self.ease}")
        for label, value in (("--window", self.window), ("--seconds", self.seconds)):
            if value is not None and not value > 0:
                raise ConfigError(f"{label} must be positive seconds, got {value}")
        return self


@dataclass
class Frame:
    """One picture of a live stream.

    Attributes:
        index: its position in the stream (0, 1, ...).
        stream_time: seconds of the stream at the end of the window it heard.
        heard: the run's class captions nearest to that window, with their cosine similarity, best first
            (empty outside a training run).
        picture: the picture, from the eased conditioning and the fixed seed.
        latency: wall seconds from the arrival of the window's newest sound to the finished picture.
        skipped: hops skipped before this picture because pictures were slower than the sound.
        conditioning: the eased conditioning it was made from (float32, CPU).
    """

    index: int
    stream_time: float
    heard: list[tuple[str, float]]
    picture: Image.Image
    latency: float
    skipped: int = 0
    conditioning: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


# ---- sources --------------------------------------------------------------------------------------
@dataclass
class AudioBlocks:
    """A stream of mono float32 blocks at ``sample_rate``. ``realtime``: they arrive as the sound happens
    (a microphone, a file played at its speed); otherwise as fast as they are read."""

    blocks: Iterable[np.ndarray]
    sample_rate: int
    realtime: bool
    name: str
    path: str | None = None


def array_blocks(wave: np.ndarray, sample_rate: int, *, as_fast_as_possible: bool = False,
                 block_seconds: float = BLOCK_SECONDS, name: str = "<array>") -> AudioBlocks:
    """A mono waveform as a stream of blocks: played in real time (each block when its moment comes), or
    ``as_fast_as_possible``."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ConfigError(f"a live stream is a mono 1-D waveform, got shape {list(wave.shape)}")
    return AudioBlocks(_played([wave], int(sample_rate), block_seconds, not as_fast_as_possible), int(sample_rate),
                       realtime=not as_fast_as_possible, name=name)


def _played(pieces: Iterable[np.ndarray], sample_rate: int, block_seconds: float, realtime: bool) -> Iterator[np.ndarray]:
    """``pieces`` of a waveform cut into blocks of ``block_seconds``, each when its moment comes (``realtime``)
    or at once."""
    size = max(1, int(round(block_seconds * sample_rate)))
    start = time.monotonic()
    offset = 0
    pending = np.zeros(0, dtype=np.float32)
    for piece in pieces:
        pending = np.concatenate([pending, piece]) if len(pending) else piece
        while len(pending) >= size:
            block, pending = pending[:size], pending[size:]
            yield _when_due(block, offset, start, sample_rate, realtime)
            offset += len(block)
    if len(pending):
        yield _when_due(pending, offset, start, sample_rate, realtime)


def _when_due(block: np.ndarray, offset: int, start: float, sample_rate: int, realtime: bool) -> np.ndarray:
    if realtime:
        delay = start + (offset + len(block)) / sample_rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return block


def file_blocks(path: str | os.PathLike, *, as_fast_as_possible: bool = False,
                block_seconds: float = BLOCK_SECONDS, max_seconds: float | None = None) -> AudioBlocks:
    """A sound file as a stream (as :func:`array_blocks` plays an array): its header is checked now, so a bad
    file fails before any model loads, and it is decoded as it is played, so memory stays at a block
    however long the file is. ``max_seconds``: stop after that much sound."""
    try:
        path = sound_path(path)
    except ConfigError as exc:  # no such file
        raise ConfigError(f"{exc}: give --input an existing file (or leave it out to hear the microphone)") from None
    rate, pieces = stream_audio(path, max_seconds=max_seconds)
    return AudioBlocks(_played(pieces, rate, block_seconds, not as_fast_as_possible), rate,
                       realtime=not as_fast_as_possible, name=Path(path).name, path=str(path))


def _sounddevice() -> Any:
    """The ``sounddevice`` module (PortAudio); imported here on purpose: only the microphone needs it."""
    try:
        import sounddevice
    except ImportError as exc:
        raise ConfigError("listening to the microphone needs the sounddevice package: "
                          "pip install 'seeingsounds[live]' (or give --input FILE)") from exc
    except OSError as exc:  # sounddevice is installed but the PortAudio library is not
        raise ConfigError(f"the PortAudio library is missing ({exc}): install it (Debian/Ubuntu: "
                          "apt-get install libportaudio2; macOS: brew install portaudio) or give --input FILE") from exc
    return sounddevice


def microphone_blocks(*, sample_rate: int | None = None, device: int | str | None = None,
                      block_seconds: float = BLOCK_SECONDS) -> AudioBlocks:
    """The default (or ``device``) microphone as a real-time stream of mono blocks, at ``sample_rate`` or the
    device's own rate. Checked now (PortAudio present, an input device there), opened when read."""
    sd = _sounddevice()
    try:
        info = sd.query_devices(device, kind="input")
    except (sd.PortAudioError, ValueError) as exc:
        raise ConfigError(f"no microphone found ({exc}): plug one in or give --input FILE") from exc
    rate = int(sample_rate or info["default_samplerate"])
    name = str(info.get("name", "microphone"))

    def blocks() -> Iterator[np.ndarray]:
        arrived: queue.Queue[np.ndarray] = queue.Queue()

        def callback(indata: np.ndarray, frames: int, at: Any, status: Any) -> None:
            arrived.put(np.asarray(indata[:, 0], dtype=np.float32).copy())

        try:
            stream = sd.InputStream(device=device, channels=1, samplerate=rate, dtype="float32",
                                    blocksize=max(1, int(round(block_seconds * rate))), callback=callback)
        except (sd.PortAudioError, ValueError) as exc:
            raise ConfigError(f"cannot open the microphone {name!r} ({exc}): check it or give --input FILE") from exc
        with stream:
            while True:
                try:
                    yield arrived.get(timeout=MICROPHONE_TIMEOUT_S)
                except queue.Empty:
                    raise ConfigError(f"the microphone {name!r} sent no sound for {MICROPHONE_TIMEOUT_S:g} s: "
                                      "check it (muted? in use?) or give --input FILE") from None

    return AudioBlocks(blocks(), rate, realtime=True, name=f"microphone: {name}")


# ---- the stream's newest sound -----------------------------------------------------------------
class _Heard:
    """The newest ``capacity`` samples of a stream, how many arrived and when the newest did (thread-safe)."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.buffer = np.zeros(0, dtype=np.float32)
        self.total = 0
        self.arrived = time.monotonic()
        self.done = False
        self.error: BaseException | None = None
        self.changed = threading.Condition()

    def push(self, block: np.ndarray) -> None:
        with self.changed:
            self.buffer = np.concatenate([self.buffer, block])[-self.capacity :]
            self.total += len(block)
            self.arrived = time.monotonic()
            self.changed.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        with self.changed:
            self.done, self.error = True, error
            self.changed.notify_all()

    def wait(self, total: int) -> None:
        """Until ``total`` samples arrived or the stream ended."""
        with self.changed:
            self.changed.wait_for(lambda: self.total >= total or self.done)

    def snapshot(self) -> tuple[np.ndarray, int, float]:
        """(the newest samples, how many arrived in all, when the newest did)."""
        with self.changed:
            return self.buffer.copy(), self.total, self.arrived


# ---- the loop --------------------------------------------------------------------------------------
class LiveSession:
    """Pictures from a stream with one loaded engine: :meth:`frames` is the loop.

    ``settings`` holds the seed (the same every frame), steps, size and guidance, and the effects and
    mix applied to every window. Values are checked here, before any sound is read.
    """

    def __init__(self, engine: Engine, settings: Settings | None = None, options: LiveOptions | None = None):
        self.engine = engine
        self.settings = settings or Settings()
        self.options = (options or LiveOptions()).check()
        self.settings.check(1)
        if self.settings.num_images != 1:
            raise ConfigError("live mode makes one picture per hop: --num-images does not apply")
        if engine.kind.video:
            raise ConfigError(f"checkpoint {engine.checkpoint} drives a video generator: live mode needs an image "
                              "checkpoint")
        self.resolved = engine.resolve(self.settings)
        self.descriptions = [describe_effect(name, **params) for name, params in check_chain(self.settings.effects)]
        # in whole samples: the page sends the encoder's own window back as a float (2.015 s x 16 kHz is
        # 32240.000000000004), which is no longer window
        asked = None if self.options.window is None else max(1, int(round(self.options.window * engine.sample_rate)))
        heard = engine.window_samples if asked is None else min(engine.window_samples, asked)
        if asked is not None and asked > engine.window_samples:
            log.warning("--window %g s is longer than the %.2f s the encoder hears at once: using %.2f s",
                        self.options.window, engine.window_samples / engine.sample_rate,
                        engine.window_samples / engine.sample_rate)
        #: samples at the encoder's rate the window takes in (more when an effect such as speed reads more)
        self.input_samples = int(input_samples(self.settings.effects, heard) or heard)

    @property
    def window_seconds(self) -> float:
        """Seconds of sound each picture hears (before effects)."""
        return self.input_samples / self.engine.sample_rate

    def frames(self, source: AudioBlocks) -> Iterator[Frame]:
        """The pictures of ``source``, one per hop (real-time sources: from the newest window, skipping hops
        when pictures are slower than the sound). Stops at the end of the stream or after ``seconds``."""
        rate = int(source.sample_rate)
        if rate < 1:
            raise ConfigError(f"a stream's sample rate must be a positive integer, got {source.sample_rate!r}")
        capacity = int(math.ceil(self.input_samples * rate / self.engine.sample_rate))
        hop = max(1, int(round(self.options.hop * rate)))
        limit = None if self.options.seconds is None else max(1, int(round(self.options.seconds * rate)))
        heard = _Heard(capacity)
        blocks = _limited(source.blocks, limit)
        eased: dict[str, torch.Tensor] | None = None
        if source.realtime:
            ticks = self._realtime(blocks, heard, hop)
        else:
            ticks = self._in_order(blocks, heard, hop)
        for index, skipped in enumerate(ticks):
            window, total, arrived = heard.snapshot()
            frame = self.frame(window, rate, eased, index=index, stream_time=total / rate, arrived=arrived,
                               skipped=skipped)
            eased = frame.conditioning
            yield frame

    def frame(self, window: np.ndarray, rate: int, eased: dict[str, torch.Tensor] | None, *, index: int,
              stream_time: float, arrived: float, skipped: int = 0) -> Frame:
        """One picture: ``window`` (the newest sound, at ``rate``) rendered with the effects and mix,
        predicted, named, eased into ``eased`` (the previous frame's conditioning, ``None`` at the start)
        and drawn from the fixed seed."""
        now = self.engine.predict([(rate, window)], effects=self.settings.effects or None, mix=self.settings.mix)
        said = self.engine.nearest(now)[0]  # what this window alone sounds like
        if eased is not None:
            now = {k: self.options.ease * eased[k] + (1 - self.options.ease) * v for k, v in now.items()}
        picture = self.engine.pictures(now, seeds=[self.settings.seed], settings=self.resolved, batch_size=1)[0]
        if isinstance(picture, np.ndarray):
            picture = Image.fromarray(picture)
        return Frame(index=index, stream_time=stream_time, heard=said, picture=picture,
                     latency=time.monotonic() - arrived, skipped=skipped, conditioning=now)

    def feed(self, sample_rate: int) -> LiveFeed:
        """A push-mode stream at ``sample_rate``: the caller hands over blocks as they arrive (a web page's
        microphone); see :class:`LiveFeed`."""
        return LiveFeed(self, sample_rate)

    @staticmethod
    def _in_order(blocks: Iterator[np.ndarray], heard: _Heard, hop: int) -> Iterator[int]:
        """Every hop in order (and the last part of the stream): the stream is read only as pictures are made."""
        made = 0  # samples covered by the pictures so far
        for block in blocks:
            while len(block):
                take = min(len(block), made + hop - heard.total)
                heard.push(block[:take])
                block = block[take:]
                if heard.total == made + hop:
                    made = heard.total
                    yield 0
        if heard.total > made:
            yield 0

    @staticmethod
    def _realtime(blocks: Iterator[np.ndarray], heard: _Heard, hop: int) -> Iterator[int]:
        """The newest window once at least a hop of new sound arrived: a thread reads the stream meanwhile."""
        stop = threading.Event()

        def read() -> None:
            try:
                for block in blocks:
                    heard.push(block)
                    if stop.is_set():
                        break
            except BaseException as exc:  # handed to the loop, which raises it
                heard.finish(exc)
            else:
                heard.finish()
            finally:
                close = getattr(blocks, "close", None)
                if close is not None:
                    close()

        reader = threading.Thread(target=read, name="seeingsounds-live-reader", daemon=True)
        reader.start()
        made = 0
        try:
            while True:
                heard.wait(made + hop)
                if heard.error is not None:
                    raise heard.error
                total = heard.total
                if total <= made:  # ended
                    return
                if total < made + hop and not heard.done:
                    continue
                yield max(0, (total - made) // hop - 1)
                made = total
        finally:
            stop.set()
            reader.join(timeout=MICROPHONE_TIMEOUT_S + 1)


class LiveFeed:
    """Live mode pushed by the caller: :meth:`push` hands over the blocks of a stream as they arrive; a push
    that completes a hop of new sound returns the picture of the newest window (else ``None``).

    For sources that call back, like a web page streaming its microphone: the caller's own pace sets the
    hops' timing, and a slow picture delays the next push instead of queueing windows."""

    def __init__(self, session: LiveSession, sample_rate: int):
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1:
            raise ConfigError(f"a stream's sample rate must be a positive integer, got {sample_rate!r}")
        self.session = session
        self.sample_rate = int(sample_rate)
        capacity = int(math.ceil(session.input_samples * self.sample_rate / session.engine.sample_rate))
        self.hop = max(1, int(round(session.options.hop * self.sample_rate)))
        self.heard = _Heard(capacity)
        self.made = 0  # samples covered by the pictures so far
        self.frames = 0
        self.last: Frame | None = None

    def push(self, block: np.ndarray) -> Frame | None:
        """Add a mono block at :attr:`sample_rate`; the new frame when a hop of sound has arrived since the last."""
        for part in _limited([block], None):
            self.heard.push(part)
        if self.heard.total - self.made < self.hop:
            return None
        window, total, arrived = self.heard.snapshot()
        skipped = max(0, (total - self.made) // self.hop - 1)
        self.last = self.session.frame(window, self.sample_rate, self.last.conditioning if self.last else None,
                                       index=self.frames, stream_time=total / self.sample_rate, arrived=arrived,
                                       skipped=skipped)
        self.made, self.frames = total, self.frames + 1
        return self.last


def _limited(blocks: Iterable[np.ndarray], limit: int | None) -> Iterator[np.ndarray]:
    """The blocks as mono float32, up to ``limit`` samples in all."""
    iterator = iter(blocks)
    seen = 0
    try:
        for block in iterator:
            block = np.asarray(block, dtype=np.float32)
            if block.ndim != 1:
                raise ConfigError(f"a live stream's blocks are mono 1-D arrays, got shape {list(block.shape)}")
            if limit is not None:
                block = block[: limit - seen]
            seen += len(block)
            if len(block):
                yield block
            if limit is not None and seen >= limit:
                return
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def live_frames(engine: Engine, source: AudioBlocks, *, settings: Settings | None = None,
                options: LiveOptions | None = None) -> Iterator[Frame]:
    """The pictures of a stream: ``(stream_time, heard, picture, latency)`` per hop, as :class:`Frame`.

    ``source`` comes from :func:`file_blocks`, :func:`microphone_blocks` or any iterable of mono float32
    blocks wrapped in :class:`AudioBlocks` (with its sample rate)."""
    return LiveSession(engine, settings, options).frames(source)


# ---- a recorded session (``seeingsounds live``) ---------------------------------------------------------
@dataclass
class SessionSummary:
    """What a recorded session wrote and how fast it went."""

    folder: Path
    log: Path
    frames: list[Path]
    record: Path | None
    seconds: float
    pictures_per_s: float
    mean_latency: float
    max_latency: float
    skipped: int
    interrupted: bool = False


def frame_name(index: int) -> str:
    return f"frame{index:05d}"


def _earlier_frames(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if FRAME_PATTERN.fullmatch(p.name)) if folder.is_dir() else []


def _plan_session(output: str | os.PathLike, record: str | os.PathLike | None, inputs: Sequence[str]) -> tuple[Path, Path | None]:
    """The output folder and the recording, checked before any model loads (never an input, never a file
    SeeingSounds did not write, never among sound clips or in a training run)."""
    if Path(output).suffix.lower() in (".png", ".mp4"):
        raise ConfigError(f"-o {output}: live mode writes a folder of frames; give a folder (and --record NAME.mp4 "
                          "for a video)")
    folder, _ = plan_outputs(output, 2)
    record_path = None
    if record is not None:
        record_path = Path(record).expanduser()
        if record_path.suffix.lower() != ".mp4":
            raise ConfigError(f"--record {record}: the session is recorded as an .mp4; give a NAME.mp4")
        plan_outputs(record_path, 1, suffix=".mp4")
    targets = [folder / LOG_NAME, *_earlier_frames(folder)] + ([record_path] if record_path is not None else [])
    check_targets(targets, inputs, folder, single=False, video=False)
    return folder, record_path


def _recording_picture(picture: Image.Image) -> np.ndarray:
    """A picture as a recording's frame: scaled up (nearest) to at least :data:`RECORD_MIN_SIDE`, even sides."""
    factor = max(1, math.ceil(RECORD_MIN_SIDE / max(1, min(picture.size))))
    width, height = picture.width * factor, picture.height * factor
    return np.asarray(picture.convert("RGB").resize((width + width % 2, height + height % 2), Image.NEAREST))


def record_session(load: LoadOptions, settings: Settings, output: str | os.PathLike, *, input: str | None = None,
                   fast: bool = False, options: LiveOptions | None = None, record: str | os.PathLike | None = None,
                   engine: Engine | None = None, on_frame: Callable[[Frame], None] | None = None) -> SessionSummary:
    """``seeingsounds live``: a stream (``input`` played in real time, or as fast as possible with ``fast``;
    the microphone without ``input``) as frames ``frameNNNNN.png`` in ``output`` with provenance (incl.
    ``stream_time`` and ``heard``), the log ``live.jsonl`` (a header line, then one line per frame: its
    file, stream time, what it heard with scores, latency, skipped hops) and, with ``record``, an mp4 of
    the session with its sound, each picture shown while the hop of sound it newly heard plays.

    Everything is checked before the model loads: the options, the input or the microphone, the output
    paths and the model's limits. Ctrl-C ends a session cleanly; after an error what was made (frames,
    log, recording) is kept and the error raised. A new session in the same folder replaces the earlier
    session's frames.
    """
    options = (options or LiveOptions()).check()
    if fast and input is None:
        raise ConfigError("--fast reads a file as fast as possible: give --input FILE (the microphone is real time)")
    settings.check(1)
    if settings.num_images != 1:
        raise ConfigError("live mode makes one picture per hop: --num-images does not apply")
    inputs = [p for p in (input, settings.mix[0] if settings.mix else None) if isinstance(p, (str, os.PathLike))]
    folder, record_path = _plan_session(output, record, [str(p) for p in inputs])
    source = (file_blocks(input, as_fast_as_possible=fast, max_seconds=options.seconds) if input is not None
              else microphone_blocks())
    if engine is None:
        kind = check_model_limits(load, Request(settings=settings))
        if kind is not None and kind.video:
            raise ConfigError(f"checkpoint {load.checkpoint} drives a video generator: live mode needs an image "
                              "checkpoint")
        engine = Engine.load(load)
    session = LiveSession(engine, settings, options)
    own = sound_provenance(source.path, settings.seed, settings, session.descriptions,
                           name=source.path or source.name)
    common = output_provenance(engine, load.checkpoint, session.resolved, **own)
    header = {**common, "live": {"hop": options.hop, "ease": options.ease, "window": session.window_seconds,
                                 "sample_rate": source.sample_rate, "realtime": source.realtime}}
    writer = OutputWriter(folder, common)
    sound: queue.Queue[np.ndarray] = queue.Queue()  # every block the session reads, for the recording
    if record_path is not None:
        # deferred on purpose: PyAV (FFmpeg) is needed only to record a session; live mode runs without it
        # (a GPU machine that lacks the wheel, e.g. benchmarks/gpu.py's live part)
        from seeingsounds.video import SessionRecorder

        limit = None if options.seconds is None else max(1, int(round(options.seconds * source.sample_rate)))
        source = AudioBlocks(_tee(_limited(source.blocks, limit), sound), source.sample_rate, source.realtime, source.name, source.path)
    recorder: SessionRecorder | None = None
    frames: list[Frame] = []
    interrupted, error = False, None
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(folder / LOG_NAME, suffix=".jsonl") as tmp, open(tmp, "w", encoding="utf-8") as log, \
                closing(session.frames(source)) as stream:
            log.write(provenance_json(header) + "\n")
            try:
                for frame in stream:
                    name = frame_name(frame.index)
                    heard = [[caption, round(score, 4)] for caption, score in frame.heard]
                    writer.write(Made(picture=frame.picture, seed=settings.seed, source=own["source"],
                                      input_index=0, effects=session.descriptions), name,
                                 meta={"stream_time": round(frame.stream_time, 3), "heard": heard})
                    log.write(provenance_json({"frame": f"{name}.png", "stream_time": round(frame.stream_time, 3),
                                               "heard": heard, "latency_s": round(frame.latency, 4),
                                               "skipped": frame.skipped}) + "\n")
                    log.flush()
                    if record_path is not None:
                        picture = _recording_picture(frame.picture)
                        if recorder is None:
                            recorder = SessionRecorder(record_path, width=picture.shape[1], height=picture.shape[0],
                                                       fps=RECORD_FPS, sample_rate=source.sample_rate,
                                                       metadata={**common, "fps": RECORD_FPS})
                        _drain(sound, recorder)
                        # shown while the hop of sound it newly heard plays
                        recorder.picture(picture, at=frame.stream_time - options.hop)
                    frames.append(frame)
                    if on_frame is not None:
                        on_frame(frame)
            except KeyboardInterrupt:  # Ctrl-C is how a microphone session ends: keep what was made
                interrupted = True
            except Exception as exc:  # keep what was made (frames, log, recording), then raise
                error = exc
            if recorder is not None:
                _drain(sound, recorder)
                recorder.close()
    except BaseException:
        if recorder is not None:
            recorder.discard()
        raise
    finally:
        for stale in _earlier_frames(folder):  # the earlier session's frames beyond this one's (checked as ours)
            if stale not in writer.outputs:
                stale.unlink(missing_ok=True)
    if error is not None:
        raise error
    seconds = time.monotonic() - started
    latencies = [f.latency for f in frames]
    return SessionSummary(folder=folder, log=folder / LOG_NAME, frames=list(writer.outputs),
                          record=record_path if recorder is not None else None, seconds=seconds,
                          pictures_per_s=len(frames) / seconds if seconds > 0 else 0.0,
                          mean_latency=float(np.mean(latencies)) if latencies else 0.0,
                          max_latency=float(np.max(latencies)) if latencies else 0.0,
                          skipped=sum(f.skipped for f in frames), interrupted=interrupted)


def _tee(blocks: Iterable[np.ndarray], into: queue.Queue[np.ndarray]) -> Iterator[np.ndarray]:
    """``blocks``, each also put into ``into`` (thread-safe: a real-time stream is read by a thread)."""
    for block in blocks:
        into.put(np.asarray(block, dtype=np.float32))
        yield block


def _drain(sound: queue.Queue[np.ndarray], recorder: SessionRecorder) -> None:
    while True:
        try:
            recorder.sound(sound.get_nowait())
        except queue.Empty:
            return

