"""The web demo: record or upload a sound, steer it with effects or a second sound, see the picture.

:func:`build_app` returns a ``gradio.Blocks``; :func:`launch_app` serves it (127.0.0.1 unless told
otherwise) with the upload limit enforced by the server too. ``seeingsounds serve`` is the command.

One request (the *Generate* button) runs, with a progress indicator:

1. read the sound (upload, microphone or a bundled example) and the optional second sound, refusing
   files over ``max_upload_mb`` or longer than ``max_seconds`` with a message in the page;
2. *what it hears* for the clean sound(s): the class captions nearest to the aligner's prediction;
3. mix (if a second sound is given), then the effects in the effect registry's application order
   (:func:`seeingsounds.controls.controls_in_order`) — exactly what ``seeingsounds generate`` does;
4. the caption those controls imply: the template editor's ``fuse`` of the two nearest captions for
   a mix, then ``edit_many`` with the effect descriptions;
5. the images from the frozen generator, from one prediction of the transformed sound, saved as PNG
   with provenance metadata for download; for a video checkpoint, an mp4 per seed (shown in the page)
   and its poster PNG;
6. *what it hears* for the transformed sound (the bar chart): the class captions nearest to that same
   prediction; and the transformed audio to listen to.

The *Edit a picture with a sound* tab (image checkpoints) runs the generator's image-to-image, or with a
mask drawn in the page its inpainting, pipeline on an uploaded picture, fed what the aligner predicts for
the (mixed, transformed) sound: :meth:`DemoEngine.edit`, ``seeingsounds edit``'s numbers.

Every file's provenance is built with :func:`seeingsounds.imaging.provenance` (the keys of
``seeingsounds generate`` and ``seeingsounds edit``).

Every error a user can cause (a broken file, a too long clip, a bad setting) becomes a ``gr.Error``
shown in the page; anything unexpected is logged with its traceback on the server and shown as a
short message. The app keeps serving either way. The page's controls check what the HTTP API may send
instead (text or NaN for a number: :func:`checked_number`; a picture that is no picture or
too large: :func:`picture_editor`) before gradio's own conversion, and the server never shows an
exception's text that is not a ``gr.Error`` (it could name the server's folders).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seeingsounds.assets import example_sounds
from seeingsounds.audio.effects import describe_effect
from seeingsounds.audio.io import audio_fingerprint, audio_info, read_audio, resample, save_audio
from seeingsounds.audio.render import render
from seeingsounds.captions.edit import get_editor
from seeingsounds.conditioner import AudioConditioner
from seeingsounds.controls import effects_from_controls, slider_controls
from seeingsounds.data.manifest import write_manifest
from seeingsounds.describe import Describer
from seeingsounds.errors import AudioLoadError, ConfigError, SeeingSoundsError
from seeingsounds.imaging import load_picture, provenance, save_png
from seeingsounds.paths import build_once, file_sha256, home
from seeingsounds.engine import Engine
from seeingsounds.pipeline import SeeingSoundsPipeline
from seeingsounds.request import check_strength
from seeingsounds.runs import RunFolder
from seeingsounds.training import TrainConfig, train
from seeingsounds.video import write_mp4
from seeingsounds.writers import output_provenance

log = logging.getLogger(__name__)

#: output folders of finished requests older than this are removed (seconds)
OUTPUT_TTL = 3600.0
#: the most images one request may ask for
MAX_IMAGES = 4
#: sub-folder of the engine's output folder holding gradio's uploads (never removed by the hourly clean-up)
UPLOADS_DIR = "uploads"
#: image side step when the pipeline does not say (pixels)
SIZE_STEP = 16
#: the largest image side the page offers (and the side an uploaded picture is scaled down to)
MAX_SIDE = 1024
#: the edit strength slider: (minimum, maximum, step), and its default
STRENGTH_RANGE = (0.05, 1.0, 0.05)
DEFAULT_STRENGTH = 0.6
#: the longest video the page offers (frames; Wan 2.1's default length)
MAX_FRAMES = 81


@dataclass(frozen=True)
class Limits:
    """What one request may send: file size (MB) and duration (seconds) of each sound."""

    max_upload_mb: float = 25.0
    max_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not self.max_upload_mb > 0 or not self.max_seconds > 0:
            raise ConfigError(f"upload limits must be positive, got {self.max_upload_mb} MB / {self.max_seconds} s")


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


def _user_error(message: str) -> Exception:
    import gradio as gr  # deferred on purpose: a heavy optional dependency, only the web app needs it

    return gr.Error(message, print_exception=False)


def controls_to_effects(**values: float | None) -> list[tuple[str, dict[str, Any]]]:
    """The effects the sliders ask for (``effect name -> slider value``), in the registry's application order.

    A slider at its effect's neutral value (volume 1, reverb 0, ...) applies nothing.
    """
    return [(name, {param: float(value) for param, value in params.items()})
            for name, params in effects_from_controls(values, skip_neutral=True)]


def upload_name(path: str | os.PathLike) -> str:
    """A file's name as the user knows it (gradio keeps uploads under a hashed folder)."""
    return Path(path).name


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


def editor_picture(value: Any) -> tuple[Image.Image | None, np.ndarray | None]:
    """(picture, mask) from a ``gr.ImageEditor`` value: the background as RGB, and the drawn layer's
    painted pixels (alpha > 0) as a ``uint8`` mask of 255, or ``None`` when nothing was drawn."""
    if not value or value.get("background") is None:
        return None, None
    picture = load_picture(value["background"], what="picture")
    layers = [layer for layer in value.get("layers") or [] if layer is not None]
    if not layers:
        return picture, None
    layer = np.asarray(layers[0] if not isinstance(layers[0], Image.Image) else layers[0].convert("RGBA"))
    if layer.ndim != 3 or layer.shape[-1] != 4:
        return picture, None
    mask = (layer[..., 3] > 0).astype(np.uint8) * 255
    return picture, (mask if mask.any() else None)


def picture_editor(**kwargs: Any) -> Any:
    """A ``gr.ImageEditor`` (PIL images in RGBA) whose uploads are read by :func:`seeingsounds.imaging.load_picture`.

    Gradio's own editor decodes whatever arrives before the app sees it, and clamps 16-bit greyscale to white;
    this one checks the pixel count from the header first, scales high bit depths, and refuses a non-picture,
    a truncated file or one over :data:`~seeingsounds.imaging.MAX_PICTURE_PIXELS` with a message naming the
    uploaded file (never the server's folders). The editor's reading method is replaced on the instance: a
    subclass of a gradio component makes gradio write a ``.pyi`` file beside the module defining it.
    """
    import gradio as gr  # deferred on purpose: a heavy optional dependency, only the web app needs it

    editor = gr.ImageEditor(type="pil", image_mode="RGBA", **kwargs)

    def read_upload(file: Any, flatten_on_white: bool = False) -> Image.Image | None:
        if file is None:
            return None
        if isinstance(file, (bytes, bytearray, memoryview)):
            source, name = bytes(file), "(uploaded)"
        else:
            source, name = file.path, upload_name(file.orig_name or file.path)
        try:
            return load_picture(source, what="picture", name=name, mode=editor.image_mode)
        except ConfigError as exc:
            raise _user_error(_sentence(str(exc))) from None

    editor.convert_and_format_image = read_upload
    return editor


def checked_number(control: Any, *, allow_none: bool = False) -> Any:
    """``control`` (a ``gr.Slider`` or ``gr.Number``) refusing what the page's API may be sent instead of a
    number (text, ``None`` unless ``allow_none``, NaN, infinity, a value outside its range) with a ``gr.Error``
    naming the control, before gradio's own conversion fails with its internals."""
    convert = control.preprocess

    def preprocess(payload: Any) -> Any:
        what = control.label or "every number"
        if payload is None and allow_none:
            return convert(payload)
        if isinstance(payload, bool) or not isinstance(payload, (int, float)) or not math.isfinite(payload):
            raise _user_error(_sentence(f"{what} must be a finite number, got {str(payload)[:40]!r}"))
        low, high = control.minimum, control.maximum
        if (low is not None and payload < low) or (high is not None and payload > high):
            span = f"{low:g}..{high:g}" if low is not None and high is not None else (
                f"at least {low:g}" if low is not None else f"at most {high:g}")
            raise _user_error(_sentence(f"{what} must be {span}, got {payload:g}"))
        return convert(payload)

    control.preprocess = preprocess
    return control


def checkpoint_label(checkpoint: str | os.PathLike) -> str:
    """How provenance names a checkpoint without revealing the server's folders: a hub id as is, a local
    folder by its last two parts (``tiny-v1/best``)."""
    path = Path(checkpoint).expanduser()
    if not path.exists():
        return str(checkpoint)
    parts = path.resolve().parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else parts[-1]


class DemoEngine:
    """The loaded model behind the page: the pipeline, the run's caption index and the caption editor.

    Loaded once when the app is built; requests reuse it (the queue runs ``concurrency_limit`` at once).
    ``lora`` and ``cpu_offload`` go to :meth:`SeeingSoundsPipeline.from_pretrained`. Call :meth:`close` to
    remove the output folder it made (``output_dir=None``).
    """

    def __init__(self, checkpoint: str | os.PathLike, *, device: str | None = "auto", dtype: str | None = None,
                 top_k: int = 5, limits: Limits | None = None, output_dir: str | os.PathLike | None = None,
                 lora: str | os.PathLike | None = None, cpu_offload: bool = False):
        self.checkpoint = str(checkpoint)
        self.top_k = int(top_k)
        self.limits = limits or Limits()
        self.pipe = SeeingSoundsPipeline.from_pretrained(self.checkpoint, device=device, dtype=dtype,
                                                         lora=lora, cpu_offload=cpu_offload)
        self.lora = None if lora is None else Path(str(lora)).name
        self.editor = get_editor("template")
        self._own_output = output_dir is None
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="seeingsounds-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        preset = getattr(self.pipe, "preset", None)
        self.default_steps = int(getattr(preset, "num_inference_steps", 10) or 10)
        self.size_multiple = int(getattr(self.pipe, "size_multiple", SIZE_STEP))
        step = self.size_multiple
        # the page's largest side: MAX_SIDE, or less where the generator refuses more (tiny ones: 64 px)
        self.max_size = max(step, min(MAX_SIDE // step * step, int(self.pipe.size_limit[0]) // step * step))
        self.default_size = min(int(getattr(preset, "height", 512) or 512), self.max_size)
        self.sample_rate = int(self.pipe.encoder.sample_rate)
        # the pipeline's own conditioner (its encoder and aligner); "what it hears" ranks the class captions
        self.conditioner = getattr(self.pipe, "conditioner", None) or AudioConditioner(
            self.pipe.encoder, self.pipe.aligner, preset=preset, checkpoint=self.checkpoint)
        self.caption_texts: list[str] = []
        self.index = None
        try:
            RunFolder.find(self.checkpoint)
        except ConfigError:  # an aligner folder without its training run: no captions to rank
            log.warning("%s is not in a training run folder: the page will not say what it hears",
                        checkpoint_label(self.checkpoint))
        else:
            describer = Describer(self.checkpoint, conditioner=self.conditioner)
            entries = describer.captions.entries
            class_rows = [i for i, e in enumerate(entries) if e.kind == "class"] or list(range(len(entries)))
            self.caption_texts = [entries[i].text for i in class_rows]
            self.index = describer.index.select(class_rows)

    @property
    def is_video(self) -> bool:
        """Whether the checkpoint drives a video generator (requests give mp4s; no editing)."""
        return bool(self.pipe.output_kind.video)

    def close(self) -> None:
        """Remove the output folder this engine made (a given ``output_dir`` is left alone)."""
        if self._own_output:
            shutil.rmtree(self.output_dir, ignore_errors=True)

    # ---- model calls ------------------------------------------------------------------------
    def hear(self, waves: Sequence[np.ndarray]) -> list[list[tuple[str, float]]]:
        """Per waveform (at the encoder's rate, in the encoder's window as at training), the ``top_k`` class
        captions of the run nearest to the aligner's prediction with their cosine similarity, best first —
        ``seeingsounds describe``'s numbers."""
        if self.index is None:
            return [[] for _ in waves]
        sources = [(self.sample_rate, np.asarray(w, dtype=np.float32)) for w in waves]
        return [row for pred in self.conditioner.predict(sources, batch_size=max(1, len(sources)))
                for row in self.nearest(pred)]

    def nearest(self, conditioning: dict[str, Any]) -> list[list[tuple[str, float]]]:
        """Per row of a prediction, the ``top_k`` class captions of the run nearest to it, best first (needs
        the run's caption index: check ``self.index`` first)."""
        values, rows = self.index.topk(conditioning, self.top_k)
        return [[(self.caption_texts[int(i)], float(v)) for v, i in zip(vs, rs)]
                for vs, rs in zip(values.tolist(), rows.tolist())]

    def images(self, wave: np.ndarray, sr: int, *, seeds: Sequence[int], steps: int, size: int,
               frames: int | None = None, effects: Sequence[tuple[str, dict[str, Any]]] | None = None,
               mix: tuple[Any, float] | None = None, return_conditioning: bool = False) -> Any:
        """The pipeline's output for one waveform, rendered with ``effects`` and ``mix`` as at training:
        one image (or video of ``frames``) per seed, with the aligner's prediction when asked."""
        video = {"num_frames": None if frames is None else int(frames)} if self.is_video else {}
        return self.pipe(wave, sample_rate=sr, effects=list(effects) or None, mix=mix, seeds=list(seeds),
                         num_images_per_audio=len(seeds), num_inference_steps=int(steps), height=int(size),
                         width=int(size), return_conditioning=return_conditioning, **video)

    # ---- one request --------------------------------------------------------------------------
    def run(self, sound: str | None, *, mix_sound: str | None = None, mix_ratio: float = 0.5, seed: int = 0,
            steps: int | None = None, size: int | None = None, num_images: int = 1, frames: int | None = None,
            progress: Callable[[float, str], None] | None = None, **controls: float | None) -> Result:
        """Everything the Generate button does; raises SeeingSoundsError for what the user can fix.

        ``frames`` is the video length of a video checkpoint (default: its preset's).

        ``controls`` are the effect sliders, ``effect name -> value`` (``volume=0.15``); a missing one or one
        at its neutral value applies nothing.
        """
        say = progress or (lambda fraction, text: None)
        if not sound:
            raise ConfigError("upload or record a sound, or pick an example, first")
        steps = self._check_steps(steps)
        size = self.default_size if size is None else int(size)
        num_images = int(num_images)
        if not 1 <= num_images <= MAX_IMAGES:
            raise ConfigError(f"number of images must be 1..{MAX_IMAGES}, got {num_images}")
        multiple = self.size_multiple
        if size < multiple or size % multiple:
            raise ConfigError(f"image size must be a positive multiple of {multiple}, got {size}")
        if size > self.max_size:
            raise ConfigError(f"image size {size} is larger than this generator's limit of {self.max_size} px")
        if frames is not None and not self.is_video:
            raise ConfigError(f"frames are for video checkpoints; {self.pipe.preset.name} makes images")
        if frames is not None:
            frames = int(self.pipe.backend.check_num_frames(int(frames)))
        effects = self._effects(controls)

        say(0.05, "reading the sound")
        wave, other = self._read_sounds(sound, mix_sound)
        sr = self.sample_rate
        work = self._request_dir()
        say(0.15, "applying the effects")
        heard, descriptions = transform(wave, sr, effects, other, mix_ratio)  # the whole clip, to listen to
        heard_path = save_audio(work / "what-it-hears.wav", heard, sr)
        mix = None if other is None else ((int(other[1]), other[0]), float(mix_ratio))

        say(0.3, "listening")
        found = self.hear([wave] + ([other[0]] if other is not None else []))
        caption = ""
        if found[0]:  # a run folder: its nearest class captions, fused and edited as the controls imply
            other_caption = found[1][0][0] if mix_sound else None
            caption = implied_caption(found[0][0][0], descriptions, other_caption, self.editor)

        what = "video" if self.is_video else "image"
        say(0.45, f"painting {num_images} {what}{'s' * (num_images > 1)}")
        seeds = [int(seed) + i for i in range(num_images)]
        out = self.images(wave, sr, seeds=seeds, steps=steps, size=size, frames=frames, effects=effects, mix=mix,
                          return_conditioning=self.index is not None)
        # what the encoder hears after the effects and the mix: the prediction the images were made from
        hears = self.nearest(out.conditioning)[0] if self.index is not None else []
        say(0.9, "saving")
        common = self._provenance(sound, mix_sound, mix_ratio, effects, descriptions, out.settings)
        if caption:
            common["caption"] = caption
        images, videos = [], []
        for k, seed in enumerate(seeds):
            metadata = {**common, "seed": seed}
            if self.is_video:
                video = work / f"seeingsounds-seed{seed}.mp4"
                metadata.update(frames=int(len(out.videos[k])), fps=int(out.settings["fps"]))
                videos.append(write_mp4(out.videos[k], video, fps=int(out.settings["fps"]), metadata=metadata))
                metadata["poster_of"] = video.name
            images.append(Path(save_png(out.images[k], work / f"seeingsounds-seed{seed}.png", metadata)))
        return Result(images=images, caption=caption, hears=dict(hears), audio=heard_path, seeds=seeds,
                      videos=videos)

    def edit(self, picture: Any, sound: str | None, *, mask: Any = None, strength: float = DEFAULT_STRENGTH,
             mix_sound: str | None = None, mix_ratio: float = 0.5, seed: int = 0, steps: int | None = None,
             progress: Callable[[float, str], None] | None = None, **controls: float | None) -> EditResult:
        """Everything the Edit button does: ``picture`` (PIL image or ``uint8`` array) edited by the sound, with
        the generator's image-to-image pipeline, or its inpainting one inside ``mask`` (white/non-zero: may
        change; of the picture's size). Raises SeeingSoundsError for what the user can fix.

        A picture larger than the page's size limit is scaled down (aspect kept) to fit it. The input and
        the mask are saved as PNGs beside the output, whose provenance names them by their sha256.
        """
        say = progress or (lambda fraction, text: None)
        if self.is_video:
            raise ConfigError(f"{self.pipe.preset.name} is a video generator: editing needs an image checkpoint")
        if picture is None:
            raise ConfigError("upload a picture to edit first")
        if not sound:
            raise ConfigError("upload or record a sound, or pick an example, first")
        strength = check_strength(strength)
        steps = self._check_steps(steps)
        picture = load_picture(picture, what="picture")
        mask_image = None if mask is None else load_picture(mask, what="mask", mode="L")
        if mask_image is not None and mask_image.size != picture.size:
            raise ConfigError(f"the mask is {mask_image.width}x{mask_image.height} but the picture is "
                              f"{picture.width}x{picture.height}: draw the mask on the picture itself")
        width, height = self.fit(picture.size)
        effects = self._effects(controls)

        say(0.05, "reading the sound")
        wave, other = self._read_sounds(sound, mix_sound)
        sr = self.sample_rate
        work = self._request_dir()
        picture_path = save_png(picture, work / "input.png")
        mask_path = save_png(mask_image, work / "mask.png") if mask_image is not None else None
        say(0.3, f"editing the picture (strength {strength:g})")
        partner = ((sr, other[0]), float(mix_ratio)) if other is not None else None
        out = self.pipe.edit(picture, (sr, wave), strength=strength, mask=mask_image, seed=int(seed),
                             num_inference_steps=steps, height=height, width=width, effects=effects or None,
                             mix=partner, return_conditioning=False)
        say(0.9, "saving")
        common = {**self._provenance(sound, mix_sound, mix_ratio, effects, out.effects, out.settings),
                  "image": picture_path.name, "image_sha256": file_sha256(picture_path),
                  "mask": mask_path.name if mask_path else None,
                  "mask_sha256": file_sha256(mask_path) if mask_path else None, "strength": strength}
        images = [Path(save_png(image, work / f"seeingsounds-edit-seed{s}.png", {**common, "seed": s}))
                  for image, s in zip(out.images, out.seeds)]
        return EditResult(images=images, seeds=list(out.seeds), picture=picture_path, mask=mask_path,
                          size=(width, height))

    def fit(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) for a picture of ``size``: scaled down to :attr:`max_size` (aspect kept), rounded
        down to the generator's size multiple."""
        width, height = size
        scale = min(1.0, self.max_size / max(width, height))
        step = self.size_multiple
        return (max(step, int(width * scale) // step * step), max(step, int(height * scale) // step * step))

    # ---- the parts of a request ---------------------------------------------------------------
    def _check_steps(self, steps: int | None) -> int:
        steps = self.default_steps if steps is None else int(steps)
        if steps < 1:
            raise ConfigError(f"steps must be at least 1, got {steps}")
        return steps

    @staticmethod
    def _effects(controls: dict[str, float | None]) -> list[tuple[str, dict[str, Any]]]:
        effects = controls_to_effects(**controls)
        for name, params in effects:  # every setting is checked before any audio is read
            describe_effect(name, **params)
        return effects

    def _read_sounds(self, sound: str, mix_sound: str | None) -> tuple[np.ndarray, tuple[np.ndarray, int] | None]:
        """The sound and the optional second one at the encoder's rate (effects run at it, as in the pipeline)."""
        sr = self.sample_rate
        wave = resample(*read_checked(sound, self.limits, "sound"), sr)
        other = (resample(*read_checked(mix_sound, self.limits, "second sound"), sr), sr) if mix_sound else None
        return wave, other

    def _provenance(self, sound: str, mix_sound: str | None, mix_ratio: float, effects: Sequence[tuple[str, Any]],
                    descriptions: Sequence[str], settings: dict[str, Any]) -> dict[str, Any]:
        """The keys of ``seeingsounds generate``: the files by their names (never the server's folders) and hashes."""
        mix = None
        if mix_sound:
            mix = {"path": upload_name(mix_sound), "sha256": audio_fingerprint(mix_sound), "ratio": float(mix_ratio)}
        return {**output_provenance(Engine(self.pipe), checkpoint_label(self.checkpoint), settings), "lora": self.lora,
                **provenance(source=upload_name(sound), source_sha256=audio_fingerprint(sound),
                             effects=[[n, dict(p)] for n, p in effects] or None,
                             effect_descriptions=list(descriptions) or None, mix=mix)}

    def _request_dir(self) -> Path:
        now = time.time()
        for old in self.output_dir.iterdir():
            if old.is_dir() and old.name != UPLOADS_DIR and now - old.stat().st_mtime > OUTPUT_TTL:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="request-", dir=self.output_dir))


#: bump when the demo checkpoint's recipe changes (a new folder is trained)
DEMO_VERSION = 1
#: epochs of the demo run (6 clips: seconds on a CPU)
DEMO_EPOCHS = 40
#: class captions of the bundled example sounds (seeingsounds.assets.example_sounds)
DEMO_CAPTIONS = {
    "bell": "a bell ringing",
    "choir": "a choir singing",
    "crow": "a crow cawing",
    "drums": "drums playing a breakbeat",
    "guitar": "a guitar strumming a chord",
    "piano": "a piano playing softly",
}


def demo_checkpoint(root: str | os.PathLike | None = None) -> Path:
    """The tiny demo run folder of ``seeingsounds serve`` without ``--checkpoint``, trained on the bundled
    example sounds on first use (~20 s on a CPU) into ``$SEEINGSOUNDS_HOME/demo/``.

    Its aligner is ``<run>/best``; each example sound's nearest caption is its own class caption.
    """
    target = Path(root) if root is not None else home() / "demo" / f"tiny-v{DEMO_VERSION}"
    return build_once(target, _train_demo)


def _train_demo(folder: Path) -> None:
    sounds = example_sounds()
    data = folder / ".data"  # hidden: the run's own folder may hold nothing but the run (RunFolder's --out check)
    data.mkdir(parents=True)
    write_manifest(data / "manifest.csv", [(sounds[name], name) for name in DEMO_CAPTIONS if name in sounds])
    (data / "captions.json").write_text(json.dumps({n: c for n, c in DEMO_CAPTIONS.items() if n in sounds}, indent=2))
    train(TrainConfig(preset="tiny", data=str(data / "manifest.csv"), captions=str(data / "captions.json"),
                      out=str(folder), epochs=DEMO_EPOCHS, batch_size=8, val_fraction=0.0, patience=DEMO_EPOCHS,
                      lr_sequence=1e-2, lr_pooled=1e-2, seed=0, device="cpu", progress=False))  # the shared feature cache



def example_choices() -> dict[str, Path]:
    """Bundled example sounds, name -> path (empty when the package ships none)."""
    return example_sounds()


def build_app(checkpoint: str | os.PathLike, *, max_upload_mb: float = 25, max_seconds: float = 60,
              concurrency_limit: int = 1, max_queue: int = 32, top_k: int = 5, device: str | None = "auto",
              dtype: str | None = None, lora: str | os.PathLike | None = None, cpu_offload: bool = False,
              engine: DemoEngine | None = None) -> Any:
    """The Gradio page for ``checkpoint`` (a training run or aligner folder, or a hub id).

    ``concurrency_limit`` generations run at once (1 suits one GPU); at most ``max_queue`` wait.
    Sounds over ``max_upload_mb`` MB or ``max_seconds`` s are refused with a message in the page.
    Serve it with :func:`launch_app`, which also makes the server refuse oversized uploads.
    """
    import gradio as gr  # deferred on purpose: a heavy optional dependency, only the web app needs it

    if concurrency_limit < 1 or max_queue < 1:
        raise ConfigError(f"concurrency_limit and max_queue must be >= 1, got {concurrency_limit}, {max_queue}")
    limits = Limits(float(max_upload_mb), float(max_seconds))

    def slider(*args: Any, **kwargs: Any) -> Any:
        return checked_number(gr.Slider(*args, **kwargs))

    def number(*args: Any, **kwargs: Any) -> Any:
        return checked_number(gr.Number(*args, **kwargs), allow_none=True)

    own_engine = engine is None
    engine = engine or DemoEngine(checkpoint, device=device, dtype=dtype, top_k=top_k, limits=limits, lora=lora,
                                  cpu_offload=cpu_offload)
    sliders = slider_controls()
    # gradio keeps uploads under GRADIO_TEMP_DIR (default /tmp/gradio, never emptied): unless the user chose a
    # folder, they go under the engine's output folder, removed with it when the app closes
    uploads_env = None
    if not os.environ.get("GRADIO_TEMP_DIR"):
        uploads_env = str(engine.output_dir / UPLOADS_DIR)
        os.environ["GRADIO_TEMP_DIR"] = uploads_env
    examples = example_choices()
    example_dir = Path(tempfile.mkdtemp(prefix="examples-", dir=engine.output_dir))

    def pick_example(name: str | None) -> str | None:
        if not name or name not in examples:
            return None
        # a copy under the temp dir: gradio serves files it did not create only from there or cwd
        target = example_dir / examples[name].name
        if not target.exists():
            example_dir.mkdir(parents=True, exist_ok=True)  # the hourly clean-up of output_dir may have removed it
            shutil.copyfile(examples[name], target)
        return str(target)

    def report(action: Callable[[], Any], what: str) -> Any:
        """``action()``, its user errors as one sentence in the page; anything else logged on the server only."""
        try:
            return action()
        except SeeingSoundsError as exc:
            raise _user_error(_sentence(str(exc))) from None
        except gr.Error:
            raise
        except Exception:  # noqa: BLE001 - keep serving; the traceback goes to the server log only
            log.exception("%s failed", what)
            raise _user_error(f"Something went wrong while {what}; the server log has the details.") from None

    def generate(sound, *values, progress=gr.Progress()):
        # inputs: the sound, one value per slider effect (display order), mix sound, mix ratio, seed, steps,
        # size, number of images, frames (ignored for an image checkpoint)
        controls = {c.effect: v for c, v in zip(sliders, values)}
        mix_sound, mix_ratio, seed, steps, size, num_images, frames = values[len(sliders):]

        def say(fraction: float, text: str) -> None:
            progress(fraction, desc=text)

        frames = int(frames) if engine.is_video and frames is not None else None
        result = report(lambda: engine.run(sound, mix_sound=mix_sound, mix_ratio=mix_ratio, seed=int(seed or 0),
                                           steps=steps, size=size, num_images=num_images, frames=frames,
                                           progress=say, **controls),
                        "generating")
        files = [str(p) for p in result.videos + result.images]
        video = str(result.videos[0]) if result.videos else None
        return [str(p) for p in result.images], result.caption, result.hears, str(result.audio), files, video

    def edit(picture, sound, *values, progress=gr.Progress()):
        # inputs: the image editor's value, the sound, one value per slider effect, mix sound, mix ratio,
        # strength, seed, steps
        controls = {c.effect: v for c, v in zip(sliders, values)}
        mix_sound, mix_ratio, strength, seed, steps = values[len(sliders):]

        def say(fraction: float, text: str) -> None:
            progress(fraction, desc=text)

        def run() -> EditResult:
            image, mask = editor_picture(picture)
            return engine.edit(image, sound, mask=mask, strength=strength, mix_sound=mix_sound, mix_ratio=mix_ratio,
                               seed=int(seed or 0), steps=steps, progress=say, **controls)

        result = report(run, "editing")
        files = [str(p) for p in result.images]
        return files, files

    def sound_controls(prefix: str) -> tuple[Any, Any, list[Any], Any, Any, Any]:
        """The sound, example picker, effect sliders and mix controls of one tab (elem ids start with ``prefix``)."""
        sound = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Sound", elem_id=f"{prefix}sound")
        example = gr.Dropdown(choices=list(examples), value=None, label="…or pick an example sound",
                              elem_id=f"{prefix}example")
        with gr.Accordion("Effects (what you do to the sound)", open=not prefix):
            effect_sliders = [
                slider(c.slider[0], c.slider[1], value=c.neutral if c.neutral is not None else c.slider[0],
                       step=c.slider[2], label=c.label, elem_id=prefix + c.effect.replace("_", "-"))
                for c in sliders
            ]
        with gr.Accordion("Mix with a second sound", open=False):
            mix_sound = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Second sound",
                                 elem_id=f"{prefix}mix-sound")
            mix_example = gr.Dropdown(choices=list(examples), value=None, label="…or pick an example",
                                      elem_id=f"{prefix}mix-example")
            mix_ratio = slider(0.0, 1.0, value=0.5, step=0.05, label="Share of the second sound",
                                  elem_id=f"{prefix}mix-ratio")
        example.change(pick_example, example, sound, api_name=False, queue=False)
        mix_example.change(pick_example, mix_example, mix_sound, api_name=False, queue=False)
        return sound, example, effect_sliders, mix_sound, mix_example, mix_ratio

    size_step = engine.size_multiple
    size_max = engine.max_size
    made = "video" if engine.is_video else "picture"
    with gr.Blocks(title="SeeingSounds", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            f"# SeeingSounds\nRecord or upload a sound, steer it with effects or a second sound, and see "
            f"the {made} the frozen generator makes from what the aligner hears"
            + ("" if engine.is_video else ", or let the sound edit a picture of yours") + ". "
            f"Sounds up to {limits.max_upload_mb:g} MB and {limits.max_seconds:g} s."
        )
        with gr.Tabs():
            with gr.Tab(f"Sound to {made}", id="generate-tab", elem_id="generate-tab"):
                with gr.Row():
                    with gr.Column():
                        sound, _, effect_sliders, mix_sound, _, mix_ratio = sound_controls("")
                        with gr.Accordion("Generation", open=False):
                            seed = number(value=0, precision=0, label="Seed", elem_id="seed")
                            steps = slider(1, 50, value=engine.default_steps, step=1, label="Steps", elem_id="steps")
                            size = slider(size_step, size_max, value=engine.default_size, step=size_step,
                                             label="Image size, px", elem_id="size")
                            num_images = slider(1, MAX_IMAGES, value=1, step=1,
                                                   label="Videos" if engine.is_video else "Images",
                                                   elem_id="num-images")
                            default_frames = int(getattr(engine.pipe.preset, "num_frames", 1) or 1)
                            frame_step = int(getattr(engine.pipe.backend, "frame_step", 4) or 4)
                            frames = slider(1, max(MAX_FRAMES, default_frames), value=default_frames, step=frame_step,
                                               label=f"Frames (1 + a multiple of {frame_step})", visible=engine.is_video,
                                               elem_id="frames")
                        button = gr.Button("Generate", variant="primary", elem_id="generate")
                    with gr.Column():
                        video = gr.Video(label="Video (the first seed)", visible=engine.is_video, interactive=False,
                                         elem_id="video")
                        gallery = gr.Gallery(label="Posters (middle frames)" if engine.is_video else "Images",
                                             format="png", columns=2, elem_id="images")
                        caption = gr.Textbox(label="Caption the controls imply", interactive=False, elem_id="caption")
                        hears = gr.Label(label="What it hears (nearest class captions; bar = cosine similarity)",
                                         num_top_classes=engine.top_k, elem_id="hears")
                        heard = gr.Audio(label="What the model hears (after mixing and effects)", type="filepath",
                                         interactive=False, elem_id="heard")
                        downloads = gr.File(label="Download " + ("mp4 and poster PNG" if engine.is_video else "PNG")
                                            + " (with provenance metadata)", file_count="multiple",
                                            interactive=False, elem_id="downloads")
            with gr.Tab("Edit a picture with a sound", id="edit-tab", elem_id="edit-tab"):
                if engine.is_video:
                    gr.Markdown("This checkpoint drives a video generator; editing a picture needs an image checkpoint.")
                else:
                    with gr.Row():
                        with gr.Column():
                            picture = picture_editor(
                                sources=["upload"], label=(
                                    "Picture: upload it, then (optionally) paint where the sound may change it"),
                                brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed"), layers=False,
                                transforms=(), elem_id="edit-picture")
                            strength = slider(*STRENGTH_RANGE[:2], value=DEFAULT_STRENGTH, step=STRENGTH_RANGE[2],
                                                 label="Strength (low keeps the picture, 1 ignores it)",
                                                 elem_id="edit-strength")
                            edit_sound, _, edit_sliders, edit_mix, _, edit_ratio = sound_controls("edit-")
                            with gr.Accordion("Generation", open=False):
                                edit_seed = number(value=0, precision=0, label="Seed", elem_id="edit-seed")
                                edit_steps = slider(1, 50, value=max(engine.default_steps, 10), step=1,
                                                       label="Steps (strength x steps of them run)",
                                                       elem_id="edit-steps")
                            edit_button = gr.Button("Edit", variant="primary", elem_id="edit")
                        with gr.Column():
                            edited = gr.Gallery(label="Edited picture", format="png", columns=2, elem_id="edited")
                            edit_downloads = gr.File(label="Download PNG (with provenance: input and mask sha256, "
                                                     "strength)", file_count="multiple", interactive=False,
                                                     elem_id="edit-downloads")
                    edit_button.click(
                        edit,
                        [picture, edit_sound, *edit_sliders, edit_mix, edit_ratio, strength, edit_seed, edit_steps],
                        [edited, edit_downloads],
                        api_name="edit",
                        concurrency_limit=concurrency_limit,
                        concurrency_id="generate",  # one queue for both buttons: they share the generator
                    )

        button.click(
            generate,
            [sound, *effect_sliders, mix_sound, mix_ratio, seed, steps, size, num_images, frames],
            [gallery, caption, hears, heard, downloads, video],
            api_name="generate",
            concurrency_limit=concurrency_limit,
            concurrency_id="generate",
        )
    app.queue(max_size=max_queue, default_concurrency_limit=concurrency_limit)
    close_server = app.close

    def close(*args: Any, **kwargs: Any) -> Any:
        """Stop the server, then remove what this app wrote: the uploads and (its own engine's) outputs."""
        try:
            return close_server(*args, **kwargs)
        finally:
            if uploads_env is not None and os.environ.get("GRADIO_TEMP_DIR") == uploads_env:
                del os.environ["GRADIO_TEMP_DIR"]
                shutil.rmtree(uploads_env, ignore_errors=True)
            if own_engine:
                engine.close()

    app.close = close
    app.seeingsounds_limits = limits  # read by launch_app
    app.seeingsounds_engine = engine
    return app


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:]


def launch_app(app: Any, *, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
               block: bool = True, quiet: bool = False) -> tuple[Any, str]:
    """Serve ``app`` on ``host:port`` (local only by default); the server refuses uploads over the limit.

    With ``block=False`` it returns at once (the server runs in a thread; ``app.close()`` stops it and removes
    the uploads and outputs); with ``block=True`` that happens when the server stops: Ctrl+C, or SIGTERM
    (``kill``, ``systemctl stop``, ``docker stop``), which is handled as Ctrl+C while the server runs.
    Returns ``(app, local_url)``.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    limits: Limits = getattr(app, "seeingsounds_limits", Limits())
    with sigterm_as_interrupt() if block else contextlib.nullcontext():
        try:
            _, url, _ = app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                                   max_file_size=int(limits.max_upload_mb * 1_000_000), quiet=quiet,
                                   show_error=False, footer_links=["api"])
        finally:
            if block:  # Ctrl+C or SIGTERM ended the server: remove its uploads and outputs too
                app.close()
    return app, url


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, ``systemctl stop``, ``docker stop``) raises ``KeyboardInterrupt``
    as Ctrl+C does, so the same clean-up runs; the previous handler is restored after. A no-op outside the
    main thread (Python delivers signals there only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
