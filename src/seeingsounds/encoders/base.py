"""The frozen audio encoder E_A (paper Eq. 1): the interface, and the registry of encoders by name
(built-ins as ``name -> "module:Class"`` strings, so this module imports none of them)."""

from __future__ import annotations

import abc
import hashlib
import importlib
import json
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from seeingsounds.errors import ConfigError, hub_errors_as_config

#: the built-in encoders, ``name -> "module:Class"``, imported on first use (so this module imports none of them)
BUILTIN_ENCODERS: dict[str, str] = {
    "ast": "seeingsounds.encoders.ast:ASTAudioEncoder",
    "aisfx": "seeingsounds.encoders.aisfx:AisfxAudioEncoder",
}
#: encoders registered with :func:`register_encoder` (plug-ins); they take precedence over built-ins
_ENCODERS: dict[str, type[AudioEncoder]] = {}


def register_encoder(name: str) -> Callable[[type[AudioEncoder]], type[AudioEncoder]]:
    """Class decorator: make a (plug-in) encoder available to presets and ``create_audio_encoder``."""

    def wrap(cls: type[AudioEncoder]) -> type[AudioEncoder]:
        cls.name = name
        _ENCODERS[name] = cls
        return cls

    return wrap


def available_encoders() -> list[str]:
    return sorted(set(BUILTIN_ENCODERS) | set(_ENCODERS))


def get_encoder_class(name: str) -> type[AudioEncoder]:
    """The encoder class registered as ``name`` (a built-in is imported here, on first use)."""
    if name in _ENCODERS:
        return _ENCODERS[name]
    if name not in BUILTIN_ENCODERS:
        raise ConfigError(f"unknown audio encoder {name!r}; available: {available_encoders()}")
    module, _, attr = BUILTIN_ENCODERS[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    cls.name = name
    return cls


def create_audio_encoder(name: str, model_id: str, *, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32, **kwargs: Any) -> AudioEncoder:
    """Load the frozen encoder ``name`` from ``model_id`` (a hub id or a local folder/file)."""
    with hub_errors_as_config(model_id, f"{name} audio encoder"):
        return get_encoder_class(name).from_pretrained(model_id, device=device, dtype=dtype, **kwargs)


class AudioEncoder(nn.Module, abc.ABC):
    """A frozen audio encoder that turns waveforms into token sequences ``[B, m, d_A]``.

    Subclasses set ``sample_rate`` (Hz the model expects), ``window_samples`` (clip length fed
    to the model; longer audio is cropped, shorter padded by :func:`seeingsounds.audio.load_audio`),
    ``hidden_size`` (d_A) and ``num_tokens`` (m), and implement :meth:`_encode_batch`.
    """

    name: ClassVar[str] = ""
    sample_rate: int
    window_samples: int
    hidden_size: int
    num_tokens: int
    model_id: str

    @classmethod
    @abc.abstractmethod
    def from_pretrained(cls, model_id: str, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, **kwargs: Any) -> AudioEncoder:
        """Load weights from a hub id or a local path, frozen and in eval mode."""

    @abc.abstractmethod
    def _encode_batch(self, waveforms: np.ndarray) -> torch.Tensor:
        """Encode ``[B, window_samples]`` float32 waveforms to ``[B, m, d_A]``."""

    @abc.abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """Everything that changes the encoder's output (ids, sizes, front-end settings)."""

    def freeze(self) -> AudioEncoder:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def identity(self) -> str:
        """Stable hash of :meth:`config_dict`, used in feature-cache keys."""
        blob = json.dumps({"encoder": self.name, **self.config_dict()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @torch.no_grad()
    def encode(self, waveforms: Sequence[np.ndarray] | np.ndarray, batch_size: int = 8) -> torch.Tensor:
        """Encode mono waveforms already at ``sample_rate`` (cropped/padded to the window).

        Returns float32 tokens ``[B, num_tokens, hidden_size]`` on the CPU.
        """
        if len(waveforms) == 0:  # np.asarray([]) is 1-D: it would fail the shape check below
            return torch.empty(0, self.num_tokens, self.hidden_size)
        batch = np.asarray([self._fit(np.asarray(w, dtype=np.float32)) for w in waveforms], dtype=np.float32)
        if batch.ndim != 2:
            raise ConfigError(f"expected a list of 1-D waveforms, got array of shape {batch.shape}")
        outs = [self._encode_batch(batch[i : i + batch_size]).float().cpu() for i in range(0, len(batch), batch_size)]
        return torch.cat(outs) if outs else torch.empty(0, self.num_tokens, self.hidden_size)

    def _fit(self, wave: np.ndarray) -> np.ndarray:
        if wave.ndim != 1:
            raise ConfigError(f"expected a mono 1-D waveform, got shape {wave.shape}")
        n = self.window_samples
        return wave[:n] if len(wave) >= n else np.pad(wave, (0, n - len(wave)))
