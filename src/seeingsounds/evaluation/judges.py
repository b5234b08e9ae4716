"""Judge models of the metrics, behind a small registry; weights load on first use.

=========  ==============================================  =================================
kind       default model                                   used for
=========  ==============================================  =================================
``aic``    CLIP ViT-L/14 ``openai/clip-vit-large-patch14``  AIC (zero-shot class of an image)
``clip``   CLIP ViT-B/32 ``openai/clip-vit-base-patch32``   R@k, image side of AIS
``wav2clip`` Wav2CLIP release checkpoint                     audio side of AIS
=========  ==============================================  =================================

``model_id`` may be a hub id, a local folder, or ``tiny:<name>`` (a tiny random judge built
locally, e.g. ``tiny:clip-judge`` / ``tiny:wav2clip``, for tests). CLIP judges go through
transformers' ``CLIPModel`` + tokenizer + ``CLIPImageProcessor`` ``from_pretrained``, so real
and tiny judges share one loading path. ``offline-judge`` (or a folder holding one) is the packaged
offline judge (:mod:`seeingsounds.evaluation.offline_judge`, MiniLM's caption space) for ``aic`` and
``clip``. Which model each kind uses in ``evaluate`` is the preset's choice (``Preset.judge_aic`` /
``Preset.judge_clip``). :func:`judge_pictures` judges pictures against captions with any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from seeingsounds.devices import resolve_device
from seeingsounds.errors import ConfigError
from seeingsounds.evaluation.metrics import cosine_matrix, l2_normalize, retrieval_scores
from seeingsounds.evaluation.offline_judge import OfflineJudge, is_offline_judge
from seeingsounds.evaluation.wav2clip import Wav2CLIPJudge
from seeingsounds.presets import CLIP_B32, CLIP_L14, OFFLINE_JUDGE, resolve_component



def _resolve(model_id: str) -> str:
    return resolve_component(model_id)


def _features(out: Any) -> torch.Tensor:
    """transformers 5 returns a model output whose ``pooler_output`` is projected; 4.x a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class CLIPJudge:
    """A CLIP model that embeds images and texts into its joint space (L2-normalised numpy)."""

    def __init__(self, model_id: str, *, kind: str = "clip", device: str | torch.device | None = "auto",
                 batch_size: int = 32):
        self.model_id, self.kind = str(model_id), kind
        self.device = resolve_device(device)  # auto: the accelerator when there is one
        self.batch_size = int(batch_size)
        self._parts: tuple[Any, Any, Any] | None = None

    def _load(self) -> tuple[Any, Any, Any]:
        if self._parts is None:
            from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

            path = _resolve(self.model_id)
            try:
                model = CLIPModel.from_pretrained(path).to(self.device).eval()
                tokenizer = AutoTokenizer.from_pretrained(path)
                processor = CLIPImageProcessor.from_pretrained(path)
            except OSError as exc:
                raise ConfigError(
                    f"cannot load the CLIP judge {self.model_id!r} ({exc}); pass a local folder with its "
                    "weights, tokenizer and preprocessor_config.json"
                ) from exc
            self._parts = (model, tokenizer, processor)
        return self._parts

    @property
    def embed_dim(self) -> int:
        return int(self._load()[0].config.projection_dim)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model_id": self.model_id}

    @torch.no_grad()
    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        """PIL images -> [N, D]."""
        model, _, processor = self._load()
        rows = [np.zeros((0, model.config.projection_dim), dtype=np.float32)]
        for i in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[i : i + self.batch_size]]
            pixels = processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device, model.dtype)
            rows.append(_features(model.get_image_features(pixel_values=pixels)).float().cpu().numpy())
        return l2_normalize(np.concatenate(rows)).astype(np.float32)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts, tokenised as is (no prompt template) and truncated to the model's length -> [N, D]."""
        model, tokenizer, _ = self._load()
        rows = [np.zeros((0, model.config.projection_dim), dtype=np.float32)]
        for i in range(0, len(texts), self.batch_size):
            enc = tokenizer([str(t) for t in texts[i : i + self.batch_size]], padding=True, truncation=True,
                            max_length=model.config.text_config.max_position_embeddings, return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            rows.append(_features(model.get_text_features(**enc)).float().cpu().numpy())
        return l2_normalize(np.concatenate(rows)).astype(np.float32)


@dataclass(frozen=True)
class JudgeSpec:
    """A registered judge kind: its default model and a factory ``(model_id, **options) -> judge``."""

    kind: str
    default_id: str
    factory: Callable[..., Any]
    purpose: str


_JUDGES: dict[str, JudgeSpec] = {}
_LOADED: dict[tuple[Any, ...], Any] = {}


def register_judge(spec: JudgeSpec) -> JudgeSpec:
    _JUDGES[spec.kind] = spec
    return spec


def available_judges() -> list[str]:
    return sorted(_JUDGES)


def default_judge_id(kind: str) -> str:
    return _spec(kind).default_id


def _spec(kind: str) -> JudgeSpec:
    if kind not in _JUDGES:
        raise ConfigError(f"unknown judge {kind!r}; available: {available_judges()}")
    return _JUDGES[kind]


def get_judge(kind: str, model_id: str | None = None, **options: Any) -> Any:
    """The judge ``kind`` (``aic``, ``clip``, ``wav2clip``), cached per (kind, model, options).

    Nothing is loaded here: weights load on the first ``embed_*`` call.
    """
    spec = _spec(kind)
    model_id = str(model_id or spec.default_id)
    key = (kind, model_id, tuple(sorted((k, str(v)) for k, v in options.items())))
    if key not in _LOADED:
        _LOADED[key] = spec.factory(model_id, **options)
    return _LOADED[key]


def _wav2clip_factory(model_id: str, **options: Any) -> Any:
    return Wav2CLIPJudge(model_id, **options)


def _image_text_factory(kind: str) -> Callable[..., Any]:
    """A CLIP model, or the offline judge when ``model_id`` names it (:data:`OFFLINE_JUDGE` or its folder)."""

    def make(model_id: str, **options: Any) -> Any:
        if is_offline_judge(model_id):
            return OfflineJudge(model_id, kind=kind, **options)
        return CLIPJudge(model_id, kind=kind, **options)

    return make


register_judge(JudgeSpec("aic", CLIP_L14, _image_text_factory("aic"),
                         "AIC: zero-shot classification of generated images (CLIP ViT-L/14; "
                         f"{OFFLINE_JUDGE!r} for the offline judge)"))
register_judge(JudgeSpec("clip", CLIP_B32, _image_text_factory("clip"),
                         "R@k and the image side of AIS (CLIP ViT-B/32, Wav2CLIP's space; "
                         f"{OFFLINE_JUDGE!r} for the offline judge, R@k only)"))
register_judge(JudgeSpec("wav2clip", "wav2clip", _wav2clip_factory,
                         "the audio side of AIS (Wav2CLIP release checkpoint)"))


@dataclass(frozen=True)
class PictureJudgement:
    """What a judge says of pictures against captions: ``similarity [pictures, captions]`` (cosines), and
    when labels were given, :func:`~seeingsounds.evaluation.metrics.retrieval_scores` (top-1 / top-k in percent)."""

    similarity: np.ndarray
    scores: dict[str, float] | None = None

    @property
    def best(self) -> np.ndarray:
        """The most similar caption of each picture (its column)."""
        return self.similarity.argmax(axis=1)


def judge_pictures(judge: Any, images: Sequence[Any], captions: Sequence[str], labels: Sequence[int] | None = None,
                   *, k: int = 5) -> PictureJudgement:
    """Judge ``images`` (PIL images or RGB ``uint8`` arrays) against ``captions`` with any judge
    (``embed_images`` / ``embed_texts``); ``labels[i]`` is the column of picture i's right caption.

    Ties count against the picture (as in every metric of :mod:`seeingsounds.evaluation.metrics`).
    """
    if labels is not None and len(labels) != len(images):
        raise ConfigError(f"{len(labels)} labels for {len(images)} pictures")
    pictures = [Image.fromarray(np.asarray(im, dtype=np.uint8)) if isinstance(im, np.ndarray) else im for im in images]
    similarity = cosine_matrix(judge.embed_images(pictures), judge.embed_texts(list(captions)))
    scores = retrieval_scores(similarity, labels, k=min(k, max(1, len(captions)))) if labels is not None else None
    return PictureJudgement(similarity, scores)
