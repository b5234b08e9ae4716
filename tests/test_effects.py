"""Effects T_j and mixing, measured on the signals they produce."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import sine

from seeingsounds.audio import effects
from seeingsounds.audio.effects import (
    MIX_PEAK,
    apply_effect,
    apply_effects,
    available_effects,
    describe_effect,
    mix,
    register_effect,
    rms,
)
from seeingsounds.errors import ConfigError

SR = 16000


def peak_hz(wave: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spectrum)])


def band_power(wave: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / sr)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].mean())


def test_builtin_effects_and_their_exact_descriptions():
    assert available_effects() == ["echo", "lowpass", "pitch", "reverb", "speed", "volume"]
    expected = {
        ("volume", 0.1): "low-volume",
        ("volume", 0.1999): "low-volume",
        ("volume", 0.2): "medium-volume",
        ("volume", 0.4999): "medium-volume",
        ("volume", 0.5): "high-volume",
        ("volume", 2.0): "high-volume",
        ("pitch", 3): "higher-pitched",
        ("pitch", -0.5): "lower-pitched",
        ("speed", 1.25): "faster",
        ("speed", 0.8): "slower",
    }
    param = {"volume": "alpha", "pitch": "semitones", "speed": "factor"}
    for (name, value), text in expected.items():
        assert describe_effect(name, **{param[name]: value}) == text
    assert describe_effect("reverb") == "reverberant"
    assert describe_effect("lowpass", cutoff_hz=2000) == "muffled"
    assert describe_effect("echo") == "echoing"


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.5, 2.0])
def test_volume_scales_rms_by_alpha(alpha):
    wave = sine(440, 1.0, SR, 0.4)
    out = apply_effect(wave, SR, "volume", alpha=alpha)
    assert out.shape == wave.shape and out.dtype == np.float32
    assert rms(out) / rms(wave) == pytest.approx(alpha, rel=0.01)


@pytest.mark.parametrize(("semitones", "ratio"), [(12, 2.0), (-12, 0.5), (7, 2 ** (7 / 12))])
def test_pitch_shift_moves_the_fft_peak_and_keeps_duration(semitones, ratio):
    wave = sine(440, 1.0, SR, 0.5)
    out = apply_effect(wave, SR, "pitch", semitones=semitones)
    assert len(out) == len(wave)
    assert peak_hz(out) == pytest.approx(440 * ratio, rel=0.01)
    assert rms(out[4000:12000]) == pytest.approx(rms(wave), rel=0.2)  # level kept


def test_reverb_adds_a_decay_tail_after_the_dry_signal():
    rng = np.random.default_rng(0)
    wave = np.zeros(SR, np.float32)
    wave[:1600] = rng.uniform(-0.5, 0.5, 1600)  # 0.1 s burst, then silence
    out = apply_effect(wave, SR, "reverb", room_size=0.8)
    assert len(out) > len(wave)  # the tail was kept, not cut at the input length
    dry_tail = float(np.sum(wave[3200:] ** 2))
    wet_tail = float(np.sum(out[3200:] ** 2))
    assert dry_tail == 0 and wet_tail > 0.05 * float(np.sum(out[:1600] ** 2))
    assert np.abs(out[-100:]).max() < 1e-3  # the tail decays; trailing silence is trimmed


def test_lowpass_removes_energy_above_the_cutoff():
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, 2 * SR).astype(np.float32)
    out = apply_effect(noise, SR, "lowpass", cutoff_hz=800)
    drop_at_4x = 10 * np.log10(band_power(noise, 3000, 3400) / band_power(out, 3000, 3400))
    drop_pass = 10 * np.log10(band_power(noise, 50, 300) / band_power(out, 50, 300))
    assert drop_at_4x > 20, drop_at_4x
    assert abs(drop_pass) < 1.0, drop_pass
    with pytest.raises(ConfigError, match="Nyquist"):
        apply_effect(noise, SR, "lowpass", cutoff_hz=9000)


def test_echo_puts_decaying_copies_at_the_delay():
    wave = np.zeros(SR // 2, np.float32)
    wave[100] = 1.0
    out = apply_effect(wave, SR, "echo", delay_seconds=0.25, feedback=0.4, mix=0.5)
    delay = int(0.25 * SR)
    assert len(out) > len(wave)
    assert out[100] == pytest.approx(0.5, abs=1e-3)  # dry share
    assert out[100 + delay] == pytest.approx(0.5, abs=1e-3)  # first echo
    assert out[100 + 2 * delay] == pytest.approx(0.2, abs=1e-3)  # fed back: 0.5 * 0.4
    taps = np.arange(100, len(out), delay)
    expected = np.r_[0.5, 0.5 * 0.4 ** np.arange(len(taps) - 1)]  # dry, then mix * feedback ** k
    np.testing.assert_allclose(out[taps], expected, atol=1e-5)
    assert len(taps) >= 8 and expected[-1] < 1e-3  # the tail is kept until it is 60 dB down
    elsewhere = np.ones(len(out), bool)
    elsewhere[taps] = False
    assert np.abs(out[elsewhere]).max() < 1e-3  # nothing but the copies


@pytest.mark.parametrize("factor", [2.0, 0.5, 1.5])
def test_speed_changes_length_and_pitch_by_the_factor(factor):
    wave = sine(440, 1.0, SR, 0.5)
    out = apply_effect(wave, SR, "speed", factor=factor)
    assert abs(len(out) - len(wave) / factor) <= 1
    assert peak_hz(out) == pytest.approx(440 * factor, rel=0.01)


def test_chain_runs_in_the_given_order_and_returns_the_descriptions():
    wave = sine(440, 1.0, SR, 0.5)
    out, descriptions = apply_effects(wave, SR, [("speed", {"factor": 2.0}), ("volume", {"alpha": 0.15})])
    assert descriptions == ["faster", "low-volume"]
    expected = apply_effect(apply_effect(wave, SR, "speed", factor=2.0), SR, "volume", alpha=0.15)
    np.testing.assert_array_equal(out, expected)
    same, none = apply_effects(wave, SR, [])
    np.testing.assert_array_equal(same, wave)
    assert none == []


def test_bad_names_and_parameters_say_what_is_valid():
    wave = sine(440, 0.2)
    with pytest.raises(ConfigError, match=r"unknown effect 'flanger'.*volume\(alpha"):
        apply_effect(wave, SR, "flanger")
    with pytest.raises(ConfigError, match=r"outside the valid range \[0.0, 1.0\]"):
        apply_effect(wave, SR, "reverb", room_size=1.5)
    with pytest.raises(ConfigError, match="no parameter gain"):
        describe_effect("volume", gain=2)
    with pytest.raises(ConfigError, match="needs alpha"):
        describe_effect("volume")
    with pytest.raises(ConfigError, match="must be a number"):
        describe_effect("volume", alpha="loud")
    with pytest.raises(ConfigError, match="semitones=0"):
        apply_effect(wave, SR, "pitch", semitones=0)
    with pytest.raises(ConfigError, match="1-D float"):
        apply_effect(np.zeros((2, 100), np.float32), SR, "volume", alpha=0.5)
    # a bad last step fails before any processing
    with pytest.raises(ConfigError, match="unknown effect"):
        apply_effects(wave, SR, [("volume", {"alpha": 0.5}), ("nope", {})])


def test_user_registered_effect_goes_through_the_registry(monkeypatch):
    monkeypatch.setattr(effects, "_EFFECTS", dict(effects._EFFECTS))

    def tremolo(wave, sr, rate_hz, depth):
        t = np.arange(len(wave)) / sr
        return wave * (1 - depth * (0.5 + 0.5 * np.sin(2 * np.pi * rate_hz * t)))

    register_effect(
        "tremolo",
        tremolo,
        lambda rate_hz, depth: "trembling" if depth > 0.3 else "wavering",
        {"rate_hz": 5.0, "depth": None},
        ranges={"rate_hz": (0.1, 50.0), "depth": (0.0, 1.0)},
    )
    assert "tremolo" in available_effects()
    wave = np.full(SR, 0.5, np.float32)
    out, descriptions = apply_effects(wave, SR, [("tremolo", {"depth": 0.8}), ("volume", {"alpha": 0.5})])
    assert descriptions == ["trembling", "high-volume"]
    assert out.max() == pytest.approx(0.25, abs=1e-3) and out.min() == pytest.approx(0.05, abs=1e-3)
    with pytest.raises(ConfigError, match="outside"):
        apply_effect(wave, SR, "tremolo", depth=2.0)
    with pytest.raises(ConfigError, match="already registered"):
        register_effect("tremolo", tremolo, lambda **_: "x", {})
    with pytest.raises(ConfigError, match="identifier"):
        register_effect("bad name", tremolo, lambda **_: "x", {})


def test_mix_is_the_level_matched_weighted_sum():
    a = sine(440, 1.0, SR, 0.3)
    b = sine(660, 0.5, SR, 0.05)  # quieter and shorter
    out = mix(a, b, ratio=0.25)
    b_matched = b.astype(np.float64) * (rms(a) / rms(b))
    expected = 0.75 * a.astype(np.float64) + 0.25 * np.pad(b_matched, (0, len(a) - len(b)))
    assert out.shape == (SR,) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert rms(b_matched) == pytest.approx(rms(a), rel=1e-9)
    # ratio bounds pick one clip (padded to the longer length)
    np.testing.assert_allclose(mix(b, a, ratio=0.0), np.pad(b, (0, SR - len(b))), atol=1e-7)
    # a silent clip is left as is (no division by zero, the other is not scaled)
    silent = np.zeros(SR, np.float32)
    np.testing.assert_allclose(mix(a, silent, 0.5), 0.5 * a, atol=1e-7)
    np.testing.assert_allclose(mix(silent, b, 0.5), np.pad(0.5 * b, (0, SR - len(b))), atol=1e-7)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        mix(a, b, ratio=1.5)


def test_mix_of_loud_clips_never_clips():
    a = sine(100, 1.0, SR, 1.0)
    b = np.zeros(SR, np.float32)
    b[::160] = 1.0  # clicks: low RMS, so level matching to the full-scale sine makes them ~9x louder
    raw = 0.5 * a.astype(np.float64) + 0.5 * b * (rms(a) / rms(b))
    assert np.abs(raw).max() > 1.0
    out = mix(a, b, 0.5)
    assert np.abs(out).max() == pytest.approx(MIX_PEAK, abs=1e-6)
    np.testing.assert_allclose(out, raw * (MIX_PEAK / np.abs(raw).max()), atol=1e-6)
    quiet = mix(0.1 * a, 0.1 * a, 0.5)  # below the peak: not rescaled
    np.testing.assert_allclose(quiet, 0.1 * a, atol=1e-7)


@pytest.mark.parametrize(("name", "params"), [("reverb", {"room_size": 1.0}), ("echo", {"feedback": 0.9})])
def test_long_reverb_and_echo_tails_decay_instead_of_being_cut(name, params):
    # a big room rings ~11 s and feedback 0.9 repeats ~70 times: the tail must not stop at a fixed length
    rng = np.random.default_rng(0)
    wave = np.zeros(SR, np.float32)
    wave[:1600] = rng.uniform(-0.5, 0.5, 1600)
    out = apply_effect(wave, SR, name, **params)
    assert np.abs(out[-1000:]).max() < 1e-3, np.abs(out[-1000:]).max()  # decayed, not chopped
    assert len(out) > 5 * SR


def test_effects_on_very_short_clips_keep_their_length():
    tiny = np.full(50, 0.1, np.float32)
    assert len(apply_effect(tiny, 44100, "pitch", semitones=3)) == 50  # pedalboard alone returns nothing
    short = sine(440, 0.2, SR, 0.5)  # 3200 samples
    out = apply_effect(short, SR, "pitch", semitones=12)
    assert len(out) == len(short) and peak_hz(out) == pytest.approx(880, rel=0.02)
    click = np.zeros(10, np.float32)
    click[0] = 0.5
    for name in ("reverb", "echo"):  # the tail of a click shorter than one processing block is kept
        assert len(apply_effect(click, SR, name)) > SR // 10, name
