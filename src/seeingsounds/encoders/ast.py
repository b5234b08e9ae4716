"""AST (Audio Spectrogram Transformer), the paper's audio encoder, via transformers."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import ASTFeatureExtractor, ASTModel

from seeingsounds.encoders.base import AudioEncoder

AST_AUDIOSET = "MIT/ast-finetuned-audioset-10-10-0.4593"


class ASTAudioEncoder(AudioEncoder):
    """Last hidden state of ``ASTModel`` (CLS + distillation + patch tokens).

    For the AudioSet checkpoint: 16 kHz, 1024 frames (10.24 s) -> 1214 tokens of width 768.
    """

    name = "ast"

    def __init__(self, model: ASTModel, feature_extractor: ASTFeatureExtractor, model_id: str):
        super().__init__()
        self.model = model
        self.feature_extractor = feature_extractor
        self.model_id = model_id
        cfg = model.config
        self.sample_rate = int(feature_extractor.sampling_rate)
        # max_length frames at a 10 ms hop (25 ms window) -> samples covering exactly those frames
        self.window_samples = int(round((cfg.max_length - 1) * 0.010 * self.sample_rate + 0.025 * self.sample_rate))
        self.hidden_size = int(cfg.hidden_size)
        f_dim = (cfg.num_mel_bins - cfg.patch_size) // cfg.frequency_stride + 1
        t_dim = (cfg.max_length - cfg.patch_size) // cfg.time_stride + 1
        self.num_tokens = f_dim * t_dim + 2
        self.freeze()

    @classmethod
    def from_pretrained(cls, model_id: str = AST_AUDIOSET, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, **kwargs: Any) -> ASTAudioEncoder:
        model = ASTModel.from_pretrained(model_id, dtype=dtype, **kwargs)
        extractor = ASTFeatureExtractor.from_pretrained(model_id)
        return cls(model, extractor, str(model_id)).to(device)

    def config_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model_config": self.model.config.to_diff_dict(),
            "feature_extractor": self.feature_extractor.to_dict(),
            "dtype": str(self.dtype),
        }

    def _encode_batch(self, waveforms: np.ndarray) -> torch.Tensor:
        features = self.feature_extractor(
            list(waveforms), sampling_rate=self.sample_rate, return_tensors="pt"
        ).input_values
        features = features.to(device=self.device, dtype=self.dtype)
        return self.model(input_values=features).last_hidden_state
