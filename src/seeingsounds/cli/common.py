"""Command-line options shared by commands: effects T_j and mixing (paper 3.1), device and dtype.

``add_effect_arguments(parser)`` adds one option per effect control
(:func:`seeingsounds.controls.register_control`: ``--volume ALPHA --reverb ROOM_SIZE --pitch SEMITONES
--lowpass HZ --echo SECONDS --speed FACTOR`` for the built-ins) and ``--mix OTHER.wav --mix-ratio R``.

Effects always run in the registry's application order (:data:`EFFECT_ORDER`: speed, pitch, lowpass,
echo, reverb, volume for the built-ins), whatever the order on the command line: changes to the source
first, then the room, and the gain last so that ``--volume`` scales the final level by exactly ALPHA.
A ``--mix`` is applied before the effects.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from seeingsounds.controls import controls_for_display, controls_in_order
from seeingsounds.errors import ConfigError
from seeingsounds.training.config import is_required, option_flag, option_type, train_options

DEFAULT_MIX_RATIO = 0.5


def effect_order() -> tuple[tuple[str, str, str], ...]:
    """``(option dest, effect name, effect parameter)`` of every flag, in the order effects are applied."""
    return tuple((c.dest, c.effect, c.parameter) for c in controls_in_order())


#: the built-in effects' :func:`effect_order` (effects registered later appear in :func:`effect_order`)
EFFECT_ORDER: tuple[tuple[str, str, str], ...] = effect_order()


def add_effect_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the effect and mixing options to ``parser`` (in their own argument group)."""
    group = parser.add_argument_group(
        "audio effects", "transform the input before the model hears it (applied as: mix, then "
        + ", ".join(c.effect for c in controls_in_order()) + ")"
    )
    for control in controls_for_display():
        group.add_argument(control.flag, dest=control.dest, type=float, metavar=control.metavar,
                           help=control.help or f"{control.effect} ({control.parameter})")
    group.add_argument("--mix", metavar="OTHER", help="mix in another audio file (level-matched)")
    group.add_argument(
        "--mix-ratio",
        type=float,
        metavar="R",
        help=f"share of the --mix clip in [0, 1] (default {DEFAULT_MIX_RATIO})",
    )


def opposite_flag(flag: str) -> str:
    """The flag that says the opposite of a boolean option's: ``--skip-bad`` -> ``--no-skip-bad``,
    ``--no-cache`` -> ``--cache``."""
    return "--" + flag[len("--no-"):] if flag.startswith("--no-") else "--no-" + flag[2:]


class Switch(argparse.Action):
    """A boolean option's flag and its opposite (``--skip-bad`` / ``--no-skip-bad``, ``--no-cache`` /
    ``--cache``): the flag sets ``flag_value``, the opposite its negation, so a flag typed after ``train
    --config FILE`` switches the file's value either way. The last one typed wins."""

    def __init__(self, option_strings: list[str], dest: str, flag_value: bool, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, **kwargs)
        self.flag_value = flag_value

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, self.flag_value if option_string == self.option_strings[0] else not self.flag_value)


def add_train_option(parser: Any, name: str, **override: Any) -> argparse.Action:
    """Add the flag of the :class:`~seeingsounds.training.config.TrainConfig` field ``name`` to ``parser`` (a
    parser or argument group), as its :class:`~seeingsounds.training.config.Option` declares it; the value
    lands under the field's name. ``override`` replaces argparse keywords (e.g. another ``help``)."""
    f, option = dict((f.name, (f, o)) for f, o in train_options())[name]
    kwargs: dict[str, Any] = {"dest": f.name, "help": option.help or None}
    if is_required(f):
        kwargs["required"] = True
    flags = [option_flag(f, option)]
    if option_type(f) is bool:
        flags.append(opposite_flag(flags[0]))
        kwargs.update(action=Switch, flag_value=not f.default, default=f.default)
    elif option.repeat:
        kwargs.update(action="append", default=[], metavar=option.metavar)
    else:
        kwargs.update(type=option_type(f), default=None if f.default is dataclasses.MISSING else f.default,
                      choices=option.choices, metavar=option.metavar)
    return parser.add_argument(*flags, **{**kwargs, **override})


def train_values_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~seeingsounds.training.config.TrainConfig` fields present in ``args``, converted as their
    options declare (``--weight NAME=W`` -> ``{name: w}``, ``--augment SPEC`` -> chains, ...)."""
    values = {}
    for f, option in train_options():
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            values[f.name] = option.from_cli(value) if option.from_cli is not None else value
    return values


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
