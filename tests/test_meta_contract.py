"""Real-size contract without weights: the flux-dev aligner feeds the real FLUX.1-dev transformer.

Every model is built from its real configuration on the ``meta`` device (shapes only, no memory,
no download), so this checks the paper's setup at full size on any machine.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxTransformer2DModel
from transformers import ASTConfig, ASTModel, CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from seeingsounds.generators.flux import flux_conditioning_spec
from seeingsounds.model import create_aligner
from seeingsounds.presets import get_preset

T5_XXL = dict(d_model=4096, d_ff=10240, num_layers=24, num_heads=64, d_kv=64, vocab_size=32128,
              feed_forward_proj="gated-gelu", is_encoder_decoder=False)
CLIP_L_TEXT = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                   vocab_size=49408, max_position_embeddings=77)


@pytest.fixture(scope="module")
def real_size():
    with torch.device("meta"):
        ast = ASTModel(ASTConfig())  # the AudioSet AST's config is ASTConfig()'s defaults
        t5 = T5EncoderModel(T5Config(**T5_XXL))
        clip = CLIPTextModel(CLIPTextConfig(**CLIP_L_TEXT))
        transformer = FluxTransformer2DModel(guidance_embeds=True)  # FLUX.1-dev defaults
    return ast, t5, clip, transformer


def test_flux_dev_aligner_feeds_the_real_flux_transformer(real_size):
    ast, t5, clip, transformer = real_size
    preset = get_preset("flux-dev")
    spec = flux_conditioning_spec(transformer.config, preset.max_sequence_length)
    with torch.device("meta"):
        tokens = ast(input_values=torch.empty(2, 1024, 128)).last_hidden_state
        aligner = create_aligner(preset, ast.config.hidden_size, spec)
        pred = aligner(tokens)
        t5_target = t5(input_ids=torch.zeros(2, 512, dtype=torch.long)).last_hidden_state
        clip_target = clip(input_ids=torch.zeros(2, 77, dtype=torch.long)).pooler_output
        out = transformer(
            hidden_states=torch.empty(2, 1024, 64), encoder_hidden_states=pred["prompt_embeds"],
            pooled_projections=pred["pooled_prompt_embeds"], timestep=torch.empty(2),
            img_ids=torch.empty(1024, 3), txt_ids=torch.empty(512, 3), guidance=torch.empty(2),
        ).sample
    assert tuple(tokens.shape) == (2, 1214, 768)  # 10.24 s at 16 kHz -> 1212 patches + 2
    assert tuple(pred["prompt_embeds"].shape) == tuple(t5_target.shape) == (2, 512, 4096)
    assert tuple(pred["pooled_prompt_embeds"].shape) == tuple(clip_target.shape) == (2, 768)
    assert tuple(out.shape) == (2, 1024, 64)  # 512x512 image: 64x64 latents packed 2x2
    assert sum(p.numel() for p in transformer.parameters()) == pytest.approx(11.9e9, rel=0.01)


@pytest.mark.parametrize(("order", "millions"), [("adapter_first", 78.1), ("pool_first", 11.7)])
def test_flux_dev_aligner_parameter_count(real_size, order, millions):
    """Pooling first keeps attention in the encoder's 768 dims instead of T5's 4096."""
    ast, _, _, transformer = real_size
    preset = get_preset("flux-dev")
    with torch.device("meta"):
        aligner = create_aligner(preset, 768, flux_conditioning_spec(transformer.config, 512), order=order)
    assert aligner.num_parameters() / 1e6 == pytest.approx(millions, abs=0.1)
