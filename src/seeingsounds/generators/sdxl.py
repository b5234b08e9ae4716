"""Stable Diffusion XL: CLIP-L + CLIP-G ``prompt_embeds`` [77, 2048] and ``pooled_prompt_embeds`` [1280]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from seeingsounds.generators.base import GeneratorBackend, TensorSpec, register_backend

SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"

#: SDXL's added time ids: original size (2), crop top-left (2), target size (2)
_NUM_TIME_IDS = 6


@register_backend("sdxl")
class SDXLBackend(GeneratorBackend):
    """``StableDiffusionXLPipeline``. Targets are what its ``encode_prompt`` returns without
    guidance: both CLIPs' penultimate hidden states concatenated ([77, 768 + 1280]) and CLIP-G's
    projected ``text_embeds`` ([1280]), which the UNet adds to the time-id embedding.

    With guidance, the negative conditioning is what the pipeline uses for an empty negative
    prompt: zeros when its ``force_zeros_for_empty_prompt`` is set (SDXL base), else the empty
    caption's embeddings.
    """

    text_components = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")
    image_components = ("unet", "vae")
    default_steps = 30
    default_guidance = 5.0
    uses_negative = True

    @classmethod
    def pipeline_class(cls) -> type:
        from diffusers import StableDiffusionXLPipeline

        return StableDiffusionXLPipeline

    def conditioning_spec(self) -> dict[str, TensorSpec]:
        unet = self.load_config("unet")
        length = int(self.load_tokenizer_config("tokenizer").get("model_max_length", 77))
        time_ids = _NUM_TIME_IDS if not unet.get("requires_aesthetics_score") else 5
        pooled = int(unet["projection_class_embeddings_input_dim"]) - time_ids * int(unet["addition_time_embed_dim"])
        return {
            "prompt_embeds": TensorSpec("prompt_embeds", (length, int(unet["cross_attention_dim"]))),
            "pooled_prompt_embeds": TensorSpec("pooled_prompt_embeds", (pooled,)),
        }

    def _encode(self, pipe: Any, captions: list[str]) -> dict[str, torch.Tensor]:
        prompt_embeds, _, pooled, _ = pipe.encode_prompt(prompt=captions, do_classifier_free_guidance=False)
        return {"prompt_embeds": prompt_embeds, "pooled_prompt_embeds": pooled}

    def negative_conditioning(self, pipe: Any, null: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if getattr(pipe.config, "force_zeros_for_empty_prompt", False):
            return {k: torch.zeros_like(v) for k, v in null.items()}
        return dict(null)

    def call_kwargs(self, conditioning: Mapping[str, torch.Tensor],
                    negative: Mapping[str, torch.Tensor] | None) -> dict[str, Any]:
        kwargs = {
            "prompt_embeds": conditioning["prompt_embeds"],
            "pooled_prompt_embeds": conditioning["pooled_prompt_embeds"],
        }
        if negative is not None:
            kwargs["negative_prompt_embeds"] = negative["prompt_embeds"]
            kwargs["negative_pooled_prompt_embeds"] = negative["pooled_prompt_embeds"]
        return kwargs
