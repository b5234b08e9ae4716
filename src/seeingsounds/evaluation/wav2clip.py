"""The Wav2CLIP AIS judge: loads Wav2CLIP's audio encoder (:mod:`seeingsounds.encoders.wav2clip`) and embeds
clips in CLIP ViT-B/32's image space.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import torch

from seeingsounds.devices import resolve_device
from seeingsounds.encoders.wav2clip import (
    CHECKPOINT_NAME,
    N_FFT,
    SAMPLE_RATES,
    WAV2CLIP_URL,
    Wav2CLIPAudioEncoder,
)
from seeingsounds.errors import ConfigError
from seeingsounds.evaluation.metrics import l2_normalize
from seeingsounds.presets import resolve_component


def resolve_checkpoint(model_id: str | os.PathLike[str] | None) -> str:
    """``None``/``"wav2clip"`` -> the release URL; a folder -> its ``Wav2CLIP.pt``; else as is."""
    if model_id is None or str(model_id) in ("wav2clip", "default"):
        return WAV2CLIP_URL
    text = str(model_id)
    if text.startswith("tiny:"):
        text = resolve_component(text)
    path = Path(text)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
        if not path.is_file():
            raise ConfigError(f"{model_id}: folder has no {CHECKPOINT_NAME}")
        return str(path)
    if text.startswith(("http://", "https://")):
        return text
    if not path.is_file():
        raise ConfigError(
            f"Wav2CLIP checkpoint {model_id!r} is neither a file, a folder with {CHECKPOINT_NAME} nor a URL; "
            f"download {WAV2CLIP_URL} and pass its path"
        )
    return str(path)


def load_wav2clip(model_id: str | os.PathLike[str] | None = None, *, device: str | torch.device = "cpu") -> Wav2CLIPAudioEncoder:
    """Wav2CLIP's frozen audio encoder from the release URL (cached by torch.hub) or a local file."""
    source = resolve_checkpoint(model_id)
    if source.startswith(("http://", "https://")):
        try:
            state = torch.hub.load_state_dict_from_url(source, map_location="cpu", progress=True, weights_only=True)
        except OSError as exc:  # URLError and friends
            raise ConfigError(
                f"cannot download the Wav2CLIP checkpoint from {source} ({exc}); download it elsewhere and pass "
                "its local path (--judge-wav2clip PATH)"
            ) from exc
    else:
        state = torch.load(source, map_location="cpu", weights_only=True)
    return Wav2CLIPAudioEncoder.from_state_dict(state).to(device)


def _as_waveforms(waveforms: Any) -> list[np.ndarray]:
    if hasattr(waveforms, "detach"):
        waveforms = waveforms.detach().cpu().numpy()
    if isinstance(waveforms, np.ndarray):
        waveforms = [waveforms] if waveforms.ndim == 1 else list(waveforms)
    out = []
    for i, w in enumerate(waveforms):
        w = w.detach().cpu().numpy() if hasattr(w, "detach") else np.asarray(w)
        w = np.asarray(w, dtype=np.float32)
        if w.ndim == 2:  # [channels, samples] -> mono
            w = w.mean(axis=0)
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"waveform {i} must be a non-empty 1-d array (or [channels, samples]), got shape {w.shape}")
        out.append(w)
    return out


class Wav2CLIPJudge:
    """Audio side of AIS: ``embed_audio(waveforms, sample_rate) -> np.ndarray [N, 512]`` (L2-normalised).

    Args:
        model_id: ``None``/``"wav2clip"`` (release URL), a URL, a ``.pt`` file, a folder holding
            ``Wav2CLIP.pt``, or ``tiny:wav2clip``.
        sample_rate: rate the model is fed: 16000 (Wav2CLIP's training rate, default) or 44100
            (SonicDiffusion's evaluation). Inputs are resampled to it with soxr.
    """

    kind = "wav2clip"

    def __init__(self, model_id: str | None = None, *, sample_rate: int = 16000, device: str | torch.device | None = "auto"):
        if sample_rate not in SAMPLE_RATES:
            raise ConfigError(f"Wav2CLIP sample_rate must be one of {SAMPLE_RATES}, got {sample_rate}")
        self.model_id = model_id or "wav2clip"
        self.sample_rate = int(sample_rate)
        self.device = resolve_device(device)  # auto: the accelerator when there is one
        self._model: Wav2CLIPAudioEncoder | None = None

    @property
    def model(self) -> Wav2CLIPAudioEncoder:
        if self._model is None:
            self._model = load_wav2clip(self.model_id, device=self.device)
        return self._model

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model_id": str(self.model_id), "sample_rate": self.sample_rate}

    @torch.no_grad()
    def embed_audio(self, waveforms: Any, sample_rate: int) -> np.ndarray:
        """One embedding per waveform (any length; stereo is averaged to mono)."""
        clips = _as_waveforms(waveforms)
        if not clips:
            return np.zeros((0, self.model.embed_dim), dtype=np.float32)
        rows = []
        for w in clips:
            if int(sample_rate) != self.sample_rate:
                w = soxr.resample(w, int(sample_rate), self.sample_rate).astype(np.float32)
            if w.size <= N_FFT:  # reflect padding needs more than n_fft // 2 samples
                w = np.pad(w, (0, N_FFT + 1 - w.size))
            x = torch.from_numpy(np.ascontiguousarray(w)).to(self.device)[None]
            rows.append(self.model(x)[0].float().cpu().numpy())
        return l2_normalize(np.stack(rows)).astype(np.float32)
