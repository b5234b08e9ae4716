"""The tiny CLIP text-encoder configuration shared by the tiny generator pipelines."""

from __future__ import annotations

from typing import Any

from transformers import CLIPTextConfig


def tiny_clip_text_config(tokenizer: Any, hidden_size: int, *, projection_dim: int | None = None,
                          intermediate_size: int = 37, num_hidden_layers: int = 2) -> CLIPTextConfig:
    """A small CLIP text config whose vocabulary and special tokens come from ``tokenizer``."""
    extra = {} if projection_dim is None else {"projection_dim": projection_dim}
    return CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size, num_attention_heads=4,
        num_hidden_layers=num_hidden_layers, max_position_embeddings=77, hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
