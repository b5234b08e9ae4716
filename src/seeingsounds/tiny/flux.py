"""A tiny random FLUX.1 pipeline (diffusers' fast-test sizes) with locally built tokenizers."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import CLIPTextModel, T5Config, T5EncoderModel

from seeingsounds.tiny.text_encoders import tiny_clip_text_config
from seeingsounds.tiny.tokenizers import build_clip_tokenizer, build_t5_tokenizer

#: T5 width (sequence targets) and CLIP width (pooled target) differ on purpose, so a swapped
#: head cannot pass a shape test by accident.
T5_DIM, CLIP_DIM = 32, 24


def tiny_flux_text_encoders(folder: Path) -> tuple[CLIPTextModel, T5EncoderModel]:
    clip_tok = build_clip_tokenizer(folder / "tokenizer")
    t5_tok = build_t5_tokenizer(folder / "tokenizer_2")
    clip = CLIPTextModel(tiny_clip_text_config(clip_tok, CLIP_DIM, projection_dim=CLIP_DIM))
    t5 = T5EncoderModel(T5Config(
        vocab_size=len(t5_tok), d_model=T5_DIM, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu", pad_token_id=t5_tok.pad_token_id, eos_token_id=t5_tok.eos_token_id,
        is_encoder_decoder=False, use_cache=False,
    ))
    return clip, t5


def tiny_flux_image_models(joint_attention_dim: int, pooled_projection_dim: int) -> tuple[FluxTransformer2DModel, AutoencoderKL]:
    """A tiny FLUX transformer consuming the given conditioning widths, and a tiny VAE (no downsampling)."""
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=joint_attention_dim, pooled_projection_dim=pooled_projection_dim,
        axes_dims_rope=[4, 4, 8], guidance_embeds=True,
    )
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035,
    )
    return transformer, vae


def build_tiny_flux(folder: Path) -> None:
    torch.manual_seed(0)
    clip, t5 = tiny_flux_text_encoders(folder)
    transformer, vae = tiny_flux_image_models(T5_DIM, CLIP_DIM)
    from transformers import AutoTokenizer

    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, transformer=transformer,
        text_encoder=clip, tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
        text_encoder_2=t5, tokenizer_2=AutoTokenizer.from_pretrained(folder / "tokenizer_2"),
    )
    pipe.save_pretrained(folder)
