"""How users set an effect: its CLI flag and the web app's slider, apart from the effect itself.

An effect (:mod:`seeingsounds.audio.effects`: transform, descriptions d_j, parameters and ranges, order)
knows nothing of its front ends. A control, registered here under the effect's name, says which one
parameter a front end sets and how: the CLI flag and metavar (``seeingsounds generate --volume ALPHA``:
:func:`seeingsounds.cli.common.add_effect_arguments`), the app's slider and label
(:func:`seeingsounds.app.ui.build_app`), and the value at which the control applies nothing. Every front
end (and the README table, :func:`effects_table`) reads these records, so a new effect is one
:func:`~seeingsounds.audio.effects.register_effect` plus, for a flag or slider, one :func:`register_control`.

The neutral value belongs to the control, not to the effect: a slider at rest means "off", which for
``lowpass`` and ``echo`` is 0, a value outside the effect's own parameter range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seeingsounds.audio.effects import effects_for_display, effects_in_order, get_effect
from seeingsounds.errors import ConfigError


@dataclass(frozen=True)
class EffectControl:
    """The one parameter of effect :attr:`effect` that the CLI and the app set, and how they show it."""

    #: the registered effect's name
    effect: str
    #: the effect parameter the flag / slider sets (the others keep their defaults)
    parameter: str
    #: the CLI option and its metavar / help text
    flag: str
    metavar: str
    help: str = ""
    #: the control value that applies nothing (an app slider at rest); None: every value applies the effect
    neutral: float | None = None
    #: the app's slider ``(minimum, maximum, step)``; None: not shown in the app
    slider: tuple[float, float, float] | None = None
    #: the app's slider label
    label: str = ""

    @property
    def dest(self) -> str:
        """The argparse destination of :attr:`flag` (``--my-effect`` -> ``my_effect``)."""
        return self.flag.lstrip("-").replace("-", "_")


_CONTROLS: dict[str, EffectControl] = {}


def register_control(
    effect: str,
    parameter: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    help: str = "",
    neutral: float | None = None,
    slider: tuple[float, float, float] | None = None,
    label: str = "",
    replace: bool = False,
) -> EffectControl:
    """Give the registered ``effect`` a CLI flag (``flag``, default ``--<effect>``; ``metavar`` default the
    parameter in capitals) setting ``parameter`` and, with ``slider``, an app slider; see
    :class:`EffectControl` for the other fields. A second control for one effect needs ``replace=True``."""
    registered = get_effect(effect)
    if parameter not in registered.defaults:
        raise ConfigError(f"control of {effect!r}: parameter {parameter!r} is not one of {sorted(registered.defaults)}")
    if effect in _CONTROLS and not replace:
        raise ConfigError(f"effect {effect!r} already has a control; pass replace=True to override it")
    if slider is not None and (len(slider) != 3 or not slider[0] < slider[1] or slider[2] <= 0):
        raise ConfigError(f"control of {effect!r}: a slider needs (min < max, step > 0), got {slider}")
    flag = flag or "--" + effect.replace("_", "-")
    if any(c.flag == flag for c in _CONTROLS.values() if c.effect != effect):
        raise ConfigError(f"control of {effect!r}: the option {flag} belongs to another effect")
    control = EffectControl(effect, parameter, flag, metavar or parameter.upper(), help,
                            None if neutral is None else float(neutral),
                            None if slider is None else tuple(float(v) for v in slider), label or effect)
    _CONTROLS[effect] = control
    return control


def unregister_control(effect: str) -> None:
    """Remove an effect's control (tests that register their own)."""
    _CONTROLS.pop(effect, None)


def controls_in_order() -> list[EffectControl]:
    """The controls of registered effects, in the effects' application order (the CLI and the app share it)."""
    return [_CONTROLS[e.name] for e in effects_in_order() if e.name in _CONTROLS]


def controls_for_display() -> list[EffectControl]:
    """The controls of registered effects, in the effects' display order."""
    return [_CONTROLS[e.name] for e in effects_for_display() if e.name in _CONTROLS]


def slider_controls() -> list[EffectControl]:
    """The controls the web app shows as sliders, in display order."""
    return [c for c in controls_for_display() if c.slider is not None]


def effects_from_controls(values: Mapping[str, Any], *, skip_neutral: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """``(name, {parameter: value})`` for every effect named in ``values`` (``None`` = not asked), in
    application order; with ``skip_neutral`` a value equal to the control's neutral value applies nothing."""
    controls = controls_in_order()
    unknown = sorted(set(values) - {c.effect for c in controls})
    if unknown:
        raise ConfigError(f"no control for effect(s) {unknown}; controls: {[c.effect for c in controls]}")
    chosen = []
    for control in controls:
        value = values.get(control.effect)
        if value is None or (skip_neutral and control.neutral is not None and float(value) == control.neutral):
            continue
        chosen.append((control.effect, {control.parameter: value}))
    return chosen


def effects_table() -> str:
    """The README's table of effects (Markdown): flag, parameters, description d_j, app slider."""
    rows = ["| effect | CLI option | parameters (default) and range | description d_j | app slider (neutral) |",
            "|---|---|---|---|---|"]
    for e in effects_for_display():
        c = _CONTROLS.get(e.name)
        params = ", ".join(
            f"`{k}`" + (" (required)" if v is None else f" {v:g}" if isinstance(v, float) else f" {v}")
            + (f" in [{e.ranges[k][0]:g}, {e.ranges[k][1]:g}]" if k in e.ranges else "")
            for k, v in e.defaults.items()
        )
        flag = f"`{c.flag} {c.metavar}`" if c else "—"
        slider = "—" if c is None or c.slider is None else f"{c.slider[0]:g} .. {c.slider[1]:g} step {c.slider[2]:g}" + (
            f" ({c.neutral:g} = off)" if c.neutral is not None else "")
        rows.append(f"| `{e.name}` | {flag} | {params} | {', '.join(f'`{d}`' for d in e.descriptions)} | {slider} |")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------- the built-in effects' controls

register_control("volume", "alpha", help="gain factor, e.g. 0.15 (low-volume)", neutral=1.0,
                 slider=(0.05, 1.0, 0.05), label="Volume (gain; 1 = unchanged)")
register_control("reverb", "room_size", help="reverb room size in [0, 1], e.g. 0.6", neutral=0.0,
                 slider=(0.0, 1.0, 0.05), label="Reverb room size (0 = off)")
register_control("pitch", "semitones", help="pitch shift, e.g. 12 or -5", neutral=0.0, slider=(-12.0, 12.0, 1.0),
                 label="Pitch shift, semitones (0 = off)")
register_control("lowpass", "cutoff_hz", metavar="HZ", help="low-pass cutoff (muffled), e.g. 800", neutral=0.0,
                 slider=(0.0, 8000.0, 100.0), label="Low-pass cutoff, Hz (0 = off)")
register_control("echo", "delay_seconds", metavar="SECONDS", help="echo delay, e.g. 0.25", neutral=0.0,
                 slider=(0.0, 1.0, 0.05), label="Echo delay, s (0 = off)")
register_control("speed", "factor", help="tape speed: 2 = twice as fast and an octave up", neutral=1.0,
                 label="Speed factor (1 = unchanged)")
