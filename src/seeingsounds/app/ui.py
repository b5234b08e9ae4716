"""The web page, Gradio only, over :class:`~seeingsounds.app.service.WebService` (what a request does).

:func:`build_app` returns a ``gradio.Blocks``; :func:`launch_app` serves it (127.0.0.1 unless told
otherwise) with the upload limit enforced by the server too. ``seeingsounds serve`` is the command.

The page is a list of tabs, assembled in :func:`add_tabs`: *Sound to picture* (:func:`generate_tab`),
*Edit a picture with a sound* (:func:`edit_tab`, image checkpoints) and *Live* (:func:`live_tab`: the
page's microphone streamed to the server, a picture per half second). A new front end adds its tab
function there; :class:`Page` is what every tab builds on.

Inputs reach a handler by name, never by position: each button passes a :func:`form` (the service's
keyword names -> components) as gradio's ``inputs_kwargs``. Its order is the HTTP API's parameter order
(``/generate``: ``sound``, one per effect slider, ``mix_sound``, ``mix_ratio``, ``seed``, ``steps``,
``size``, ``num_images``, ``frames``), so moving a component on the page changes nothing a request receives.

Every error a user can cause (a broken file, a too long clip, a bad setting) becomes a ``gr.Error``
shown in the page, and every warning the library logs while making it (a truncated upload read as far
as it goes) a ``gr.Warning`` beside the result, files named by their upload names
(:func:`~seeingsounds.app.service.warnings_told`); anything unexpected is logged with its traceback on
the server and shown as a short message. The app keeps serving either way. The page's controls check what the HTTP API may send
instead (text or NaN for a number: :func:`checked_number`; a picture that is no picture or
too large: :func:`picture_editor`) before gradio's own conversion, and the server never shows an
exception's text that is not a ``gr.Error`` (it could name the server's folders).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seeingsounds.app.service import (DEFAULT_STRENGTH, LIVE_HOP, MAX_IMAGES, UPLOADS_DIR, EditResult, Limits,
                                      Progress, Result, WebService, upload_name, warnings_told)
from seeingsounds.assets import example_sounds
from seeingsounds.controls import slider_controls
from seeingsounds.errors import ConfigError, SeeingSoundsError
from seeingsounds.imaging import load_picture
from seeingsounds.live import DEFAULT_EASE
from seeingsounds.request import SEED_MAX

log = logging.getLogger(__name__)

__all__ = ["LiveOutputs", "Page", "add_tabs", "build_app", "checked_number", "edit_tab", "editor_picture",
           "effect_sliders", "form", "generate_tab", "launch_app", "live_tab", "picture_editor", "sigterm_as_interrupt"]

#: the edit strength slider: (minimum, maximum, step)
STRENGTH_RANGE = (0.05, 1.0, 0.05)
#: the longest video the page offers (frames; Wan 2.1's default length)
MAX_FRAMES = 81


def _gradio() -> Any:
    import gradio as gr  # deferred on purpose: a heavy optional dependency, only the web page needs it

    return gr


# ---- components that check what the HTTP API may send --------------------------------------------------
def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:]


def _user_error(message: str) -> Exception:
    return _gradio().Error(message, print_exception=False)


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


def slider(*args: Any, **kwargs: Any) -> Any:
    """A checked ``gr.Slider``."""
    return checked_number(_gradio().Slider(*args, **kwargs))


def number(*args: Any, **kwargs: Any) -> Any:
    """A checked ``gr.Number`` (empty allowed)."""
    return checked_number(_gradio().Number(*args, **kwargs), allow_none=True)


def picture_editor(**kwargs: Any) -> Any:
    """A ``gr.ImageEditor`` (PIL images in RGBA) whose uploads are read by :func:`seeingsounds.imaging.load_picture`.

    Gradio's own editor decodes whatever arrives before the app sees it, and clamps 16-bit greyscale to white;
    this one checks the pixel count from the header first, scales high bit depths, and refuses a non-picture,
    a truncated file or one over :data:`~seeingsounds.imaging.MAX_PICTURE_PIXELS` with a message naming the
    uploaded file (never the server's folders). The editor's reading method is replaced on the instance: a
    subclass of a gradio component makes gradio write a ``.pyi`` file beside the module defining it.
    """
    editor = _gradio().ImageEditor(type="pil", image_mode="RGBA", **kwargs)

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


# ---- requests -----------------------------------------------------------------------------------------
def report(action: Callable[[], Any], what: str) -> Any:
    """``action()``, its user errors as one sentence in the page, the warnings it logged (a truncated upload)
    as notices beside its result; anything else logged on the server only."""
    gr = _gradio()
    try:
        with warnings_told() as told:
            result = action()
        for text in dict.fromkeys(told):  # each once, in order
            gr.Warning(_sentence(text))
        return result
    except SeeingSoundsError as exc:
        raise _user_error(_sentence(str(exc))) from None
    except gr.Error:
        raise
    except Exception:  # noqa: BLE001 - keep serving; the traceback goes to the server log only
        log.exception("%s failed", what)
        raise _user_error(f"Something went wrong while {what}; the server log has the details.") from None


def form(*parts: Mapping[str, Any]) -> dict[str, Any]:
    """One button's inputs by name (the service's keyword names), in the HTTP API's parameter order; a name
    given twice (an effect registered under a setting's name) is refused."""
    merged: dict[str, Any] = {}
    for part in parts:
        for name, component in part.items():
            if name in merged:
                raise ConfigError(f"two inputs of one button are named {name!r}: register the effect under another name")
            merged[name] = component
    return merged


def _progress_reporter(progress: Any) -> Progress:
    return lambda fraction, text: progress(fraction, desc=text)


@dataclass
class Page:
    """What every tab builds on: the service, the queue's concurrency and the bundled example sounds."""

    service: WebService
    concurrency_limit: int
    examples: dict[str, Path]
    example_dir: Path

    def pick_example(self) -> Callable[[str | None], str | None]:
        """The example dropdown's handler: a copy of the chosen example under the service's output folder
        (gradio serves files it did not create only from its temp folder or the working directory)."""
        examples, folder = self.examples, self.example_dir

        def pick_example(name: str | None) -> str | None:
            if not name or name not in examples:
                return None
            target = folder / examples[name].name
            if not target.exists():
                folder.mkdir(parents=True, exist_ok=True)  # the hourly clean-up of output_dir may have removed it
                shutil.copyfile(examples[name], target)
            return str(target)

        return pick_example


@dataclass
class SoundControls:
    """The sound inputs of one tab: the sound, one slider per effect (by effect name), the second sound and its share."""

    sound: Any
    effects: dict[str, Any]
    mix_sound: Any
    mix_ratio: Any

    def fields(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The sound, the effect sliders and the mix, as :func:`form` parts."""
        return {"sound": self.sound}, self.effects, {"mix_sound": self.mix_sound, "mix_ratio": self.mix_ratio}


def effect_sliders(prefix: str) -> dict[str, Any]:
    """One slider per effect control, by effect name (elem ids start with ``prefix``)."""
    return {c.effect: slider(c.slider[0], c.slider[1], value=c.neutral if c.neutral is not None else c.slider[0],
                             step=c.slider[2], label=c.label, elem_id=prefix + c.effect.replace("_", "-"))
            for c in slider_controls()}


def sound_controls(page: Page, prefix: str) -> SoundControls:
    """The sound, example picker, effect sliders and mix controls of one tab (elem ids start with ``prefix``)."""
    gr = _gradio()
    pick = page.pick_example()
    sound = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Sound", elem_id=f"{prefix}sound")
    example = gr.Dropdown(choices=list(page.examples), value=None, label="…or pick an example sound",
                          elem_id=f"{prefix}example")
    with gr.Accordion("Effects (what you do to the sound)", open=not prefix):
        effects = effect_sliders(prefix)
    with gr.Accordion("Mix with a second sound", open=False):
        mix_sound = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Second sound",
                             elem_id=f"{prefix}mix-sound")
        mix_example = gr.Dropdown(choices=list(page.examples), value=None, label="…or pick an example",
                                  elem_id=f"{prefix}mix-example")
        mix_ratio = slider(0.0, 1.0, value=0.5, step=0.05, label="Share of the second sound", elem_id=f"{prefix}mix-ratio")
    example.change(pick, example, sound, api_name=False, queue=False)
    mix_example.change(pick, mix_example, mix_sound, api_name=False, queue=False)
    return SoundControls(sound, effects, mix_sound, mix_ratio)


# ---- the Sound to picture tab ---------------------------------------------------------------------------
@dataclass
class GenerateOutputs:
    """The Generate button's output components."""

    video: Any
    gallery: Any
    caption: Any
    hears: Any
    heard: Any
    downloads: Any

    def components(self) -> list[Any]:
        """In the HTTP API's result order."""
        return [self.gallery, self.caption, self.hears, self.heard, self.downloads, self.video]

    def show(self, result: Result) -> dict[Any, Any]:
        return {self.gallery: [str(p) for p in result.images], self.caption: result.caption, self.hears: result.hears,
                self.heard: str(result.audio), self.downloads: [str(p) for p in result.videos + result.images],
                self.video: str(result.videos[0]) if result.videos else None}


def generation_settings(page: Page) -> dict[str, Any]:
    """The Generate button's seed, steps, size, count and (video checkpoints) frames, by keyword name."""
    gr, service = _gradio(), page.service
    with gr.Accordion("Generation", open=False):
        step = service.size_multiple
        return {
            "seed": number(value=0, precision=0, minimum=0, maximum=SEED_MAX, label="Seed", elem_id="seed"),
            "steps": slider(1, 50, value=service.default_steps, step=1, label="Steps", elem_id="steps"),
            "size": slider(step, service.max_size, value=service.default_size, step=step, label="Image size, px",
                           elem_id="size"),
            "num_images": slider(1, MAX_IMAGES, value=1, step=1, label="Videos" if service.is_video else "Images",
                                 elem_id="num-images"),
            "frames": slider(1, max(MAX_FRAMES, service.default_frames), value=service.default_frames,
                             step=service.frame_step, label=f"Frames (1 + a multiple of {service.frame_step})",
                             visible=service.is_video, elem_id="frames"),
        }


def generate_outputs(page: Page) -> GenerateOutputs:
    gr, service = _gradio(), page.service
    video = service.is_video
    return GenerateOutputs(
        video=gr.Video(label="Video (the first seed)", visible=video, interactive=False, elem_id="video"),
        gallery=gr.Gallery(label="Posters (middle frames)" if video else "Images", format="png", columns=2,
                           elem_id="images"),
        caption=gr.Textbox(label="Caption the controls imply", interactive=False, elem_id="caption"),
        hears=gr.Label(label="What it hears (nearest class captions; bar = cosine similarity)",
                       num_top_classes=service.top_k, elem_id="hears"),
        heard=gr.Audio(label="What the model hears (after mixing and effects)", type="filepath", interactive=False,
                       elem_id="heard"),
        downloads=gr.File(label="Download " + ("mp4 and poster PNG" if video else "PNG") + " (with provenance metadata)",
                          file_count="multiple", interactive=False, elem_id="downloads"))


def generate_handler(service: WebService, outputs: GenerateOutputs) -> Callable[..., dict[Any, Any]]:
    """The Generate button: the form's values by name -> :meth:`WebService.run` -> the output components."""
    gr = _gradio()

    def generate(progress: Any = gr.Progress(), **values: Any) -> dict[Any, Any]:
        values["seed"] = int(values["seed"] or 0)
        frames = values["frames"]
        values["frames"] = int(frames) if service.is_video and frames is not None else None
        result = report(lambda: service.run(progress=_progress_reporter(progress), **values), "generating")
        return outputs.show(result)

    return generate


def generate_tab(page: Page) -> None:
    """*Sound to picture* (or video): a sound, its effects and mix -> pictures, the implied caption, what it hears."""
    gr, service = _gradio(), page.service
    made = "video" if service.is_video else "picture"
    with gr.Tab(f"Sound to {made}", id="generate-tab", elem_id="generate-tab"):
        with gr.Row():
            with gr.Column():
                sound = sound_controls(page, "")
                settings = generation_settings(page)
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                outputs = generate_outputs(page)
    button.click(generate_handler(service, outputs), inputs_kwargs=form(*sound.fields(), settings),
                 outputs=outputs.components(), api_name="generate", concurrency_limit=page.concurrency_limit,
                 concurrency_id="generate")


# ---- the Edit a picture with a sound tab ---------------------------------------------------------------
def edit_handler(service: WebService, gallery: Any, downloads: Any) -> Callable[..., dict[Any, Any]]:
    """The Edit button: the form's values by name -> :meth:`WebService.edit` -> the edited PNGs."""
    gr = _gradio()

    def edit(progress: Any = gr.Progress(), **values: Any) -> dict[Any, Any]:
        def run() -> EditResult:
            picture, mask = editor_picture(values.pop("picture"))
            values["seed"] = int(values["seed"] or 0)
            return service.edit(picture, mask=mask, progress=_progress_reporter(progress), **values)

        files = [str(p) for p in report(run, "editing").images]
        return {gallery: files, downloads: files}

    return edit


def edit_tab(page: Page) -> None:
    """*Edit a picture with a sound*: a picture, an optional painted mask, a strength and a sound -> the edit."""
    gr, service = _gradio(), page.service
    with gr.Tab("Edit a picture with a sound", id="edit-tab", elem_id="edit-tab"):
        if service.is_video:
            gr.Markdown("This checkpoint drives a video generator; editing a picture needs an image checkpoint.")
            return
        with gr.Row():
            with gr.Column():
                picture = picture_editor(
                    sources=["upload"], label="Picture: upload it, then (optionally) paint where the sound may change it",
                    brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed"), layers=False, transforms=(),
                    elem_id="edit-picture")
                strength = slider(*STRENGTH_RANGE[:2], value=DEFAULT_STRENGTH, step=STRENGTH_RANGE[2],
                                  label="Strength (low keeps the picture, 1 ignores it)", elem_id="edit-strength")
                sound = sound_controls(page, "edit-")
                with gr.Accordion("Generation", open=False):
                    seed = number(value=0, precision=0, minimum=0, maximum=SEED_MAX, label="Seed", elem_id="edit-seed")
                    steps = slider(1, 50, value=max(service.default_steps, 10), step=1,
                                   label="Steps (strength x steps of them run)", elem_id="edit-steps")
                button = gr.Button("Edit", variant="primary", elem_id="edit")
            with gr.Column():
                gallery = gr.Gallery(label="Edited picture", format="png", columns=2, elem_id="edited")
                downloads = gr.File(label="Download PNG (with provenance: input and mask sha256, strength)",
                                    file_count="multiple", interactive=False, elem_id="edit-downloads")
    sound_part, effects, mix = sound.fields()
    button.click(edit_handler(service, gallery, downloads),
                 inputs_kwargs=form({"picture": picture}, sound_part, effects, mix,
                                    {"strength": strength, "seed": seed, "steps": steps}),
                 outputs=[gallery, downloads], api_name="edit", concurrency_limit=page.concurrency_limit,
                 concurrency_id="generate")  # one queue for both buttons: they share the generator


# ---- the Live tab --------------------------------------------------------------------------------------
@dataclass
class LiveOutputs:
    """The Live tab's output components and the per-page stream (a :class:`~seeingsounds.live.LiveFeed`)."""

    picture: Any
    hears: Any
    status: Any
    feed: Any

    def components(self) -> list[Any]:
        return [self.picture, self.hears, self.status, self.feed]


def live_handler(service: WebService, outputs: LiveOutputs) -> Callable[..., dict[Any, Any]]:
    """Each microphone block: pushed into the page's stream (started with the current settings when the
    recording starts); the picture and what it hears are updated when a hop of sound has arrived."""

    def live(chunk: Any = None, feed: Any = None, **values: Any) -> dict[Any, Any]:
        if chunk is None:
            return {outputs.feed: feed}
        rate, data = chunk
        if feed is None or feed.sample_rate != int(rate):
            values["seed"] = int(values["seed"] or 0)
            feed = report(lambda: service.live_feed(int(rate), **values), "starting live mode")
        view = report(lambda: service.live_push(feed, data), "listening")
        if view is None:
            return {outputs.feed: feed}
        top = next(iter(view.hears), "")
        status = (f"{view.stream_time:.1f} s heard" + (f"; it hears {top}" if top else "")
                  + f"; {view.latency * 1000:.0f} ms from sound to picture")
        return {outputs.picture: view.picture, outputs.hears: view.hears, outputs.status: status, outputs.feed: feed}

    return live


def live_tab(page: Page) -> None:
    """*Live*: the page's microphone streamed to the server; the picture follows what it hears
    (``seeingsounds live``'s loop: one seed, the conditioning eased between hops)."""
    gr, service = _gradio(), page.service
    with gr.Tab("Live", id="live-tab", elem_id="live-tab"):
        if service.is_video:
            gr.Markdown("This checkpoint drives a video generator; live mode needs an image checkpoint.")
            return
        window = service.engine.window_samples / service.sample_rate
        with gr.Row():
            with gr.Column():
                mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", elem_id="live-mic",
                               label=f"Microphone: press record; a new picture every {LIVE_HOP:g} s")
                settings = {
                    "ease": slider(0.0, 0.95, value=DEFAULT_EASE, step=0.05, elem_id="live-ease",
                                   label="Ease (share of the previous picture kept at each step: 0 follows at once)"),
                    "window": slider(LIVE_HOP, window, value=window, step=0.1, elem_id="live-window",
                                     label="Window, s (the newest sound it hears)"),
                    "seed": number(value=0, precision=0, minimum=0, maximum=SEED_MAX, label="Seed", elem_id="live-seed"),
                    "steps": slider(1, 50, value=service.default_steps, step=1, label="Steps", elem_id="live-steps"),
                }
                with gr.Accordion("Effects (applied to every window)", open=False):
                    effects = effect_sliders("live-")
            with gr.Column():
                outputs = LiveOutputs(
                    picture=gr.Image(label="What it makes of it", type="pil", interactive=False, format="png",
                                     elem_id="live-picture"),
                    hears=gr.Label(label="What it hears now (nearest class captions)", num_top_classes=service.top_k,
                                   elem_id="live-hears"),
                    status=gr.Textbox(label="Stream", interactive=False, elem_id="live-status"),
                    feed=gr.State(None))
    mic.start_recording(lambda: None, outputs=outputs.feed, api_name=False, queue=False)  # a new stream per recording
    mic.stream(live_handler(service, outputs), inputs_kwargs=form({"chunk": mic, "feed": outputs.feed}, settings, effects),
               outputs=outputs.components(), api_name="live", stream_every=LIVE_HOP, time_limit=None,
               concurrency_limit=page.concurrency_limit, concurrency_id="generate")  # it shares the generator


def add_tabs(page: Page) -> None:
    """Every tab of the page, in order: a new front end adds its tab function here."""
    generate_tab(page)
    edit_tab(page)
    live_tab(page)


# ---- the app --------------------------------------------------------------------------------------------
def _introduction(service: WebService, limits: Limits) -> str:
    made = "video" if service.is_video else "picture"
    return (f"# SeeingSounds\nRecord or upload a sound, steer it with effects or a second sound, and see "
            f"the {made} the frozen generator makes from what the aligner hears"
            + ("" if service.is_video else ", or let the sound edit a picture of yours") + ". "
            f"Sounds up to {limits.max_upload_mb:g} MB and {limits.max_seconds:g} s.")


def _uploads_under(service: WebService) -> str | None:
    """Point gradio's uploads (``GRADIO_TEMP_DIR``, default /tmp/gradio, never emptied) into the service's
    output folder, removed with it when the app closes; ``None`` when the user chose a folder."""
    if os.environ.get("GRADIO_TEMP_DIR"):
        return None
    uploads = str(service.output_dir / UPLOADS_DIR)
    os.environ["GRADIO_TEMP_DIR"] = uploads
    return uploads


def _clean_up_on_close(app: Any, uploads: str | None, service: WebService | None) -> None:
    """``app.close()`` stops the server, then removes what this app wrote: the uploads and (a service it
    made itself) the outputs."""
    close_server = app.close

    def close(*args: Any, **kwargs: Any) -> Any:
        try:
            return close_server(*args, **kwargs)
        finally:
            if uploads is not None and os.environ.get("GRADIO_TEMP_DIR") == uploads:
                del os.environ["GRADIO_TEMP_DIR"]
                shutil.rmtree(uploads, ignore_errors=True)
            if service is not None:
                service.close()

    app.close = close


def build_app(checkpoint: str | os.PathLike, *, max_upload_mb: float = 25, max_seconds: float = 60,
              concurrency_limit: int = 1, max_queue: int = 32, top_k: int = 5, device: str | None = "auto",
              dtype: str | None = None, lora: str | os.PathLike | None = None, cpu_offload: bool = False,
              service: WebService | None = None) -> Any:
    """The Gradio page for ``checkpoint`` (a training run or aligner folder, or a hub id), or for ``service``.

    ``concurrency_limit`` generations run at once (1 suits one GPU); at most ``max_queue`` wait.
    Sounds over ``max_upload_mb`` MB or ``max_seconds`` s are refused with a message in the page.
    Serve it with :func:`launch_app`, which also makes the server refuse oversized uploads.
    """
    gr = _gradio()
    if concurrency_limit < 1 or max_queue < 1:
        raise ConfigError(f"concurrency_limit and max_queue must be >= 1, got {concurrency_limit}, {max_queue}")
    limits = Limits(float(max_upload_mb), float(max_seconds))
    own_service = service is None
    service = service or WebService(checkpoint, device=device, dtype=dtype, top_k=top_k, limits=limits, lora=lora,
                                    cpu_offload=cpu_offload)
    uploads = _uploads_under(service)
    page = Page(service, concurrency_limit, example_sounds(),
                Path(tempfile.mkdtemp(prefix="examples-", dir=service.output_dir)))
    with gr.Blocks(title="SeeingSounds", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(_introduction(service, limits))
        with gr.Tabs():
            add_tabs(page)
    app.queue(max_size=max_queue, default_concurrency_limit=concurrency_limit)
    _clean_up_on_close(app, uploads, service if own_service else None)
    app.seeingsounds_limits = limits  # read by launch_app
    app.seeingsounds_service = service
    return app


def check_address(host: str, port: int) -> None:
    """Refuse, before any model loads, a port outside 0..65535 (0: any free one) or an address this machine
    cannot serve on (another server holds the port, or the host is not one of its addresses): gradio
    failed only after the checkpoint had loaded."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {port!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot serve on {host}:{port} ({reason}): another program may hold the port; choose "
                          "another --port (or --host)") from None


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
