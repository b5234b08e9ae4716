"""Assemble the SeeingSounds model for a preset: frozen encoder, generator backend, aligner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from seeingsounds.aligner import SeeingSoundsAligner
from seeingsounds.encoders.base import AudioEncoder, create_audio_encoder
from seeingsounds.errors import ConfigError
from seeingsounds.generators.base import GeneratorBackend, TensorSpec, create_backend
from seeingsounds.presets import Preset, get_preset

#: ``--align`` choices (paper Table 4): which conditioning tensors get a trained head
ALIGN_CHOICES = ("all", "sequence", "pooled")


def load_encoder(preset: Preset | str, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> AudioEncoder:
    preset = get_preset(preset)
    return create_audio_encoder(preset.encoder, preset.resolve_encoder_id(), device=device, dtype=dtype,
                                **preset.encoder_options)


def load_backend(preset: Preset | str) -> GeneratorBackend:
    preset = get_preset(preset)
    return create_backend(preset.generator, preset.resolve_generator_id(), max_sequence_length=preset.max_sequence_length)


def aligned_names(spec: Mapping[str, TensorSpec], align: str = "all") -> list[str]:
    """Names of the conditioning tensors that ``align`` trains ("sequence" = T5-only, "pooled" = CLIP-only)."""
    if align not in ALIGN_CHOICES:
        raise ConfigError(f"align must be one of {ALIGN_CHOICES}, got {align!r}")
    if align == "all":
        return list(spec)
    names = [n for n, s in spec.items() if s.pooled == (align == "pooled")]
    if not names:
        raise ConfigError(f"this generator has no {align} conditioning tensor to align: {list(spec)}")
    return names


def create_aligner(preset: Preset | str, input_dim: int, spec: Mapping[str, TensorSpec], *,
                   align: str = "all", aligned: Sequence[str] | None = None, **overrides: Any) -> SeeingSoundsAligner:
    """A freshly initialised aligner whose heads match ``spec`` (the generator's conditioning).

    ``overrides`` replace the preset's aligner fields (order, pooling, hidden_dim, attention_heads).
    """
    preset = get_preset(preset)
    chosen = list(aligned) if aligned is not None else aligned_names(spec, align)
    unknown = set(chosen) - set(spec)
    if unknown:
        raise ConfigError(f"cannot align {sorted(unknown)}: the generator consumes {list(spec)}")
    options = {"order": preset.order, "pooling": preset.pooling, "hidden_dim": preset.hidden_dim,
               "attention_heads": preset.attention_heads}
    bad = set(overrides) - set(options) - {"dropout"}
    if bad:
        raise ConfigError(f"unknown aligner options {sorted(bad)}")
    options.update({k: v for k, v in overrides.items() if v is not None})
    heads = [s.as_head(aligned=name in chosen) for name, s in spec.items()]
    return SeeingSoundsAligner(input_dim=input_dim, heads=heads, preset=preset.to_dict(), **options)
