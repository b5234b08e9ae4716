"""A tiny random Stable Diffusion XL pipeline (diffusers' fast-test sizes) with locally built tokenizers."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from seeingsounds.tiny.text_encoders import tiny_clip_text_config
from seeingsounds.tiny.tokenizers import build_clip_tokenizer

#: CLIP widths 32 + 32 -> cross attention 64 (768 + 1280 = 2048 in the real model); the second
#: CLIP projects to 24 (1280 real) -> the UNet's added embedding input is 6 * 8 + 24.
CLIP_DIM, POOLED_DIM, TIME_EMBED_DIM = 32, 24, 8


def _clip_config(tokenizer, projection_dim: int) -> CLIPTextConfig:
    return tiny_clip_text_config(tokenizer, CLIP_DIM, projection_dim=projection_dim)


def build_tiny_sdxl(folder: Path) -> None:
    torch.manual_seed(0)
    tok = build_clip_tokenizer(folder / "tokenizer")
    build_clip_tokenizer(folder / "tokenizer_2")
    unet = UNet2DConditionModel(
        block_out_channels=(2, 4), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * TIME_EMBED_DIM + POOLED_DIM, cross_attention_dim=2 * CLIP_DIM,
        norm_num_groups=1,
    )
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3, norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, sample_size=64,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae, unet=unet, scheduler=scheduler,
        text_encoder=CLIPTextModel(_clip_config(tok, CLIP_DIM)),
        tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(tok, POOLED_DIM)),
        tokenizer_2=AutoTokenizer.from_pretrained(folder / "tokenizer_2"),
    )
    pipe.save_pretrained(folder)
