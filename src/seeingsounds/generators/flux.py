"""FLUX.1 (dev, schnell): T5-XXL sequence ``prompt_embeds`` [L, 4096] + CLIP-L ``pooled_prompt_embeds`` [768]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from seeingsounds.generators.base import GeneratorBackend, TensorSpec, register_backend

FLUX_DEV = "black-forest-labs/FLUX.1-dev"
FLUX_SCHNELL = "black-forest-labs/FLUX.1-schnell"


def flux_conditioning_spec(transformer_config: Mapping[str, Any], max_sequence_length: int) -> dict[str, TensorSpec]:
    """What a FLUX transformer consumes: ``joint_attention_dim`` tokens and a ``pooled_projection_dim`` vector."""
    return {
        "prompt_embeds": TensorSpec("prompt_embeds", (int(max_sequence_length), int(transformer_config["joint_attention_dim"]))),
        "pooled_prompt_embeds": TensorSpec("pooled_prompt_embeds", (int(transformer_config["pooled_projection_dim"]),)),
    }


@register_backend("flux")
class FluxBackend(GeneratorBackend):
    """``FluxPipeline``. Targets are exactly what ``FluxPipeline.encode_prompt`` returns: T5
    tokens padded to ``max_sequence_length`` (no attention mask) and CLIP's ``pooler_output``."""

    text_components = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")
    image_components = ("transformer", "vae")

    def __init__(self, model_id: str = FLUX_DEV, *, max_sequence_length: int | None = 512, revision: str | None = None):
        super().__init__(model_id, max_sequence_length=max_sequence_length or 512, revision=revision)

    @classmethod
    def pipeline_class(cls) -> type:
        from diffusers import FluxPipeline

        return FluxPipeline

    def conditioning_spec(self) -> dict[str, TensorSpec]:
        return flux_conditioning_spec(self.load_config("transformer"), self.max_sequence_length)

    def _encode(self, pipe: Any, captions: list[str]) -> dict[str, torch.Tensor]:
        prompt_embeds, pooled, _ = pipe.encode_prompt(
            prompt=captions, prompt_2=None, max_sequence_length=self.max_sequence_length
        )
        return {"prompt_embeds": prompt_embeds, "pooled_prompt_embeds": pooled}

    def call_kwargs(self, conditioning: Mapping[str, torch.Tensor],
                    negative: Mapping[str, torch.Tensor] | None) -> dict[str, Any]:
        # FLUX.1 uses guidance distillation: no negative prompt at the default true_cfg_scale=1.
        return {
            "prompt_embeds": conditioning["prompt_embeds"],
            "pooled_prompt_embeds": conditioning["pooled_prompt_embeds"],
            "max_sequence_length": self.max_sequence_length,
        }
