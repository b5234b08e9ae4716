"""Audio loading, validation, saving and fingerprints, measured on real and generated files."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import debian_sounds, sine, write_long_sine

from seeingsounds.assets import SOUNDS_DIR, example_sounds
from seeingsounds.audio.io import (
    MAX_SAMPLE_RATE,
    audio_fingerprint,
    load_audio,
    read_audio,
    save_audio,
)
from seeingsounds.errors import AudioLoadError, ConfigError


def peak_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spectrum)])


# ------------------------------------------------------------------ bad input


def _bad_file_cases(tmp: Path) -> list[tuple[object, dict, str, str]]:
    """(source, kwargs, expected name in message, expected words of the reason)."""
    (tmp / "empty.wav").write_bytes(b"")
    (tmp / "garbage.wav").write_bytes(b"RIFF\x00\x00not really a wave file" * 20)
    sf.write(tmp / "noframes.wav", np.zeros((0, 1), np.float32), 16000)
    nan = sine(440, 0.1)
    nan[5] = np.nan
    sf.write(tmp / "nan.wav", nan, 16000, subtype="FLOAT")
    good = tmp / "good.flac"
    sf.write(good, sine(440, 0.5), 16000)
    truncated = tmp / "truncated.flac"
    truncated.write_bytes(good.read_bytes()[:60])
    (tmp / "folder.wav").mkdir()
    return [
        (tmp / "missing.wav", {}, str(tmp / "missing.wav"), "not found"),
        (str(tmp / "folder.wav"), {}, str(tmp / "folder.wav"), "not a file"),
        (tmp / "empty.wav", {}, str(tmp / "empty.wav"), "zero length"),
        (tmp / "garbage.wav", {}, str(tmp / "garbage.wav"), "unreadable or corrupt"),
        (truncated, {}, str(truncated), "corrupt"),
        (tmp / "noframes.wav", {}, str(tmp / "noframes.wav"), "zero length"),
        (tmp / "nan.wav", {}, str(tmp / "nan.wav"), "NaN"),
        (b"", {}, "<bytes>", "zero length"),
        (b"\x00\x01garbage" * 50, {}, "<bytes>", "unreadable or corrupt"),
        (good, {"sample_rate": 16000}, str(good), "only for arrays"),
    ]


def _bad_array_cases() -> list[tuple[object, dict, str]]:
    ok = sine(440, 0.1)
    inf = ok.copy()
    inf[3] = np.inf
    nan = ok.copy()
    nan[0] = np.nan
    return [
        (ok, {}, "needs its sample rate"),
        (ok, {"sample_rate": 0}, "outside"),
        (ok, {"sample_rate": -16000}, "outside"),
        (ok, {"sample_rate": 999}, "outside"),
        (ok, {"sample_rate": MAX_SAMPLE_RATE + 1}, "outside"),
        (ok, {"sample_rate": 16000.5}, "whole number"),
        (np.zeros(0, np.float32), {"sample_rate": 16000}, "zero length"),
        (np.zeros((0, 2), np.float32), {"sample_rate": 16000}, "zero length"),
        (inf, {"sample_rate": 16000}, "NaN or infinite"),
        (nan, {"sample_rate": 16000}, "NaN or infinite"),
        (np.zeros((2, 3, 100), np.float32), {"sample_rate": 16000}, "shape"),
        (np.zeros((50, 60), np.float32), {"sample_rate": 16000}, "shape"),
        (ok.astype(np.complex64), {"sample_rate": 16000}, "dtype"),
        (np.zeros(100, np.uint8), {"sample_rate": 16000}, "dtype"),
        (np.array(["a", "b"]), {"sample_rate": 16000}, "dtype"),
        ([0.0, 0.1, 0.2], {"sample_rate": 16000}, "numpy array"),
        (np.full(1, 0.5, np.float32), {"sample_rate": 48000}, "shorter than one sample at 16000 Hz"),
    ]


def test_every_bad_file_names_the_file_and_the_reason(tmp_path):
    for source, kwargs, name, reason in _bad_file_cases(tmp_path):
        for call in (lambda: load_audio(source, target_sr=16000, **kwargs), lambda: read_audio(source, **kwargs)):
            with pytest.raises(AudioLoadError) as info:
                call()
            assert info.value.source == name, (source, info.value)
            assert name in str(info.value) and reason in str(info.value), str(info.value)


@pytest.mark.parametrize("case", range(len(_bad_array_cases())))
def test_every_bad_array_is_named_and_explained(case):
    source, kwargs, reason = _bad_array_cases()[case]
    with pytest.raises(AudioLoadError) as info:
        load_audio(source, target_sr=16000, **kwargs)
    assert info.value.source == "<array>"
    assert str(info.value).startswith("cannot use audio <array>: ") and reason in str(info.value)


def test_bad_targets_are_config_errors():
    with pytest.raises(ConfigError, match="target_sr"):
        load_audio(sine(440), sample_rate=16000, target_sr=0)
    with pytest.raises(ConfigError, match="num_samples"):
        load_audio(sine(440), sample_rate=16000, target_sr=16000, num_samples=0)


# ------------------------------------------------------------------ real and generated files


def test_debian_oga_files_load_mono_at_the_right_rate_and_duration():
    files = sorted(debian_sounds("freedesktop").glob("*.oga"))
    assert len(files) >= 10
    for path in files:
        info = sf.info(str(path))
        wave, sr = read_audio(path)
        assert sr == info.samplerate and wave.dtype == np.float32 and wave.ndim == 1
        assert len(wave) == info.frames
        at16 = load_audio(path, target_sr=16000)
        assert at16.ndim == 1 and at16.dtype == np.float32
        assert abs(len(at16) - info.frames * 16000 / info.samplerate) <= 1
        assert np.isfinite(at16).all() and 0 < np.abs(at16).max() <= 1.5


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "opus", "mp3"])
def test_generated_formats_round_trip_rate_duration_pitch_and_mono(tmp_path, suffix):
    sr = 44100
    left = sine(440, 1.0, sr, 0.5)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)  # mono mix = left / 2
    path = save_audio(tmp_path / f"tone.{suffix}", stereo, sr)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"tone.{suffix}"]  # no temp file left
    wave, native = read_audio(path)
    assert native == (48000 if suffix == "opus" else sr)  # opus only writes 8/12/16/24/48 kHz
    assert abs(len(wave) / native - 1.0) < 0.03
    at16 = load_audio(path.read_bytes(), target_sr=16000)  # the same file as bytes
    assert abs(len(at16) - 16000) < 0.03 * 16000
    assert abs(peak_hz(at16, 16000) - 440) < 3
    middle = at16[4000:12000]
    assert abs(np.sqrt(np.mean(middle**2)) - 0.25 / np.sqrt(2)) < 0.01  # mono = mean of channels


def test_arrays_in_every_accepted_layout_agree():
    mono = sine(300, 0.5, 22050, 0.4)
    other = sine(500, 0.5, 22050, 0.2)
    expected = (mono + other) / 2
    frames_first = np.stack([mono, other], axis=1)  # [n, 2], soundfile's layout
    channels_first = frames_first.T.copy()  # [2, n]
    pcm16 = np.round(frames_first * 32767).astype(np.int16)
    for source in (frames_first, channels_first):
        np.testing.assert_allclose(read_audio(source, 22050)[0], expected, atol=1e-6)
    np.testing.assert_allclose(read_audio(pcm16, 22050)[0], expected, atol=1e-4)
    np.testing.assert_allclose(read_audio((22050, pcm16))[0], expected, atol=1e-4)  # Gradio's tuple
    out = load_audio(frames_first, sample_rate=22050, target_sr=16000)
    assert out.shape == (8000,) and out.dtype == np.float32
    reference = load_audio(expected, sample_rate=22050, target_sr=16000)
    np.testing.assert_allclose(out[100:-100], reference[100:-100], atol=1e-5)


def test_short_and_silent_clips_are_valid():
    short = load_audio(sine(1000, 0.1, 48000), sample_rate=48000, target_sr=16000)
    assert short.shape == (1600,) and np.abs(short).max() > 0.4
    silent = load_audio(np.zeros(4800, np.float32), sample_rate=48000, target_sr=16000, num_samples=16000)
    assert silent.shape == (16000,) and not silent.any()


def test_crop_and_pad_to_num_samples(tmp_path):
    path = save_audio(tmp_path / "tone.wav", sine(440, 1.0, 32000), 32000, subtype="FLOAT")
    full = load_audio(path, target_sr=16000)
    cropped = load_audio(path, target_sr=16000, num_samples=4000)
    padded = load_audio(path, target_sr=16000, num_samples=20000)
    assert full.shape == (16000,) and cropped.shape == (4000,) and padded.shape == (20000,)
    np.testing.assert_allclose(cropped, full[:4000], atol=1e-4)
    np.testing.assert_allclose(padded[:16000], full, atol=1e-6)
    assert not padded[16000:].any()


def test_ten_minute_file_with_num_samples_reads_only_what_it_needs(tmp_path):
    sr, minutes = 16000, 10
    path = write_long_sine(tmp_path / "long.wav", minutes, sr)
    assert sf.info(str(path)).frames == minutes * 60 * sr
    full_decode_bytes = minutes * 60 * sr * 4
    tracemalloc.start()
    try:
        clip = load_audio(path, target_sr=16000, num_samples=10 * 16000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert clip.shape == (160000,) and abs(peak_hz(clip, 16000) - 220) < 2
    assert peak < full_decode_bytes / 20, f"peak {peak / 1e6:.1f} MB vs full decode {full_decode_bytes / 1e6:.0f} MB"


def test_long_ogg_is_written_blockwise(tmp_path):
    # libsndfile crashes writing > ~2.09 M OGG/Vorbis frames in one call
    wave = np.tile(sine(440, 1.0, 8000, 0.3), 270)  # 2.16 M frames
    path = save_audio(tmp_path / "long.ogg", wave, 8000)
    assert sf.info(str(path)).frames == len(wave)


# ------------------------------------------------------------------ saving and fingerprints


def test_save_audio_round_trip_and_atomic_failure(tmp_path):
    wave = sine(440, 0.5, 16000, 0.7)
    path = save_audio(tmp_path / "sub" / "x.flac", wave, 16000)
    back, sr = read_audio(path)
    assert sr == 16000 and back.shape == wave.shape
    assert np.abs(back - wave).max() <= 1.5 / 32768
    before = path.read_bytes()
    bad = wave.copy()
    bad[10] = np.nan
    with pytest.raises(AudioLoadError, match="NaN"):
        save_audio(path, bad, 16000)
    with pytest.raises(ConfigError, match=r"\.wav"):
        save_audio(tmp_path / "x.xyz", wave, 16000)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.flac"]
    exact = save_audio(tmp_path / "f.wav", wave, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(exact)[0], wave)


def test_fingerprints(tmp_path):
    path = save_audio(tmp_path / "a.wav", sine(440, 0.2), 16000)
    data = path.read_bytes()
    assert audio_fingerprint(path) == audio_fingerprint(str(path)) == audio_fingerprint(data)
    assert audio_fingerprint(path) == hashlib.sha256(data).hexdigest()
    wave = sine(440, 0.2)
    assert audio_fingerprint(wave, 16000) == audio_fingerprint(wave.copy(), 16000)
    assert audio_fingerprint(wave, 16000) != audio_fingerprint(wave, 22050)
    assert audio_fingerprint(wave, 16000) != audio_fingerprint(sine(441, 0.2), 16000)
    with pytest.raises(AudioLoadError, match="sample rate"):
        audio_fingerprint(wave)
    with pytest.raises(AudioLoadError, match="not found"):
        audio_fingerprint(tmp_path / "nope.wav")


def test_bundled_example_sounds():
    sounds = example_sounds()
    assert list(sounds) == sorted(sounds) and 4 <= len(sounds) <= 6
    total = 0
    for name, path in sounds.items():
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC"), name
        assert 0.1 < info.duration <= 3.0
        wave, _ = read_audio(path)
        assert np.abs(wave).max() > 0.1
        total += path.stat().st_size
    assert total < 400_000
    note = (SOUNDS_DIR / "README.md").read_text()
    assert "CC0" in note and all(f"{name}.flac" in note for name in sounds)


@pytest.mark.parametrize("native", [96000, 192000])
def test_crop_of_a_high_rate_file_matches_the_full_decode(tmp_path, native):
    # reading only the needed frames must leave a margin as wide as soxr's filter, which grows with the ratio
    noise = np.random.default_rng(0).standard_normal(native * 2).astype(np.float32) * 0.1
    path = save_audio(tmp_path / "noise.wav", noise, native, subtype="FLOAT")
    full = load_audio(path, target_sr=8000)
    cropped = load_audio(path, target_sr=8000, num_samples=8000)
    np.testing.assert_allclose(cropped, full[:8000], atol=1e-5)
    from_array = load_audio(noise, sample_rate=native, target_sr=8000, num_samples=8000)
    np.testing.assert_allclose(from_array, full[:8000], atol=1e-5)


def test_saved_files_are_readable_by_others_and_layout_is_checked(tmp_path):
    import stat

    path = save_audio(tmp_path / "a.wav", sine(440, 0.2), 16000)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    with pytest.raises(AudioLoadError, match="channels"):
        save_audio(tmp_path / "b.wav", np.zeros((2, 16000), np.float32), 16000)  # [channels, n]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]
