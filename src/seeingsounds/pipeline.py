"""``SeeingSoundsPipeline``: audio -> frozen audio encoder -> aligner -> frozen generator -> images.

The generator is loaded without its text encoders: the aligner's predictions take their place.
Audio reaches the aligner through the pipeline's one :class:`~seeingsounds.conditioner.AudioConditioner`
(the one render, then encoder + aligner in batches), and images are made a chunk of inputs at a time:
the conditioning of one chunk is on the device while its images are made, never that of every input.
The same predictions drive the generator's image-to-image and inpainting twins
(:meth:`SeeingSoundsPipeline.edit`, built from the loaded modules) and, for a video generator,
return frames. :meth:`SeeingSoundsPipeline.from_caption` is the text path for side-by-side
comparisons; it loads the generator's own text encoders on first use, and only then.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError
from PIL import Image
from tqdm.auto import tqdm

from seeingsounds.aligner import SeeingSoundsAligner
from seeingsounds.audio.effects import describe_effect
from seeingsounds.audio.render import EffectChain, check_chain
from seeingsounds.checkpoint import resolve_checkpoint
from seeingsounds.conditioner import AudioConditioner, as_sources, display_name
from seeingsounds.devices import resolve_device, resolve_dtype
from seeingsounds.errors import ConfigError
from seeingsounds.generators.base import OutputKind
from seeingsounds.model import load_backend, load_encoder
from seeingsounds.presets import get_preset
from seeingsounds.request import (
    check_edit_steps,
    check_fps,
    check_guidance,
    check_lora,
    check_seed,
    check_size_multiple,
    check_strength,
    load_edit_inputs,
    size_limit,
    size_multiple,
)

logger = logging.getLogger(__name__)

__all__ = ["SeeingSoundsOutput", "SeeingSoundsPipeline"]


@dataclass
class SeeingSoundsOutput:
    """What one call returns.

    Attributes:
        images: PIL images, audio-major: all images of the first input, then the second, ...
            For a video generator, the poster (middle frame) of every video.
        conditioning: the aligner's predictions, one row per *input* (not per image), float32 on the CPU
            (``{}`` when called with ``return_conditioning=False``, e.g. for thousands of FLUX inputs).
        seeds: the seed of every image.
        sources: the input every image came from (its path, ``"<array>"``, ``"<bytes>"`` or the caption).
        effects: the descriptions d_j of the effects applied to the inputs (``[]`` without effects).
        settings: the resolved generation settings (steps, guidance, height, width; video: num_frames, fps;
            edit: strength).
        videos: for a video generator, one ``uint8`` array ``[frames, height, width, 3]`` per image; else ``[]``.
    """

    images: list[Any]
    conditioning: dict[str, torch.Tensor]
    seeds: list[int]
    sources: list[str]
    effects: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    videos: list[np.ndarray] = field(default_factory=list)


def _accepted(call: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``kwargs`` that ``call`` takes (the img2img pipelines differ in their options)."""
    params = inspect.signature(call).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


class SeeingSoundsPipeline:
    """Maps sounds to images (or videos) with a trained aligner and a frozen diffusers generator.

    Build it with :meth:`from_pretrained`. Attributes: ``conditioner`` (the
    :class:`~seeingsounds.conditioner.AudioConditioner` every audio input goes through), ``aligner``
    and ``encoder`` (the conditioner's frozen audio encoder and aligner), ``backend`` (generator
    backend), ``generator`` (diffusers pipeline, text encoders ``None``), ``preset``, ``device``,
    ``dtype``, ``checkpoint``, ``lora``, ``cpu_offload``.
    """

    def __init__(self, *, aligner: Any, encoder: Any, backend: Any, generator: Any, preset: Any,
                 device: torch.device, dtype: torch.dtype, checkpoint: str | None = None, lora: str | None = None,
                 cpu_offload: bool = False, conditioner: AudioConditioner | None = None):
        if conditioner is None:  # checks the encoder's width against the aligner, moves the aligner to device/dtype
            conditioner = AudioConditioner(encoder, aligner, preset=preset, device=device, dtype=dtype,
                                           checkpoint=checkpoint)
        elif conditioner.aligner is not aligner or conditioner.encoder is not encoder:
            raise ConfigError("the conditioner given to SeeingSoundsPipeline must hold its aligner and encoder")
        self.conditioner = conditioner
        self.backend = backend
        self.generator = generator
        self.preset = preset
        self.device = device
        self.dtype = dtype
        self.checkpoint = checkpoint
        self.lora = lora
        self.cpu_offload = bool(cpu_offload)
        self._text_pipe: Any = None
        self._edit_pipes: dict[str, Any] = {}
        self._size_limit: tuple[int, str] | None = None
        self._size_multiple: int | None = None

    # ---- loading ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, checkpoint: str | os.PathLike, *, preset: str | Any = None,
                        generator_id: str | None = None, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None, lora: str | os.PathLike | None = None,
                        cpu_offload: bool = False) -> SeeingSoundsPipeline:
        """Load a trained aligner and the encoder and generator it was trained for.

        Args:
            checkpoint: an aligner folder, a training run folder (``best/``, else ``last/``) or a hub id.
            preset: use this preset instead of the one the checkpoint records (e.g. a local copy).
            generator_id: load the generator from this hub id / folder instead of the preset's.
            device: "auto" (default: the accelerator when there is one), "cuda", "mps", "cpu".
            dtype: "auto" (bf16 where supported, fp16 on other accelerators, fp32 on the CPU), "fp16",
                "fp32", "bf16" or a torch dtype (see :mod:`seeingsounds.devices`).
            lora: LoRA weights for the generator (a file or folder ``load_lora_weights`` reads);
                ``None`` uses the preset's ``lora`` field (the LoRA the checkpoint was meant for, if
                any); ``""`` loads none.
            cpu_offload: keep the generator's modules on the CPU until used (small GPUs).

        The checkpoint's conditioning shapes are checked against the generator's configs before any
        weights are loaded; a mismatch raises :class:`ConfigError`.
        """
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        if cpu_offload and device.type == "cpu":
            raise ConfigError("cpu_offload moves modules to an accelerator when used: give device='cuda' (or drop it)")
        folder = resolve_checkpoint(checkpoint)
        try:
            aligner = SeeingSoundsAligner.from_pretrained(folder)
        except (HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"checkpoint {checkpoint} is not a local folder and the model hub could not provide it "
                              f"({reason})") from exc
        if preset is not None:
            chosen = get_preset(preset)
        elif aligner.preset:
            chosen = get_preset(aligner.preset)
        else:
            raise ConfigError(f"checkpoint {checkpoint} records no preset: pass preset=<name> (see `seeingsounds presets`)")
        if generator_id is not None:
            chosen = chosen.replace(generator_id=str(generator_id))
        lora = check_lora(chosen.lora if lora is None else lora)
        backend = load_backend(chosen)
        backend.check_aligner(aligner.conditioning_shapes)  # configs only: no weights loaded yet
        encoder = load_encoder(chosen, device=device, dtype=dtype)
        # the encoder's width is checked here, before the generator's weights are loaded
        conditioner = AudioConditioner(encoder, aligner, preset=chosen, device=device, dtype=dtype,
                                       checkpoint=str(checkpoint))
        generator = backend.load_image_pipeline(device=device, dtype=dtype, lora=lora, cpu_offload=cpu_offload)
        if backend.uses_negative and all(not aligner.null_conditioning(n).any() for n in aligner.conditioning_shapes):
            logger.warning("checkpoint %s has no null (empty-caption) conditioning: guidance will use zeros as "
                           "negatives; set it with aligner.set_null_conditioning(backend.encode_captions(['']))", checkpoint)
        return cls(aligner=conditioner.aligner, encoder=encoder, backend=backend, generator=generator, preset=chosen,
                   device=device, dtype=dtype, checkpoint=str(checkpoint), lora=lora, cpu_offload=cpu_offload,
                   conditioner=conditioner)

    @property
    def aligner(self) -> SeeingSoundsAligner:
        """The trained aligner (the conditioner's)."""
        return self.conditioner.aligner

    @aligner.setter
    def aligner(self, aligner: SeeingSoundsAligner) -> None:
        self.conditioner.aligner = aligner

    @property
    def encoder(self) -> Any:
        """The frozen audio encoder (the conditioner's)."""
        return self.conditioner.encoder

    @encoder.setter
    def encoder(self, encoder: Any) -> None:
        self.conditioner.encoder = encoder

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the aligner with the preset it runs with (generator id, LoRA) to ``folder``: a new folder, or
        one holding no ``config.json`` / ``model.safetensors`` but a checkpoint's (never a training run's;
        :meth:`SeeingSoundsAligner.save_pretrained` checks).

        :meth:`from_pretrained` on ``folder`` rebuilds this pipeline: same encoder, generator, LoRA
        and weights, so the same inputs and seeds give the same images.
        """
        folder = Path(folder).expanduser()
        preset = self.preset.replace(lora=self.lora or "")
        config = {**dict(getattr(self.aligner, "_hub_mixin_config", {}) or {}), "preset": preset.to_dict()}
        try:
            self.aligner.save_pretrained(folder, config=config)
        except OSError as exc:
            raise ConfigError(f"cannot write the checkpoint to {folder}: {exc.strerror or exc}") from exc
        return folder

    # ---- audio -> conditioning --------------------------------------------------------------
    @staticmethod
    def _check_effects(effects: EffectChain | None, mix: tuple[Any, float] | None) -> tuple[list[Any], list[str]]:
        """The checked effect chain and its descriptions d_j, before any audio is read."""
        chain = check_chain(effects)
        if mix is not None and not (isinstance(mix, (tuple, list)) and len(mix) == 2):
            raise ConfigError(f"mix must be (other audio, ratio), got {mix!r}")
        return chain, [describe_effect(name, **params) for name, params in chain]

    # ---- generation -------------------------------------------------------------------------
    @property
    def output_kind(self) -> OutputKind:
        """What the generator makes, as its backend declares (a video's outputs carry ``videos``)."""
        return self.backend.output_kind

    def resolve_settings(self, num_inference_steps: int | None, guidance_scale: float | None, height: int | None,
                         width: int | None, num_images: int = 1, batch_size: int = 1, *,
                         num_frames: int | None = None) -> dict[str, Any]:
        """Fill unset settings from the preset and check them; returns the generate() keywords
        (with ``num_frames`` for a video generator)."""
        steps = self.preset.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance = self.preset.guidance_scale if guidance_scale is None else guidance_scale
        height = self.preset.height if height is None else height
        width = self.preset.width if width is None else width
        for label, value in (("num_inference_steps", steps), ("height", height), ("width", width),
                             ("num_images_per_audio", num_images), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{label} must be a positive integer, got {value!r}")
        check_guidance(guidance)
        check_size_multiple(width, height, self.size_multiple)
        limit, reason = self.size_limit
        if max(height, width) > limit:
            raise ConfigError(f"size {width}x{height} is larger than this generator's limit of {limit} px: {reason}")
        settings = {"num_inference_steps": int(steps), "guidance_scale": float(guidance), "height": int(height),
                    "width": int(width)}
        if self.output_kind.video:
            settings["num_frames"] = self.backend.check_num_frames(self.preset.num_frames if num_frames is None else num_frames)
        elif num_frames is not None:
            raise ConfigError(f"num_frames is for video generators; {self.preset.name} makes images")
        return settings

    @property
    def size_limit(self) -> tuple[int, str]:
        """The largest side this generator accepts and why (see :func:`size_limit`); e.g. a size slider's maximum."""
        if self._size_limit is None:
            self._size_limit = size_limit(self.backend, self.preset)
        return self._size_limit

    @property
    def size_multiple(self) -> int:
        """Image sizes must be multiples of this (VAE downsampling x latent patching; see :func:`size_multiple`)."""
        if self._size_multiple is None:
            self._size_multiple = size_multiple(self.backend)
        return self._size_multiple

    @staticmethod
    def _seeds(seed: int, seeds: Sequence[int] | None, n_inputs: int, per_input: int) -> list[int]:
        if seeds is None:
            first = check_seed(seed)
            check_seed(first + per_input - 1, "seed + num_images - 1")
            return [first + j for _ in range(n_inputs) for j in range(per_input)]
        seeds = [check_seed(s, "every seed") for s in seeds]
        if len(seeds) == per_input:
            return seeds * n_inputs
        if len(seeds) == per_input * n_inputs:
            return seeds
        raise ConfigError(
            f"got {len(seeds)} seeds for {n_inputs} inputs x {per_input} images: give {per_input} "
            f"(reused for every input) or {per_input * n_inputs} (one per image)"
        )

    def negative_conditioning(self, null: Mapping[str, torch.Tensor], guidance: float) -> dict[str, torch.Tensor] | None:
        """The negatives for guidance ``guidance`` built from ``null`` (the aligner's, or the text encoders'
        embedding of ""), or ``None`` where the generator runs no classifier-free guidance at this scale."""
        if not self.backend.does_guidance(guidance):
            return None
        return self.backend.negative_conditioning(self.generator, null)

    def generate_from_conditioning(self, conditioning: Mapping[str, torch.Tensor], *, seeds: Sequence[int],
                                   negative: Mapping[str, torch.Tensor] | None, settings: Mapping[str, Any],
                                   batch_size: int = 4, progress: bool = False) -> list[Any]:
        """One image (or video) per row of ``conditioning`` with its seed; ``negative`` is per sample."""
        with tqdm(total=len(seeds), desc="generating", unit="image", disable=not progress) as bar:
            return self._make(conditioning, seeds, self._generate_batch(negative, settings), batch_size, bar)

    def _generate_batch(self, negative: Mapping[str, torch.Tensor] | None,
                        settings: Mapping[str, Any]) -> Callable[[dict[str, torch.Tensor], list[int]], list[Any]]:
        """Rows + their seeds -> images through :attr:`generator`, ``negative`` repeated per row."""
        def make(rows: dict[str, torch.Tensor], seeds: list[int]) -> list[Any]:
            neg = {k: v.unsqueeze(0).expand(len(seeds), *v.shape) for k, v in negative.items()} if negative else None
            return self.backend.generate(self.generator, rows, seeds=seeds, negative=neg, **settings)
        return make

    @staticmethod
    def _make(rows: Mapping[str, torch.Tensor], seeds: Sequence[int],
              make: Callable[[dict[str, torch.Tensor], list[int]], list[Any]], batch_size: int, bar: Any) -> list[Any]:
        """``make`` on ``batch_size`` rows at a time; the bar counts images."""
        images: list[Any] = []
        for start in range(0, len(seeds), batch_size):
            part = {k: v[start : start + batch_size] for k, v in rows.items()}
            images += make(part, list(seeds[start : start + batch_size]))
            bar.update(len(part[next(iter(part))]))
        return images

    def _stream(self, audio: Any, make: Callable[[dict[str, torch.Tensor], list[int]], list[Any]], *,
                sample_rate: int | None, seed: int, seeds: Sequence[int] | None, per_input: int,
                effects: EffectChain | None, mix: tuple[Any, float] | None, batch_size: int, keep: bool,
                progress: bool, desc: str) -> tuple[list[Any], dict[str, torch.Tensor], list[int], list[str], list[str]]:
        """Images for every input, ``batch_size`` inputs at a time through the conditioner.

        Each chunk's conditioning is repeated ``per_input`` times and made into images ``batch_size``
        rows at a time (the same batches as one pass over all rows, so the same pixels), then dropped
        from the device. Returns (images, conditioning per input (fp32 CPU; ``{}`` unless ``keep``),
        seeds, source per image, effect descriptions). Inputs, seeds and effects are checked before any
        audio is read.
        """
        sources = as_sources(audio)
        all_seeds = self._seeds(seed, seeds, len(sources), per_input)
        _, descriptions = self._check_effects(effects, mix)
        batches = self.conditioner.predict(sources, effects=effects, mix=mix, batch_size=batch_size,
                                           sample_rate=sample_rate)
        images: list[Any] = []
        kept: list[dict[str, torch.Tensor]] = []
        done = 0  # inputs made so far
        with tqdm(total=len(all_seeds), desc=desc, unit="image", disable=not progress) as bar:
            for cond in batches:
                n = len(cond[next(iter(cond))])
                rows = {k: v.repeat_interleave(per_input, dim=0) for k, v in cond.items()}
                images += self._make(rows, all_seeds[done * per_input : (done + n) * per_input], make, batch_size, bar)
                if keep:
                    kept.append({k: v.float().cpu() for k, v in cond.items()})
                done += n
                del cond, rows
        conditioning = {k: torch.cat([c[k] for c in kept]) for k in kept[0]} if kept else {}
        sources_per_image = [display_name(s) for s in sources for _ in range(per_input)]
        return images, conditioning, all_seeds, sources_per_image, descriptions

    def __call__(self, audio: Any, *, sample_rate: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None,
                 num_images_per_audio: int = 1, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, height: int | None = None, width: int | None = None,
                 effects: EffectChain | None = None, mix: tuple[Any, float] | None = None, batch_size: int = 4,
                 num_frames: int | None = None, fps: int | None = None, progress: bool = False,
                 return_conditioning: bool = True) -> SeeingSoundsOutput:
        """Images for ``audio``: a path, the bytes of a file, an array (with ``sample_rate``), a
        ``(sample_rate, array)`` tuple, or a list of these.

        Image ``j`` of every input uses seed ``seed + j`` (or ``seeds``; each in ``0 .. 2**32-1``), so
        inputs are compared on the same noise. ``effects`` are ``(name, params)`` pairs applied after
        mixing in ``mix = (other, ratio)``. Unset settings take the preset's defaults. A video
        generator returns ``videos`` (``uint8 [num_frames, H, W, 3]`` each, meant to play at ``fps``)
        and their middle frames as ``images``.

        The inputs stream through :attr:`conditioner` ``batch_size`` at a time: the device holds one
        chunk's conditioning. ``return_conditioning=False`` also keeps no CPU copy (``conditioning`` is ``{}``).
        """
        settings = self.resolve_settings(num_inference_steps, guidance_scale, height, width, num_images_per_audio,
                                         batch_size, num_frames=num_frames)
        frame_rate = self.frame_rate(fps)
        make = self._generate_batch(self.negative_conditioning(self.conditioner.null_conditioning(), settings["guidance_scale"]), settings)
        made, cond, all_seeds, sources, descriptions = self._stream(
            audio, make, sample_rate=sample_rate, seed=seed, seeds=seeds, per_input=num_images_per_audio,
            effects=effects, mix=mix, batch_size=batch_size, keep=return_conditioning, progress=progress,
            desc="generating")
        return self._output(made, cond, all_seeds, sources, descriptions, settings, frame_rate)

    def frame_rate(self, fps: int | None) -> int | None:
        """A video's frame rate (``fps`` checked, or the preset's); ``None`` for images (where ``fps`` is refused)."""
        if not self.output_kind.video:
            if fps is not None:
                raise ConfigError(f"fps is for video generators; {self.preset.name} makes images")
            return None
        return check_fps(self.preset.fps if fps is None else fps)

    def _output(self, made: list[Any], cond: Mapping[str, torch.Tensor], seeds: list[int], sources: list[str],
                descriptions: list[str], settings: Mapping[str, Any], fps: int | None) -> SeeingSoundsOutput:
        videos: list[np.ndarray] = []
        images = made
        if self.output_kind.video:
            videos = [np.asarray(v) for v in made]
            images = [Image.fromarray(v[len(v) // 2]) for v in videos]
        return SeeingSoundsOutput(
            images=images, conditioning={k: v.float().cpu() for k, v in cond.items()}, seeds=seeds, sources=sources,
            effects=descriptions, settings={**settings, **({"fps": fps} if fps is not None else {})}, videos=videos,
        )

    # ---- editing: image-to-image and inpainting driven by sound ------------------------------
    def edit_pipeline(self, *, inpaint: bool = False) -> Any:
        """The generator's image-to-image (or inpainting) twin, built once from the loaded modules.

        ``AutoPipelineForImage2Image/Inpainting.from_pipe`` shares the transformer/UNet, VAE and
        scheduler config with :attr:`generator`: no weights are loaded, and the text encoders stay ``None``.
        """
        key = "inpaint" if inpaint else "img2img"
        if key not in self._edit_pipes:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

            if self.output_kind.video:
                raise ConfigError(f"{self.preset.name} is a video generator: editing needs an image checkpoint")
            auto = AutoPipelineForInpainting if inpaint else AutoPipelineForImage2Image
            try:
                pipe = auto.from_pipe(self.generator)
            except (ValueError, KeyError) as exc:
                raise ConfigError(f"diffusers has no {key} pipeline for {type(self.generator).__name__}: {exc}") from exc
            pipe.set_progress_bar_config(disable=True)
            self._edit_pipes[key] = pipe
        return self._edit_pipes[key]

    def edit(self, image: Any, audio: Any, *, strength: float = 0.6, mask: Any = None, seed: int = 0,
             seeds: Sequence[int] | None = None, num_images_per_audio: int = 1, num_inference_steps: int | None = None,
             guidance_scale: float | None = None, height: int | None = None, width: int | None = None,
             effects: EffectChain | None = None, mix: tuple[Any, float] | None = None, sample_rate: int | None = None,
             batch_size: int = 4, progress: bool = False, return_conditioning: bool = True) -> SeeingSoundsOutput:
        """Edit ``image`` with a sound: the generator's image-to-image (or, with ``mask``, inpainting)
        pipeline, fed the aligner's predictions for ``audio`` exactly as :meth:`__call__` is.

        Args:
            image: the picture to edit (path, PIL image or ``uint8`` array).
            audio: as for :meth:`__call__` (one input or a list; effects and mix apply the same way).
            strength: share of the diffusion run over the input, in (0, 1]: low keeps the picture,
                1 ignores it. ``int(steps * strength)`` steps run, so it must be at least one.
            mask: white where the picture may change (path, PIL image or array of the image's size);
                ``None`` edits everywhere.
            height, width: output size (default: the image's size, rounded down to the generator's
                size multiple); the image and mask are resized to it.

        Returns a :class:`SeeingSoundsOutput` whose ``settings`` also hold ``strength`` and ``masked``.
        The inputs stream through :attr:`conditioner` as in :meth:`__call__`.
        """
        strength = check_strength(strength)
        picture, mask_image = load_edit_inputs(image, mask)
        multiple = self.size_multiple
        width = width if width is not None else max(multiple, picture.width // multiple * multiple)
        height = height if height is not None else max(multiple, picture.height // multiple * multiple)
        settings = self.resolve_settings(num_inference_steps, guidance_scale, height, width, num_images_per_audio, batch_size)
        check_edit_steps(strength, settings["num_inference_steps"])
        size = (settings["width"], settings["height"])
        picture = picture.resize(size, Image.LANCZOS) if picture.size != size else picture
        if mask_image is not None and mask_image.size != size:
            mask_image = mask_image.resize(size, Image.NEAREST)
        pipe = self.edit_pipeline(inpaint=mask_image is not None)
        device = getattr(pipe, "_execution_device", None) or self.device
        dtype = self.backend._pipe_dtype(pipe)
        negative = self.negative_conditioning(self.conditioner.null_conditioning(), settings["guidance_scale"])
        negative = {k: v.to(device=device, dtype=dtype) for k, v in negative.items()} if negative else None

        def make(rows: dict[str, torch.Tensor], seeds: list[int]) -> list[Any]:
            m = len(seeds)
            part = {k: v.to(device=device, dtype=dtype) for k, v in rows.items()}
            neg = {k: v.unsqueeze(0).expand(m, *v.shape) for k, v in negative.items()} if negative else None
            kwargs = {**self.backend.call_kwargs(part, neg), "image": [picture] * m, "strength": strength,
                      "num_inference_steps": settings["num_inference_steps"], "guidance_scale": settings["guidance_scale"],
                      "height": settings["height"], "width": settings["width"], "output_type": "pil",
                      "generator": [torch.Generator("cpu").manual_seed(s) for s in seeds]}
            if mask_image is not None:
                kwargs["mask_image"] = [mask_image] * m
            try:
                return list(pipe(**_accepted(pipe.__call__, kwargs)).images)
            except ValueError as exc:  # diffusers' own input checks (e.g. an inpaint pipeline's channel count)
                raise ConfigError(f"{type(pipe).__name__} refused this edit: {str(exc).splitlines()[0]}") from exc

        images, cond, all_seeds, sources, descriptions = self._stream(
            audio, make, sample_rate=sample_rate, seed=seed, seeds=seeds, per_input=num_images_per_audio,
            effects=effects, mix=mix, batch_size=batch_size, keep=return_conditioning, progress=progress,
            desc="editing")
        settings = {**settings, "strength": strength, "masked": mask_image is not None}
        return self._output(images, cond, all_seeds, sources, descriptions, settings, None)

    # ---- text path --------------------------------------------------------------------------
    @property
    def text_pipeline(self) -> Any:
        """The generator's text encoders (loaded on first use, for :meth:`from_caption` only).

        With ``cpu_offload`` they are loaded on the CPU and offloaded like the generator: each
        moves to the accelerator only while it runs (T5-XXL never sits on a small GPU).
        """
        if self._text_pipe is None:
            logger.info("loading the text encoders of %s", self.backend.model_id)
            if self.cpu_offload:
                pipe = self.backend.load_text_pipeline(device="cpu", dtype=self.dtype)
                pipe.enable_model_cpu_offload(device=self.device)
            else:
                pipe = self.backend.load_text_pipeline(device=self.device, dtype=self.dtype)
            self._text_pipe = pipe
        return self._text_pipe

    def encode_captions(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """The generator's own embeddings of ``captions`` (what the aligner was trained to predict)."""
        return self.backend.encode_captions(list(captions), pipe=self.text_pipeline)

    def from_caption(self, caption: str | Sequence[str], *, seed: int = 0, seeds: Sequence[int] | None = None,
                     num_images_per_caption: int = 1, num_inference_steps: int | None = None,
                     guidance_scale: float | None = None, height: int | None = None, width: int | None = None,
                     batch_size: int = 4, num_frames: int | None = None, fps: int | None = None,
                     progress: bool = False) -> SeeingSoundsOutput:
        """Images (or videos) from captions through the generator's own text encoders (the text path).

        Same seeds and settings as :meth:`__call__`, so audio- and text-driven images compare
        side by side. The negative conditioning is the text encoders' embedding of "".
        """
        captions = [caption] if isinstance(caption, str) else [str(c) for c in caption]
        if not captions:
            raise ConfigError("give at least one caption")
        settings = self.resolve_settings(num_inference_steps, guidance_scale, height, width, num_images_per_caption,
                                         batch_size, num_frames=num_frames)
        frame_rate = self.frame_rate(fps)
        all_seeds = self._seeds(seed, seeds, len(captions), num_images_per_caption)
        encoded = self.encode_captions(captions + [""])
        cond = {k: v[:-1].to(self.device, self.dtype) for k, v in encoded.items()}
        null = {k: v[-1].to(self.device, self.dtype) for k, v in encoded.items()}
        rows = {k: v.repeat_interleave(num_images_per_caption, dim=0) for k, v in cond.items()}
        made = self.generate_from_conditioning(rows, seeds=all_seeds, negative=self.negative_conditioning(null, settings["guidance_scale"]),
                                               settings=settings, batch_size=batch_size, progress=progress)
        sources = [c for c in captions for _ in range(num_images_per_caption)]
        return self._output(made, cond, all_seeds, sources, [], settings, frame_rate)
