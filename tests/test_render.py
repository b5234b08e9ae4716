"""The one render of T_j(a): training and inference hear bit-identical audio (issue: crop before vs after effects)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import sine

from seeingsounds.audio.render import input_samples, render
from seeingsounds.cache import AudioItem, load_item_wave

SR = 16000
AST_WINDOW = 163_840  # AST's 10.24 s at 16 kHz
SPEED = [("speed", {"factor": 2.0})]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    long, short = root / "long20s.wav", root / "short3s.wav"
    sf.write(long, sine(330.0, 20.0, SR, 0.4), SR)
    sf.write(short, sine(990.0, 3.0, SR, 0.2), SR)
    return long, short


def _peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / SR)[int(spectrum.argmax())])


def test_speed_x2_fills_the_window_with_twenty_seconds_of_sound(clips):
    long, _ = clips
    wave = render(long, sample_rate=SR, num_samples=AST_WINDOW, effects=SPEED)
    assert wave.shape == (AST_WINDOW,)
    assert input_samples(SPEED, AST_WINDOW) >= 2 * AST_WINDOW  # two windows of input are read
    # sound to the last second (cropping before the effect left the second half silent: 5.1 s of sound)
    assert np.sqrt(np.mean(wave[-SR:] ** 2)) > 0.2
    assert _peak_hz(wave) == pytest.approx(660.0, rel=0.01)


def test_training_and_inference_renders_are_bit_identical(clips, tiny_conditioner):
    conditioner = tiny_conditioner
    long, short = clips
    chain = SPEED + [("volume", {"alpha": 0.3})]
    mix = (short, 0.4)
    n = conditioner.window_samples
    training = load_item_wave(AudioItem.of(long, effects=chain, mix=mix), conditioner.sample_rate, n)
    inference = conditioner.render(long, effects=chain, mix=mix)  # pipeline, describe, evaluate, app
    assert training.dtype == inference.dtype == np.float32
    assert np.array_equal(training, inference)
    # and at AST's real window
    at_ast = load_item_wave(AudioItem.of(long, effects=chain, mix=mix), SR, AST_WINDOW)
    assert np.array_equal(at_ast, render(long, sample_rate=SR, num_samples=AST_WINDOW, effects=chain, mix=mix))


def test_a_short_partner_is_level_matched_on_its_own_samples(clips):
    long, short = clips
    mixed = render(long, sample_rate=SR, num_samples=AST_WINDOW, mix=(short, 0.5))
    # the first 3 s hold both clips at equal RMS, the rest only the long clip at half level
    both, alone = mixed[: 3 * SR - 1000], mixed[3 * SR + 1000 :]
    assert np.sqrt(np.mean(alone**2)) == pytest.approx(0.5 * 0.4 / np.sqrt(2), rel=0.01)
    assert np.sqrt(np.mean(both**2)) == pytest.approx(0.4 / np.sqrt(2) * np.sqrt(0.5), rel=0.02)
