"""Third adversarial pass over the making side (generate, edit, augment, live, serve, audio reading),
as users type things: each test failed on the code before its fix."""

from __future__ import annotations

import logging
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import sine, write_long_sine

from seeingsounds.audio.io import audio_info, load_audio, read_audio
from seeingsounds.errors import AudioLoadError

SR = 16000


def _cut(source: Path, target: Path, keep_bytes: int) -> Path:
    target.write_bytes(source.read_bytes()[:keep_bytes])
    return target


@pytest.fixture()
def four_seconds(tmp_path: Path) -> Path:
    path = tmp_path / "whole.wav"
    sf.write(path, sine(440, 4.0, SR), SR, subtype="PCM_16")  # 44-byte header + 128000 bytes of data
    return path


def test_a_truncated_wav_is_read_as_far_as_it_goes_with_a_warning_naming_it(four_seconds, tmp_path, caplog):
    cut = _cut(four_seconds, tmp_path / "cut.wav", 44 + 200)  # a download stopped after 100 frames
    with caplog.at_level(logging.WARNING, logger="seeingsounds.audio.io"):
        wave, sr = read_audio(cut)
        read_audio(cut)  # told once per file, not for every read
    assert (len(wave), sr) == (100, SR)
    assert np.allclose(wave, sine(440, 4.0, SR)[:100], atol=1e-4)
    told = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert told == [f"audio {cut} is truncated: its header declares 4.00 s but the file holds only 0.006 s "
                    "(100 of 64000 frames); using what is there (copy or export it again for the whole sound)"]


def test_a_truncated_multichannel_24_bit_wav_and_aiff_are_told_too(tmp_path, caplog):
    sf.write(tmp_path / "six.wav", np.zeros((SR, 6), np.float32), SR, subtype="PCM_24")  # 18 bytes a frame
    sf.write(tmp_path / "a.aiff", np.zeros(SR, np.float32), SR, subtype="PCM_16")
    six = _cut(tmp_path / "six.wav", tmp_path / "six-cut.wav", 44 + 18 * 4000)
    aiff = _cut(tmp_path / "a.aiff", tmp_path / "a-cut.aiff", 54 + 2 * 4000)
    with caplog.at_level(logging.WARNING, logger="seeingsounds.audio.io"):
        assert audio_info(six).frames == 4000
        assert len(load_audio(aiff, target_sr=SR)) == 4000
    told = " ".join(r.getMessage() for r in caplog.records)
    assert f"audio {six} is truncated: its header declares 1.00 s but the file holds only 0.250 s (4000 of 16000" in told
    assert f"audio {aiff} is truncated" in told and "0.250 s (4000 of" in told


def test_a_wav_truncated_to_its_header_is_refused_as_truncated(four_seconds, tmp_path):
    for keep in (44, 45):  # the header alone, and one stray byte of data
        cut = _cut(four_seconds, tmp_path / f"cut{keep}.wav", keep)
        for read in (audio_info, read_audio):
            with pytest.raises(AudioLoadError) as err:
                read(cut)
            assert str(err.value) == (f"cannot use audio {cut}: the file is truncated: its header declares 4.00 s "
                                      "of audio but it holds none (an interrupted download or copy?); copy or "
                                      "export it again")


def test_a_streamed_wav_with_a_placeholder_length_is_whole_and_not_truncated(four_seconds, tmp_path, caplog):
    for placeholder in (0xFFFFFFFF, 0x7FFFFFFF):  # what writers to a pipe put before the length is known
        data = bytearray(four_seconds.read_bytes())
        data[40:44] = struct.pack("<I", placeholder)
        streamed = tmp_path / f"streamed{placeholder:x}.wav"
        streamed.write_bytes(bytes(data))
        with caplog.at_level(logging.WARNING, logger="seeingsounds.audio.io"):
            assert len(read_audio(streamed)[0]) == 4 * SR
    assert not [r for r in caplog.records if "truncated" in r.getMessage()]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from test_pipeline import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "aligner", "tiny")


def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from seeingsounds.engine import Engine

    def refuse(*_a, **_k):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(Engine, "load", classmethod(refuse))


def test_a_sound_that_is_no_audio_fails_before_the_model_loads_and_before_any_output(checkpoint, tmp_path, monkeypatch,
                                                                                      capsys):
    from seeingsounds.cli.main import main

    _no_model(monkeypatch)
    monkeypatch.chdir(tmp_path)
    Path("sounds").mkdir()
    for i in range(4):
        sf.write(f"sounds/s{i}.wav", sine(440, 0.5, SR), SR)
    Path("sounds/notes.wav").write_text("a text file saved with the wrong name\n")
    _cut(Path("sounds/s0.wav"), Path("sounds/cut.wav"), 44)
    sf.write("partner.wav", sine(220, 0.5, SR), SR)
    Path("partner.mp3").write_text("not an mp3")
    cases = [(["sounds/s0.wav", "sounds/s1.wav", "sounds/s2.wav", "sounds/s3.wav", "sounds/notes.wav"], [],
              "cannot use audio sounds/notes.wav: unreadable or corrupt audio (Format not recognised.)"),
             (["sounds/s0.wav", "sounds/cut.wav"], [], "cannot use audio sounds/cut.wav: the file is truncated"),
             (["sounds/s0.wav"], ["--mix", "partner.mp3"], "cannot use audio partner.mp3: unreadable or corrupt audio")]
    for sounds, extra, message in cases:
        assert main(["generate", "--checkpoint", str(checkpoint), *sounds, *extra, "-o", "out"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and len(err.strip().splitlines()) == 1, err
        assert not Path("out").exists()


def test_a_tilde_the_shell_left_alone_and_a_pattern_that_matched_nothing(tmp_path, monkeypatch):
    """``--mix=~/b.wav`` and a quoted ``"~/a.wav"`` reach the program unexpanded (as -o, --image and --checkpoint
    already were, a sound is now expanded too); ``sounds/*.flac`` matching nothing reaches it as it is."""
    from seeingsounds.errors import ConfigError
    from seeingsounds.live import file_blocks
    from seeingsounds.request import Request, Settings

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "a.wav", sine(440, 0.5, SR), SR)
    sf.write(tmp_path / "b.wav", sine(220, 0.5, SR), SR)
    request = Request(sounds=["~/a.wav"], settings=Settings(mix=("~/b.wav", 0.25))).check()
    assert request.sounds == [str(tmp_path / "a.wav")]
    assert request.settings.mix == (str(tmp_path / "b.wav"), 0.25)
    assert file_blocks("~/a.wav").path == str(tmp_path / "a.wav")
    (tmp_path / "sounds").mkdir()
    with pytest.raises(ConfigError) as err:
        Request(sounds=["sounds/*.flac"]).check()
    assert str(err.value) == ("sound file sounds/*.flac does not exist: no file matches that pattern (the shell "
                              "passes a pattern that matches nothing as it is); check the folder and the suffix")
    with pytest.raises(ConfigError, match=r"^sound file sounds is a folder, not a file$"):
        Request(sounds=["sounds"]).check()


def test_outputs_never_go_into_the_checkpoint_folder(checkpoint, tmp_path, monkeypatch, capsys):
    from seeingsounds.cli.main import main

    _no_model(monkeypatch)
    monkeypatch.chdir(tmp_path)
    sf.write("a.wav", sine(440, 0.5, SR), SR)
    (tmp_path / "ckpt").symlink_to(checkpoint, target_is_directory=True)
    before = sorted(p.name for p in checkpoint.iterdir())
    for command in (["generate", "--checkpoint", "ckpt", "a.wav", "-o", "ckpt/a.png"],
                    ["generate", "--checkpoint", "ckpt", "a.wav", "-o", "./ckpt/pictures/"],
                    ["edit", "--checkpoint", "ckpt", "a.wav", "--image", str(write_picture(tmp_path)), "-o", "ckpt"],
                    ["live", "--checkpoint", "ckpt", "--input", "a.wav", "--fast", "-o", "ckpt"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "the model folder" in err and "(it holds config.json and model.safetensors): outputs never go " \
            "into a checkpoint" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in checkpoint.iterdir()) == before


def write_picture(root: Path) -> Path:
    from conftest import write_picture_and_mask

    return write_picture_and_mask(root)[0]


def test_live_plays_a_long_file_without_decoding_it_whole(tmp_path):
    """``live --input`` of a long recording: the file is decoded as it is played (it was decoded whole into
    memory first: an hour at 48 kHz is 0.7 GB), every sample arrives in order, and ``--seconds`` stops it."""
    import tracemalloc

    from seeingsounds.live import file_blocks

    sr, minutes = 16000, 10
    path = write_long_sine(tmp_path / "long recording.wav", minutes, sr)
    minute = np.tile(sine(220, 1.0, sr), 60)  # what every minute of it holds
    full_decode_bytes = minutes * 60 * sr * 4
    tracemalloc.start()
    try:
        source = file_blocks(path, as_fast_as_possible=True)
        total, first, last = 0, None, None
        for block in source.blocks:
            first = block.copy() if first is None else first
            total += len(block)
            last = block
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (source.sample_rate, total, len(first)) == (sr, minutes * 60 * sr, 800)  # 0.05 s blocks
    assert np.allclose(first, minute[:800], atol=1e-4) and np.allclose(last, minute[-len(last):], atol=1e-4)
    assert peak < full_decode_bytes / 20, f"peak {peak / 1e6:.1f} MB vs the whole file {full_decode_bytes / 1e6:.0f} MB"
    stopped = file_blocks(path, as_fast_as_possible=True, max_seconds=1.5)
    assert sum(len(b) for b in stopped.blocks) == int(1.5 * sr)


def test_live_refuses_a_float_file_with_nan_before_the_model_loads(checkpoint, tmp_path, monkeypatch, capsys):
    from seeingsounds.cli.main import main

    _no_model(monkeypatch)
    wave = np.tile(sine(220, 1.0, SR), 5)
    wave[3 * SR] = np.nan  # past the first block
    sf.write(tmp_path / "nan.wav", wave, SR, subtype="FLOAT")
    assert main(["live", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "nan.wav"), "--fast",
                 "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: cannot use audio {tmp_path / 'nan.wav'}: the audio contains NaN or infinite samples\n"
    assert not (tmp_path / "out").exists()


def test_augment_never_replaces_a_users_sound_without_force_but_replaces_its_own(tmp_path, monkeypatch, capsys):
    from seeingsounds.cli.main import main

    monkeypatch.chdir(tmp_path)
    sf.write("in.wav", sine(440, 0.5, SR), SR)
    sf.write("recording.wav", sine(330, 0.5, SR), SR)  # the user's own file, at the name they typed by mistake
    precious = Path("recording.wav").read_bytes()
    assert main(["augment", "in.wav", "--volume", "0.5", "-o", "recording.wav"]) == 2
    assert capsys.readouterr().err == ("error: recording.wav exists and was not written by SeeingSounds: choose "
                                       "another -o, or pass --force to replace it\n")
    assert Path("recording.wav").read_bytes() == precious
    for out in ("quiet.wav", "quiet.mp3", "quiet.flac"):  # a rerun replaces its own output
        for volume in ("0.5", "0.25"):
            assert main(["augment", "in.wav", "--volume", volume, "-o", out]) == 0, capsys.readouterr().err
        assert np.abs(read_audio(out)[0]).max() == pytest.approx(0.125, abs=0.02)
    assert main(["augment", "in.wav", "--volume", "0.5", "-o", "recording.wav", "--force"]) == 0
    assert np.abs(read_audio("recording.wav")[0]).max() == pytest.approx(0.25, abs=0.01)


def test_the_audio_reader_expands_a_tilde_like_the_picture_reader(tmp_path, monkeypatch, capsys):
    from seeingsounds.audio.io import audio_fingerprint
    from seeingsounds.cli.main import main

    monkeypatch.setenv("HOME", str(tmp_path))
    sf.write(tmp_path / "a.wav", sine(440, 0.5, SR), SR)
    assert read_audio("~/a.wav")[0].shape == (SR // 2,)
    assert audio_fingerprint("~/a.wav") == audio_fingerprint(tmp_path / "a.wav")
    assert main(["augment", "~/a.wav", "--volume", "0.5", "-o", "~/quiet.wav"]) == 0, capsys.readouterr().err
    assert np.abs(read_audio(tmp_path / "quiet.wav")[0]).max() == pytest.approx(0.25, abs=0.01)


def test_a_sound_whose_name_is_not_utf8_makes_outputs_whose_provenance_names_it(checkpoint, tmp_path, monkeypatch,
                                                                                capsys):
    """A Latin-1 name (``caf\\xe9.wav``: Python's ``caf\\udce9.wav``) was read, then the PNG's provenance text
    failed with a UnicodeEncodeError traceback after the model had run; the name is now kept as its escape,
    which reads back as the name."""
    import json

    from seeingsounds.cli.main import main
    from seeingsounds.imaging import read_provenance
    from seeingsounds.video import read_mp4_provenance

    monkeypatch.chdir(tmp_path)
    name = os.fsdecode(b"caf\xe9.wav")
    sf.write("plain.wav", sine(440, 1.0, SR), SR)
    os.rename("plain.wav", name)  # libsndfile cannot create such a name
    assert main(["generate", "--checkpoint", str(checkpoint), name, "-o", "one.png", "--steps", "1"]) == 0, \
        capsys.readouterr().err
    assert read_provenance("one.png")["source"] == name
    assert main(["live", "--checkpoint", str(checkpoint), "--input", name, "--fast", "--steps", "1", "-o", "live",
                 "--record", "live.mp4"]) == 0, capsys.readouterr().err
    header = json.loads(Path("live/live.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert header["source"] == name and read_mp4_provenance("live.mp4")["source"] == name
    assert read_provenance("live/frame00000.png")["source"] == name


def test_augment_on_a_full_disk_is_one_line_and_no_file(tmp_path, capsys):
    """libsndfile reports a write to a full disk as "System error." only: it was a LibsndfileError traceback."""
    import subprocess

    from test_disk_full import one_line

    from seeingsounds.cli.main import main

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        sf.write(tmp_path / "in.wav", sine(440, 4.0, SR), SR)
        for free_kib in (0, 24):  # full when the file is opened; full half-way through its samples
            (disk / "filler").write_bytes(b"\0" * ((64 - free_kib) * 1024))
            assert main(["augment", str(tmp_path / "in.wav"), "--volume", "0.5", "-o", str(disk / "quiet.wav")]) == 2
            line = one_line(capsys.readouterr().err)
            assert line.startswith(f"error: cannot write {disk / 'quiet.wav'}: the disk holding {disk} is full (")
            assert "125.0 KiB needed" in line
            assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no half-written file, no temporary
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_size_the_generator_cannot_make_fails_before_the_model_loads(checkpoint, tmp_path, monkeypatch, capsys):
    """The size multiple was known only from the loaded generator: ``--size 33x17`` loaded the model first."""
    from seeingsounds.cli.main import main

    _no_model(monkeypatch)
    sf.write(tmp_path / "a.wav", sine(440, 0.5, SR), SR)
    picture = write_picture(tmp_path)
    for command in (["generate", str(tmp_path / "a.wav"), "--size", "33x17"],
                    ["edit", str(tmp_path / "a.wav"), "--image", str(picture), "--size", "33"]):
        assert main([*command, "--checkpoint", str(checkpoint), "-o", str(tmp_path / "out")]) == 2
        size = command[-1] if "x" in command[-1] else f"{command[-1]}x{command[-1]}"
        assert capsys.readouterr().err == (f"error: height and width must be multiples of 2 for this generator, got "
                                           f"{size}: try 32x{16 if size == '33x17' else 32}\n")


def test_a_transparent_picture_is_edited_as_a_viewer_shows_it_on_white(tmp_path):
    """RGBA -> RGB dropped the alpha channel: the transparent half of a logo became the black stored under it."""
    from PIL import Image

    from seeingsounds.imaging import load_picture

    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[:, :4] = (200, 40, 40, 255)  # opaque red left half
    pixels[:, 4:6] = (0, 0, 0, 0)  # transparent, black underneath
    pixels[:, 6:] = (0, 0, 200, 128)  # half-transparent blue
    Image.fromarray(pixels, "RGBA").save(tmp_path / "logo.png")
    rgb = np.asarray(load_picture(tmp_path / "logo.png"))
    assert rgb[0, 0].tolist() == [200, 40, 40] and rgb[0, 4].tolist() == [255, 255, 255]
    assert rgb[0, 7].tolist() == pytest.approx([127, 127, 227], abs=1)
    assert np.asarray(load_picture(Image.fromarray(pixels[..., [0, 3]], "LA")))[0, 4].tolist() == [255, 255, 255]
    assert np.asarray(load_picture(tmp_path / "logo.png", mode="L"))[0, 4] == 0  # a mask keeps its values


def test_save_pretrained_never_replaces_a_config_that_is_not_a_checkpoints(checkpoint, tmp_path):
    """save_pretrained into a project folder replaced the user's config.json (and would a training run's)."""
    import json

    from seeingsounds.errors import ConfigError
    from seeingsounds.pipeline import SeeingSoundsPipeline

    pipe = SeeingSoundsPipeline.from_pretrained(str(checkpoint), device="cpu")
    project, run = tmp_path / "project", tmp_path / "run"
    for folder, config in ((project, {"mine": 1}), (run, {"train": {"epochs": 3}})):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(ConfigError, match="save to a folder of its own"):
            pipe.save_pretrained(folder)
        assert json.loads((folder / "config.json").read_text()) == config
        assert not (folder / "model.safetensors").exists()
    assert "that is not a SeeingSounds checkpoint's (a training run's" in str(
        pytest.raises(ConfigError, pipe.save_pretrained, run).value)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    for _ in range(2):  # a folder of other files, then the checkpoint it now holds, are written
        pipe.save_pretrained(notes)
    assert (notes / "todo.txt").read_text() == "mine"
    again = SeeingSoundsPipeline.from_pretrained(str(notes), device="cpu")
    assert again.conditioner.aligner.state_dict().keys() == pipe.conditioner.aligner.state_dict().keys()


def test_a_video_or_m4a_saved_under_an_audio_suffix_is_read_by_ffmpeg(tmp_path):
    """An m4a/mp4 named .mp3 (downloaders do this) was opened by libsndfile as MPEG audio and failed half-way:
    "corrupt audio data (Unspecified internal error.)"."""
    from audio_video_fixtures import encode_media

    for kind, name in (("mp4", "song.mp3"), ("m4a", "voice.mp3"), ("mkv", "clip.wav")):
        real = encode_media(tmp_path / f"real.{kind}", kind, seconds=1.0) or tmp_path / f"real.{kind}"
        named = tmp_path / name
        named.write_bytes(Path(real).read_bytes())
        wave, sr = read_audio(named)
        info = audio_info(named)
        assert info.reader == "ffmpeg" and abs(len(wave) / sr - 1.0) < 0.05, (name, info, len(wave) / sr)
        assert len(read_audio(named.read_bytes())[0]) == len(wave)


def test_a_name_typed_composed_finds_the_file_stored_decomposed(tmp_path, monkeypatch):
    """A file copied from a Mac keeps its decomposed name (NFD ``cafe\\u0301``); the user types ``café`` (NFC)."""
    import unicodedata

    from seeingsounds.live import file_blocks
    from seeingsounds.request import Request, sound_path

    monkeypatch.chdir(tmp_path)
    stored = unicodedata.normalize("NFD", "café.wav")
    sf.write("plain.wav", sine(440, 0.5, SR), SR)
    os.rename("plain.wav", stored)
    typed = unicodedata.normalize("NFC", "café.wav")
    assert typed != stored and not os.path.exists(typed)
    assert sound_path(typed) == stored and Request(sounds=[typed]).check().sounds == [stored]
    assert file_blocks(typed).path == stored
    os.rename(stored, typed)
    assert sound_path(stored) == typed


def test_an_effects_chain_that_is_not_a_list_is_named_whole():
    """A string or one bare pair was iterated: "an effect must be (name, params dict), got 'v'"."""
    from seeingsounds.errors import ConfigError
    from seeingsounds.request import Settings

    for effects in ("volume:alpha=0.5", ("volume", {"alpha": 0.5}), {"volume": {"alpha": 0.5}}):
        with pytest.raises(ConfigError) as err:
            Settings(effects=effects).check(1)
        assert str(err.value) == ("effects must be a list of (name, params dict) pairs, e.g. [('volume', "
                                  f"{{'alpha': 0.15}})], got {effects!r}")
    assert Settings(effects=[("volume", {"alpha": 0.5})]).check(1) is None


def test_serve_refuses_a_port_it_cannot_use_and_an_endless_limit_before_the_model_loads(checkpoint, monkeypatch,
                                                                                        capsys):
    """A port outside 0..65535 or held by another server failed in gradio after the checkpoint had loaded;
    ``--max-seconds inf`` was accepted and every upload then failed (math.ceil of inf)."""
    import socket

    from seeingsounds.cli.main import main

    _no_model(monkeypatch)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        cases = [(["--port", "99999"], "error: --port must be in 0..65535, got 99999\n"),
                 (["--port", str(busy)], f"error: cannot serve on 127.0.0.1:{busy} (Address already in use): another "
                                         "program may hold the port; choose another --port (or --host)\n"),
                 (["--port", str(_free_port()), "--max-seconds", "inf"],
                  "error: upload limits must be positive and finite, got 25.0 MB / inf s\n")]
        for extra, message in cases:
            assert main(["serve", "--checkpoint", str(checkpoint), *extra]) == 2
            assert capsys.readouterr().err == message


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_endless_max_seconds_is_a_config_error_not_an_overflow(tmp_path):
    from seeingsounds.audio.io import stream_audio
    from seeingsounds.errors import ConfigError

    sf.write(tmp_path / "a.wav", sine(440, 0.5, SR), SR)
    for read in (read_audio, stream_audio):
        for bad in (float("inf"), float("nan"), 0):
            with pytest.raises(ConfigError, match="max_seconds must be a positive number of seconds or None"):
                read(tmp_path / "a.wav", max_seconds=bad)


def test_a_hop_shorter_than_10_ms_is_refused_before_any_picture(checkpoint, tmp_path, monkeypatch, capsys):
    """``--hop 1e-9`` was rounded up to one sample: a picture per sample, 64000 PNGs for a 4 s file."""
    from seeingsounds.cli.main import main
    from seeingsounds.live import LiveOptions

    _no_model(monkeypatch)
    sf.write(tmp_path / "a.wav", sine(440, 4.0, SR), SR)
    for hop in ("1e-9", "0.001", "0"):
        assert main(["live", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "a.wav"), "--fast",
                     "--hop", hop, "-o", str(tmp_path / "out")]) == 2
        assert capsys.readouterr().err == ("error: --hop must be at least 0.01 s of new sound per picture (at most "
                                           f"100 pictures per second of sound), got {float(hop):g}\n")
    assert not (tmp_path / "out").exists()
    assert LiveOptions(hop=0.01).check().hop == 0.01


def test_a_window_longer_than_the_encoder_hears_is_told_not_silently_cut(checkpoint, tmp_path, caplog):
    from seeingsounds.engine import Engine
    from seeingsounds.live import LiveOptions, LiveSession
    from seeingsounds.request import LoadOptions

    engine = Engine.load(LoadOptions(checkpoint=str(checkpoint), device="cpu"))
    seconds = engine.window_samples / engine.sample_rate
    with caplog.at_level(logging.WARNING, logger="seeingsounds.live"):
        session = LiveSession(engine, options=LiveOptions(window=1000.0))
        LiveSession(engine, options=LiveOptions(window=seconds / 2))
        # the encoder's own window sent back as a float a hair above it (the web page's slider at its maximum:
        # 2.015 s x 16 kHz is 32240.000000000004) is that window, not longer
        LiveSession(engine, options=LiveOptions(window=math.nextafter(seconds, math.inf)))
    assert session.window_seconds == pytest.approx(seconds)
    assert [r.getMessage() for r in caplog.records] == [
        f"--window 1000 s is longer than the {seconds:.2f} s the encoder hears at once: using {seconds:.2f} s"]


def test_an_animated_picture_is_edited_from_its_first_frame_and_says_so(tmp_path, caplog):
    from PIL import Image

    from seeingsounds.imaging import load_picture

    frames = [Image.new("RGB", (8, 8), colour) for colour in ((250, 0, 0), (0, 0, 250), (0, 250, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with caplog.at_level(logging.WARNING, logger="seeingsounds.imaging"):
        picture = load_picture(tmp_path / "anim.gif", what="image")
        load_picture(tmp_path / "anim.gif", what="mask", mode="L")
    assert np.asarray(picture)[0, 0].tolist() == pytest.approx([250, 0, 0], abs=8)
    assert [r.getMessage() for r in caplog.records] == [
        f"image {tmp_path / 'anim.gif'} is animated (3 frames): its first frame is used",
        f"mask {tmp_path / 'anim.gif'} is animated (3 frames): its first frame is used"]
