"""A tiny random Stable Diffusion 3 pipeline (diffusers' fast-test sizes) with locally built tokenizers."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from transformers import AutoTokenizer, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from seeingsounds.tiny.text_encoders import tiny_clip_text_config
from seeingsounds.tiny.tokenizers import build_clip_tokenizer, build_t5_tokenizer

#: two CLIPs of width 16 (their penultimate states concatenate to 32 = the T5 width, as 768 + 1280
#: are padded to 4096 in the real model), projections 24 + 24 -> pooled 48.
CLIP_DIM, CLIP_PROJECTION, T5_DIM, MAX_SEQUENCE_LENGTH = 16, 24, 32, 16


def _clip(tokenizer) -> CLIPTextModelWithProjection:
    return CLIPTextModelWithProjection(tiny_clip_text_config(tokenizer, CLIP_DIM, projection_dim=CLIP_PROJECTION))


def build_tiny_sd3(folder: Path) -> None:
    torch.manual_seed(0)
    tok = build_clip_tokenizer(folder / "tokenizer")
    build_clip_tokenizer(folder / "tokenizer_2")
    t5_tok = build_t5_tokenizer(folder / "tokenizer_3")
    clip, clip_2 = _clip(tok), _clip(tok)
    t5 = T5EncoderModel(T5Config(
        vocab_size=len(t5_tok), d_model=T5_DIM, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu", pad_token_id=t5_tok.pad_token_id, eos_token_id=t5_tok.eos_token_id,
        is_encoder_decoder=False, use_cache=False,
    ))
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8, num_attention_heads=4,
        caption_projection_dim=32, joint_attention_dim=T5_DIM, pooled_projection_dim=2 * CLIP_PROJECTION, out_channels=4,
    )
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
        latent_channels=4, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035,
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
        text_encoder=clip, tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
        text_encoder_2=clip_2, tokenizer_2=AutoTokenizer.from_pretrained(folder / "tokenizer_2"),
        text_encoder_3=t5, tokenizer_3=AutoTokenizer.from_pretrained(folder / "tokenizer_3"),
    )
    pipe.save_pretrained(folder)
