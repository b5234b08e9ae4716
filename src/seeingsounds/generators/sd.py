"""Stable Diffusion 1.x / 2.x and SD-Turbo: one CLIP ``prompt_embeds`` [77, 768] (SD 1.5) or [77, 1024] (SD 2, Turbo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from seeingsounds.generators.base import GeneratorBackend, TensorSpec, register_backend

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD_TURBO = "stabilityai/sd-turbo"


@register_backend("sd")
class SDBackend(GeneratorBackend):
    """``StableDiffusionPipeline``. The only conditioning tensor is the CLIP text encoder's last
    hidden state ([77, cross_attention_dim]), so the aligner has one (sequence) head.

    With ``guidance_scale > 1`` the negative conditioning is the empty caption's embedding, as in
    the pipeline's own text path. The safety checker, where a repository ships one, stays on.
    """

    text_components = ("text_encoder", "tokenizer")
    image_components = ("unet", "vae", "safety_checker", "feature_extractor")
    default_steps = 30
    default_guidance = 7.5
    uses_negative = True

    def __init__(self, model_id: str = SD15, *, max_sequence_length: int | None = None, revision: str | None = None):
        super().__init__(model_id, max_sequence_length=max_sequence_length, revision=revision)

    @classmethod
    def pipeline_class(cls) -> type:
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline

    def conditioning_spec(self) -> dict[str, TensorSpec]:
        unet = self.load_config("unet")
        length = int(self.load_tokenizer_config("tokenizer").get("model_max_length", 77))
        width = unet["cross_attention_dim"]
        width = int(width[0] if isinstance(width, (list, tuple)) else width)
        return {"prompt_embeds": TensorSpec("prompt_embeds", (length, width))}

    def _encode(self, pipe: Any, captions: list[str]) -> dict[str, torch.Tensor]:
        prompt_embeds, _ = pipe.encode_prompt(captions, pipe._execution_device, 1, False)
        return {"prompt_embeds": prompt_embeds}

    def call_kwargs(self, conditioning: Mapping[str, torch.Tensor],
                    negative: Mapping[str, torch.Tensor] | None) -> dict[str, Any]:
        kwargs = {"prompt_embeds": conditioning["prompt_embeds"]}
        if negative is not None:
            kwargs["negative_prompt_embeds"] = negative["prompt_embeds"]
        return kwargs
