"""The one render of T_j(a): the waveform the frozen encoder hears for a clip, its effects and a mix.

Training, the feature cache, ``describe``, ``generate``, ``augment`` and the web demo all call
:func:`render`, so the encoder sees the same T_j(a) at training and at inference. The order:

1. **load** the clip at the encoder's rate, reading only the span the window needs: the window
   times the product of the chain's input ratios (``speed`` x2 reads 2 windows; the other built-in
   effects read one), plus a small margin for the effects' edges; a shorter clip is not padded yet;
2. **mix** (paper Eq. 7, a_i + a_j): the partner is loaded over the same span and level-matched by
   :func:`seeingsounds.audio.effects.mix` at ``ratio`` (share of the partner), each clip's RMS over
   its own samples (so a short clip is not made quieter by padding);
3. **effects** T_j, in the order given;
4. **crop/pad** to the window (zeros at the end).

Without a window (``num_samples=None``, e.g. ``augment``) the whole clip is loaded and nothing is
cropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from seeingsounds.audio.effects import apply_effects, get_effect
from seeingsounds.audio.effects import mix as mix_waves
from seeingsounds.audio.io import AudioSource, fit_length, load_audio
from seeingsounds.errors import ConfigError

EffectChain = Sequence[tuple[str, Mapping[str, Any]]]
#: extra input samples read beyond the span an effect chain needs (filters and resamplers ring at edges)
EDGE_MARGIN = 2048


def check_chain(effects: EffectChain | None) -> list[tuple[str, dict[str, Any]]]:
    """``effects`` as ``[(name, resolved params)]``; every entry is validated before any audio is read."""
    if isinstance(effects, (str, bytes, Mapping)) or (isinstance(effects, tuple) and len(effects) == 2
                                                       and isinstance(effects[0], str)):
        raise ConfigError(f"effects must be a list of (name, params dict) pairs, e.g. [('volume', {{'alpha': 0.15}})], "
                          f"got {effects!r}")
    chain = []
    for item in effects or ():
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], Mapping)):
            raise ConfigError(f"an effect must be (name, params dict), got {item!r}")
        name, params = item
        effect = get_effect(name)
        resolved = effect.resolve(params)
        effect.describe(**resolved)  # a description that refuses the parameters fails here
        chain.append((name, dict(params)))
    return chain


def input_samples(effects: EffectChain | None, num_samples: int | None) -> int | None:
    """How many input samples at the encoder's rate a window of ``num_samples`` needs after ``effects``."""
    if num_samples is None:
        return None
    ratio = 1.0
    for name, params in check_chain(effects):
        ratio *= get_effect(name).input_ratio(params)
    if ratio == 1.0:
        return int(num_samples)
    return int(math.ceil(num_samples * ratio)) + EDGE_MARGIN


def render(
    source: AudioSource,
    *,
    sample_rate: int,
    num_samples: int | None = None,
    effects: EffectChain | None = None,
    mix: tuple[AudioSource, float] | None = None,
    source_rate: int | None = None,
) -> np.ndarray:
    """The waveform (mono float32 at ``sample_rate``) the encoder hears: load, mix, effects, crop.

    Args:
        source: a path, bytes, an array (with ``source_rate``) or a ``(sample_rate, array)`` tuple.
        sample_rate: the encoder's rate.
        num_samples: the encoder's window; ``None`` keeps the whole rendered clip.
        effects: the chain T_j as ``[(name, params)]``, applied in this order.
        mix: ``(partner, ratio)``: mix in the partner (level-matched) before the effects.
        source_rate: the sample rate of an array ``source`` (files carry their own).
    """
    chain = check_chain(effects)
    if mix is not None:
        if not (isinstance(mix, (tuple, list)) and len(mix) == 2):
            raise ConfigError(f"mix must be (partner audio, ratio), got {mix!r}")
        ratio = mix[1]
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= float(ratio) <= 1.0:
            raise ConfigError(f"mix ratio must be a number in [0, 1] (share of the partner), got {ratio!r}")
    span = input_samples(chain, num_samples)
    rate = source_rate if isinstance(source, np.ndarray) else None
    wave = load_audio(source, sample_rate=rate, target_sr=int(sample_rate), num_samples=span, pad=False)
    if mix is not None:
        partner = load_audio(mix[0], target_sr=int(sample_rate), num_samples=span, pad=False)
        wave = mix_waves(wave, partner, float(mix[1]))
    if chain:
        wave, _ = apply_effects(wave, int(sample_rate), chain)
    if num_samples is not None:
        wave = fit_length(np.asarray(wave, dtype=np.float32), int(num_samples))
    return np.ascontiguousarray(wave, dtype=np.float32)
