"""The web demo: record or upload a sound, steer it with effects or a second sound, see the picture.

:func:`build_app` returns a ``gradio.Blocks``; :func:`launch_app` serves it (127.0.0.1 unless told
otherwise) with the upload limit enforced by the server too. ``seeingsounds serve`` is the command.

One request (the *Generate* button) runs, with a progress indicator:

1. read the sound (upload, microphone or a bundled example) and the optional second sound, refusing
   files over ``max_upload_mb`` or longer than ``max_seconds`` with a message in the page;
2. *what it hears* for the clean sound(s): the class captions nearest to the aligner's prediction;
3. mix (if a second sound is given), then the effects in the order of
   :data:`seeingsounds.cli.common.EFFECT_ORDER` — exactly what ``seeingsounds generate`` does;
4. the caption those controls imply: the template editor's ``fuse`` of the two nearest captions for
   a mix, then ``edit_many`` with the effect descriptions;
5. *what it hears* for the transformed sound (the bar chart), the transformed audio to listen to;
6. the images from the frozen generator, saved as PNG with provenance metadata for download.

Every error a user can cause (a broken file, a too long clip, a bad setting) becomes a ``gr.Error``
shown in the page; anything unexpected is logged with its traceback on the server and shown as a
short message. The app keeps serving either way.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seeingsounds.errors import AudioLoadError, ConfigError, SeeingSoundsError

log = logging.getLogger(__name__)

#: output folders of finished requests older than this are removed (seconds)
OUTPUT_TTL = 3600.0
#: the most images one request may ask for
MAX_IMAGES = 4
#: image side step when the pipeline does not say (pixels)
SIZE_STEP = 16
#: neutral control values: a control at this value applies no effect
NEUTRAL = {"volume": 1.0, "reverb": 0.0, "pitch": 0.0, "lowpass": 0.0, "echo": 0.0}


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
    """Everything one request produces (the values of the page's output components)."""

    images: list[Path]
    caption: str
    hears: dict[str, float]
    audio: Path
    seeds: list[int]


def _user_error(message: str) -> Exception:
    import gradio as gr

    return gr.Error(message, print_exception=False)


def controls_to_effects(volume: float = 1.0, reverb: float = 0.0, pitch: float = 0.0, lowpass: float = 0.0,
                        echo: float = 0.0) -> list[tuple[str, dict[str, Any]]]:
    """The effects the sliders ask for, in :data:`~seeingsounds.cli.common.EFFECT_ORDER`.

    A slider at its neutral value (volume 1, everything else 0) applies nothing.
    """
    from seeingsounds.cli.common import EFFECT_ORDER

    values = {"volume": volume, "reverb": reverb, "pitch": pitch, "lowpass": lowpass, "echo": echo}
    effects = []
    for dest, name, param in EFFECT_ORDER:
        value = values.get(dest)
        if value is None or float(value) == NEUTRAL[dest]:
            continue
        effects.append((name, {param: float(value)}))
    return effects


def display_name(path: str | os.PathLike) -> str:
    """A file's name as the user knows it (gradio keeps uploads under a hashed folder)."""
    return Path(path).name


def read_checked(path: str | os.PathLike, limits: Limits, role: str = "sound") -> tuple[np.ndarray, int]:
    """Read a mono waveform, refusing files over the size or duration limit with a readable message."""
    import soundfile as sf

    from seeingsounds.audio.io import read_audio

    path = Path(path)
    name = display_name(path)
    if not path.is_file():
        raise AudioLoadError(name, "the file is gone; upload it again")
    size_mb = path.stat().st_size / 1e6
    if size_mb > limits.max_upload_mb:
        raise AudioLoadError(name, f"the {role} is {size_mb:.3g} MB; this demo takes files up to "
                                   f"{limits.max_upload_mb:g} MB")
    try:  # cheap duration check from the header before decoding everything
        info = sf.info(str(path))
        header_seconds = info.frames / info.samplerate if info.samplerate and info.frames > 0 else None
    except Exception:  # noqa: BLE001 - unreadable headers are reported by read_audio below
        header_seconds = None
    if header_seconds is not None and header_seconds > limits.max_seconds:
        raise AudioLoadError(name, _too_long(role, header_seconds, limits))
    try:
        wave, sr = read_audio(path)
    except AudioLoadError as exc:
        raise AudioLoadError(name, exc.reason) from None
    seconds = len(wave) / sr
    if seconds > limits.max_seconds:
        raise AudioLoadError(name, _too_long(role, seconds, limits))
    return wave, sr


def _too_long(role: str, seconds: float, limits: Limits) -> str:
    return f"the {role} is {seconds:.1f} s long; this demo takes at most {limits.max_seconds:g} s: trim it and try again"


def transform(wave: np.ndarray, sr: int, effects: Sequence[tuple[str, dict[str, Any]]],
              other: tuple[np.ndarray, int] | None = None, ratio: float = 0.5) -> tuple[np.ndarray, list[str]]:
    """Mix in ``other`` (resampled to ``sr``) at ``ratio``, then apply ``effects``; returns the descriptions."""
    from seeingsounds.audio.effects import apply_effects, mix
    from seeingsounds.audio.io import resample

    if other is not None:
        other_wave, other_sr = other
        wave = mix(wave, resample(other_wave, other_sr, sr), float(ratio))
    if not effects:
        return wave, []
    return apply_effects(wave, sr, list(effects))


def implied_caption(caption: str, descriptions: Sequence[str], other_caption: str | None = None,
                    editor: Any = None) -> str:
    """The caption the controls imply: fuse with the second sound's caption, then edit by the effects."""
    if editor is None:
        from seeingsounds.captions.edit import get_editor

        editor = get_editor("template")
    if other_caption is not None:
        caption = editor.fuse(caption, other_caption)
    return editor.edit_many(caption, list(descriptions)) if descriptions else caption


class DemoEngine:
    """The loaded model behind the page: the pipeline, the run's caption targets and the caption editor.

    Loaded once when the app is built; requests reuse it (the queue runs ``concurrency_limit`` at once).
    """

    def __init__(self, checkpoint: str | os.PathLike, *, device: str | None = None, top_k: int = 5,
                 limits: Limits | None = None, output_dir: str | os.PathLike | None = None):
        from seeingsounds.captions.edit import get_editor
        from seeingsounds.describe import Describer
        from seeingsounds.pipeline import SeeingSoundsPipeline

        self.checkpoint = str(checkpoint)
        self.top_k = int(top_k)
        self.limits = limits or Limits()
        self.pipe = SeeingSoundsPipeline.from_pretrained(self.checkpoint, device=device)
        self.editor = get_editor("template")
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="seeingsounds-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        preset = getattr(self.pipe, "preset", None)
        self.default_steps = int(getattr(preset, "num_inference_steps", 10) or 10)
        self.default_size = int(getattr(preset, "height", 512) or 512)
        self.sample_rate = int(self.pipe.encoder.sample_rate)
        # the describer shares the pipeline's audio encoder; "what it hears" ranks the class captions
        self.describer = Describer(self.checkpoint, encoder=self.pipe.encoder, device=str(self.pipe.device))
        entries = self.describer.captions.entries
        self.class_rows = [i for i, e in enumerate(entries) if e.kind == "class"] or list(range(len(entries)))
        self.caption_texts = [entries[i].text for i in self.class_rows]
        self.size_multiple = int(getattr(self.pipe, "size_multiple", SIZE_STEP))

    # ---- model calls ------------------------------------------------------------------------
    def hear(self, waves: Sequence[np.ndarray]) -> list[list[tuple[str, float]]]:
        """Per waveform (at the encoder's rate), the ``top_k`` class captions of the run nearest to the
        aligner's prediction with their cosine similarity, best first — ``seeingsounds describe``'s numbers.
        """
        sims = self.describer.similarity(list(waves))[:, self.class_rows]
        k = min(self.top_k, sims.shape[1])
        out = []
        for row in sims:
            order = np.argsort(-row, kind="stable")[:k]
            out.append([(self.caption_texts[i], float(row[i])) for i in order])
        return out

    def images(self, wave: np.ndarray, sr: int, *, seeds: Sequence[int], steps: int, size: int) -> list[Any]:
        out = self.pipe(wave, sample_rate=sr, seeds=list(seeds), num_images_per_audio=len(seeds),
                        num_inference_steps=int(steps), height=int(size), width=int(size))
        return list(out.images)

    # ---- one request --------------------------------------------------------------------------
    def run(self, sound: str | None, *, volume: float = 1.0, reverb: float = 0.0, pitch: float = 0.0,
            lowpass: float = 0.0, echo: float = 0.0, mix_sound: str | None = None, mix_ratio: float = 0.5,
            seed: int = 0, steps: int | None = None, size: int | None = None, num_images: int = 1,
            progress: Callable[[float, str], None] | None = None) -> Result:
        """Everything the Generate button does; raises SeeingSoundsError for what the user can fix."""
        from seeingsounds.audio.effects import describe_effect
        from seeingsounds.audio.io import resample, save_audio

        say = progress or (lambda fraction, text: None)
        if not sound:
            raise ConfigError("upload or record a sound, or pick an example, first")
        steps = self.default_steps if steps is None else int(steps)
        size = self.default_size if size is None else int(size)
        num_images = int(num_images)
        if not 1 <= num_images <= MAX_IMAGES:
            raise ConfigError(f"number of images must be 1..{MAX_IMAGES}, got {num_images}")
        if steps < 1:
            raise ConfigError(f"steps must be at least 1, got {steps}")
        multiple = self.size_multiple
        if size < multiple or size % multiple:
            raise ConfigError(f"image size must be a positive multiple of {multiple}, got {size}")
        effects = controls_to_effects(volume, reverb, pitch, lowpass, echo)
        for name, params in effects:  # every setting is checked before any audio is read
            describe_effect(name, **params)

        say(0.05, "reading the sound")
        sr = self.sample_rate  # what the encoder hears; effects run at this rate, as in the pipeline
        wave = resample(*read_checked(sound, self.limits, "sound"), sr)
        other = (resample(*read_checked(mix_sound, self.limits, "second sound"), sr), sr) if mix_sound else None
        work = self._request_dir()
        say(0.15, "applying the effects")
        heard, descriptions = transform(wave, sr, effects, other, mix_ratio)
        heard_path = save_audio(work / "what-it-hears.wav", heard, sr)

        say(0.3, "listening")
        found = self.hear([wave] + ([other[0]] if other is not None else []) + [heard])
        caption = found[0][0][0]
        other_caption = found[1][0][0] if mix_sound else None
        caption = implied_caption(caption, descriptions, other_caption, self.editor)

        say(0.45, f"painting {num_images} image{'s' * (num_images > 1)}")
        seeds = [int(seed) + i for i in range(num_images)]
        images = self.images(heard, sr, seeds=seeds, steps=steps, size=size)
        say(0.9, "saving")
        paths = self._save_images(work, images, seeds=seeds, steps=steps, size=size, caption=caption,
                                  sound=display_name(sound), effects=effects,
                                  mix=(display_name(mix_sound), float(mix_ratio)) if mix_sound else None)
        return Result(images=paths, caption=caption, hears=dict(found[-1]), audio=heard_path, seeds=seeds)

    def _save_images(self, work: Path, images: Sequence[Any], *, seeds: Sequence[int], **provenance: Any) -> list[Path]:
        from seeingsounds import __version__
        from seeingsounds.imaging import save_png

        paths = []
        for image, seed in zip(images, seeds):
            metadata = {"software": f"seeingsounds {__version__}", "checkpoint": self.checkpoint,
                        "preset": getattr(self.pipe.preset, "name", None), "seed": seed, **provenance}
            paths.append(Path(save_png(image, work / f"seeingsounds-seed{seed}.png", metadata)))
        return paths

    def _request_dir(self) -> Path:
        now = time.time()
        for old in self.output_dir.iterdir():
            if old.is_dir() and now - old.stat().st_mtime > OUTPUT_TTL:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="request-", dir=self.output_dir))


def example_choices() -> dict[str, Path]:
    """Bundled example sounds, name -> path (empty when the package ships none)."""
    try:
        from seeingsounds.assets import example_sounds
    except ImportError:  # pragma: no cover
        return {}
    return example_sounds()


def build_app(checkpoint: str | os.PathLike, *, max_upload_mb: float = 25, max_seconds: float = 60,
              concurrency_limit: int = 1, max_queue: int = 32, top_k: int = 5, device: str | None = None,
              engine: DemoEngine | None = None) -> Any:
    """The Gradio page for ``checkpoint`` (a training run or aligner folder, or a hub id).

    ``concurrency_limit`` generations run at once (1 suits one GPU); at most ``max_queue`` wait.
    Sounds over ``max_upload_mb`` MB or ``max_seconds`` s are refused with a message in the page.
    Serve it with :func:`launch_app`, which also makes the server refuse oversized uploads.
    """
    import gradio as gr

    if concurrency_limit < 1 or max_queue < 1:
        raise ConfigError(f"concurrency_limit and max_queue must be >= 1, got {concurrency_limit}, {max_queue}")
    limits = Limits(float(max_upload_mb), float(max_seconds))
    engine = engine or DemoEngine(checkpoint, device=device, top_k=top_k, limits=limits)
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

    def generate(sound, volume, reverb, pitch, lowpass, echo, mix_sound, mix_ratio, seed, steps, size, num_images,
                 progress=gr.Progress()):
        def say(fraction: float, text: str) -> None:
            progress(fraction, desc=text)

        try:
            result = engine.run(sound, volume=volume, reverb=reverb, pitch=pitch, lowpass=lowpass, echo=echo,
                                mix_sound=mix_sound, mix_ratio=mix_ratio, seed=int(seed or 0), steps=steps,
                                size=size, num_images=num_images, progress=say)
        except SeeingSoundsError as exc:
            raise _user_error(_sentence(str(exc))) from None
        except gr.Error:
            raise
        except Exception:  # noqa: BLE001 - keep serving; the traceback goes to the server log only
            log.exception("generation failed")
            raise _user_error("Something went wrong while generating; the server log has the details.") from None
        files = [str(p) for p in result.images]
        return files, result.caption, result.hears, str(result.audio), files

    size_step = engine.size_multiple
    size_max = max(1024 // size_step * size_step, engine.default_size)
    with gr.Blocks(title="SeeingSounds", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            "# SeeingSounds\nRecord or upload a sound, steer it with effects or a second sound, and see "
            "the picture the frozen image generator paints from what the aligner hears. "
            f"Sounds up to {limits.max_upload_mb:g} MB and {limits.max_seconds:g} s."
        )
        with gr.Row():
            with gr.Column():
                sound = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Sound", elem_id="sound")
                example = gr.Dropdown(choices=list(examples), value=None, label="…or pick an example sound",
                                      elem_id="example")
                with gr.Accordion("Effects (what you do to the sound)", open=True):
                    volume = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Volume (gain; 1 = unchanged)",
                                       elem_id="volume")
                    reverb = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Reverb room size (0 = off)",
                                       elem_id="reverb")
                    pitch = gr.Slider(-12, 12, value=0, step=1, label="Pitch shift, semitones (0 = off)",
                                      elem_id="pitch")
                    lowpass = gr.Slider(0, 8000, value=0, step=100, label="Low-pass cutoff, Hz (0 = off)",
                                        elem_id="lowpass")
                    echo = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Echo delay, s (0 = off)",
                                     elem_id="echo")
                with gr.Accordion("Mix with a second sound", open=False):
                    mix_sound = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Second sound",
                                         elem_id="mix-sound")
                    mix_example = gr.Dropdown(choices=list(examples), value=None, label="…or pick an example",
                                              elem_id="mix-example")
                    mix_ratio = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Share of the second sound",
                                          elem_id="mix-ratio")
                with gr.Accordion("Generation", open=False):
                    seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                    steps = gr.Slider(1, 50, value=engine.default_steps, step=1, label="Steps", elem_id="steps")
                    size = gr.Slider(size_step, size_max, value=engine.default_size, step=size_step,
                                     label="Image size, px", elem_id="size")
                    num_images = gr.Slider(1, MAX_IMAGES, value=1, step=1, label="Images", elem_id="num-images")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                gallery = gr.Gallery(label="Images", format="png", columns=2, elem_id="images")
                caption = gr.Textbox(label="Caption the controls imply", interactive=False, elem_id="caption")
                hears = gr.Label(label="What it hears (nearest class captions; bar = cosine similarity)",
                                 num_top_classes=engine.top_k, elem_id="hears")
                heard = gr.Audio(label="What the model hears (after mixing and effects)", type="filepath",
                                 interactive=False, elem_id="heard")
                downloads = gr.File(label="Download PNG (with provenance metadata)", file_count="multiple",
                                    interactive=False, elem_id="downloads")

        example.change(pick_example, example, sound, api_name=False, queue=False)
        mix_example.change(pick_example, mix_example, mix_sound, api_name=False, queue=False)
        button.click(
            generate,
            [sound, volume, reverb, pitch, lowpass, echo, mix_sound, mix_ratio, seed, steps, size, num_images],
            [gallery, caption, hears, heard, downloads],
            api_name="generate",
            concurrency_limit=concurrency_limit,
            concurrency_id="generate",
        )
    app.queue(max_size=max_queue, default_concurrency_limit=concurrency_limit)
    app.seeingsounds_limits = limits  # read by launch_app
    app.seeingsounds_engine = engine
    return app


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:]


def launch_app(app: Any, *, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
               block: bool = True, quiet: bool = False) -> tuple[Any, str]:
    """Serve ``app`` on ``host:port`` (local only by default); the server refuses uploads over the limit.

    With ``block=False`` it returns at once (the server runs in a thread; ``app.close()`` stops it).
    Returns ``(app, local_url)``.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    limits: Limits = getattr(app, "seeingsounds_limits", Limits())
    _, url, _ = app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                           max_file_size=int(limits.max_upload_mb * 1_000_000), quiet=quiet, show_error=True,
                           footer_links=["api"])
    return app, url
