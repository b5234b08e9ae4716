"""Wav2CLIP's audio encoder network (the AIS judge's model), re-implemented without torchaudio.

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
(:func:`seeingsounds.tiny.judges.build_tiny_wav2clip`) loads through the same code. The network lives
here, below evaluation, so the tiny judges are built without importing :mod:`seeingsounds.evaluation`;
the judge itself is :class:`seeingsounds.evaluation.wav2clip.Wav2CLIPJudge`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


