"""The one audio conditioner: a checkpoint's frozen encoder + aligner, loaded once, predicting in batches.

``describe``, ``evaluate`` (with and without images), the offline alignment benchmark and the web app
go through :class:`AudioConditioner`; :class:`seeingsounds.pipeline.SeeingSoundsPipeline` can too
(:meth:`AudioConditioner.predict` yields exactly the ``{name: [B, ...]}`` batches it generates from).

Every clip is rendered by :func:`seeingsounds.audio.render.render` (load -> mix -> effects -> crop to the
encoder's window), so what the encoder hears is what training heard. Prediction is *streaming*:
:meth:`predict` renders, encodes and aligns ``batch_size`` clips at a time and yields each batch, so the
peak memory does not grow with the number of clips (a FLUX-dev prediction is ~2 M values per clip); after
each batch the freed host memory goes back to the OS (:func:`~seeingsounds.devices.release_host_memory`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from seeingsounds.aligner import SeeingSoundsAligner
from seeingsounds.audio.io import AudioSource, source_name
from seeingsounds.audio.render import EffectChain, check_chain, render
from seeingsounds.checkpoint import resolve_checkpoint
from seeingsounds.devices import release_host_memory, resolve_device, resolve_dtype
from seeingsounds.encoders.base import AudioEncoder
from seeingsounds.errors import AudioLoadError, ConfigError
from seeingsounds.model import load_encoder
from seeingsounds.presets import Preset, get_preset

#: clips rendered, encoded and aligned at a time unless told otherwise
DEFAULT_BATCH_SIZE = 8


def as_sources(audio: Any) -> list[Any]:
    """One input or a sequence of inputs -> a list (a path, bytes or a ``(rate, array)`` tuple is one input)."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    if isinstance(audio, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, tuple)):
        return [audio]
    sources = [a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else a for a in audio]
    if not sources:
        raise ConfigError("got an empty list of audio inputs")
    return sources


def display_name(source: Any) -> str:
    """How reports name an input: its path, ``"<bytes>"`` or ``"<array>"``."""
    return "<array>" if isinstance(source, tuple) else source_name(source)


class AudioConditioner:
    """Audio -> the aligner's predicted conditioning, in batches, on one device and dtype.

    Build it with :meth:`from_pretrained` (loads the checkpoint's aligner and the encoder of its preset)
    or from loaded parts (``AudioConditioner(encoder, aligner)``; the parts are moved to ``device``/``dtype``
    when those are given, else the aligner stays where it is).
    """

    def __init__(self, encoder: AudioEncoder, aligner: SeeingSoundsAligner, *, preset: Preset | None = None,
                 device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                 checkpoint: str | None = None):
        if int(encoder.hidden_size) != int(aligner.input_dim):
            raise ConfigError(
                f"checkpoint {checkpoint or '(given aligner)'} expects audio tokens of width {aligner.input_dim}, but "
                f"the encoder {getattr(encoder, 'model_id', '')} gives {encoder.hidden_size}: use the preset the "
                "checkpoint was trained with"
            )
        current = next(aligner.parameters())
        self.device = resolve_device(current.device if device is None else device)
        # nothing asked: the parts stay as they are; else the one resolution of --device/--dtype
        self.dtype = current.dtype if device is None and dtype is None else resolve_dtype(dtype, self.device)
        self.encoder = encoder
        self.aligner = aligner.to(device=self.device, dtype=self.dtype).eval()
        self.preset = preset
        self.checkpoint = checkpoint

    @classmethod
    def from_pretrained(cls, checkpoint: str | os.PathLike, *, preset: str | Preset | None = None,
                        device: str | torch.device | None = "auto", dtype: str | torch.dtype | None = None,
                        encoder: AudioEncoder | None = None) -> AudioConditioner:
        """Load ``checkpoint`` (run folder, aligner folder or hub id) and the encoder of its preset.

        ``device="auto"``: the accelerator when there is one; ``dtype=None``: bf16 where supported, fp16 on
        other accelerators, fp32 on the CPU. ``preset`` overrides the recorded one; ``encoder`` reuses a
        loaded encoder (e.g. the pipeline's).
        """
        folder = resolve_checkpoint(checkpoint)
        with contextlib.redirect_stdout(sys.stderr):  # huggingface_hub prints "Loading weights..."
            aligner = SeeingSoundsAligner.from_pretrained(folder)
        if preset is not None:
            chosen = get_preset(preset)
        elif aligner.preset:
            chosen = get_preset(aligner.preset)
        else:
            raise ConfigError(f"checkpoint {checkpoint} records no preset: cannot tell which audio encoder it needs; "
                              "pass preset=<name> (see `seeingsounds presets`)")
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        if encoder is None:
            encoder = load_encoder(chosen, device=torch_device, dtype=torch_dtype)
        return cls(encoder, aligner, preset=chosen, device=torch_device, dtype=torch_dtype, checkpoint=str(checkpoint))

    # ---- properties -------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.encoder.sample_rate)

    @property
    def window_samples(self) -> int:
        return int(self.encoder.window_samples)

    @property
    def names(self) -> list[str]:
        """The aligned conditioning tensors (unaligned heads are constant: no evidence for retrieval)."""
        return list(self.aligner.aligned_names)

    # ---- audio ------------------------------------------------------------------------------
    def render(self, source: AudioSource, *, effects: EffectChain | None = None,
               mix: tuple[AudioSource, float] | None = None, sample_rate: int | None = None) -> np.ndarray:
        """What the encoder hears for ``source``: :func:`~seeingsounds.audio.render.render` at its rate and window.

        An array ``source`` needs ``sample_rate`` (or pass a ``(rate, array)`` tuple).
        """
        if isinstance(source, np.ndarray) and sample_rate is None:
            raise AudioLoadError("<array>", "an array needs sample_rate=<Hz> (or pass a (sample_rate, array) tuple)")
        return render(source, sample_rate=self.sample_rate, num_samples=self.window_samples, effects=effects,
                      mix=mix, source_rate=sample_rate if isinstance(source, np.ndarray) else None)

    # ---- prediction -------------------------------------------------------------------------
    @torch.no_grad()
    def predict_waves(self, waves: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Encoder + aligner on one batch of waveforms at the encoder's rate: ``{name: [B, ...]}`` on the device."""
        tokens = self.encoder.encode(list(waves), batch_size=max(1, len(waves)))
        return self._align(tokens)

    def _align(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """The aligner on one batch of tokens; the batch's freed intermediates are handed back to the OS."""
        out = self.aligner(tokens.to(self.device, self.dtype))
        release_host_memory()
        return out

    def predict(self, sources: Iterable[Any] | Any, *, effects: EffectChain | None = None,
                mix: tuple[AudioSource, float] | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                sample_rate: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """Predictions for ``sources``, one ``{name: Tensor[B, ...]}`` per batch of ``batch_size`` clips.

        Each batch is rendered (mix, then ``effects`` in order), encoded and aligned only when the caller
        asks for it, so holding one batch is all it costs. Effects and the mix ratio are checked before any
        audio is read. Tensors are on :attr:`device` in :attr:`dtype`.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        chain = check_chain(effects)
        if mix is not None and not (isinstance(mix, (tuple, list)) and len(mix) == 2):
            raise ConfigError(f"mix must be (partner audio, ratio), got {mix!r}")
        items = as_sources(sources) if not isinstance(sources, Iterator) else sources
        return self._batches(items, chain, mix, batch_size, sample_rate)

    def _batches(self, items: Iterable[Any], chain: EffectChain, mix: Any, batch_size: int,
                 sample_rate: int | None) -> Iterator[dict[str, torch.Tensor]]:
        waves: list[np.ndarray] = []
        for source in items:
            waves.append(self.render(source, effects=chain, mix=mix, sample_rate=sample_rate))
            if len(waves) == batch_size:
                yield self.predict_waves(waves)
                waves = []
        if waves:
            yield self.predict_waves(waves)

    @torch.no_grad()
    def predict_tokens(self, tokens: torch.Tensor, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[dict[str, torch.Tensor]]:
        """The aligner on encoder tokens computed before (``[N, m, d_A]``), one batch at a time."""
        for start in range(0, len(tokens), batch_size):
            yield self._align(tokens[start : start + batch_size])

    def predict_all(self, sources: Iterable[Any] | Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """:meth:`predict` concatenated, fp32 on the CPU (for a few clips; large sets should stream)."""
        batches = [{k: v.float().cpu() for k, v in b.items()} for b in self.predict(sources, **kwargs)]
        return {k: torch.cat([b[k] for b in batches]) for k in batches[0]} if batches else {}

    def null_conditioning(self) -> Mapping[str, torch.Tensor]:
        """The aligner's null (empty-caption) conditioning per tensor, for guidance."""
        return {n: self.aligner.null_conditioning(n) for n in self.aligner.conditioning_shapes}
