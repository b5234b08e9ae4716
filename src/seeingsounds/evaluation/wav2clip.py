"""Wav2CLIP's audio encoder (the AIS judge), re-implemented without torchaudio.

Wav2CLIP (Wu et al., 2022; ``pip install wav2clip``, MIT) embeds audio in CLIP ViT-B/32's image
space: a power spectrogram (``n_fft=512``, ``hop_length=353``, Hann window, centred, reflect
padding — torchaudio's ``Spectrogram`` defaults), log (``+1e-7``), standardised, then a
ResNet-18 with one input channel and global average pooling (512-d), then an MLP
``512 -> 512 -> 512`` (Linear, ReLU, Dropout, Linear). Here the torchaudio transform is replaced
by :func:`torch.stft` with the same parameters; module names match wav2clip's so its released
checkpoint (a flat state dict with ``audio_encoder.*`` and ``audio_transform.*`` keys, window
buffer included) loads as is.

One deliberate difference: wav2clip standardises the log spectrogram with the mean and std of
the *whole batch*; here each clip is standardised on its own, so an embedding does not depend on
what it is batched with. For a batch of one — how wav2clip's ``embed_audio`` is used per clip —
the two are identical.

The channel widths are read from the checkpoint, so a tiny random checkpoint in the same layout
(:func:`seeingsounds.tiny.judges.build_tiny_wav2clip`) loads through the same code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seeingsounds.errors import ConfigError

#: the release wav2clip's own ``get_model`` downloads
WAV2CLIP_URL = "https://github.com/descriptinc/lyrebird-wav2clip/releases/download/v0.1.0-alpha/Wav2CLIP.pt"
CHECKPOINT_NAME = "Wav2CLIP.pt"
#: Wav2CLIP was trained on 16 kHz, 10 s clips; SonicDiffusion's evaluation feeds 44.1 kHz
SAMPLE_RATES = (16000, 44100)
N_FFT, HOP_LENGTH = 512, 353
REAL_WIDTHS = (64, 128, 256, 512)


class Spectrogram(nn.Module):
    """Power spectrogram equal to ``torchaudio.transforms.Spectrogram(n_fft=512, hop_length=353)``."""

    def __init__(self, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., T] -> [..., n_fft // 2 + 1, frames] (leading dims kept, as torchaudio does)."""
        lead = x.shape[:-1]
        spec = torch.stft(
            x.reshape(-1, x.shape[-1]), n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.n_fft, window=self.window,
            center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
        )
        spec = spec.abs().pow(2.0)
        return spec.reshape(*lead, *spec.shape[-2:])


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs, batch norms, identity or 1x1 downsample)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Wav2CLIPResNet(nn.Module):
    """Spectrogram front end + ResNet-18 (1 input channel) + global average pooling."""

    def __init__(self, widths: Sequence[int] = REAL_WIDTHS):
        super().__init__()
        if len(widths) != 4 or min(widths) < 1:
            raise ConfigError(f"Wav2CLIP needs four positive channel widths, got {list(widths)}")
        self.spectrogram = Spectrogram()
        self.conv1 = nn.Conv2d(1, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = widths[0]
        for i, planes in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes)))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T] waveforms -> [B, widths[-1]]."""
        x = torch.log(self.spectrogram(x.unsqueeze(1)) + 1e-7)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.flatten(1).std(dim=1).view(-1, 1, 1, 1)
        x = (x - mean) / (std + 1e-9)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


class MLPTransform(nn.Module):
    """wav2clip's ``MLPLayers``: Linear -> ReLU -> Dropout -> Linear (keys ``sequential.0/3``)."""

    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        self.sequential = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequential(x)


class Wav2CLIPAudioEncoder(nn.Module):
    """Audio -> Wav2CLIP embedding (CLIP ViT-B/32 image space), as wav2clip's frozen ``get_model``."""

    def __init__(self, widths: Sequence[int] = REAL_WIDTHS):
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.audio_encoder = Wav2CLIPResNet(self.widths)
        self.audio_transform = MLPTransform(self.widths[-1])

    @property
    def embed_dim(self) -> int:
        return self.widths[-1]

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.audio_transform(self.audio_encoder(waveforms))

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> Wav2CLIPAudioEncoder:
        """Build with the widths the checkpoint implies and load ``audio_encoder.*`` / ``audio_transform.*``."""
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        keys = [k for k in state if k.startswith(("audio_encoder.", "audio_transform."))]
        if not keys:
            raise ConfigError("not a Wav2CLIP checkpoint: it has no audio_encoder.* / audio_transform.* weights")
        try:
            widths = [int(state[f"audio_encoder.layer{i}.0.conv1.weight"].shape[0]) for i in range(1, 5)]
        except KeyError as exc:
            raise ConfigError(f"Wav2CLIP checkpoint lacks {exc.args[0]}") from None
        model = cls(widths)
        own = {k: state[k] for k in keys}
        own.setdefault("audio_encoder.spectrogram.window", model.audio_encoder.spectrogram.window)
        missing, unexpected = model.load_state_dict(own, strict=False)
        if missing or unexpected:
            raise ConfigError(f"Wav2CLIP checkpoint does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model.eval()


def resolve_checkpoint(model_id: str | os.PathLike[str] | None) -> str:
    """``None``/``"wav2clip"`` -> the release URL; a folder -> its ``Wav2CLIP.pt``; else as is."""
    if model_id is None or str(model_id) in ("wav2clip", "default"):
        return WAV2CLIP_URL
    text = str(model_id)
    if text.startswith("tiny:"):
        from seeingsounds.presets import resolve_component

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

    def __init__(self, model_id: str | None = None, *, sample_rate: int = 16000, device: str | torch.device = "cpu"):
        if sample_rate not in SAMPLE_RATES:
            raise ConfigError(f"Wav2CLIP sample_rate must be one of {SAMPLE_RATES}, got {sample_rate}")
        self.model_id = model_id or "wav2clip"
        self.sample_rate = int(sample_rate)
        self.device = torch.device(device)
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
        import soxr

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
        from seeingsounds.evaluation.metrics import l2_normalize

        return l2_normalize(np.stack(rows)).astype(np.float32)
