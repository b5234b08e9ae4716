"""Tiny random Stable Diffusion 1.5 and SD-Turbo pipelines (diffusers' fast-test sizes)."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import AutoTokenizer, CLIPTextModel

from seeingsounds.tiny.text_encoders import tiny_clip_text_config
from seeingsounds.tiny.tokenizers import build_clip_tokenizer

#: text widths differ (768 vs 1024 in the real models), so one checkpoint cannot drive the other
SD_DIM, SD_TURBO_DIM = 32, 24


def _build(folder: Path, text_dim: int, scheduler) -> None:
    torch.manual_seed(0)
    tok = build_clip_tokenizer(folder / "tokenizer")
    text_encoder = CLIPTextModel(tiny_clip_text_config(tok, text_dim, intermediate_size=64, num_hidden_layers=3))
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=text_dim, norm_num_groups=2,
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3, norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4,
    )
    pipe = StableDiffusionPipeline(
        vae=vae, unet=unet, scheduler=scheduler, text_encoder=text_encoder,
        tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)


def build_tiny_sd(folder: Path) -> None:
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    _build(folder, SD_DIM, scheduler)


def build_tiny_sd_turbo(folder: Path) -> None:
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="trailing", steps_offset=1)
    _build(folder, SD_TURBO_DIM, scheduler)
