"""The engine: one loaded checkpoint behind every front end (CLI, web app, evaluation, demo, live mode).

An :class:`Engine` holds a :class:`~seeingsounds.pipeline.SeeingSoundsPipeline` (the conditioner:
encoder + aligner, and the frozen generator) and, for a checkpoint inside a training run, the run's
class captions to say what it *hears*. It offers:

* :meth:`Engine.predict` / :meth:`Engine.hear`: the aligner's conditioning for sounds, and the class
  captions nearest to it;
* :meth:`Engine.generate`, :meth:`Engine.edit`: the outputs of a checked
  :class:`~seeingsounds.request.Request`, one :class:`Made` at a time (a picture, or a video and its
  poster), a chunk of inputs at a time;
* :meth:`Engine.pictures`: outputs from a conditioning the caller made (eased between the hops of a
  live stream, for instance), on fixed seeds.

The engine neither parses options nor writes files: :mod:`seeingsounds.writers` writes what it makes,
through one provenance.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from seeingsounds.conditioner import AudioConditioner, display_name
from seeingsounds.describe import Describer
from seeingsounds.errors import ConfigError
from seeingsounds.generators.base import OutputKind
from seeingsounds.pipeline import SeeingSoundsPipeline
from seeingsounds.request import LoadOptions, Request, Settings
from seeingsounds.retrieval import CaptionIndex
from seeingsounds.runs import RunFolder

log = logging.getLogger(__name__)

__all__ = ["Engine", "Made"]


@dataclass
class Made:
    """One output of the engine.

    Attributes:
        picture: the image, or for a video its poster (the middle frame).
        seed: the seed it was made with.
        source: the input it came from (a path, ``"<array>"`` or the caption).
        input_index: the input's position in the request (captions follow the sounds).
        frames: a video's ``uint8 [frames, H, W, 3]``; ``None`` for an image.
        fps: a video's frame rate.
        effects: the descriptions d_j of the effects applied to the input.
        conditioning: the aligner's prediction for the input (float32, CPU), when asked for.
    """

    picture: Image.Image
    seed: int
    source: str
    input_index: int
    frames: np.ndarray | None = None
    fps: int | None = None
    effects: list[str] = field(default_factory=list)
    conditioning: dict[str, torch.Tensor] | None = None


def inputs_per_call(batch_size: int, num_images: int) -> int:
    """Inputs per pipeline call so that one call makes about ``batch_size`` outputs."""
    return max(1, batch_size // num_images) if num_images <= batch_size else 1


class Engine:
    """A loaded checkpoint: predict, hear, generate, edit and make pictures from conditioning.

    Build it with :meth:`load` (or around a pipeline already loaded). ``top_k`` is how many class
    captions :meth:`hear` returns.
    """

    def __init__(self, pipe: SeeingSoundsPipeline, *, top_k: int = 5):
        self.pipe = pipe
        self.top_k = int(top_k)
        self._captions: tuple[list[str], CaptionIndex] | None | bool = False  # False: not read yet

    @classmethod
    def load(cls, options: LoadOptions, *, top_k: int = 5) -> Engine:
        """Load the checkpoint of ``options`` (encoder, aligner, generator without its text encoders)."""
        pipe = SeeingSoundsPipeline.from_pretrained(
            options.checkpoint, preset=options.preset, generator_id=options.generator_id, device=options.device,
            dtype=None if options.dtype in (None, "auto") else options.dtype, lora=options.lora,
            cpu_offload=options.cpu_offload)
        return cls(pipe, top_k=top_k)

    # ---- what is loaded -----------------------------------------------------------------------
    @property
    def conditioner(self) -> AudioConditioner:
        return self.pipe.conditioner

    @property
    def preset(self) -> Any:
        return self.pipe.preset

    @property
    def kind(self) -> OutputKind:
        """What the generator makes (image or video), as its backend declares."""
        return self.pipe.output_kind

    @property
    def sample_rate(self) -> int:
        return self.conditioner.sample_rate

    @property
    def window_samples(self) -> int:
        """How many samples (at :attr:`sample_rate`) the encoder hears at once."""
        return self.conditioner.window_samples

    @property
    def checkpoint(self) -> str:
        return str(self.pipe.checkpoint)

    def resolve(self, settings: Settings, *, size: tuple[int, int] | None = None) -> dict[str, Any]:
        """The generator call's settings: unset ones from the preset (``size``, as (width, height), in place
        of the settings' size), checked against the generator."""
        width, height = size if size is not None else (settings.width, settings.height)
        return self.pipe.resolve_settings(settings.steps, settings.guidance, height, width, settings.num_images,
                                          settings.batch_size, num_frames=settings.num_frames)

    def frame_rate(self, settings: Settings) -> int | None:
        """A video's frame rate (``settings.fps`` or the preset's); ``None`` for images."""
        return self.pipe.frame_rate(settings.fps)

    # ---- hearing ----------------------------------------------------------------------------
    @property
    def captions(self) -> list[str]:
        """The run's class captions that :meth:`hear` ranks (empty outside a training run)."""
        found = self._caption_index()
        return found[0] if found else []

    def _caption_index(self) -> tuple[list[str], CaptionIndex] | None:
        if self._captions is False:
            self._captions = None
            try:
                RunFolder.find(self.checkpoint)
            except ConfigError:  # an aligner folder without its training run: no captions to rank
                log.warning("%s is not in a training run folder: nothing can say what it hears",
                            Path(self.checkpoint).name)
            else:
                describer = Describer(self.checkpoint, conditioner=self.conditioner)
                entries = describer.captions.entries
                rows = [i for i, e in enumerate(entries) if e.kind == "class"] or list(range(len(entries)))
                self._captions = ([entries[i].text for i in rows], describer.index.select(rows))
        return self._captions or None

    def predict_waves(self, waves: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Encoder + aligner on waveforms at :attr:`sample_rate`, each the encoder's window (on the device)."""
        return self.conditioner.predict_waves(waves)

    def predict(self, sounds: Sequence[Any], *, effects: Any = None, mix: Any = None,
                sample_rate: int | None = None) -> dict[str, torch.Tensor]:
        """The aligner's conditioning for sounds rendered with ``effects`` and ``mix`` (float32, CPU)."""
        return self.conditioner.predict_all(sounds, effects=effects, mix=mix, sample_rate=sample_rate,
                                            batch_size=max(1, min(len(sounds), 16)))

    def nearest(self, conditioning: Mapping[str, torch.Tensor]) -> list[list[tuple[str, float]]]:
        """Per row of a conditioning, the ``top_k`` class captions of the run nearest to it with their
        cosine similarity, best first (``seeingsounds describe``'s numbers); ``[]`` rows outside a run."""
        found = self._caption_index()
        n = len(next(iter(conditioning.values())))
        if found is None:
            return [[] for _ in range(n)]
        texts, index = found
        values, rows = index.topk(conditioning, min(self.top_k, len(texts)))
        return [[(texts[int(i)], float(v)) for v, i in zip(vs, rs)] for vs, rs in zip(values.tolist(), rows.tolist())]

    def hear(self, waves: Sequence[np.ndarray]) -> list[list[tuple[str, float]]]:
        """What the aligner hears in each waveform (at :attr:`sample_rate`, cropped to the encoder's window
        as at training): :meth:`nearest` of its prediction."""
        if not waves:
            return []
        sources = [(self.sample_rate, np.asarray(w, dtype=np.float32)) for w in waves]
        return self.nearest(self.predict(sources))

    # ---- making -------------------------------------------------------------------------------
    def pictures(self, conditioning: Mapping[str, torch.Tensor], *, seeds: Sequence[int],
                 settings: Mapping[str, Any], batch_size: int = 4) -> list[Image.Image | np.ndarray]:
        """One output per row of ``conditioning`` with its seed and the resolved ``settings``
        (:meth:`resolve`); guidance uses the aligner's null conditioning, as :meth:`generate` does."""
        negative = self.pipe.negative_conditioning(self.conditioner.null_conditioning(), settings["guidance_scale"])
        rows = {k: v.to(self.pipe.device, self.pipe.dtype) for k, v in conditioning.items()}
        return self.pipe.generate_from_conditioning(rows, seeds=list(seeds), negative=negative, settings=settings,
                                                    batch_size=batch_size)

    def generate(self, request: Request, *, keep_conditioning: bool = False,
                 progress: bool | None = None) -> Iterator[Made]:
        """The outputs of a checked request: for every sound, then every caption (the generator's own
        text encoders), one per seed; a chunk of inputs per pipeline call."""
        settings = request.settings
        n = settings.num_images
        call = self._call(settings)
        for start, chunk in self._chunks(request.sounds, settings, progress):
            out = self.pipe(chunk, seed=settings.seed, num_images_per_audio=n, effects=settings.effects or None,
                            mix=settings.mix, sample_rate=request.sample_rate, return_conditioning=keep_conditioning,
                            **call)
            yield from self._made(out, start, n, keep_conditioning)
        for c, caption in enumerate(request.captions):
            out = self.pipe.from_caption(caption, seed=settings.seed, num_images_per_caption=n, **call)
            yield from self._made(out, len(request.sounds) + c, n, False)

    def edit(self, request: Request, *, keep_conditioning: bool = False,
             progress: bool | None = None) -> Iterator[Made]:
        """The edited pictures of a checked edit request (image-to-image, or inpainting inside the mask)."""
        if request.edit is None or request.picture is None:
            raise ConfigError("an edit request needs a picture: Request(edit=EditSpec(image=...)).check()")
        settings = request.settings
        n = settings.num_images
        call = {k: v for k, v in self._call(settings).items() if k not in ("num_frames", "fps")}
        for start, chunk in self._chunks(request.sounds, settings, progress):
            out = self.pipe.edit(request.picture, chunk, strength=request.edit.strength, mask=request.mask_image,
                                 seed=settings.seed, num_images_per_audio=n, effects=settings.effects or None,
                                 mix=settings.mix, sample_rate=request.sample_rate,
                                 return_conditioning=keep_conditioning, **call)
            yield from self._made(out, start, n, keep_conditioning)

    def _call(self, settings: Settings) -> dict[str, Any]:
        call = {"num_inference_steps": settings.steps, "guidance_scale": settings.guidance,
                "height": settings.height, "width": settings.width, "batch_size": settings.batch_size}
        if self.kind.video:
            call.update(num_frames=settings.num_frames, fps=settings.fps)
        return call

    @staticmethod
    def _chunks(sounds: Sequence[Any], settings: Settings, progress: bool | None) -> Iterator[tuple[int, list[Any]]]:
        """``(start, sounds)`` chunks sized so a chunk's outputs fit one batch; a bar over files."""
        step = inputs_per_call(settings.batch_size, settings.num_images)
        with tqdm(total=len(sounds), desc="sounds", unit="file",
                  disable=(not progress) if progress is not None else (None if len(sounds) > 1 else True)) as bar:
            for start in range(0, len(sounds), step):
                chunk = list(sounds[start : start + step])
                yield start, chunk
                bar.update(len(chunk))

    def _made(self, out: Any, start: int, per_input: int, keep: bool) -> Iterator[Made]:
        fps = out.settings.get("fps")
        for k, (picture, seed) in enumerate(zip(out.images, out.seeds)):
            row = k // per_input
            cond = {name: v[row : row + 1] for name, v in out.conditioning.items()} if keep and out.conditioning else None
            yield Made(picture=picture, seed=int(seed), source=display_name(out.sources[k]), input_index=start + row,
                       frames=out.videos[k] if out.videos else None, fps=fps, effects=list(out.effects),
                       conditioning=cond)

    def settings_record(self, resolved: Mapping[str, Any]) -> dict[str, Any]:
        """The model and settings an output was made with (the shared part of its provenance)."""
        preset = self.preset
        return {"preset": preset.name, "generator": f"{preset.generator}:{preset.generator_id}",
                "encoder": f"{preset.encoder}:{preset.encoder_id}", "steps": resolved["num_inference_steps"],
                "guidance": resolved["guidance_scale"], "size": f"{resolved['width']}x{resolved['height']}",
                "dtype": str(self.pipe.dtype).replace("torch.", ""), "lora": self.pipe.lora}
