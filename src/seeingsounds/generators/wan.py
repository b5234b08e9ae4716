"""Wan 2.1 text-to-video: umT5-XXL ``prompt_embeds`` [512, 4096] only (no pooled vector).

Why Wan 2.1 T2V 1.3B as the video generator: it runs on one consumer GPU (~8 GB with offload), it is
Apache-2.0, its conditioning is a single T5-family sequence (umT5-XXL, the same 4096 width as FLUX's
T5), and diffusers ships its pipeline (``WanPipeline``). LTX-Video also needs a prompt attention
mask (a second tensor the aligner would have to predict) and CogVideoX-2B/5B needs more memory for
a shorter 226-token context.

The targets are exactly what ``WanPipeline.encode_prompt`` returns: umT5 states of the caption's
tokens, zero beyond its length, padded to ``max_sequence_length``. With ``guidance_scale > 1`` the
pipeline runs classifier-free guidance, so the empty caption's embeddings are the negatives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from seeingsounds.errors import ConfigError
from seeingsounds.generators.base import VIDEO, GeneratorBackend, TensorSpec, register_backend

WAN_T2V_1_3B = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"


def wan_conditioning_spec(transformer_config: Mapping[str, Any], max_sequence_length: int) -> dict[str, TensorSpec]:
    """What a Wan transformer consumes: ``max_sequence_length`` tokens of width ``text_dim``."""
    return {"prompt_embeds": TensorSpec("prompt_embeds", (int(max_sequence_length), int(transformer_config["text_dim"])))}


#: Wan 2.1's default video length (frames)
DEFAULT_NUM_FRAMES = 81


@register_backend("wan")
class WanBackend(GeneratorBackend):
    """``WanPipeline`` (Wan 2.1 T2V). ``generate`` returns videos: ``uint8 [frames, H, W, 3]`` each."""

    text_components = ("text_encoder", "tokenizer")
    image_components = ("transformer", "vae")
    default_steps = 50
    default_guidance = 5.0
    uses_negative = True
    output_kind = VIDEO

    def __init__(self, model_id: str = WAN_T2V_1_3B, *, max_sequence_length: int | None = 512, revision: str | None = None):
        super().__init__(model_id, max_sequence_length=max_sequence_length or 512, revision=revision)

    @classmethod
    def pipeline_class(cls) -> type:
        from diffusers import WanPipeline

        return WanPipeline

    def conditioning_spec(self) -> dict[str, TensorSpec]:
        return wan_conditioning_spec(self.load_config("transformer"), self.max_sequence_length)

    @property
    def frame_step(self) -> int:
        """Frame counts are ``1 + k * frame_step`` (the VAE compresses time by this factor)."""
        return int(self.load_config("vae").get("scale_factor_temporal") or 4)

    @property
    def max_num_frames(self) -> tuple[int, str]:
        """The most frames one video may have, and why (from the configs, no weights).

        The transformer's rotary position table covers ``rope_max_seq_len`` positions along time; a
        video has ``(frames - 1) / frame_step + 1`` latent frames, patched ``patch_size[0]`` at a time.
        Beyond the table the transformer cannot place the frames (diffusers fails in a reshape).
        """
        config = self.load_config("transformer")
        positions = int(config.get("rope_max_seq_len") or 1024)
        patch = config.get("patch_size") or [1]
        time_patch = int(patch[0] if isinstance(patch, (list, tuple)) else patch)
        limit = 1 + self.frame_step * (positions * time_patch - 1)
        return limit, (f"its rotary position table covers {positions} latent frames (rope_max_seq_len "
                        f"{positions}, {self.frame_step} video frames each)")

    def check_num_frames(self, num_frames: Any) -> int:
        step = self.frame_step
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
            raise ConfigError(f"num_frames must be a positive integer, got {num_frames!r}")
        limit, reason = self.max_num_frames
        if num_frames > limit:
            raise ConfigError(f"num_frames {num_frames} is more than this video model's limit of {limit}: {reason}")
        if (int(num_frames) - 1) % step:
            lower = (int(num_frames) - 1) // step * step + 1
            raise ConfigError(f"num_frames must be 1 + a multiple of {step} for this video model (its VAE compresses "
                              f"time {step}x), got {num_frames}: try {lower} or {lower + step}")
        return int(num_frames)

    def _encode(self, pipe: Any, captions: list[str]) -> dict[str, torch.Tensor]:
        prompt_embeds, _ = pipe.encode_prompt(prompt=captions, do_classifier_free_guidance=False,
                                              max_sequence_length=self.max_sequence_length)
        return {"prompt_embeds": prompt_embeds}

    def call_kwargs(self, conditioning: Mapping[str, torch.Tensor],
                    negative: Mapping[str, torch.Tensor] | None) -> dict[str, Any]:
        kwargs = {"prompt_embeds": conditioning["prompt_embeds"], "max_sequence_length": self.max_sequence_length}
        if negative is not None:
            kwargs["negative_prompt_embeds"] = negative["prompt_embeds"]
        return kwargs

    def generate(self, pipe: Any, conditioning: Mapping[str, torch.Tensor], *, seeds: Sequence[int],
                 negative: Mapping[str, torch.Tensor] | None = None, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, height: int = 480, width: int = 832,
                 num_frames: int | None = None) -> list[np.ndarray]:
        """One video per row of ``conditioning`` (each with its own seed): ``uint8 [frames, H, W, 3]``
        (``num_frames`` default: Wan 2.1's 81)."""
        num_frames = DEFAULT_NUM_FRAMES if num_frames is None else num_frames
        out = pipe(**self.pipeline_kwargs(pipe, conditioning, seeds=seeds, negative=negative,
                                          num_inference_steps=num_inference_steps, guidance_scale=guidance_scale),
                   height=height, width=width, num_frames=self.check_num_frames(num_frames), output_type="np")
        frames = np.asarray(out.frames)  # [N, F, H, W, 3] floats in [0, 1]
        return [np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8) for v in frames]
