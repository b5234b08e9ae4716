"""Tiny random judges: a CLIP model (AIC / R@k / AIS images) and Wav2CLIP (AIS audio).

Both are written in the layout of the real models, so they load through the same code:
``CLIPModel`` / tokenizer / ``CLIPImageProcessor`` ``from_pretrained`` on the folder, and a flat
``Wav2CLIP.pt`` state dict (``audio_encoder.*``, ``audio_transform.*``) like the release file.
Their joint width is :data:`EMBED_DIM`, so tiny image and audio embeddings can be compared (AIS).
"""

from __future__ import annotations

from pathlib import Path

import torch

from seeingsounds.encoders.wav2clip import CHECKPOINT_NAME, Wav2CLIPAudioEncoder
from seeingsounds.tiny.tokenizers import build_clip_tokenizer

#: projection width of the tiny CLIP judge = output width of the tiny Wav2CLIP
EMBED_DIM = 32
#: the tiny Wav2CLIP ResNet's channel widths (the real one has 64, 128, 256, 512)
WAV2CLIP_WIDTHS = (4, 8, 16, EMBED_DIM)
IMAGE_SIZE = 32


def build_tiny_clip_judge(folder: Path) -> None:
    # deferred on purpose: transformers is heavy and only needed when the tiny judge is first built
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    torch.manual_seed(0)
    tokenizer = build_clip_tokenizer(folder)
    text = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, projection_dim=EMBED_DIM, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    vision = CLIPVisionConfig(
        image_size=IMAGE_SIZE, patch_size=8, hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, projection_dim=EMBED_DIM,
    )
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=EMBED_DIM)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    ).save_pretrained(folder)


def build_tiny_wav2clip(folder: Path) -> None:
    torch.manual_seed(0)
    model = Wav2CLIPAudioEncoder(WAV2CLIP_WIDTHS)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, folder / CHECKPOINT_NAME)
