"""Stable Diffusion 3: CLIP-L + CLIP-G + T5 ``prompt_embeds`` [77 + L, 4096] and ``pooled_prompt_embeds`` [2048]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from seeingsounds.generators.base import GeneratorBackend, TensorSpec, register_backend

SD3_MEDIUM = "stabilityai/stable-diffusion-3-medium-diffusers"


@register_backend("sd3")
class SD3Backend(GeneratorBackend):
    """``StableDiffusion3Pipeline``. Targets are what its ``encode_prompt`` returns: the two CLIPs'
    penultimate states (77 tokens, concatenated and zero-padded to the T5 width) followed by T5's
    ``max_sequence_length`` tokens, and both CLIPs' projected ``text_embeds`` concatenated.

    With ``guidance_scale > 1`` the pipeline runs classifier-free guidance and needs negative
    conditioning of the same shapes (the empty caption's embeddings).
    """

    text_components = ("text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer", "tokenizer_2", "tokenizer_3")
    image_components = ("transformer", "vae")
    default_steps = 28
    default_guidance = 7.0
    uses_negative = True

    def __init__(self, model_id: str = SD3_MEDIUM, *, max_sequence_length: int | None = 256, revision: str | None = None):
        super().__init__(model_id, max_sequence_length=max_sequence_length or 256, revision=revision)

    @classmethod
    def pipeline_class(cls) -> type:
        from diffusers import StableDiffusion3Pipeline

        return StableDiffusion3Pipeline

    def conditioning_spec(self) -> dict[str, TensorSpec]:
        transformer = self.load_config("transformer")
        clip_length = int(self.load_tokenizer_config("tokenizer").get("model_max_length", 77))
        return {
            "prompt_embeds": TensorSpec(
                "prompt_embeds", (clip_length + int(self.max_sequence_length), int(transformer["joint_attention_dim"]))
            ),
            "pooled_prompt_embeds": TensorSpec("pooled_prompt_embeds", (int(transformer["pooled_projection_dim"]),)),
        }

    def _encode(self, pipe: Any, captions: list[str]) -> dict[str, torch.Tensor]:
        prompt_embeds, _, pooled, _ = pipe.encode_prompt(
            prompt=captions, prompt_2=None, prompt_3=None, do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
        )
        return {"prompt_embeds": prompt_embeds, "pooled_prompt_embeds": pooled}

    def call_kwargs(self, conditioning: Mapping[str, torch.Tensor],
                    negative: Mapping[str, torch.Tensor] | None) -> dict[str, Any]:
        kwargs = {
            "prompt_embeds": conditioning["prompt_embeds"],
            "pooled_prompt_embeds": conditioning["pooled_prompt_embeds"],
            "max_sequence_length": self.max_sequence_length,
        }
        if negative is not None:
            kwargs["negative_prompt_embeds"] = negative["prompt_embeds"]
            kwargs["negative_pooled_prompt_embeds"] = negative["pooled_prompt_embeds"]
        return kwargs
