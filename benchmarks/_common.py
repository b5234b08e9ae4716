"""Shared by the benchmarks: the machine's name, stage timing with the accelerator synchronised,
random weights built directly on the device, and the published configurations of the real models.

The real-size configurations are copied from the models' ``config.json`` files on the hub (no download
needed to build them); each has a tiny twin with the same structure at toy widths, to check a
benchmark on a CPU. Random weights cost the same FLOPs as the real ones, so timings stand for the
real models (the images are noise).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

# ---- FLUX.1 (black-forest-labs/FLUX.1-dev and -schnell) -------------------------------------------
#: ``vae/config.json``
FLUX_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                layers_per_block=2, norm_num_groups=32, sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
                use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=True)
#: ``scheduler/scheduler_config.json``
FLUX_SCHEDULER = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15,
                      num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True)
#: the transformer's config is ``FluxTransformer2DModel``'s defaults (+ ``guidance_embeds`` for dev); toy widths:
TINY_FLUX_TRANSFORMER = dict(num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                             joint_attention_dim=64, pooled_projection_dim=32, axes_dims_rope=(4, 4, 8))
TINY_FLUX_VAE = dict(block_out_channels=(8, 8, 8, 8), norm_num_groups=4)

# ---- AST (MIT/ast-finetuned-audioset-10-10-0.4593: ASTConfig()'s defaults) ------------------------
TINY_AST = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37)

# ---- text encoders -------------------------------------------------------------------------------
#: T5-XXL encoder (FLUX.1 ``text_encoder_2/config.json``)
T5_XXL = dict(d_model=4096, d_ff=10240, num_layers=24, num_heads=64, d_kv=64, vocab_size=32128,
              feed_forward_proj="gated-gelu", is_encoder_decoder=False)
TINY_T5 = dict(d_model=32, d_ff=37, num_layers=2, num_heads=4, d_kv=8, vocab_size=1000,
               feed_forward_proj="gated-gelu", is_encoder_decoder=False)

# ---- SD-Turbo (stabilityai/sd-turbo: the SD 2.1 UNet and VAE) ---------------------------------------
SD_TURBO_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                     block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20),
                     cross_attention_dim=1024, use_linear_projection=True, norm_num_groups=32,
                     down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                     up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
              down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
              layers_per_block=2, norm_num_groups=32, sample_size=768, scaling_factor=0.18215)
SD_TURBO_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          timestep_spacing="trailing", steps_offset=1)
TINY_SD_UNET = dict(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, attention_head_dim=(2, 4),
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=24, norm_num_groups=4)
TINY_SD_VAE = dict(block_out_channels=(8, 8, 8, 8), norm_num_groups=4)

# ---- Wan 2.1 T2V 1.3B (Wan-AI/Wan2.1-T2V-1.3B-Diffusers ``transformer/config.json``; the VAE's is
# ``AutoencoderKLWan``'s defaults) ----------------------------------------------------------------------
WAN_1_3B = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)


# ---- machine, timing -------------------------------------------------------------------------------
def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def sync(device: torch.device) -> None:
    """Wait for the accelerator's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Wall-clock seconds per named stage, the accelerator synchronised around each measurement."""

    def __init__(self, device: torch.device, stages: tuple[str, ...] = ()):
        self.device = device
        self.times: dict[str, list[float]] = {s: [] for s in stages}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        sync(self.device)
        start = time.perf_counter()
        yield
        sync(self.device)
        self.times.setdefault(name, []).append(time.perf_counter() - start)

    def mean(self, name: str, skip: int = 0) -> float:
        values = self.times.get(name, [])[skip:]
        return sum(values) / len(values) if values else 0.0


def timed_vae_decode(vae: Any, watch: Stopwatch, stage: str = "VAE decoding") -> Callable[[], None]:
    """Wrap ``vae.decode`` so its time is recorded as ``stage``; returns a function that restores it."""
    original = vae.decode

    def decode(*args: Any, **kwargs: Any) -> Any:
        with watch.stage(stage):
            return original(*args, **kwargs)

    vae.decode = decode
    return lambda: setattr(vae, "decode", original)


# ---- random weights on the device ------------------------------------------------------------------
def random_init_(module: torch.nn.Module, std: float = 0.02) -> None:
    """Weights ~ N(0, std); norm scales 1, biases 0 (keeps activations finite through deep stacks)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, std)
            elif "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_random(factory: Callable[[], torch.nn.Module], device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """``factory()`` constructed directly on ``device`` in ``dtype`` (no host copy), random weights, frozen.

    Constructing under ``torch.device(device)`` rather than on ``meta`` + ``to_empty`` keeps the buffers
    a module computes when it is built (e.g. Wan's RoPE tables), which ``to_empty`` would leave as garbage.
    """
    with torch.device(device), default_dtype(dtype):
        module = factory()
    random_init_(module)
    return module.eval().requires_grad_(False)


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- pipelines around random full-size (or tiny) models ----------------------------------------------
def write_configs(folder: Any, components: dict[str, Any], tokenizer_max_length: int | None = None) -> str:
    """Lay out ``folder`` like a hub repository holding only the components' configs, so a generator
    backend built on it reads its conditioning spec and sizes from configs as it does for real models."""
    from pathlib import Path

    folder = Path(folder)
    for name, component in components.items():
        component.save_config(folder / name)
    if tokenizer_max_length is not None:
        (folder / "tokenizer").mkdir(parents=True, exist_ok=True)
        (folder / "tokenizer" / "tokenizer_config.json").write_text(f'{{"model_max_length": {tokenizer_max_length}}}')
    return str(folder)


def random_ast_encoder(device: torch.device, dtype: torch.dtype, tiny: bool = False) -> Any:
    """The AudioSet AST's architecture (SDPA attention), random weights, behind the project's encoder."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    from seeingsounds.encoders.ast import ASTAudioEncoder

    config = ASTConfig(**(TINY_AST if tiny else {}), attn_implementation="sdpa")
    model = build_random(lambda: ASTModel(config), device, dtype)
    return ASTAudioEncoder(model, ASTFeatureExtractor(), "random-ast")


def random_pipeline(preset_name: str, generator: Any, backend: Any, device: torch.device, dtype: torch.dtype,
                    tiny: bool = False, **aligner_options: Any) -> Any:
    """A SeeingSoundsPipeline: random AST -> an untrained aligner for ``backend``'s spec -> ``generator``."""
    from seeingsounds.model import create_aligner
    from seeingsounds.pipeline import SeeingSoundsPipeline
    from seeingsounds.presets import get_preset

    preset = get_preset(preset_name)
    encoder = random_ast_encoder(device, dtype, tiny)
    if tiny:
        aligner_options = {"hidden_dim": 64, "attention_heads": 4, **aligner_options}
    with torch.device(device):  # an untrained aligner costs the same as a trained one
        aligner = create_aligner(preset, encoder.hidden_size, backend.conditioning_spec(), **aligner_options)
    generator.set_progress_bar_config(disable=True)
    return SeeingSoundsPipeline(aligner=aligner.eval(), encoder=encoder, backend=backend, generator=generator,
                                preset=preset, device=device, dtype=dtype, checkpoint=None)


def random_flux_pipeline(device: torch.device, dtype: torch.dtype, folder: Any, *, preset: str = "flux-dev",
                         tiny: bool = False, max_sequence_length: int | None = None) -> Any:
    """FLUX.1-dev (``preset="flux-dev"``: 11.9 B parameters with guidance embeddings) or -schnell, built on ``device``."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    from seeingsounds.generators.flux import FluxBackend
    from seeingsounds.presets import get_preset

    guidance = "schnell" not in get_preset(preset).generator_id
    transformer = build_random(
        lambda: FluxTransformer2DModel(guidance_embeds=guidance, **(TINY_FLUX_TRANSFORMER if tiny else {})), device, dtype)
    vae = build_random(lambda: AutoencoderKL(**{**FLUX_VAE, **(TINY_FLUX_VAE if tiny else {})}), device, dtype)
    scheduler = FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER)
    generator = FluxPipeline(scheduler=scheduler, vae=vae, transformer=transformer, text_encoder=None, tokenizer=None,
                             text_encoder_2=None, tokenizer_2=None)
    length = max_sequence_length or get_preset(preset).max_sequence_length
    backend = FluxBackend(write_configs(folder, {"transformer": transformer, "vae": vae, "scheduler": scheduler}),
                          max_sequence_length=length)
    return random_pipeline(preset, generator, backend, device, dtype, tiny)
