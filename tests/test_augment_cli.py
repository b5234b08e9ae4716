"""``seeingsounds augment`` and the shared effect options, run through the real CLI entry point."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
from conftest import sine

from seeingsounds.audio.effects import mix, rms
from seeingsounds.audio.io import read_audio, save_audio
from seeingsounds.cli.common import add_effect_arguments, effects_from_args, mix_from_args
from seeingsounds.cli.main import main
from seeingsounds.errors import ConfigError


@pytest.fixture()
def tone(tmp_path):
    return save_audio(tmp_path / "in.wav", sine(440, 1.0, 16000, 0.5), 16000, subtype="FLOAT")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_effect_arguments(parser)
    return parser.parse_args(list(argv))


def test_effect_options_come_out_in_the_fixed_order():
    args = parse("--volume", "0.15", "--reverb", "0.6", "--pitch", "-3", "--lowpass", "900", "--echo", "0.3",
                 "--speed", "1.5")
    assert effects_from_args(args) == [
        ("speed", {"factor": 1.5}),
        ("pitch", {"semitones": -3.0}),
        ("lowpass", {"cutoff_hz": 900.0}),
        ("echo", {"delay_seconds": 0.3}),
        ("reverb", {"room_size": 0.6}),
        ("volume", {"alpha": 0.15}),
    ]
    assert effects_from_args(parse()) == [] and mix_from_args(parse()) is None
    assert mix_from_args(parse("--mix", "b.wav")) == ("b.wav", 0.5)
    assert mix_from_args(parse("--mix", "b.wav", "--mix-ratio", "0.3")) == ("b.wav", 0.3)
    with pytest.raises(ConfigError, match="needs --mix"):
        mix_from_args(parse("--mix-ratio", "0.3"))
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        mix_from_args(parse("--mix", "b.wav", "--mix-ratio", "2"))


def test_augment_volume_writes_scaled_audio_and_prints_the_description(tone, tmp_path, capsys):
    out = tmp_path / "out.wav"
    assert main(["augment", str(tone), "--volume", "0.25", "-o", str(out)]) == 0
    wave, sr = read_audio(out)
    source, _ = read_audio(tone)
    assert sr == 16000 and wave.shape == source.shape
    assert rms(wave) / rms(source) == pytest.approx(0.25, rel=0.01)
    printed = capsys.readouterr().out
    assert "effects: medium-volume" in printed and str(out) in printed


def test_augment_mixes_first_then_applies_effects_at_the_chosen_rate(tone, tmp_path, capsys):
    other = save_audio(tmp_path / "other.flac", sine(1000, 0.5, 8000, 0.1), 8000)
    out = tmp_path / "out.flac"
    argv = ["augment", str(tone), "--mix", str(other), "--mix-ratio", "0.3", "--speed", "2", "--sample-rate", "8000",
            "-o", str(out)]
    assert main(argv) == 0
    wave, sr = read_audio(out)
    assert sr == 8000 and abs(len(wave) - 4000) <= 1  # 1 s at 8 kHz, twice as fast
    # the same steps through the library: load at 8 kHz, level-matched mix, then speed
    from seeingsounds.audio.effects import apply_effect
    from seeingsounds.audio.io import load_audio

    mixed = mix(load_audio(tone, target_sr=8000), load_audio(other, target_sr=8000), 0.3)
    expected = apply_effect(mixed, 8000, "speed", factor=2.0)
    np.testing.assert_allclose(wave, expected[: len(wave)], atol=2 / 32768)
    printed = capsys.readouterr().out
    assert f"mixed with: {other}" in printed and "effects: faster" in printed


def test_augment_reports_user_errors_with_exit_code_2(tone, tmp_path, capsys):
    out = tmp_path / "out.wav"
    assert main(["augment", str(tmp_path / "missing.wav"), "-o", str(out)]) == 2
    assert f"cannot use audio {tmp_path / 'missing.wav'}: file not found" in capsys.readouterr().err
    assert main(["augment", str(tone), "--reverb", "3", "-o", str(out)]) == 2
    assert "outside the valid range [0.0, 1.0]" in capsys.readouterr().err
    assert main(["augment", str(tone), "--mix-ratio", "0.2", "-o", str(out)]) == 2
    assert "--mix-ratio needs --mix" in capsys.readouterr().err
    assert main(["augment", str(tone), "--volume", "0.5", "-o", str(tmp_path / "out.xyz")]) == 2
    assert "unknown suffix" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_augment_warns_when_the_written_file_clips(tone, tmp_path, capsys):
    out = tmp_path / "loud.wav"
    assert main(["augment", str(tone), "--volume", "4", "-o", str(out)]) == 0  # 0.5 peak x 4
    assert np.abs(read_audio(out)[0]).max() <= 1.0
    err = capsys.readouterr().err
    assert "peaks at 2.00" in err and "clipped" in err
    assert main(["augment", str(tone), "--volume", "1.5", "-o", str(out)]) == 0
    assert "clipped" not in capsys.readouterr().err


def test_augment_never_overwrites_an_input(tone, tmp_path, capsys):
    other = save_audio(tmp_path / "other.wav", sine(1000, 0.5, 16000, 0.1), 16000)
    before = {p: p.read_bytes() for p in (tone, other)}
    link = tmp_path / "link.wav"
    link.symlink_to(tone)
    spellings = [str(tone), str(tmp_path / "." / "in.wav"), str(link)]
    for out in spellings:
        assert main(["augment", str(tone), "--volume", "0.5", "-o", out]) == 2
        err = capsys.readouterr().err
        assert "is also an input" in err and err.count("\n") == 1
    assert main(["augment", str(tone), "--mix", str(other), "-o", str(other)]) == 2  # the --mix clip too
    assert "is also an input" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (tone, other)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "link.wav", "other.wav"]


def test_augment_refuses_unwritable_outputs_in_one_line(tone, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cases = {
        str(tmp_path): "is a folder",  # -o naming a folder
        str(blocker / "out.wav"): "is a file, not a folder",  # its folder is a file
        "/proc/seeingsounds-test/out.wav": "cannot be written",  # a file system nobody can write (even root)
    }
    for out, message in cases.items():
        assert main(["augment", str(tone), "--volume", "0.5", "-o", out]) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("rate", ["0", "-8000"])
def test_a_sample_rate_that_is_not_positive_is_refused_in_one_line(tone, tmp_path, capsys, rate):
    out = tmp_path / "out.wav"
    assert main(["augment", str(tone), "-o", str(out), "--sample-rate", rate]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--sample-rate must be a positive number of Hz" in err and not out.exists()


@pytest.mark.parametrize("suffix", [".wav", ".mkv"])
def test_a_file_name_that_is_not_utf8_is_read(tmp_path, suffix):
    """A Latin-1 name (bytes that are not UTF-8, as old archives and cameras write them) reads like any other,
    through libsndfile and through FFmpeg (it read as "unreadable or corrupt audio"). Outputs keep UTF-8 names
    (`the output file ... is not UTF-8 text`)."""
    from audio_video_fixtures import encode_media

    plain = tmp_path / f"plain{suffix}"
    if suffix == ".wav":
        save_audio(plain, sine(440, 1.0, 16000, 0.5), 16000)
    else:
        encode_media(plain, "mkv", seconds=1.0)
    path = tmp_path / os.fsdecode(b"caf\xe9" + suffix.encode())  # 'caf\udce9...': the name as Python gives it
    os.rename(plain, path)
    got, sr = read_audio(path)
    assert len(got) >= sr * 0.9 and np.abs(got).max() > 0.1
    out = tmp_path / "résultat.wav"
    assert main(["augment", str(path), "-o", str(out)]) == 0
    again, out_sr = read_audio(out)
    assert out_sr == sr and again.shape == got.shape and np.abs(again - got).max() < 1e-3
