"""The web demo: record or upload a sound, steer it with effects or a second sound, see the picture.

:func:`build_app` returns a ``gradio.Blocks``; :func:`launch_app` serves it (127.0.0.1 unless told
otherwise) with the upload limit enforced by the server too. ``seeingsounds serve`` is the command.

One request (the *Generate* button) runs, with a progress indicator:

1. read the sound (upload, microphone or a bundled example) and the optional second sound, refusing
   files over ``max_upload_mb`` or longer than ``max_seconds`` with a message in the page;
2. *what it hears* for the clean sound(s): the class captions nearest to the aligner's prediction;
3. mix (if a second sound is given), then the effects in the effect registry's application order
   (:func:`seeingsounds.audio.effects.effects_in_order`) — exactly what ``seeingsounds generate`` does;
4. the caption those controls imply: the template editor's ``fuse`` of the two nearest captions for
   a mix, then ``edit_many`` with the effect descriptions;
5. *what it hears* for the transformed sound (the bar chart), the transformed audio to listen to;
6. the images from the frozen generator, saved as PNG with provenance metadata for download.

Every error a user can cause (a broken file, a too long clip, a bad setting) becomes a ``gr.Error``
shown in the page; anything unexpected is logged with its traceback on the server and shown as a
short message. The app keeps serving either way.
"""

from __future__ import annotations

import json
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
import soundfile as sf

from seeingsounds import __version__
from seeingsounds.assets import example_sounds
from seeingsounds.audio.effects import describe_effect, effects_from_controls, slider_effects
from seeingsounds.audio.io import read_audio, resample, save_audio
from seeingsounds.audio.render import render
from seeingsounds.captions.edit import get_editor
from seeingsounds.conditioner import AudioConditioner
from seeingsounds.describe import Describer
from seeingsounds.errors import AudioLoadError, ConfigError, SeeingSoundsError
from seeingsounds.imaging import save_png
from seeingsounds.paths import build_once, home
from seeingsounds.pipeline import SeeingSoundsPipeline
from seeingsounds.training import TrainConfig, train

log = logging.getLogger(__name__)

#: output folders of finished requests older than this are removed (seconds)
OUTPUT_TTL = 3600.0
#: the most images one request may ask for
MAX_IMAGES = 4
#: sub-folder of the engine's output folder holding gradio's uploads (never removed by the hourly clean-up)
UPLOADS_DIR = "uploads"
#: image side step when the pipeline does not say (pixels)
SIZE_STEP = 16


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
    import gradio as gr  # deferred on purpose: a heavy optional dependency, only the web app needs it

    return gr.Error(message, print_exception=False)


def controls_to_effects(**values: float | None) -> list[tuple[str, dict[str, Any]]]:
    """The effects the sliders ask for (``effect name -> slider value``), in the registry's application order.

    A slider at its effect's neutral value (volume 1, reverb 0, ...) applies nothing.
    """
    return [(name, {param: float(value) for param, value in params.items()})
            for name, params in effects_from_controls(values, skip_neutral=True)]


def display_name(path: str | os.PathLike) -> str:
    """A file's name as the user knows it (gradio keeps uploads under a hashed folder)."""
    return Path(path).name


def read_checked(path: str | os.PathLike, limits: Limits, role: str = "sound") -> tuple[np.ndarray, int]:
    """Read a mono waveform, refusing files over the size or duration limit with a readable message."""
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
        self.default_size = int(getattr(preset, "height", 512) or 512)
        self.sample_rate = int(self.pipe.encoder.sample_rate)
        # the pipeline's own conditioner (its encoder and aligner); "what it hears" ranks the class captions
        self.conditioner = getattr(self.pipe, "conditioner", None) or AudioConditioner(
            self.pipe.encoder, self.pipe.aligner, preset=preset, checkpoint=self.checkpoint)
        describer = Describer(self.checkpoint, conditioner=self.conditioner)
        entries = describer.captions.entries
        self.class_rows = [i for i, e in enumerate(entries) if e.kind == "class"] or list(range(len(entries)))
        self.caption_texts = [entries[i].text for i in self.class_rows]
        self.index = describer.index.select(self.class_rows)
        self.size_multiple = int(getattr(self.pipe, "size_multiple", SIZE_STEP))

    def close(self) -> None:
        """Remove the output folder this engine made (a given ``output_dir`` is left alone)."""
        if self._own_output:
            shutil.rmtree(self.output_dir, ignore_errors=True)

    # ---- model calls ------------------------------------------------------------------------
    def hear(self, waves: Sequence[np.ndarray]) -> list[list[tuple[str, float]]]:
        """Per waveform (at the encoder's rate), the ``top_k`` class captions of the run nearest to the
        aligner's prediction with their cosine similarity, best first — ``seeingsounds describe``'s numbers.
        """
        out = []
        sources = [(self.sample_rate, np.asarray(w, dtype=np.float32)) for w in waves]
        for pred in self.conditioner.predict(sources, batch_size=max(1, len(sources))):
            values, rows = self.index.topk(pred, self.top_k)
            out += [[(self.caption_texts[int(i)], float(v)) for v, i in zip(vs, rs)]
                    for vs, rs in zip(values.tolist(), rows.tolist())]
        return out

    def images(self, wave: np.ndarray, sr: int, *, seeds: Sequence[int], steps: int, size: int) -> list[Any]:
        out = self.pipe(wave, sample_rate=sr, seeds=list(seeds), num_images_per_audio=len(seeds),
                        num_inference_steps=int(steps), height=int(size), width=int(size))
        return list(out.images)

    # ---- one request --------------------------------------------------------------------------
    def run(self, sound: str | None, *, mix_sound: str | None = None, mix_ratio: float = 0.5, seed: int = 0,
            steps: int | None = None, size: int | None = None, num_images: int = 1,
            progress: Callable[[float, str], None] | None = None, **controls: float | None) -> Result:
        """Everything the Generate button does; raises SeeingSoundsError for what the user can fix.

        ``controls`` are the effect sliders, ``effect name -> value`` (``volume=0.15``); a missing one or one
        at its neutral value applies nothing.
        """
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
        effects = controls_to_effects(**controls)
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
        paths = []
        for image, seed in zip(images, seeds):
            # the keys of `seeingsounds generate`; the checkpoint by name, never the server's own folders
            metadata = {"Software": f"seeingsounds {__version__}", "checkpoint": checkpoint_label(self.checkpoint),
                        "preset": getattr(self.pipe.preset, "name", None), "lora": self.lora, "seed": seed,
                        **provenance}
            paths.append(Path(save_png(image, work / f"seeingsounds-seed{seed}.png", metadata)))
        return paths

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
    data = folder / "data"
    data.mkdir(parents=True)
    rows = ["path,label"] + [f"{sounds[name]},{name}" for name in DEMO_CAPTIONS if name in sounds]
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    (data / "captions.json").write_text(json.dumps({n: c for n, c in DEMO_CAPTIONS.items() if n in sounds}, indent=2))
    train(TrainConfig(preset="tiny", data=str(data / "manifest.csv"), captions=str(data / "captions.json"),
                      out=str(folder), epochs=DEMO_EPOCHS, batch_size=8, val_fraction=0.0, patience=DEMO_EPOCHS,
                      lr_sequence=1e-2, lr_pooled=1e-2, seed=0, device="cpu", progress=False,
                      cache_dir=str(folder / "cache")))



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
    own_engine = engine is None
    engine = engine or DemoEngine(checkpoint, device=device, dtype=dtype, top_k=top_k, limits=limits, lora=lora,
                                  cpu_offload=cpu_offload)
    sliders = slider_effects()
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

    def generate(sound, *values, progress=gr.Progress()):
        # inputs: the sound, one value per slider effect (display order), mix sound, mix ratio, seed, steps,
        # size, number of images
        controls = {e.name: v for e, v in zip(sliders, values)}
        mix_sound, mix_ratio, seed, steps, size, num_images = values[len(sliders):]

        def say(fraction: float, text: str) -> None:
            progress(fraction, desc=text)

        try:
            result = engine.run(sound, mix_sound=mix_sound, mix_ratio=mix_ratio, seed=int(seed or 0), steps=steps,
                                size=size, num_images=num_images, progress=say, **controls)
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
                    effect_sliders = [
                        gr.Slider(e.slider[0], e.slider[1], value=e.neutral if e.neutral is not None else e.slider[0],
                                  step=e.slider[2], label=e.label, elem_id=e.name.replace("_", "-"))
                        for e in sliders
                    ]
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
            [sound, *effect_sliders, mix_sound, mix_ratio, seed, steps, size, num_images],
            [gallery, caption, hears, heard, downloads],
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
    the uploads and outputs); with ``block=True`` that happens when the server stops (Ctrl+C).
    Returns ``(app, local_url)``.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    limits: Limits = getattr(app, "seeingsounds_limits", Limits())
    try:
        _, url, _ = app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                               max_file_size=int(limits.max_upload_mb * 1_000_000), quiet=quiet, show_error=True,
                               footer_links=["api"])
    finally:
        if block:  # Ctrl+C ended the server: remove its uploads and outputs too
            app.close()
    return app, url
