"""A tiny random AST laid out like ``MIT/ast-finetuned-audioset-10-10-0.4593`` on the hub."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

#: 64 mel bins x 200 frames (2.0 s at 16 kHz) -> 5 x 19 patches + 2 = 97 tokens of width 32
TINY_AST = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                num_mel_bins=64, max_length=200, patch_size=16, frequency_stride=10, time_stride=10)


def build_tiny_ast(folder: Path) -> None:
    torch.manual_seed(0)
    config = ASTConfig(**TINY_AST)
    ASTModel(config).save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length,
                        sampling_rate=16000).save_pretrained(folder)
