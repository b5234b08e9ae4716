"""Command-line options shared by commands: effects T_j and mixing (paper 3.1), device and dtype.

``add_effect_arguments(parser)`` adds one option per registered effect that has a primary parameter
(:func:`seeingsounds.audio.effects.register_effect`: ``--volume ALPHA --reverb ROOM_SIZE --pitch SEMITONES
--lowpass HZ --echo SECONDS --speed FACTOR`` for the built-ins) and ``--mix OTHER.wav --mix-ratio R``.

Effects always run in the registry's application order (:data:`EFFECT_ORDER`: speed, pitch, lowpass,
echo, reverb, volume for the built-ins), whatever the order on the command line: changes to the source
first, then the room, and the gain last so that ``--volume`` scales the final level by exactly ALPHA.
A ``--mix`` is applied before the effects.
"""

from __future__ import annotations

import argparse
from typing import Any


from seeingsounds.audio.effects import effects_in_order
from seeingsounds.errors import ConfigError

DEFAULT_MIX_RATIO = 0.5


def effect_order() -> tuple[tuple[str, str, str], ...]:
    """``(option dest, effect name, effect parameter)`` of every flag, in the order effects are applied."""
    return tuple((e.dest, e.name, str(e.primary)) for e in effects_in_order())


#: the built-in effects' :func:`effect_order` (effects registered later appear in :func:`effect_order`)
EFFECT_ORDER: tuple[tuple[str, str, str], ...] = effect_order()


def add_effect_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the effect and mixing options to ``parser`` (in their own argument group)."""
    effects = sorted(effects_in_order(), key=lambda e: (e.display, e.name))
    group = parser.add_argument_group(
        "audio effects", "transform the input before the model hears it (applied as: mix, then "
        + ", ".join(e.name for e in effects_in_order()) + ")"
    )
    for effect in effects:
        group.add_argument(effect.flag, dest=effect.dest, type=float, metavar=effect.metavar,
                           help=effect.help or f"{effect.name} ({effect.primary})")
    group.add_argument("--mix", metavar="OTHER", help="mix in another audio file (level-matched)")
    group.add_argument(
        "--mix-ratio",
        type=float,
        metavar="R",
        help=f"share of the --mix clip in [0, 1] (default {DEFAULT_MIX_RATIO})",
    )


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` (auto = the accelerator when there is one) and ``--dtype`` (see :mod:`seeingsounds.devices`)."""
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="auto (default: the accelerator when there is one, else the CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default=None, choices=["auto", "fp32", "fp16", "bf16"],
                        help="precision (default auto: bf16 where supported, fp16 on other accelerators, fp32 on the CPU)")


def effects_from_args(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """The effects the options ask for, as ``(name, params)`` in application order."""
    return [(name, {param: getattr(args, dest)}) for dest, name, param in effect_order()
            if getattr(args, dest, None) is not None]


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
