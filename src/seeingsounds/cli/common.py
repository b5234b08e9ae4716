"""Command-line options shared by commands that take audio: effects T_j and mixing (paper 3.1).

``add_effect_arguments(parser)`` adds::

    --volume ALPHA  --reverb ROOM_SIZE  --pitch SEMITONES  --lowpass HZ  --echo SECONDS  --speed FACTOR
    --mix OTHER.wav  --mix-ratio R

Effects always run in the fixed order of :data:`EFFECT_ORDER` (speed, pitch, lowpass, echo, reverb,
volume), whatever the order on the command line: changes to the source first, then the room, and the gain
last so that ``--volume`` scales the final level by exactly ALPHA. A ``--mix`` is applied before the effects.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from seeingsounds.errors import ConfigError

#: (option dest, effect name, effect parameter), in the order effects are applied
EFFECT_ORDER: tuple[tuple[str, str, str], ...] = (
    ("speed", "speed", "factor"),
    ("pitch", "pitch", "semitones"),
    ("lowpass", "lowpass", "cutoff_hz"),
    ("echo", "echo", "delay_seconds"),
    ("reverb", "reverb", "room_size"),
    ("volume", "volume", "alpha"),
)
DEFAULT_MIX_RATIO = 0.5


def add_effect_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the effect and mixing options to ``parser`` (in their own argument group)."""
    group = parser.add_argument_group(
        "audio effects", "transform the input before the model hears it (applied as: mix, then "
        + ", ".join(name for _, name, _ in EFFECT_ORDER) + ")"
    )
    group.add_argument("--volume", type=float, metavar="ALPHA", help="gain factor, e.g. 0.15 (low-volume)")
    group.add_argument("--reverb", type=float, metavar="ROOM_SIZE", help="reverb room size in [0, 1], e.g. 0.6")
    group.add_argument("--pitch", type=float, metavar="SEMITONES", help="pitch shift, e.g. 12 or -5")
    group.add_argument("--lowpass", type=float, metavar="HZ", help="low-pass cutoff (muffled), e.g. 800")
    group.add_argument("--echo", type=float, metavar="SECONDS", help="echo delay, e.g. 0.25")
    group.add_argument("--speed", type=float, metavar="FACTOR", help="tape speed: 2 = twice as fast and an octave up")
    group.add_argument("--mix", metavar="OTHER", help="mix in another audio file (level-matched)")
    group.add_argument(
        "--mix-ratio",
        type=float,
        metavar="R",
        help=f"share of the --mix clip in [0, 1] (default {DEFAULT_MIX_RATIO})",
    )


def effects_from_args(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """The effects the options ask for, as ``(name, params)`` in :data:`EFFECT_ORDER`."""
    return [
        (name, {param: getattr(args, dest)})
        for dest, name, param in EFFECT_ORDER
        if getattr(args, dest, None) is not None
    ]


def mix_from_args(args: argparse.Namespace) -> tuple[str, float] | None:
    """``(other_path, ratio)`` when ``--mix`` is given, else None."""
    other = getattr(args, "mix", None)
    ratio = getattr(args, "mix_ratio", None)
    if other is None:
        if ratio is not None:
            raise ConfigError("--mix-ratio needs --mix OTHER.wav (the clip to mix in)")
        return None
    ratio = DEFAULT_MIX_RATIO if ratio is None else float(ratio)
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"--mix-ratio must be in [0, 1] (share of the --mix clip), got {ratio}")
    return str(other), ratio


def apply_args(wave: np.ndarray, sr: int, args: argparse.Namespace) -> tuple[np.ndarray, list[str]]:
    """Mix (if asked) then apply the effects; returns the audio and the descriptions d_j applied."""
    from seeingsounds.audio.effects import apply_effects, describe_effect, mix
    from seeingsounds.audio.io import load_audio

    effects = effects_from_args(args)
    for name, params in effects:  # check every option before reading the --mix file
        describe_effect(name, **params)
    mixing = mix_from_args(args)
    if mixing is not None:
        other, ratio = mixing
        wave = mix(wave, load_audio(other, target_sr=sr), ratio)
    return apply_effects(wave, sr, effects)
