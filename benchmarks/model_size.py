"""Aligner size and real-size shapes for each preset, built on the meta device (no weights).

    python benchmarks/model_size.py

Prints a Markdown table: trainable aligner parameters for both orders (adapter-first is the
paper's; pooling-first runs attention in the encoder's width) and the conditioning shapes.
"""

from __future__ import annotations

import torch
from diffusers import FluxTransformer2DModel
from transformers import ASTConfig

from seeingsounds.generators.flux import flux_conditioning_spec
from seeingsounds.model import create_aligner
from seeingsounds.presets import get_preset


def main() -> None:
    print("| preset | conditioning (per sample) | adapter_first params | pool_first params |")
    print("|---|---|---|---|")
    d_audio = ASTConfig().hidden_size
    for name in ("flux-dev", "flux-schnell"):
        preset = get_preset(name)
        with torch.device("meta"):
            transformer = FluxTransformer2DModel(guidance_embeds=name == "flux-dev")  # FLUX.1 defaults
            spec = flux_conditioning_spec(transformer.config, preset.max_sequence_length)
            counts = [create_aligner(preset, d_audio, spec, order=o).num_parameters() / 1e6
                      for o in ("adapter_first", "pool_first")]
        shapes = ", ".join(f"{s.name} {list(s.shape)}" for s in spec.values())
        print(f"| {name} | {shapes} | {counts[0]:.1f} M | {counts[1]:.1f} M |")


if __name__ == "__main__":
    main()
