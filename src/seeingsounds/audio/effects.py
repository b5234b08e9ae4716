"""Audio transformations T_j with their text descriptions d_j (paper section 3.1), and two-clip mixing.

Every effect is a registry entry: ``transform(wave, sr, **params) -> wave`` on a mono float32 waveform,
``describe(**params) -> str`` (the d_j that caption templates key on), its parameters with defaults
(``None`` marks a required parameter), the valid range of each numeric parameter and its place in the
application order. How users set an effect (a CLI flag, an app slider) is its control, registered
apart in :mod:`seeingsounds.controls`.

Built-in effects (all DSP is pedalboard's, resampling soxr's):

============  =====================================  ==============================================
effect        parameters (default)                   description d_j
============  =====================================  ==============================================
``volume``    ``alpha`` (required), (0, 16]          ``low-volume`` if alpha < 0.2,
                                                     ``medium-volume`` if 0.2 <= alpha < 0.5,
                                                     else ``high-volume`` (the paper's bins)
``reverb``    ``room_size`` 0.6, ``wet_level`` 0.5   ``reverberant``
``pitch``     ``semitones`` (required), [-24, 24]    ``higher-pitched`` (> 0) / ``lower-pitched`` (< 0)
``lowpass``   ``cutoff_hz`` 800                      ``muffled``
``echo``      ``delay_seconds`` 0.25,                ``echoing``
              ``feedback`` 0.4, ``mix`` 0.5
``speed``     ``factor`` (required), [0.25, 4]       ``faster`` (> 1) / ``slower`` (< 1)
============  =====================================  ==============================================

``reverb`` and ``echo`` keep their tails (pedalboard keeps the input length): silence is fed through the
effect block by block until a block stays below :data:`TAIL_FLOOR` (at most :data:`MAX_TAIL_SECONDS`),
then the trailing samples below :data:`TAIL_FLOOR` are dropped. ``pitch`` uses
``pedalboard.time_stretch`` (exact; ``pedalboard.PitchShift`` is off by 10-19 cents) without formant
preservation, so duration and level are kept. ``speed`` is tape-style: the clip is resampled (soxr) from
``sr * factor`` to ``sr``, so its length is divided by ``factor`` and every frequency multiplied by it.
``lowpass`` is two cascaded first-order ``pedalboard.LowpassFilter`` stages (12 dB/octave, -6 dB at the
cutoff, more than 20 dB down at four times the cutoff).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seeingsounds.errors import ConfigError

Transform = Callable[..., np.ndarray]
Describe = Callable[..., str]

#: samples of a reverb/echo tail quieter than this (absolute) are trimmed from the end
TAIL_FLOOR = 1e-4
#: longest reverb/echo tail kept after the input (seconds); only extreme settings reach it
MAX_TAIL_SECONDS = 120.0
#: clips shorter than this are zero-padded for ``pitch`` (pedalboard returns nothing for a few dozen samples)
_PITCH_MIN_FRAMES = 4096
#: a mix whose peak magnitude exceeds 1 is scaled so that its peak is exactly this
MIX_PEAK = 0.99


@dataclass(frozen=True)
class Effect:
    """One registered transformation T_j and its description d_j.

    The caption templates' :func:`~seeingsounds.captions.templates.standard_descriptions` derive from these
    entries; the front ends' flags and sliders from an effect's control (:mod:`seeingsounds.controls`).
    """

    name: str
    transform: Transform
    describe: Describe
    defaults: dict[str, Any]
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: input samples consumed per output sample, from the resolved parameters (``speed``: its factor);
    #: :func:`seeingsounds.audio.render.render` reads that much more of a clip to fill the window
    stretch: Callable[..., float] | None = None
    #: every description d_j ``describe`` can return (what the caption templates key on)
    descriptions: tuple[str, ...] = ()
    #: application order when several are asked for at once (lower first; every front end shares it)
    order: int = 100
    #: display order (descriptions, app sliders, README table)
    display: int = 100

    def input_ratio(self, params: Mapping[str, Any]) -> float:
        """Input samples this effect consumes per output sample with ``params`` (1 for most effects)."""
        return 1.0 if self.stretch is None else float(self.stretch(**self.resolve(params)))

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults merged with ``params``; unknown/missing/out-of-range parameters raise ConfigError."""
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"effect {self.name!r} has no parameter {', '.join(unknown)}; its parameters: {self.signature()}"
            )
        resolved = {**self.defaults, **params}
        missing = sorted(k for k, v in resolved.items() if v is None)
        if missing:
            raise ConfigError(f"effect {self.name!r} needs {', '.join(missing)}; its parameters: {self.signature()}")
        for key, (lo, hi) in self.ranges.items():
            value = resolved[key]
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ConfigError(f"effect {self.name!r}: {key} must be a number in [{lo}, {hi}], got {value!r}")
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ConfigError(f"effect {self.name!r}: {key}={value} is outside the valid range [{lo}, {hi}]")
            resolved[key] = float(value)
        return resolved

    def signature(self) -> str:
        parts = []
        for key, default in self.defaults.items():
            text = key if default is None else f"{key}={default}"
            if key in self.ranges:
                text += f" in [{self.ranges[key][0]}, {self.ranges[key][1]}]"
            parts.append(text)
        return f"{self.name}({', '.join(parts)})"


_EFFECTS: dict[str, Effect] = {}


def register_effect(
    name: str,
    transform: Transform,
    describe: Describe,
    defaults: dict[str, Any],
    *,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    stretch: Callable[..., float] | None = None,
    descriptions: Sequence[str] = (),
    order: int = 100,
    display: int = 100,
    replace: bool = False,
) -> Effect:
    """Register ``transform(wave, sr, **params) -> wave`` with ``describe(**params) -> str``.

    ``defaults`` names every parameter (``None`` = required); ``ranges`` gives ``(low, high)`` inclusive
    bounds for numeric parameters; ``stretch(**params)`` the input samples it consumes per output sample
    (default 1); ``descriptions`` every d_j it can produce; ``order`` its place when several are applied
    at once, ``display`` its place in listings. Registering an existing name needs ``replace=True``.
    Its CLI flag and app slider are a control: :func:`seeingsounds.controls.register_control`.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"effect name must be an identifier like 'my_effect', got {name!r}")
    if name in _EFFECTS and not replace:
        raise ConfigError(f"effect {name!r} is already registered; pass replace=True to override it")
    if not callable(transform) or not callable(describe):
        raise ConfigError(f"effect {name!r}: transform and describe must be callables")
    ranges = dict(ranges or {})
    stray = sorted(set(ranges) - set(defaults))
    if stray:
        raise ConfigError(f"effect {name!r}: ranges name unknown parameters {stray}")
    effect = Effect(name, transform, describe, dict(defaults), ranges, stretch, tuple(descriptions), int(order),
                    int(display))
    _EFFECTS[name] = effect
    return effect


def unregister_effect(name: str) -> None:
    """Remove a registered effect (tests that register their own)."""
    _EFFECTS.pop(name, None)


def effects_in_order() -> list[Effect]:
    """Every registered effect in application order (every front end applies several in this order)."""
    return sorted(_EFFECTS.values(), key=lambda e: (e.order, e.name))


def effects_for_display() -> list[Effect]:
    """Every registered effect in display order (descriptions, app sliders, README table)."""
    return sorted(_EFFECTS.values(), key=lambda e: (e.display, e.name))


def all_descriptions() -> tuple[str, ...]:
    """Every description d_j the registered effects can produce, in display order, without repeats."""
    return tuple(dict.fromkeys(d for e in effects_for_display() for d in e.descriptions))


def available_effects() -> list[str]:
    """Registered effect names, sorted."""
    return sorted(_EFFECTS)


def get_effect(name: str) -> Effect:
    try:
        return _EFFECTS[name]
    except (KeyError, TypeError):
        listing = "; ".join(_EFFECTS[n].signature() for n in available_effects())
        raise ConfigError(f"unknown effect {name!r}; available: {listing}") from None


def _check_wave(wave: Any, what: str) -> np.ndarray:
    wave = np.asarray(wave)
    if wave.ndim != 1 or wave.dtype.kind != "f" or wave.size == 0:
        raise ConfigError(f"{what} must be a non-empty 1-D float waveform, got {wave.dtype} {tuple(wave.shape)}")
    return wave.astype(np.float32, copy=False)


def apply_effect(wave: np.ndarray, sr: int, name: str, **params: Any) -> np.ndarray:
    """Apply one registered effect to a mono float32 waveform at ``sr``."""
    effect = get_effect(name)
    resolved = effect.resolve(params)
    effect.describe(**resolved)  # a describe that refuses the parameters stops before any processing
    out = effect.transform(_check_wave(wave, "the input of an effect"), int(sr), **resolved)
    out = _check_wave(out, f"the output of effect {name!r}")
    if not np.isfinite(out).all():
        raise ConfigError(f"effect {name!r} produced NaN/inf samples with {resolved}")
    return np.ascontiguousarray(out, dtype=np.float32)


def describe_effect(name: str, **params: Any) -> str:
    """The description d_j of an effect with these parameters (e.g. ``"low-volume"``)."""
    effect = get_effect(name)
    return effect.describe(**effect.resolve(params))


def apply_effects(
    wave: np.ndarray, sr: int, effects: Sequence[tuple[str, Mapping[str, Any]]]
) -> tuple[np.ndarray, list[str]]:
    """Chain effects in the given order; returns the result and the descriptions, in that order.

    Every entry is checked before any audio is processed, so a bad last entry fails fast.
    """
    steps, descriptions = [], []
    for item in effects:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], Mapping)):
            raise ConfigError(f"an effect must be (name, params dict), got {item!r}")
        name, params = item
        descriptions.append(describe_effect(name, **params))
        steps.append((name, dict(params)))
    out = _check_wave(wave, "the input of an effect")
    for name, params in steps:
        out = apply_effect(out, sr, name, **params)
    return out, descriptions


# ---------------------------------------------------------------- built-in effects (pedalboard DSP)
# pedalboard and soxr are imported by the effect that needs them, deferred on purpose: the registry (read by
# every command's `--help` for its flags) stays light.


def _run(plugin: Any, wave: np.ndarray, sr: int) -> np.ndarray:
    return np.asarray(plugin(wave.astype(np.float32)[None, :], float(sr), reset=True))[0]


def _run_with_tail(plugin: Any, wave: np.ndarray, sr: int, block_seconds: float) -> np.ndarray:
    """Run ``plugin`` on ``wave`` followed by silence, in equal blocks of ``block_seconds``, until a whole
    block of silence comes out below :data:`TAIL_FLOOR` (or :data:`MAX_TAIL_SECONDS` of tail); trimmed.

    Every call gets a block of the same size: pedalboard resets a plugin's state when a call brings a
    larger block than the first one, so streaming in equal blocks gives exactly what one call on
    ``wave`` + silence would.
    """
    size = max(1, int(math.ceil(block_seconds * sr)))
    n = len(wave)
    count = -(-n // size)
    padded = np.zeros((1, count * size), dtype=np.float32)
    padded[0, :n] = wave
    parts = [
        np.asarray(plugin(padded[:, i * size : (i + 1) * size], float(sr), reset=i == 0))[0] for i in range(count)
    ]
    silence = np.zeros((1, size), dtype=np.float32)
    tail, limit = count * size - n, int(MAX_TAIL_SECONDS * sr)
    while tail < limit:
        chunk = np.asarray(plugin(silence, float(sr), reset=False))[0]
        parts.append(chunk)
        tail += len(chunk)
        if not len(chunk) or np.abs(chunk).max() <= TAIL_FLOOR:
            break
    return _trim_tail(np.concatenate(parts), n)


def _trim_tail(out: np.ndarray, dry_length: int) -> np.ndarray:
    loud = np.flatnonzero(np.abs(out[dry_length:]) > TAIL_FLOOR)
    return out[: dry_length + (int(loud[-1]) + 1 if loud.size else 0)]


def _volume(wave: np.ndarray, sr: int, alpha: float) -> np.ndarray:
    from pedalboard import Gain

    return _run(Gain(gain_db=20.0 * math.log10(alpha)), wave, sr)


def _describe_volume(alpha: float) -> str:
    if alpha < 0.2:
        return "low-volume"
    if alpha < 0.5:
        return "medium-volume"
    return "high-volume"


def _reverb(wave: np.ndarray, sr: int, room_size: float, wet_level: float) -> np.ndarray:
    from pedalboard import Reverb

    # blocks of 0.25 s: longer than every comb/all-pass loop of the reverb, so a quiet block means the decay
    # is over (room_size 1.0 rings for ~11 s)
    return _run_with_tail(Reverb(room_size=room_size, wet_level=wet_level), wave, sr, 0.25)


def _pitch(wave: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    from pedalboard import time_stretch

    if semitones == 0:
        return wave.copy()
    # preserve_formants=False shifts the whole spectrum; True keeps the old spectral envelope, which
    # leaves a shifted pure tone ~35 dB quieter
    n = len(wave)
    padded = wave if n >= _PITCH_MIN_FRAMES else np.pad(wave, (0, _PITCH_MIN_FRAMES - n))
    out = time_stretch(
        padded[None, :], float(sr), stretch_factor=1.0, pitch_shift_in_semitones=semitones, preserve_formants=False
    )
    return np.asarray(out)[0][:n]


def _describe_pitch(semitones: float) -> str:
    if semitones == 0:
        raise ConfigError("pitch: semitones=0 changes nothing; use a non-zero shift such as 12 or -5")
    return "higher-pitched" if semitones > 0 else "lower-pitched"


def _lowpass(wave: np.ndarray, sr: int, cutoff_hz: float) -> np.ndarray:
    from pedalboard import LowpassFilter, Pedalboard

    if cutoff_hz >= sr / 2:
        raise ConfigError(f"lowpass: cutoff_hz={cutoff_hz} must be below the Nyquist frequency {sr / 2} Hz")
    # two first-order stages: 12 dB/octave, -6 dB at the cutoff, ~27 dB down at 4x the cutoff
    stages = Pedalboard([LowpassFilter(cutoff_frequency_hz=cutoff_hz), LowpassFilter(cutoff_frequency_hz=cutoff_hz)])
    return _run(stages, wave, sr)


def _echo(wave: np.ndarray, sr: int, delay_seconds: float, feedback: float, mix: float) -> np.ndarray:
    from pedalboard import Delay

    # after the input, every delay-long stretch is the previous one times the feedback: a block of at least
    # one delay that stays below the floor ends the echo (feedback 0.95 repeats ~170 times)
    return _run_with_tail(
        Delay(delay_seconds=delay_seconds, feedback=feedback, mix=mix), wave, sr, max(delay_seconds, 0.25)
    )


def _speed(wave: np.ndarray, sr: int, factor: float) -> np.ndarray:
    import soxr

    if factor == 1:
        return wave.copy()
    return soxr.resample(wave, sr * factor, sr, quality="HQ").astype(np.float32)


def _describe_speed(factor: float) -> str:
    if factor == 1:
        raise ConfigError("speed: factor=1 changes nothing; use e.g. 1.5 (faster) or 0.75 (slower)")
    return "faster" if factor > 1 else "slower"


register_effect(
    "volume", _volume, _describe_volume, {"alpha": None}, ranges={"alpha": (1e-4, 16.0)},
    descriptions=("low-volume", "medium-volume", "high-volume"), order=60, display=10,
)
register_effect(
    "reverb", _reverb, lambda room_size, wet_level: "reverberant", {"room_size": 0.6, "wet_level": 0.5},
    ranges={"room_size": (0.0, 1.0), "wet_level": (0.0, 1.0)}, descriptions=("reverberant",), order=50, display=20,
)
register_effect(
    "pitch", _pitch, _describe_pitch, {"semitones": None}, ranges={"semitones": (-24.0, 24.0)},
    descriptions=("higher-pitched", "lower-pitched"), order=20, display=30,
)
register_effect(
    "lowpass", _lowpass, lambda cutoff_hz: "muffled", {"cutoff_hz": 800.0}, ranges={"cutoff_hz": (20.0, 384_000.0)},
    descriptions=("muffled",), order=30, display=40,
)
register_effect(
    "echo", _echo, lambda delay_seconds, feedback, mix: "echoing", {"delay_seconds": 0.25, "feedback": 0.4, "mix": 0.5},
    ranges={"delay_seconds": (0.01, 5.0), "feedback": (0.0, 0.95), "mix": (0.0, 1.0)}, descriptions=("echoing",),
    order=40, display=50,
)
register_effect(
    "speed", _speed, _describe_speed, {"factor": None}, ranges={"factor": (0.25, 4.0)}, stretch=lambda factor: factor,
    descriptions=("faster", "slower"), order=10, display=60,
)


# ---------------------------------------------------------------- mixing


def rms(wave: np.ndarray) -> float:
    """Root mean square of a waveform, computed in float64."""
    return float(np.sqrt(np.mean(np.square(np.asarray(wave, dtype=np.float64)))))


def mix(a: np.ndarray, b: np.ndarray, ratio: float = 0.5) -> np.ndarray:
    """Mix two mono clips at the same sample rate. The exact rule:

    1. level match: ``b_m = b * rms(a) / rms(b)`` when both RMS values are > 0, else ``b_m = b``
       (RMS over each clip's own samples, in float64);
    2. pad the shorter of ``a`` / ``b_m`` with zeros at the end to the longer length;
    3. ``m = (1 - ratio) * a + ratio * b_m``;
    4. if ``max|m| > 1``: ``m *= MIX_PEAK / max|m|`` (0.99), so the mix never clips.

    Returned as float32.
    """
    a = _check_wave(a, "mix: the first clip").astype(np.float64)
    b = _check_wave(b, "mix: the second clip").astype(np.float64)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating)) or not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"mix ratio must be a number in [0, 1] (share of the second clip), got {ratio!r}")
    ra, rb = rms(a), rms(b)
    if ra > 0 and rb > 0:
        b = b * (ra / rb)
    n = max(len(a), len(b))
    a = np.pad(a, (0, n - len(a)))
    b = np.pad(b, (0, n - len(b)))
    out = (1.0 - ratio) * a + ratio * b
    peak = float(np.max(np.abs(out)))
    if peak > 1.0:
        out = out * (MIX_PEAK / peak)
    return out.astype(np.float32)
