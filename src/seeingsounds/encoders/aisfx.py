"""aiSFX: a sound-effects CNN with real pretrained weights that ship inside a PyPI wheel.

Ma & Lerch, "Representation Learning for the Automatic Indexing of Sound Effects Libraries",
ISMIR 2022 (https://github.com/alisonbma/aisfx). Code MIT, weights CC BY 4.0: credit the authors
when you publish results made with this encoder.

This module re-implements aiSFX's inference path so that neither ``aisfx`` (which pins
numpy 1.23) nor ``librosa`` is imported; only its checkpoint file is read. The front end follows
``aisfx.spectrogram.spectrogram_librosa`` with librosa 0.9.2 semantics:

* audio at 44.1 kHz, mono, peak-normalised (``y / max|y|``; an all-zero window is left as is);
* power STFT: n_fft = win = 2048, hop 1024, periodic Hann, ``center=True`` with zero padding
  (librosa >= 0.9 default), so a window of N samples gives ``1 + N // 1024`` frames;
* 96 mel bands, 0-22050 Hz, HTK mel scale, each triangle normalised to unit sum (librosa
  ``htk=True, norm=1.0``; Essentia's ``htkMel`` + ``unit_sum`` in the ISMIR code);
* ``log10(1e4 * mel + 1)``, divided by 9.457798957824707 (aiSFX ``spec_norm='original'``);
* time-major ``[frames, 96]`` cut into blocks of 100 frames (~2.3 s) at a hop of 50 (~1.16 s,
  ``emb_hop_size=0.5``). aiSFX's librosa path forgets to transpose librosa's ``[96, frames]``
  output before blocking; the network was trained on Essentia's time-major spectrograms, which
  is what we feed it.

Tokens: one 512-d embedding per block (``EmbeddingNet``: 4 conv blocks, mean over frequency,
max over time), i.e. the representation aiSFX publishes. The default window is 8 blocks =
450 frames = 459,776 samples (10.43 s, close to AST's 10.24 s); ``num_blocks`` changes it.
Blocks that are pure padding (an all-zero spectrogram) map to one fixed "silence" embedding,
computed once at load time through the same network, so short clips cost only their own blocks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seeingsounds.encoders.base import AudioEncoder
from seeingsounds.errors import ConfigError

#: ``model_id`` that means "the checkpoint inside the installed aisfx wheel"
AISFX_WHEEL = "aisfx"

SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 1024
N_MELS = 96
F_MIN, F_MAX = 0.0, 22050.0
SPEC_MIN, SPEC_MAX = 0.0, 9.457798957824707
BLOCK_FRAMES = 100
BLOCK_HOP = 50
EMBED_DIM = 512


# ---- front end (numpy) ----------------------------------------------------------------------
def _hz_to_mel_htk(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz_htk(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def aisfx_mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                      fmin: float = F_MIN, fmax: float = F_MAX) -> np.ndarray:
    """librosa ``filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=True, norm=1.0)``: ``[n_mels, 1 + n_fft // 2]``."""
    fftfreqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_f = _mel_to_hz_htk(np.linspace(_hz_to_mel_htk(fmin), _hz_to_mel_htk(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    sums = weights.sum(axis=1, keepdims=True)
    sums[sums < np.finfo(np.float64).tiny] = 1.0  # librosa leaves empty filters at zero
    return (weights / sums).astype(np.float32)


_HANN = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic
_MEL = aisfx_mel_filters()


def aisfx_log_mel(waveform: np.ndarray, *, peak_normalize: bool = True) -> np.ndarray:
    """Normalised log-mel spectrogram ``[1 + N // 1024, 96]`` (time-major) of a 44.1 kHz mono waveform.

    ``peak_normalize=False`` skips aisfx's ``y / max|y|`` so that the level of the sound reaches
    the embedding (needed to learn volume edits, paper section 3.1).
    """
    y = np.asarray(waveform, dtype=np.float32)
    if y.ndim != 1:
        raise ConfigError(f"expected a mono 1-D waveform, got shape {y.shape}")
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak_normalize:
        y = y / (peak if peak > 0 else 1.0)
    y = np.pad(y, N_FFT // 2)  # center=True, zero padding
    n_frames = 1 + (len(y) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP][:n_frames]
    power = np.abs(np.fft.rfft(frames * _HANN, axis=-1)) ** 2  # [T, 1025]
    mel = power.astype(np.float32) @ _MEL.T  # [T, 96]
    return ((np.log10(mel * 1e4 + 1.0) - SPEC_MIN) / (SPEC_MAX - SPEC_MIN)).astype(np.float32)


def num_frames(window_samples: int) -> int:
    return 1 + window_samples // HOP


def window_for_blocks(num_blocks: int) -> int:
    """Fewest samples whose spectrogram holds exactly ``num_blocks`` full blocks (no partial block)."""
    return (BLOCK_FRAMES + BLOCK_HOP * (num_blocks - 1) - 1) * HOP


# ---- network (names match the checkpoint's ``embedding_net.*``) -----------------------------
class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, kernel_size=pool) if pool > 1 else x


class AisfxEmbeddingNet(nn.Module):
    """aiSFX ``EmbeddingNet('max', 3, 1, 64)``: ``[B, 100, 96]`` spectrogram blocks -> ``[B, 512]``."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.conv_block1 = _ConvBlock(1, width)
        self.conv_block2 = _ConvBlock(width, width * 2)
        self.conv_block3 = _ConvBlock(width * 2, width * 4)
        self.conv_block4 = _ConvBlock(width * 4, width * 8)

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        x = blocks.unsqueeze(1)
        x = self.conv_block1(x, 2)
        x = self.conv_block2(x, 2)
        x = self.conv_block3(x, 2)
        x = self.conv_block4(x, 1)  # [B, 512, time, freq]
        return x.mean(dim=3).amax(dim=2)


def resolve_checkpoint(model_id: str) -> Path:
    """``"aisfx"`` -> the checkpoint inside the installed wheel; a file or a folder with ``checkpoint.pth`` as is."""
    if model_id == AISFX_WHEEL:
        spec = importlib.util.find_spec("aisfx")
        if spec is None or spec.origin is None:
            raise ConfigError(
                "the aisfx encoder needs the aisfx wheel's checkpoint: `pip install aisfx==0.1.2 --no-deps` "
                "(only its checkpoint file is used; do not let it pin numpy/librosa), or pass the path of a "
                "checkpoint.pth as the encoder id"
            )
        path = Path(spec.origin).parent / "models" / "checkpoint.pth"
    else:
        path = Path(model_id).expanduser()
        if path.is_dir():
            path = path / "checkpoint.pth"
    if not path.is_file():
        raise ConfigError(f"no aisfx checkpoint at {path}: pass 'aisfx' (installed wheel) or the path of checkpoint.pth")
    return path


def load_aisfx_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``embedding_net.*`` weights of an aiSFX checkpoint, loaded with ``weights_only=True``.

    The file is a pickled ``(state_dict, ds_dict)``; ``ds_dict`` holds numpy ints, so those numpy
    globals (and nothing else) are allowed. The classifier heads ``fc.*`` are dropped.
    """
    try:  # numpy >= 2
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar

    allowed: list[Any] = [(scalar, "numpy.core.multiarray.scalar"), scalar, np.dtype]
    if hasattr(np, "dtypes"):
        allowed.append(np.dtypes.Int64DType)
    try:
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ConfigError(f"cannot read the aisfx checkpoint {path}: {exc}") from exc
    state = obj[0] if isinstance(obj, (tuple, list)) else obj
    prefix = "embedding_net."
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise ConfigError(f"{path} has no 'embedding_net.*' weights: not an aisfx checkpoint")
    return weights


class AisfxAudioEncoder(AudioEncoder):
    """aiSFX block embeddings: a 44.1 kHz window -> ``[num_blocks, 512]`` tokens (see module docstring)."""

    name = "aisfx"

    def __init__(self, net: AisfxEmbeddingNet, model_id: str, num_blocks: int = 8, peak_normalize: bool = True):
        super().__init__()
        self.peak_normalize = bool(peak_normalize)
        if num_blocks < 1:
            raise ConfigError(f"num_blocks must be >= 1, got {num_blocks}")
        self.net = net
        self.model_id = model_id
        self.num_blocks = int(num_blocks)
        self.sample_rate = SAMPLE_RATE
        self.window_samples = window_for_blocks(self.num_blocks)
        self.hidden_size = EMBED_DIM
        self.num_tokens = self.num_blocks
        self.freeze()
        self.register_buffer("silence", torch.zeros(EMBED_DIM), persistent=False)
        with torch.no_grad():
            self.silence = self.net(torch.zeros(1, BLOCK_FRAMES, N_MELS, dtype=self.dtype))[0]

    @classmethod
    def from_pretrained(cls, model_id: str = AISFX_WHEEL, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, num_blocks: int = 8, peak_normalize: bool = True,
                        **kwargs: Any) -> AisfxAudioEncoder:
        if kwargs:
            raise ConfigError(f"aisfx encoder: unknown options {sorted(kwargs)} (it takes num_blocks, peak_normalize)")
        net = AisfxEmbeddingNet()
        net.load_state_dict(load_aisfx_state_dict(resolve_checkpoint(str(model_id))))
        return cls(net.to(dtype=dtype), str(model_id), num_blocks=num_blocks, peak_normalize=peak_normalize).to(device)

    def config_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id, "num_blocks": self.num_blocks, "window_samples": self.window_samples,
            "sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "mel": "htk,unit_sum",
            "spec_norm": [SPEC_MIN, SPEC_MAX], "block": [BLOCK_FRAMES, BLOCK_HOP], "peak_normalise": self.peak_normalize,
            "dtype": str(self.dtype),
        }

    def spectrogram_blocks(self, waveform: np.ndarray) -> np.ndarray:
        """``[num_blocks, 100, 96]`` normalised log-mel blocks of one window-length waveform."""
        spec = aisfx_log_mel(waveform, peak_normalize=self.peak_normalize)
        starts = range(0, BLOCK_HOP * self.num_blocks, BLOCK_HOP)
        return np.stack([spec[s : s + BLOCK_FRAMES] for s in starts])

    def _encode_batch(self, waveforms: np.ndarray) -> torch.Tensor:
        blocks = np.stack([self.spectrogram_blocks(w) for w in waveforms])  # [B, m, 100, 96]
        flat = torch.from_numpy(blocks.reshape(-1, BLOCK_FRAMES, N_MELS))
        out = self.silence.expand(flat.shape[0], EMBED_DIM).clone()
        active = flat.flatten(1).abs().amax(dim=1) > 0
        if bool(active.any()):
            out[active] = self.net(flat[active].to(device=self.device, dtype=self.dtype))
        return out.reshape(len(waveforms), self.num_blocks, EMBED_DIM)
