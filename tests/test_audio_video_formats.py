"""Audio out of the containers the datasets ship (mp4, m4a, mov, mkv, webm) through PyAV, measured on files
encoded in the test: duration, pitch, mono mix, crops, bytes, refusals; and unknown-length FLAC headers."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_video_fixtures import CONTAINERS, encode_media

from seeingsounds.audio.io import (
    AUDIO_SUFFIXES,
    audio_fingerprint,
    audio_info,
    audio_seconds,
    load_audio,
    read_audio,
)
from seeingsounds.audio.render import render
from seeingsounds.errors import AudioLoadError

SECONDS, FREQ = 0.6, 440.0
#: one codec frame: the most a container's priming/padding may add to the duration (AAC 1024, opus 960)
FRAME_SAMPLES = 1024


def peak_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave)), n=8 * len(wave)))  # zero-padded: fine bins
    return float(np.fft.rfftfreq(8 * len(wave), 1 / sr)[np.argmax(spectrum)])


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    files = {kind: encode_media(root / f"tone.{kind}", kind, seconds=SECONDS, freq=FREQ) for kind in CONTAINERS}
    files["silent-video"] = encode_media(root / "no_sound.mp4", "mp4", audio=False)
    return files


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
def test_containers_load_with_the_right_rate_duration_pitch_and_mono_mix(media, kind):
    path = media[kind]
    assert path.suffix in AUDIO_SUFFIXES
    wave, sr = read_audio(path)
    assert sr == CONTAINERS[kind][2] and wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - SECONDS * sr) <= FRAME_SAMPLES, (len(wave), SECONDS * sr)
    assert abs(peak_hz(wave, sr) - FREQ) < 0.01 * FREQ
    middle = wave[len(wave) // 4 : 3 * len(wave) // 4]
    assert abs(np.sqrt(np.mean(middle**2)) - 0.5 / np.sqrt(2)) < 0.03  # both channels equal: the mean is the tone
    at16 = load_audio(path, target_sr=16000)
    assert abs(len(at16) - SECONDS * 16000) <= FRAME_SAMPLES * 16000 / sr + 1
    assert abs(peak_hz(at16, 16000) - FREQ) < 0.01 * FREQ
    from_bytes = load_audio(path.read_bytes(), target_sr=16000)  # the app's uploads
    np.testing.assert_array_equal(from_bytes, at16)
    info = audio_info(path)
    assert info.reader == "ffmpeg" and info.sample_rate == sr and info.channels == 2
    assert info.seconds is not None and abs(info.seconds - SECONDS) < 0.05
    assert abs(audio_seconds(path) - SECONDS) < 0.05


@pytest.mark.parametrize("kind", ["mp4", "webm"])
def test_a_crop_equals_the_start_of_the_full_decode(media, kind):
    full = load_audio(media[kind], target_sr=16000)
    crop = load_audio(media[kind], target_sr=16000, num_samples=3000)
    assert crop.shape == (3000,)
    np.testing.assert_allclose(crop, full[:3000], atol=1e-4)
    padded = load_audio(media[kind], target_sr=16000, num_samples=20000)
    assert padded.shape == (20000,) and not padded[len(full) + 1 :].any()
    short = load_audio(media[kind], target_sr=16000, num_samples=20000, pad=False)  # render's call
    assert len(short) == len(full)


def test_render_hears_the_video_like_its_extracted_audio(media, tmp_path):
    wave, sr = read_audio(media["mp4"])
    extracted = tmp_path / "tone.wav"
    sf.write(extracted, wave, sr, subtype="FLOAT")
    from_video = render(media["mp4"], sample_rate=16000, num_samples=8000, effects=[("volume", {"alpha": 0.5})])
    from_wav = render(extracted, sample_rate=16000, num_samples=8000, effects=[("volume", {"alpha": 0.5})])
    np.testing.assert_allclose(from_video, from_wav, atol=1e-5)


def test_a_video_without_audio_is_refused_naming_the_file(media):
    path = media["silent-video"]
    for call in (lambda: read_audio(path), lambda: load_audio(path, target_sr=16000), lambda: audio_info(path),
                 lambda: load_audio(path.read_bytes(), target_sr=16000)):
        with pytest.raises(AudioLoadError) as info:
            call()
        assert "no audio stream" in info.value.reason and "1 video stream" in info.value.reason
    with pytest.raises(AudioLoadError) as info:
        read_audio(path)
    assert info.value.source == str(path) and str(path) in str(info.value)
    assert len(audio_fingerprint(path)) == 64  # the cache key of any file is its bytes' hash


def test_broken_media_files_are_refused_with_the_reason(media, tmp_path):
    garbage = tmp_path / "clip.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"not a real movie" * 40)
    truncated = tmp_path / "cut.webm"
    truncated.write_bytes(media["webm"].read_bytes()[:200])
    empty = tmp_path / "empty.m4a"
    empty.write_bytes(b"")
    for path, words in ((garbage, "unreadable or corrupt"), (empty, "zero length")):
        with pytest.raises(AudioLoadError) as info:
            read_audio(path)
        assert info.value.source == str(path) and words in info.value.reason, info.value
    with pytest.raises(AudioLoadError) as info:  # a webm cut in its header: no audio frame survives
        read_audio(truncated)
    assert info.value.source == str(truncated)


def test_a_crop_of_a_long_recording_decodes_frame_by_frame_into_mono(tmp_path):
    seconds, sr = 40.0, 48000
    path = encode_media(tmp_path / "long.m4a", "m4a", seconds=seconds, freq=220.0, sample_rate=sr)
    full_stereo_bytes = int(seconds * sr) * 2 * 4
    tracemalloc.start()
    try:
        clip = load_audio(path, target_sr=16000, num_samples=16000)
        _, crop_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        whole, native = read_audio(path)
        _, full_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert clip.shape == (16000,) and abs(peak_hz(clip, 16000) - 220) < 2.2
    assert abs(len(whole) / native - seconds) < 0.05
    assert crop_peak < full_stereo_bytes / 20, f"crop peak {crop_peak / 1e6:.2f} MB"
    # the whole decode holds the mono blocks and their concatenation (2 x mono), never the stereo file as well
    mono_bytes = full_stereo_bytes // 2
    assert full_peak < 2.2 * mono_bytes + (1 << 20), f"full peak {full_peak / 1e6:.1f} MB"


def _flac_without_length(path: Path, sr: int = 96000, seconds: float = 1.0) -> Path:
    """A FLAC whose STREAMINFO says 'total samples unknown' (0), as streaming encoders write it."""
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(sr * seconds)) / sr)).astype(np.float32), sr)
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # first metadata block is STREAMINFO
    data[8 + 13] &= 0xF0  # the 36-bit total-samples field: low 4 bits of byte 13 and bytes 14..17
    data[8 + 14 : 8 + 18] = b"\x00\x00\x00\x00"
    path.write_bytes(bytes(data))
    return path


def test_a_flac_of_unknown_length_is_read_and_never_reports_the_header_placeholder(tmp_path):
    path = _flac_without_length(tmp_path / "stream.flac")
    assert sf.info(str(path)).duration > 1e13  # what libsndfile's header reports (96076792050570.6 s)
    info = audio_info(path)
    assert info.sample_rate == 96000 and info.frames is None and info.seconds is None
    assert audio_seconds(path) == pytest.approx(1.0)  # counted by decoding
    wave, sr = read_audio(path)
    assert sr == 96000 and len(wave) == 96000 and abs(peak_hz(wave, sr) - 440) < 1
    clip = load_audio(path.read_bytes(), target_sr=16000, num_samples=8000)
    assert clip.shape == (8000,) and abs(peak_hz(clip, 16000) - 440) < 3
