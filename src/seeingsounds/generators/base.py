"""Generator backends: a frozen diffusers pipeline that *defines* the aligner's targets.

A backend declares its conditioning spec (names and per-sample shapes of the tensors the
pipeline consumes instead of a prompt), computes training targets for captions with the
pipeline's own ``encode_prompt``, and generates images from predicted conditioning with the
text encoders never loaded.
"""

from __future__ import annotations

import abc
import gc
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from tqdm.auto import tqdm

from seeingsounds.devices import resolve_device, resolve_dtype
from seeingsounds.errors import ConfigError, hub_errors_as_config

_BACKENDS: dict[str, type[GeneratorBackend]] = {}
#: built-in backends as ``name -> "module:Class"``, imported on first use: the backend modules
#: import this one for :class:`GeneratorBackend`, so importing them here would be an import cycle
BUILTIN_BACKENDS: dict[str, str] = {
    "flux": "seeingsounds.generators.flux:FluxBackend",
    "minilm": "seeingsounds.generators.minilm:MiniLMFluxBackend",
    "sd": "seeingsounds.generators.sd:SDBackend",
    "sd3": "seeingsounds.generators.sd3:SD3Backend",
    "sdxl": "seeingsounds.generators.sdxl:SDXLBackend",
    "wan": "seeingsounds.generators.wan:WanBackend",
}


@dataclass(frozen=True)
class TensorSpec:
    """One conditioning tensor: its pipeline keyword and per-sample shape ([L, D] or [D])."""

    name: str
    shape: tuple[int, ...]

    @property
    def pooled(self) -> bool:
        return len(self.shape) == 1

    def as_head(self, aligned: bool = True) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "aligned": aligned}


@dataclass(frozen=True)
class OutputKind:
    """What a generator makes, declared by its backend: the file suffix an output is written with, and
    whether it is a video (frames, a frame rate and a poster picture) or one picture."""

    name: str
    suffix: str
    video: bool = False


IMAGE = OutputKind("image", ".png")
VIDEO = OutputKind("video", ".mp4", video=True)


def resolve_device_and_dtype(device: str | torch.device | None,
                             dtype: str | torch.dtype | None) -> tuple[torch.device, torch.dtype]:
    """Where text encoders run and in what precision (:mod:`seeingsounds.devices`; ``None`` = auto)."""
    target = resolve_device(device)
    return target, resolve_dtype(dtype, target)


def release_memory() -> None:
    """Give the memory of a released model back (``gc.collect``, and the CUDA cache when there is one)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def register_backend(name: str) -> Callable[[type[GeneratorBackend]], type[GeneratorBackend]]:
    def wrap(cls: type[GeneratorBackend]) -> type[GeneratorBackend]:
        cls.name = name
        _BACKENDS[name] = cls
        return cls

    return wrap


def available_backends() -> list[str]:
    return sorted(set(_BACKENDS) | set(BUILTIN_BACKENDS))


def create_backend(name: str, model_id: str, **kwargs: Any) -> GeneratorBackend:
    """The backend ``name`` for the diffusers pipeline at ``model_id`` (hub id or folder)."""
    if name not in _BACKENDS and name in BUILTIN_BACKENDS:
        module, _, attr = BUILTIN_BACKENDS[name].partition(":")
        cls = getattr(importlib.import_module(module), attr)  # registers itself (@register_backend)
        _BACKENDS.setdefault(name, cls)
    if name not in _BACKENDS:
        raise ConfigError(f"unknown generator backend {name!r}; available: {available_backends()}")
    return _BACKENDS[name](model_id, **kwargs)


def _follow_quiet_setting() -> None:
    """Hide diffusers' loading bars when ``DIFFUSERS_VERBOSITY=error`` (the CLI's default)."""
    import os

    if os.environ.get("DIFFUSERS_VERBOSITY") == "error":
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()


def _load_lora_without_text_encoders(pipe: Any, lora: str) -> None:
    """``pipe.load_lora_weights(lora)`` on a pipeline whose text encoders are ``None``.

    diffusers loads a LoRA's text-encoder layers into ``pipe.text_encoder`` (crashing with an
    AttributeError on ``None``); those layers are skipped here with a warning, since the text
    encoders are never loaded to generate (the aligner's predictions replace their output).
    """
    import logging

    original = getattr(pipe, "load_lora_into_text_encoder", None)
    if original is None:
        pipe.load_lora_weights(lora)
        return

    def skip_absent(state_dict: Mapping[str, Any], *args: Any, text_encoder: Any = None, **kwargs: Any) -> Any:
        if text_encoder is not None:
            return original(state_dict, *args, text_encoder=text_encoder, **kwargs)
        prefix = kwargs.get("prefix") or "text_encoder"
        if any(str(k).startswith(f"{prefix}.") for k in state_dict):
            logging.getLogger(__name__).warning(
                "LoRA %s has %s layers: skipped, the text encoders are not loaded to generate", lora, prefix)
        return None

    pipe.load_lora_into_text_encoder = skip_absent  # an instance attribute shadows the classmethod
    try:
        pipe.load_lora_weights(lora)
    finally:
        del pipe.load_lora_into_text_encoder


class GeneratorBackend(abc.ABC):
    """Wraps one diffusers pipeline class.

    Args:
        model_id: hub id or local folder of the full diffusers pipeline.
        max_sequence_length: token length of sequence targets, where the pipeline has one.
        revision: hub revision of ``model_id``.
    """

    name: ClassVar[str] = ""
    #: pipeline components that only serve ``encode_prompt`` (never loaded to generate)
    text_components: ClassVar[tuple[str, ...]] = ()
    #: components that ``encode_prompt`` does not need (not loaded to compute targets)
    image_components: ClassVar[tuple[str, ...]] = ("transformer", "vae")
    default_steps: ClassVar[int] = 10
    default_guidance: ClassVar[float] = 3.5
    #: whether ``__call__`` runs classifier-free guidance (and so needs negative conditioning)
    #: when ``guidance_scale > 1``; FLUX.1's guidance is distilled and takes no negatives
    uses_negative: ClassVar[bool] = False
    #: what the generator makes; a video backend also implements :meth:`check_num_frames` (its frame rules)
    output_kind: ClassVar[OutputKind] = IMAGE

    def __init__(self, model_id: str, *, max_sequence_length: int | None = None, revision: str | None = None):
        self.model_id = str(model_id)
        self.max_sequence_length = max_sequence_length
        self.revision = revision

    # ---- contract ---------------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def pipeline_class(cls) -> type:
        """The diffusers pipeline class."""

    @abc.abstractmethod
    def conditioning_spec(self) -> dict[str, TensorSpec]:
        """Names and shapes of the tensors the pipeline consumes, read from configs only."""

    @abc.abstractmethod
    def _encode(self, pipe: Any, captions: list[str]) -> dict[str, torch.Tensor]:
        """Targets for ``captions`` from the pipeline's own ``encode_prompt`` ([N, ...] each)."""

    @abc.abstractmethod
    def call_kwargs(self, conditioning: Mapping[str, torch.Tensor],
                    negative: Mapping[str, torch.Tensor] | None) -> dict[str, Any]:
        """Keyword arguments of the pipeline's ``__call__`` that carry the conditioning."""

    # ---- shared behaviour -------------------------------------------------------------------
    def load_config(self, subfolder: str) -> dict[str, Any]:
        """A component's config (``config.json``) without its weights."""
        from diffusers.configuration_utils import ConfigMixin

        class _Reader(ConfigMixin):
            config_name = "config.json"

        with hub_errors_as_config(self.model_id, f"{self.name} generator"):
            return dict(_Reader.load_config(self.model_id, subfolder=subfolder, revision=self.revision))

    def load_tokenizer_config(self, subfolder: str = "tokenizer") -> dict[str, Any]:
        """A tokenizer's ``tokenizer_config.json`` (e.g. ``model_max_length``) without loading it."""
        from diffusers.configuration_utils import ConfigMixin

        class _Reader(ConfigMixin):
            config_name = "tokenizer_config.json"

        with hub_errors_as_config(self.model_id, f"{self.name} generator"):
            return dict(_Reader.load_config(self.model_id, subfolder=subfolder, revision=self.revision))

    def check_num_frames(self, num_frames: Any) -> int:
        """A video length this generator accepts (a video backend's frame rules); images have none."""
        raise ConfigError(f"frames are for video generators; {self.model_id} makes images")

    def does_guidance(self, guidance_scale: float) -> bool:
        """Whether a call with ``guidance_scale`` needs negative conditioning."""
        return self.uses_negative and float(guidance_scale) > 1.0

    def negative_conditioning(self, pipe: Any, null: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The negative conditioning the pipeline would use for an empty negative prompt.

        ``null`` holds the embeddings of the empty caption (the aligner's null conditioning, or
        the text encoders' own). Backends whose pipeline uses something else override this.
        """
        return dict(null)

    def check_aligner(self, shapes: Mapping[str, Sequence[int]]) -> None:
        """Refuse an aligner whose outputs this pipeline cannot consume (before loading weights)."""
        spec = {n: s.shape for n, s in self.conditioning_spec().items()}
        got = {n: tuple(s) for n, s in shapes.items()}
        if spec != got:
            raise ConfigError(
                f"this checkpoint predicts {got}, but the {self.name} generator at {self.model_id} "
                f"consumes {spec}. A checkpoint only drives the generator it was trained for: use "
                "that preset, or train an aligner for this generator."
            )

    def load_text_pipeline(self, *, device: str | torch.device | None = None,
                           dtype: str | torch.dtype | None = None) -> Any:
        """The pipeline with its text encoders only (no transformer/UNet, no VAE).

        ``device``/``dtype`` default to :mod:`seeingsounds.devices`' choice: the accelerator in
        bf16 where supported (fp16 on other accelerators), else the CPU in fp32.
        """
        target, torch_dtype = resolve_device_and_dtype(device, dtype)
        kwargs = {c: None for c in self.image_components}
        _follow_quiet_setting()
        with hub_errors_as_config(self.model_id, f"{self.name} generator"):
            pipe = self.pipeline_class().from_pretrained(self.model_id, revision=self.revision, dtype=torch_dtype, **kwargs)
        return pipe.to(target)

    @torch.no_grad()
    def encode_captions(self, captions: Sequence[str], *, pipe: Any = None, batch_size: int = 16,
                        device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                        out_dtype: torch.dtype = torch.float32, progress: bool = False) -> dict[str, torch.Tensor]:
        """Training targets for ``captions``: ``{name: [N, ...]}`` in ``out_dtype`` on the CPU.

        Without ``pipe``, the text pipeline is loaded on ``device``/``dtype`` (see
        :meth:`load_text_pipeline`) and released (memory given back) before returning.
        """
        captions = [str(c) for c in captions]
        own = pipe is None
        if own:
            pipe = self.load_text_pipeline(device=device, dtype=dtype)
        spec = self.conditioning_spec()
        try:
            chunks: dict[str, list[torch.Tensor]] = {name: [] for name in spec}
            starts = range(0, len(captions), batch_size)
            for i in tqdm(starts, desc="encoding captions", unit="batch", disable=not progress or len(starts) < 2):
                encoded = self._encode(pipe, captions[i : i + batch_size])
                for name in spec:
                    chunks[name].append(encoded[name].detach().to("cpu", out_dtype))
                del encoded
        finally:
            if own:
                del pipe
                release_memory()
        out = {name: torch.cat(chunks[name]) if chunks[name] else torch.empty(0, *spec[name].shape, dtype=out_dtype)
               for name in spec}
        for name, s in spec.items():
            if tuple(out[name].shape[1:]) != s.shape:
                raise ConfigError(f"{self.name}: encode_prompt gave {name} {tuple(out[name].shape[1:])}, spec says {s.shape}")
        return out

    def load_image_pipeline(self, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                            lora: str | None = None, cpu_offload: bool = False) -> Any:
        """The pipeline without text encoders or tokenizers (they are never needed to generate)."""
        kwargs = {c: None for c in self.text_components}
        _follow_quiet_setting()
        with hub_errors_as_config(self.model_id, f"{self.name} generator"):
            pipe = self.pipeline_class().from_pretrained(self.model_id, revision=self.revision, dtype=dtype, **kwargs)
        if lora:
            _load_lora_without_text_encoders(pipe, lora)
        if cpu_offload:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def generate(self, pipe: Any, conditioning: Mapping[str, torch.Tensor], *, seeds: Sequence[int],
                 negative: Mapping[str, torch.Tensor] | None = None, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, height: int = 512, width: int = 512,
                 num_frames: int | None = None) -> list[Any]:
        """One output per row of ``conditioning`` (each with its own seed): PIL images here; a video
        backend returns ``uint8 [frames, H, W, 3]`` arrays of ``num_frames`` frames."""
        if num_frames is not None:
            self.check_num_frames(num_frames)
        out = pipe(**self.pipeline_kwargs(pipe, conditioning, seeds=seeds, negative=negative,
                                          num_inference_steps=num_inference_steps, guidance_scale=guidance_scale),
                   height=height, width=width, output_type="pil")
        return list(out.images)

    def pipeline_kwargs(self, pipe: Any, conditioning: Mapping[str, torch.Tensor], *, seeds: Sequence[int],
                        negative: Mapping[str, torch.Tensor] | None = None, num_inference_steps: int | None = None,
                        guidance_scale: float | None = None) -> dict[str, Any]:
        """The diffusers call's conditioning (on the pipeline's device and dtype), steps, guidance and one
        seeded generator per row: what every ``generate`` of a backend passes."""
        n = len(next(iter(conditioning.values())))
        if len(seeds) != n:
            raise ConfigError(f"got {len(seeds)} seeds for {n} conditioning rows")
        device = getattr(pipe, "_execution_device", None) or pipe.device
        dtype = self._pipe_dtype(pipe)
        cond = {k: v.to(device=device, dtype=dtype) for k, v in conditioning.items()}
        neg = {k: v.to(device=device, dtype=dtype) for k, v in negative.items()} if negative is not None else None
        return {
            **self.call_kwargs(cond, neg),
            "num_inference_steps": num_inference_steps or self.default_steps,
            "guidance_scale": self.default_guidance if guidance_scale is None else guidance_scale,
            "generator": [torch.Generator("cpu").manual_seed(int(s)) for s in seeds],
        }

    @staticmethod
    def _pipe_dtype(pipe: Any) -> torch.dtype:
        for name in ("transformer", "unet"):
            module = getattr(pipe, name, None)
            if module is not None:
                return module.dtype
        return torch.float32
