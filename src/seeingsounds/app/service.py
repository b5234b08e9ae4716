"""What the web page does, without the page: one request of the *Generate* or *Edit* button, as a
driver of :class:`~seeingsounds.engine.Engine` (no Gradio here; :mod:`seeingsounds.app.ui` is the page).

One *Generate* request (:meth:`WebService.run`), reporting its progress:

1. read the sound (an upload, a recording or a bundled example) and the optional second sound, refusing
   files over ``max_upload_mb`` or longer than ``max_seconds`` (:func:`read_checked`);
2. *what it hears* for the clean sound(s): :meth:`Engine.hear`, the run's class captions nearest to the
   aligner's prediction;
3. the mix (if a second sound is given), then the effects in the effect registry's application order
   (:func:`seeingsounds.controls.effects_from_controls`), kept as audio to listen to (:func:`transform`);
4. the caption those controls imply (:func:`implied_caption`): the template editor's ``fuse`` of the two
   nearest captions for a mix, then ``edit_many`` with the effect descriptions;
5. the pictures (or, for a video checkpoint, an mp4 per seed and its poster) of one checked
   :class:`~seeingsounds.request.Request` through :meth:`Engine.generate`, written by
   :class:`~seeingsounds.writers.OutputWriter` with ``seeingsounds generate``'s provenance;
6. *what it hears* after the effects and the mix: :meth:`Engine.nearest` of the prediction the pictures
   were made from (one prediction per clip per request).

An *Edit* request (:meth:`WebService.edit`) runs :meth:`Engine.edit` on an uploaded picture (inpainting
inside a drawn mask), ``seeingsounds edit``'s numbers and provenance.

*Live* (:meth:`WebService.live_feed`, :meth:`WebService.live_push`): the page's microphone arrives in
blocks; each is pushed into a :class:`~seeingsounds.live.LiveFeed` (``seeingsounds live``'s loop, the same
eased conditioning and fixed seed), which returns a picture and what it hears once a hop of sound arrived.

The files name their inputs by the uploaded file's name and the checkpoint by its last two folders
(:func:`checkpoint_label`), never the server's folders. Errors a user can fix are
:class:`~seeingsounds.errors.SeeingSoundsError`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seeingsounds.audio.effects import describe_effect
from seeingsounds.audio.io import audio_info, read_audio, resample, save_audio
from seeingsounds.audio.render import render
from seeingsounds.captions.edit import get_editor
from seeingsounds.controls import effects_from_controls
from seeingsounds.engine import Engine, Made
from seeingsounds.errors import AudioLoadError, ConfigError
from seeingsounds.imaging import load_picture, save_png
from seeingsounds.live import DEFAULT_EASE, LiveFeed, LiveOptions, LiveSession
from seeingsounds.request import EditSpec, LoadOptions, Request, Settings, check_edit_steps, check_strength
from seeingsounds.writers import OutputWriter, edit_provenance, output_provenance, sound_provenance

__all__ = ["EditResult", "Limits", "LiveView", "Result", "WebService", "checkpoint_label", "controls_to_effects",
           "implied_caption", "mono_block", "read_checked", "transform", "upload_name"]

#: output folders of finished requests older than this are removed (seconds)
OUTPUT_TTL = 3600.0
#: the most images one request may ask for
MAX_IMAGES = 4
#: sub-folder of the service's output folder holding gradio's uploads (never removed by the hourly clean-up)
UPLOADS_DIR = "uploads"
#: image side step when the pipeline does not say (pixels)
SIZE_STEP = 16
#: the largest image side the page offers (and the side an uploaded picture is scaled down to)
MAX_SIDE = 1024
#: the edit strength the page starts with
DEFAULT_STRENGTH = 0.6

#: ``progress(fraction, text)``: how far a request is
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Limits:
    """What one request may send: file size (MB) and duration (seconds) of each sound."""

    max_upload_mb: float = 25.0
    max_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.max_upload_mb < math.inf or not 0 < self.max_seconds < math.inf:
            raise ConfigError(f"upload limits must be positive and finite, got {self.max_upload_mb} MB / "
                              f"{self.max_seconds} s")


@dataclass
class Result:
    """Everything one request produces (the values of the page's output components).

    ``images`` are the PNGs (for a video checkpoint, the posters of ``videos``, one mp4 per seed);
    ``caption`` and ``hears`` are empty for a checkpoint outside a training run (no captions to rank).
    """

    images: list[Path]
    caption: str
    hears: dict[str, float]
    audio: Path
    seeds: list[int]
    videos: list[Path] = field(default_factory=list)


@dataclass
class EditResult:
    """What one edit produces: the edited PNGs, their seeds, the input (and mask) PNGs they name by hash."""

    images: list[Path]
    seeds: list[int]
    picture: Path
    mask: Path | None
    size: tuple[int, int]


def controls_to_effects(**values: float | None) -> list[tuple[str, dict[str, Any]]]:
    """The effects the sliders ask for (``effect name -> slider value``), in the registry's application order.

    A slider at its effect's neutral value (volume 1, reverb 0, ...) applies nothing.
    """
    return [(name, {param: float(value) for param, value in params.items()})
            for name, params in effects_from_controls(values, skip_neutral=True)]


def upload_name(path: str | os.PathLike) -> str:
    """A file's name as the user knows it (gradio keeps uploads under a hashed folder)."""
    return Path(path).name


class _ThreadWarnings(logging.Handler):
    """Collects the warnings one thread logs, each file it names by its upload name."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread, self.told = threading.get_ident(), []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:  # another request's (the page serves several at once)
            return
        args = record.args if isinstance(record.args, tuple) else ()
        shown = tuple(upload_name(a) if isinstance(a, (str, os.PathLike)) and os.path.isabs(a) else a for a in args)
        try:
            self.told.append(str(record.msg) % shown if shown else record.getMessage())
        except (TypeError, ValueError):
            self.told.append(record.getMessage())


@contextmanager
def warnings_told(logger: str = "seeingsounds") -> Iterator[list[str]]:
    """The warnings the library logs from this thread inside the block (a truncated upload read as far as it
    goes, an animated picture read as its first frame), files named by their upload names, for the page to
    show beside the result (the server log gets them too)."""
    handler = _ThreadWarnings()
    logging.getLogger(logger).addHandler(handler)
    try:
        yield handler.told
    finally:
        logging.getLogger(logger).removeHandler(handler)


def checkpoint_label(checkpoint: str | os.PathLike) -> str:
    """How provenance names a checkpoint without revealing the server's folders: a hub id as is, a local
    folder by its last two parts (``tiny-v1/best``)."""
    path = Path(checkpoint).expanduser()
    if not path.exists():
        return str(checkpoint)
    parts = path.resolve().parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else parts[-1]


def read_checked(path: str | os.PathLike, limits: Limits, role: str = "sound") -> tuple[np.ndarray, int]:
    """Read a mono waveform, refusing files over the size or duration limit with a readable message."""
    path = Path(path)
    name = upload_name(path)
    if not path.is_file():
        raise AudioLoadError(name, "the file is gone; upload it again")
    size_mb = path.stat().st_size / 1e6
    if size_mb > limits.max_upload_mb:
        raise AudioLoadError(name, f"the {role} is {size_mb:.3g} MB; this demo takes files up to "
                                   f"{limits.max_upload_mb:g} MB")
    try:  # cheap duration check from the header before decoding everything (None: the header gives no length)
        header_seconds = audio_info(path).seconds
    except AudioLoadError as exc:
        raise AudioLoadError(name, exc.reason) from None
    if header_seconds is not None and header_seconds > limits.max_seconds:
        raise AudioLoadError(name, _too_long(role, header_seconds, limits))
    try:  # decoding stops just past the limit: a file without a length in its header is never decoded whole
        wave, sr = read_audio(path, max_seconds=limits.max_seconds)
    except AudioLoadError as exc:
        raise AudioLoadError(name, exc.reason) from None
    if len(wave) > limits.max_seconds * sr:
        raise AudioLoadError(name, _too_long(role, None, limits))
    return wave, sr


def _too_long(role: str, seconds: float | None, limits: Limits) -> str:
    """The refusal of a too long sound; ``seconds`` is ``None`` when decoding stopped at the limit."""
    if seconds is None:
        return f"the {role} is longer than {limits.max_seconds:g} s, the most this demo takes: trim it and try again"
    return f"the {role} is {seconds:.1f} s long; this demo takes at most {limits.max_seconds:g} s: trim it and try again"


def transform(wave: np.ndarray, sr: int, effects: Sequence[tuple[str, dict[str, Any]]],
              other: tuple[np.ndarray, int] | None = None, ratio: float = 0.5) -> tuple[np.ndarray, list[str]]:
    """Mix in ``other`` (resampled to ``sr``) at ``ratio``, then apply ``effects`` (the one render, whole clip);
    returns the descriptions."""
    descriptions = [describe_effect(name, **params) for name, params in effects]
    partner = None if other is None else ((int(other[1]), other[0]), float(ratio))
    return render((int(sr), wave), sample_rate=int(sr), effects=list(effects), mix=partner), descriptions


def implied_caption(caption: str, descriptions: Sequence[str], other_caption: str | None = None,
                    editor: Any = None) -> str:
    """The caption the controls imply: fuse with the second sound's caption, then edit by the effects."""
    if editor is None:
        editor = get_editor("template")
    if other_caption is not None:
        caption = editor.fuse(caption, other_caption)
    return editor.edit_many(caption, list(descriptions)) if descriptions else caption


@dataclass
class LiveView:
    """What the Live tab shows after a hop: the picture, what it hears (caption -> cosine), the stream time."""

    picture: Any
    hears: dict[str, float]
    stream_time: float
    latency: float


#: the Live tab's hop (seconds of new sound per picture): the page's microphone sends blocks this long
LIVE_HOP = 0.5


def mono_block(data: Any) -> np.ndarray:
    """A block from the page's microphone (``int16`` or float, ``[n]`` or ``[n, channels]``) as mono float32
    in [-1, 1]."""
    block = np.asarray(data)
    if block.ndim not in (1, 2):
        raise ConfigError(f"a microphone block must be [samples] or [samples, channels], got shape {list(block.shape)}")
    if np.issubdtype(block.dtype, np.integer):  # scaled before the channels are averaged (which makes floats)
        block = block.astype(np.float32) / float(np.iinfo(block.dtype).max + 1)
    block = np.nan_to_num(block.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block


def _silent(fraction: float, text: str) -> None:
    """A progress report nobody reads."""


class WebService:
    """The loaded checkpoint behind the page (an :class:`~seeingsounds.engine.Engine`), its upload limits,
    its output folder and the page's own settings (the size slider's range, the defaults).

    Loaded once when the app is built; requests reuse it (the page's queue runs ``concurrency_limit`` at
    once). ``lora`` and ``cpu_offload`` go to :meth:`Engine.load`. Call :meth:`close` to remove the output
    folder it made (``output_dir=None``).
    """

    def __init__(self, checkpoint: str | os.PathLike, *, device: str | None = "auto", dtype: str | None = None,
                 top_k: int = 5, limits: Limits | None = None, output_dir: str | os.PathLike | None = None,
                 lora: str | os.PathLike | None = None, cpu_offload: bool = False):
        self.checkpoint = str(checkpoint)
        self.limits = limits or Limits()
        self.engine = Engine.load(LoadOptions(checkpoint=self.checkpoint, device=device, dtype=dtype,
                                              lora=None if lora is None else str(lora), cpu_offload=cpu_offload),
                                  top_k=top_k)
        #: the LoRA as provenance names it: its file or folder name, never the server's folders
        self.lora_label = None if lora is None else Path(str(lora)).name
        self.editor = get_editor("template")
        self._own_output = output_dir is None
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="seeingsounds-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        pipe, preset = self.engine.pipe, self.engine.preset
        self.default_steps = int(getattr(preset, "num_inference_steps", 10) or 10)
        self.size_multiple = step = int(getattr(pipe, "size_multiple", SIZE_STEP))
        # the page's largest side: MAX_SIDE, or less where the generator refuses more (tiny ones: 64 px)
        self.max_size = max(step, min(MAX_SIDE // step * step, int(pipe.size_limit[0]) // step * step))
        self.default_size = min(int(getattr(preset, "height", 512) or 512), self.max_size)
        #: a video's default length and frame step (the frames slider)
        self.default_frames = int(getattr(preset, "num_frames", 1) or 1)
        self.frame_step = int(getattr(pipe.backend, "frame_step", 4) or 4)
        #: whether the checkpoint's training run has class captions to say what it hears (read now: outside a
        #: run the engine logs that there are none)
        self.has_captions = bool(self.engine.captions)

    @property
    def is_video(self) -> bool:
        """Whether the checkpoint drives a video generator (requests give mp4s; no editing)."""
        return bool(self.engine.kind.video)

    @property
    def top_k(self) -> int:
        """How many class captions *what it hears* shows."""
        return self.engine.top_k

    @property
    def sample_rate(self) -> int:
        """The encoder's sample rate: sounds are read, mixed and transformed at it."""
        return self.engine.sample_rate

    def close(self) -> None:
        """Remove the output folder this service made (a given ``output_dir`` is left alone)."""
        if self._own_output:
            shutil.rmtree(self.output_dir, ignore_errors=True)

    # ---- one request --------------------------------------------------------------------------
    def run(self, sound: str | None, *, mix_sound: str | None = None, mix_ratio: float = 0.5, seed: int = 0,
            steps: int | None = None, size: int | None = None, num_images: int = 1, frames: int | None = None,
            progress: Progress | None = None, **controls: float | None) -> Result:
        """Everything the Generate button does; raises SeeingSoundsError for what the user can fix.

        ``frames`` is the video length of a video checkpoint (default: its preset's). ``controls`` are the
        effect sliders, ``effect name -> value`` (``volume=0.15``); a missing one or one at its neutral
        value applies nothing.
        """
        say = progress or _silent
        if not sound:
            raise ConfigError("upload or record a sound, or pick an example, first")
        size = self._check_size(self.default_size if size is None else int(size))
        if not 1 <= int(num_images) <= MAX_IMAGES:
            raise ConfigError(f"number of images must be 1..{MAX_IMAGES}, got {num_images}")
        settings = Settings(seed=int(seed), num_images=int(num_images), steps=None if steps is None else int(steps),
                            width=size, height=size, effects=controls_to_effects(**controls),
                            num_frames=None if frames is None else int(frames))
        settings.check(1)  # every setting is checked before any audio is read
        resolved = self.engine.resolve(settings)

        say(0.05, "reading the sound")
        wave, other = self._read_sounds(sound, mix_sound)
        sr = self.sample_rate
        work = self._request_dir()
        request = self._request(wave, other, mix_ratio, settings)
        say(0.15, "applying the effects")
        heard, descriptions = transform(wave, sr, settings.effects, other, mix_ratio)  # the whole clip, to listen to
        heard_path = save_audio(work / "what-it-hears.wav", heard, sr)

        say(0.3, "listening")
        ranks = self.has_captions
        found = self.engine.hear([wave] + ([other[0]] if other is not None else [])) if ranks else []
        caption = ""
        if found:  # the nearest class captions, fused and edited as the controls imply
            other_caption = found[1][0][0] if other is not None else None
            caption = implied_caption(found[0][0][0], descriptions, other_caption, self.editor)

        what = "video" if self.is_video else "image"
        say(0.45, f"painting {settings.num_images} {what}{'s' * (settings.num_images > 1)}")
        made = list(self.engine.generate(request, keep_conditioning=ranks, progress=False))
        # what the encoder hears after the effects and the mix: the prediction the pictures were made from
        hears = self.engine.nearest(made[0].conditioning)[0] if ranks else []

        say(0.9, "saving")
        files = self._write(work, "seeingsounds-seed", made, resolved, sound, mix_sound, settings,
                            **({"caption": caption} if caption else {}))
        videos = files if self.is_video else []
        images = [f.with_suffix(".png") for f in files]  # a video's poster
        return Result(images=images, caption=caption, hears=dict(hears), audio=heard_path,
                      seeds=[m.seed for m in made], videos=videos)

    def live_feed(self, sample_rate: int, *, seed: int = 0, steps: int | None = None, size: int | None = None,
                  ease: float = DEFAULT_EASE, window: float | None = None, **controls: float | None) -> LiveFeed:
        """A live stream for one page: blocks of ``sample_rate`` pushed by :meth:`live_push` become pictures,
        one per :data:`LIVE_HOP` of sound, eased with ``ease``, from ``seed``; the effect ``controls`` apply to
        every window. Refused for a video checkpoint."""
        size = self._check_size(self.default_size if size is None else int(size))
        settings = Settings(seed=int(seed), steps=None if steps is None else int(steps), width=size, height=size,
                            effects=controls_to_effects(**controls))
        options = LiveOptions(hop=LIVE_HOP, ease=float(ease), window=None if window is None else float(window))
        return LiveSession(self.engine, settings, options).feed(int(sample_rate))

    def live_push(self, feed: LiveFeed, data: Any) -> LiveView | None:
        """Push one microphone block; the new picture and what it hears once a hop of sound arrived."""
        frame = feed.push(mono_block(data))
        if frame is None:
            return None
        return LiveView(picture=frame.picture, hears=dict(frame.heard), stream_time=frame.stream_time,
                        latency=frame.latency)

    def edit(self, picture: Any, sound: str | None, *, mask: Any = None, strength: float = DEFAULT_STRENGTH,
             mix_sound: str | None = None, mix_ratio: float = 0.5, seed: int = 0, steps: int | None = None,
             progress: Progress | None = None, **controls: float | None) -> EditResult:
        """Everything the Edit button does: ``picture`` (PIL image or ``uint8`` array) edited by the sound, with
        the generator's image-to-image pipeline, or its inpainting one inside ``mask`` (white/non-zero: may
        change; of the picture's size). Raises SeeingSoundsError for what the user can fix.

        A picture larger than the page's size limit is scaled down (aspect kept) to fit it. The input and
        the mask are saved as PNGs beside the output, whose provenance names them by their sha256.
        """
        say = progress or _silent
        if self.is_video:
            raise ConfigError(f"{self.engine.preset.name} is a video generator: editing needs an image checkpoint")
        if picture is None:
            raise ConfigError("upload a picture to edit first")
        if not sound:
            raise ConfigError("upload or record a sound, or pick an example, first")
        strength = check_strength(strength)
        image = load_picture(picture, what="picture")
        mask_image = None if mask is None else load_picture(mask, what="mask", mode="L")
        if mask_image is not None and mask_image.size != image.size:  # the page's words: the mask is drawn on it
            raise ConfigError(f"the mask is {mask_image.width}x{mask_image.height} but the picture is "
                              f"{image.width}x{image.height}: draw the mask on the picture itself")
        width, height = self.fit(image.size)
        settings = Settings(seed=int(seed), steps=None if steps is None else int(steps), width=width, height=height,
                            effects=controls_to_effects(**controls))
        settings.check(1)  # every setting is checked before any audio is read
        resolved = self.engine.resolve(settings)
        check_edit_steps(strength, resolved["num_inference_steps"])

        say(0.05, "reading the sound")
        wave, other = self._read_sounds(sound, mix_sound)
        work = self._request_dir()
        picture_path = save_png(image, work / "input.png")  # the request reads the picture as saved, and hashes it
        mask_path = save_png(mask_image, work / "mask.png") if mask_image is not None else None
        request = self._request(wave, other, mix_ratio, settings,
                                edit=EditSpec(image=picture_path, mask=mask_path, strength=strength))
        say(0.3, f"editing the picture (strength {request.edit.strength:g})")
        made = list(self.engine.edit(request, progress=False))

        say(0.9, "saving")
        images = self._write(work, "seeingsounds-edit-seed", made, resolved, sound, mix_sound, settings,
                             **edit_provenance(request, image_name=picture_path.name,
                                               mask_name=mask_path.name if mask_path else None))
        return EditResult(images=images, seeds=[m.seed for m in made], picture=picture_path, mask=mask_path,
                          size=(width, height))

    def fit(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) for a picture of ``size``: scaled down to :attr:`max_size` (aspect kept), rounded
        down to the generator's size multiple."""
        width, height = size
        scale = min(1.0, self.max_size / max(width, height))
        step = self.size_multiple
        return (max(step, int(width * scale) // step * step), max(step, int(height * scale) // step * step))

    # ---- the parts of a request ---------------------------------------------------------------
    def _check_size(self, size: int) -> int:
        """The size slider's range: a multiple of the generator's step, up to :attr:`max_size`."""
        multiple = self.size_multiple
        if size < multiple or size % multiple:
            raise ConfigError(f"image size must be a positive multiple of {multiple}, got {size}")
        if size > self.max_size:
            raise ConfigError(f"image size {size} is larger than this generator's limit of {self.max_size} px")
        return size

    def _read_sounds(self, sound: str, mix_sound: str | None) -> tuple[np.ndarray, tuple[np.ndarray, int] | None]:
        """The sound and the optional second one at the encoder's rate (effects run at it, as in the pipeline)."""
        sr = self.sample_rate
        wave = resample(*read_checked(sound, self.limits, "sound"), sr)
        other = (resample(*read_checked(mix_sound, self.limits, "second sound"), sr), sr) if mix_sound else None
        return wave, other

    def _request(self, wave: np.ndarray, other: tuple[np.ndarray, int] | None, mix_ratio: float, settings: Settings,
                 edit: EditSpec | None = None) -> Request:
        """The checked engine request for the sound read (and the second sound mixed in at ``mix_ratio``)."""
        sr = self.sample_rate
        settings.mix = None if other is None else ((sr, other[0]), float(mix_ratio))
        return Request(sounds=[wave], settings=settings, edit=edit, sample_rate=sr).check()

    def _write(self, work: Path, prefix: str, made: Sequence[Made], resolved: dict[str, Any], sound: str,
               mix_sound: str | None, settings: Settings, **fields: Any) -> list[Path]:
        """Write ``work/<prefix><seed>.png`` (an mp4 and its poster for a video) per output with the provenance
        of ``seeingsounds generate``: the checkpoint, the LoRA and the sounds by name, never the server's
        folders; the sounds' hashes from their files (the request holds them read)."""
        common = output_provenance(self.engine, checkpoint_label(self.checkpoint), resolved, **fields)
        writer = OutputWriter(work, {**common, "lora": self.lora_label})
        by_file = settings if settings.mix is None else dataclasses.replace(settings, mix=(mix_sound, settings.mix[1]))
        source = sound_provenance(sound, settings.seed, by_file, made[0].effects, name=upload_name(sound),
                                  mix_name=upload_name(mix_sound) if mix_sound else None)
        return [writer.write(m, f"{prefix}{m.seed}", meta={**source, "seed": m.seed}) for m in made]

    def _request_dir(self) -> Path:
        now = time.time()
        for old in self.output_dir.iterdir():
            if old.is_dir() and old.name != UPLOADS_DIR and now - old.stat().st_mtime > OUTPUT_TTL:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="request-", dir=self.output_dir))
