"""A tiny random Wan 2.1 text-to-video pipeline (diffusers' fast-test sizes), built locally from configs."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

from seeingsounds.tiny.tokenizers import build_t5_tokenizer

#: umT5 width of the tiny twin (the real model's is 4096)
TEXT_DIM = 32


def tiny_wan_models(text_dim: int = TEXT_DIM) -> tuple[WanTransformer3DModel, AutoencoderKLWan]:
    """A tiny Wan transformer consuming ``text_dim``-wide tokens and a tiny causal video VAE
    (8x spatial, 4x temporal compression, as the real one)."""
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=text_dim, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    )
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    return transformer, vae


def build_tiny_wan(folder: Path) -> None:
    torch.manual_seed(0)
    build_t5_tokenizer(folder / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=TEXT_DIM, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu", pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        is_encoder_decoder=False, use_cache=False,
    ))
    transformer, vae = tiny_wan_models()
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))
    pipe.save_pretrained(folder)
