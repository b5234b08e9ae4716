"""``SeeingSoundsPipeline``: audio -> frozen audio encoder -> aligner -> frozen generator -> images.

The generator is loaded without its text encoders: the aligner's predictions take their place.
:meth:`SeeingSoundsPipeline.from_caption` is the text path for side-by-side comparisons; it loads
the generator's own text encoders on first use, and only then.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from seeingsounds.errors import AudioLoadError, ConfigError

logger = logging.getLogger(__name__)

#: ``dtype`` names accepted by :meth:`SeeingSoundsPipeline.from_pretrained` and the CLI
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}

Effects = Sequence[tuple[str, Mapping[str, Any]]]


@dataclass
class SeeingSoundsOutput:
    """What one call returns.

    Attributes:
        images: PIL images, audio-major: all images of the first input, then the second, ...
        conditioning: the aligner's predictions, one row per *input* (not per image), float32 on the CPU.
        seeds: the seed of every image.
        sources: the input every image came from (its path, ``"<array>"``, ``"<bytes>"`` or the caption).
        effects: the descriptions d_j of the effects applied to the inputs (``[]`` without effects).
        settings: the resolved generation settings (steps, guidance, height, width).
    """

    images: list[Any]
    conditioning: dict[str, torch.Tensor]
    seeds: list[int]
    sources: list[str]
    effects: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def default_device() -> torch.device:
    """cuda, else mps, else cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """bf16 on cuda, fp32 elsewhere, unless asked otherwise ("fp32", "fp16", "bf16" or a torch dtype)."""
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ConfigError(f"dtype must be one of float32, float16, bfloat16, got {dtype}")
        return dtype
    if str(dtype).lower() not in DTYPES:
        raise ConfigError(f"dtype must be one of auto, {', '.join(sorted(DTYPES))}; got {dtype!r}")
    return DTYPES[str(dtype).lower()]


def _as_sources(audio: Any) -> list[Any]:
    """One input or a list of inputs -> a list of inputs (a ``(sr, array)`` tuple is one input)."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    if isinstance(audio, list):
        if not audio:
            raise ConfigError("got an empty list of audio inputs")
        return [a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else a for a in audio]
    return [audio]


def _name(source: Any) -> str:
    from seeingsounds.audio.io import source_name

    if isinstance(source, tuple):
        return "<array>"
    return source_name(source)


class SeeingSoundsPipeline:
    """Maps sounds to images with a trained aligner and a frozen diffusers generator.

    Build it with :meth:`from_pretrained`. Attributes: ``aligner``, ``encoder`` (frozen audio
    encoder), ``backend`` (generator backend), ``generator`` (diffusers pipeline, text encoders
    ``None``), ``preset``, ``device``, ``dtype``, ``checkpoint``.
    """

    def __init__(self, *, aligner: Any, encoder: Any, backend: Any, generator: Any, preset: Any,
                 device: torch.device, dtype: torch.dtype, checkpoint: str | None = None, lora: str | None = None):
        self.aligner = aligner
        self.encoder = encoder
        self.backend = backend
        self.generator = generator
        self.preset = preset
        self.device = device
        self.dtype = dtype
        self.checkpoint = checkpoint
        self.lora = lora
        self._text_pipe: Any = None

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
            device: "cuda", "mps", "cpu"; default: the first available in that order.
            dtype: "bf16" (default on cuda), "fp16", "fp32" (default elsewhere) or a torch dtype.
            lora: LoRA weights for the generator (a file or folder ``load_lora_weights`` reads).
            cpu_offload: keep the generator's modules on the CPU until used (small GPUs).

        The checkpoint's conditioning shapes are checked against the generator's configs before any
        weights are loaded; a mismatch raises :class:`ConfigError`.
        """
        from seeingsounds.aligner import SeeingSoundsAligner
        from seeingsounds.checkpoint import resolve_checkpoint
        from seeingsounds.model import load_backend, load_encoder
        from seeingsounds.presets import get_preset

        device = torch.device(device) if device is not None else default_device()
        dtype = resolve_dtype(dtype, device)
        if cpu_offload and device.type == "cpu":
            raise ConfigError("cpu_offload moves modules to an accelerator when used: give device='cuda' (or drop it)")
        if lora is not None and str(lora).startswith("~"):
            lora = os.path.expanduser(str(lora))  # not a hub id; neither diffusers nor a quoted shell argument expands it
        if lora is not None and not os.path.exists(lora) and str(lora).startswith((".", "/", "~")):
            raise ConfigError(f"LoRA weights {lora} do not exist: give a .safetensors file, its folder or a hub id")
        folder = resolve_checkpoint(checkpoint)
        aligner = SeeingSoundsAligner.from_pretrained(folder)
        if preset is not None:
            chosen = get_preset(preset)
        elif aligner.preset:
            chosen = get_preset(aligner.preset)
        else:
            raise ConfigError(f"checkpoint {checkpoint} records no preset: pass preset=<name> (see `seeingsounds presets`)")
        if generator_id is not None:
            chosen = chosen.replace(generator_id=str(generator_id))
        backend = load_backend(chosen)
        backend.check_aligner(aligner.conditioning_shapes)  # configs only: no weights loaded yet
        encoder = load_encoder(chosen, device=device, dtype=dtype)
        if encoder.hidden_size != aligner.input_dim:
            raise ConfigError(
                f"checkpoint {checkpoint} expects audio tokens of width {aligner.input_dim}, but the {chosen.encoder} "
                f"encoder {chosen.encoder_id} gives {encoder.hidden_size}: use the preset the checkpoint was trained with"
            )
        generator = backend.load_image_pipeline(device=device, dtype=dtype, lora=str(lora) if lora else None,
                                                cpu_offload=cpu_offload)
        if backend.uses_negative and all(not aligner.null_conditioning(n).any() for n in aligner.conditioning_shapes):
            logger.warning("checkpoint %s has no null (empty-caption) conditioning: guidance will use zeros as "
                           "negatives; set it with aligner.set_null_conditioning(backend.encode_captions(['']))", checkpoint)
        aligner = aligner.to(device=device, dtype=dtype).eval()
        return cls(aligner=aligner, encoder=encoder, backend=backend, generator=generator, preset=chosen,
                   device=device, dtype=dtype, checkpoint=str(checkpoint), lora=str(lora) if lora else None)

    # ---- audio -> conditioning --------------------------------------------------------------
    def load_waveforms(self, audio: Any, *, sample_rate: int | None = None, effects: Effects | None = None,
                       mix: tuple[Any, float] | None = None) -> tuple[list[np.ndarray], list[str], list[str]]:
        """Load inputs at the encoder's rate, mix in ``mix = (other, ratio)``, then apply ``effects``.

        Returns ``(waveforms, source names, effect descriptions)``.
        """
        from seeingsounds.audio.effects import apply_effects, describe_effect
        from seeingsounds.audio.effects import mix as mix_waves
        from seeingsounds.audio.io import load_audio

        sources = _as_sources(audio)
        effects = list(effects or [])
        for item in effects:  # check every effect before decoding any audio
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], Mapping)):
                raise ConfigError(f"an effect must be (name, params dict), got {item!r}")
            describe_effect(item[0], **item[1])
        other = None
        if mix is not None:
            if not (isinstance(mix, (tuple, list)) and len(mix) == 2):
                raise ConfigError(f"mix must be (other audio, ratio), got {mix!r}")
            other = load_audio(mix[0], target_sr=self.encoder.sample_rate)
        sr = self.encoder.sample_rate
        waves, names, descriptions = [], [], []
        for source in sources:
            rate = sample_rate if isinstance(source, np.ndarray) else None
            if isinstance(source, np.ndarray) and sample_rate is None:
                raise AudioLoadError("<array>", "an array needs sample_rate=<Hz> (or pass a (sample_rate, array) tuple)")
            wave = load_audio(source, sample_rate=rate, target_sr=sr)
            if other is not None:
                wave = mix_waves(wave, other, float(mix[1]))
            wave, descriptions = apply_effects(wave, sr, effects)
            waves.append(wave)
            names.append(_name(source))
        return waves, names, descriptions

    @torch.no_grad()
    def conditioning_from_waveforms(self, waves: Sequence[np.ndarray], *, batch_size: int = 4) -> dict[str, torch.Tensor]:
        """Encoder + aligner on waveforms at the encoder's rate: ``{name: [N, ...]}`` on the pipeline's device."""
        tokens = self.encoder.encode(list(waves), batch_size=batch_size)
        outs = [self.aligner(tokens[i : i + batch_size].to(self.device, self.dtype)) for i in range(0, len(tokens), batch_size)]
        return {name: torch.cat([o[name] for o in outs]) for name in outs[0]}

    def predict_conditioning(self, audio: Any, *, sample_rate: int | None = None, effects: Effects | None = None,
                             mix: tuple[Any, float] | None = None, batch_size: int = 4) -> dict[str, torch.Tensor]:
        """The aligner's predictions only (no image): ``{name: [N, ...]}`` float32 on the CPU."""
        waves, _, _ = self.load_waveforms(audio, sample_rate=sample_rate, effects=effects, mix=mix)
        cond = self.conditioning_from_waveforms(waves, batch_size=batch_size)
        return {k: v.float().cpu() for k, v in cond.items()}

    # ---- generation -------------------------------------------------------------------------
    def resolve_settings(self, num_inference_steps: int | None, guidance_scale: float | None, height: int | None,
                         width: int | None, num_images: int = 1, batch_size: int = 1) -> dict[str, Any]:
        """Fill unset settings from the preset and check them; returns the generate() keywords."""
        steps = self.preset.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance = self.preset.guidance_scale if guidance_scale is None else guidance_scale
        height = self.preset.height if height is None else height
        width = self.preset.width if width is None else width
        for label, value in (("num_inference_steps", steps), ("height", height), ("width", width),
                             ("num_images_per_audio", num_images), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{label} must be a positive integer, got {value!r}")
        if not isinstance(guidance, (int, float)) or guidance < 0:
            raise ConfigError(f"guidance_scale must be a number >= 0, got {guidance!r}")
        multiple = self.size_multiple
        if height % multiple or width % multiple:
            raise ConfigError(
                f"height and width must be multiples of {multiple} for this generator, got {width}x{height}: "
                f"try {max(multiple, width // multiple * multiple)}x{max(multiple, height // multiple * multiple)}"
            )
        return {"num_inference_steps": int(steps), "guidance_scale": float(guidance), "height": int(height), "width": int(width)}

    @property
    def size_multiple(self) -> int:
        """Image sizes must be multiples of this (VAE downsampling x latent patching)."""
        factor = int(getattr(self.generator, "vae_scale_factor", 8))
        if type(self.generator).__name__.startswith("Flux"):
            return factor * 2  # FLUX packs 2x2 latent patches
        transformer = getattr(self.generator, "transformer", None)
        if transformer is not None:
            factor *= int(getattr(transformer.config, "patch_size", 1) or 1)
        return factor

    @staticmethod
    def _seeds(seed: int, seeds: Sequence[int] | None, n_inputs: int, per_input: int) -> list[int]:
        if seeds is None:
            return [int(seed) + j for _ in range(n_inputs) for j in range(per_input)]
        seeds = [int(s) for s in seeds]
        if len(seeds) == per_input:
            return seeds * n_inputs
        if len(seeds) == per_input * n_inputs:
            return seeds
        raise ConfigError(
            f"got {len(seeds)} seeds for {n_inputs} inputs x {per_input} images: give {per_input} "
            f"(reused for every input) or {per_input * n_inputs} (one per image)"
        )

    def _negative(self, null: Mapping[str, torch.Tensor], guidance: float) -> dict[str, torch.Tensor] | None:
        if not self.backend.does_guidance(guidance):
            return None
        return self.backend.negative_conditioning(self.generator, null)

    def generate_from_conditioning(self, conditioning: Mapping[str, torch.Tensor], *, seeds: Sequence[int],
                                   negative: Mapping[str, torch.Tensor] | None, settings: Mapping[str, Any],
                                   batch_size: int = 4, progress: bool = False) -> list[Any]:
        """One image per row of ``conditioning`` with its seed; ``negative`` is per sample (no batch axis)."""
        from tqdm.auto import tqdm

        n = len(seeds)
        images: list[Any] = []
        starts = range(0, n, batch_size)
        for start in tqdm(starts, desc="generating", unit="batch", disable=not progress):
            rows = {k: v[start : start + batch_size] for k, v in conditioning.items()}
            m = len(next(iter(rows.values())))
            neg = {k: v.unsqueeze(0).expand(m, *v.shape) for k, v in negative.items()} if negative else None
            images += self.backend.generate(self.generator, rows, seeds=seeds[start : start + batch_size], negative=neg,
                                            **settings)
        return images

    def __call__(self, audio: Any, *, sample_rate: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None,
                 num_images_per_audio: int = 1, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, height: int | None = None, width: int | None = None,
                 effects: Effects | None = None, mix: tuple[Any, float] | None = None, batch_size: int = 4,
                 progress: bool = False) -> SeeingSoundsOutput:
        """Images for ``audio``: a path, the bytes of a file, an array (with ``sample_rate``), a
        ``(sample_rate, array)`` tuple, or a list of these.

        Image ``j`` of every input uses seed ``seed + j`` (or ``seeds``), so inputs are compared on
        the same noise. ``effects`` are ``(name, params)`` pairs applied after mixing in
        ``mix = (other, ratio)``. Unset settings take the preset's defaults.
        """
        settings = self.resolve_settings(num_inference_steps, guidance_scale, height, width, num_images_per_audio, batch_size)
        waves, names, descriptions = self.load_waveforms(audio, sample_rate=sample_rate, effects=effects, mix=mix)
        all_seeds = self._seeds(seed, seeds, len(waves), num_images_per_audio)
        cond = self.conditioning_from_waveforms(waves, batch_size=batch_size)
        rows = {k: v.repeat_interleave(num_images_per_audio, dim=0) for k, v in cond.items()}
        null = {name: self.aligner.null_conditioning(name) for name in cond}
        images = self.generate_from_conditioning(rows, seeds=all_seeds, negative=self._negative(null, settings["guidance_scale"]),
                                                 settings=settings, batch_size=batch_size, progress=progress)
        return SeeingSoundsOutput(
            images=images, conditioning={k: v.float().cpu() for k, v in cond.items()}, seeds=all_seeds,
            sources=[n for n in names for _ in range(num_images_per_audio)], effects=descriptions, settings=settings,
        )

    # ---- text path --------------------------------------------------------------------------
    @property
    def text_pipeline(self) -> Any:
        """The generator's text encoders (loaded on first use, for :meth:`from_caption` only)."""
        if self._text_pipe is None:
            logger.info("loading the text encoders of %s", self.backend.model_id)
            self._text_pipe = self.backend.load_text_pipeline(device=self.device, dtype=self.dtype)
        return self._text_pipe

    def release_text_encoders(self) -> None:
        """Free the text encoders loaded by :meth:`from_caption`."""
        self._text_pipe = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def encode_captions(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """The generator's own embeddings of ``captions`` (what the aligner was trained to predict)."""
        return self.backend.encode_captions(list(captions), pipe=self.text_pipeline)

    def from_caption(self, caption: str | Sequence[str], *, seed: int = 0, seeds: Sequence[int] | None = None,
                     num_images_per_caption: int = 1, num_inference_steps: int | None = None,
                     guidance_scale: float | None = None, height: int | None = None, width: int | None = None,
                     batch_size: int = 4, progress: bool = False) -> SeeingSoundsOutput:
        """Images from captions through the generator's own text encoders (the text path).

        Same seeds and settings as :meth:`__call__`, so audio- and text-driven images compare
        side by side. The negative conditioning is the text encoders' embedding of "".
        """
        captions = [caption] if isinstance(caption, str) else [str(c) for c in caption]
        if not captions:
            raise ConfigError("give at least one caption")
        settings = self.resolve_settings(num_inference_steps, guidance_scale, height, width, num_images_per_caption, batch_size)
        all_seeds = self._seeds(seed, seeds, len(captions), num_images_per_caption)
        encoded = self.encode_captions(captions + [""])
        cond = {k: v[:-1].to(self.device, self.dtype) for k, v in encoded.items()}
        null = {k: v[-1].to(self.device, self.dtype) for k, v in encoded.items()}
        rows = {k: v.repeat_interleave(num_images_per_caption, dim=0) for k, v in cond.items()}
        images = self.generate_from_conditioning(rows, seeds=all_seeds, negative=self._negative(null, settings["guidance_scale"]),
                                                 settings=settings, batch_size=batch_size, progress=progress)
        return SeeingSoundsOutput(
            images=images, conditioning={k: v.float().cpu() for k, v in cond.items()}, seeds=all_seeds,
            sources=[c for c in captions for _ in range(num_images_per_caption)], settings=settings,
        )
