"""Live mode: a stream of real sound becomes pictures that follow what it hears (the ``offline`` preset:
real aisfx + MiniLM weights and the shipped trained generator, an aligner trained here on the bundled
bell and drum recordings)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from seeingsounds.assets import example_sounds
from seeingsounds.audio.io import read_audio
from seeingsounds.cli.main import main
from seeingsounds.errors import ConfigError
from seeingsounds.imaging import read_provenance

CAPTIONS = {"bell": "a bell ringing", "drums": "drums playing"}
#: the stream: the bell recording (3 s), then the drum loop twice (2 x 1.75 s)
CHANGE_S = 3.0
WINDOW_S, HOP_S = 1.0, 0.25


def _waves() -> tuple[dict[str, np.ndarray], int]:
    bell, rate = read_audio(example_sounds()["bell"])
    drums, drums_rate = read_audio(example_sounds()["drums"])
    assert rate == drums_rate == 16000 and len(bell) == CHANGE_S * rate
    return {"bell": bell, "drums": np.concatenate([drums, drums])}, rate


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A training run of the offline preset that tells the bell from the drums: 1 s crops of each, every 0.25 s."""
    from seeingsounds.training import TrainConfig
    from seeingsounds.training.trainer import Trainer

    root = tmp_path_factory.mktemp("live-run")
    waves, rate = _waves()
    rows = ["path,label"]
    for label, wave in waves.items():
        for k, offset in enumerate(range(0, len(wave) - rate + 1, rate // 4)):
            path = root / "clips" / label / f"{k:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wave[offset : offset + rate], rate)
            rows.append(f"clips/{label}/{k:02d}.wav,{label}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    (root / "captions.json").write_text(json.dumps(CAPTIONS))
    config = TrainConfig(preset="offline", data=str(root / "manifest.csv"), captions=str(root / "captions.json"),
                         out=str(root / "run"), epochs=12, batch_size=8, patience=100, seed=0, progress=False,
                         cache_dir=str(root / "cache"))
    Trainer(config).fit()
    return root / "run"


@pytest.fixture(scope="module")
def engine(run):
    from seeingsounds.engine import Engine
    from seeingsounds.request import LoadOptions

    return Engine.load(LoadOptions(checkpoint=str(run), device="cpu"))


@pytest.fixture(scope="module")
def stream_file(tmp_path_factory) -> Path:
    waves, rate = _waves()
    path = tmp_path_factory.mktemp("live-stream") / "bell then drums.wav"
    sf.write(path, np.concatenate([waves["bell"], waves["drums"]]), rate)
    return path


def _frames(engine, path, *, ease=0.6, seed=0, hop=HOP_S, window=WINDOW_S, **options):
    from seeingsounds.live import LiveOptions, file_blocks, live_frames
    from seeingsounds.request import Settings

    return list(live_frames(engine, file_blocks(path, as_fast_as_possible=True), settings=Settings(seed=seed),
                            options=LiveOptions(hop=hop, ease=ease, window=window, **options)))


def _change(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute pixel change (0..255)."""
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


@pytest.fixture(scope="module")
def frames(engine, stream_file):
    return _frames(engine, stream_file)


def test_what_it_hears_switches_within_a_window_of_the_change(frames):
    waves, rate = _waves()
    total = (len(waves["bell"]) + len(waves["drums"])) / rate  # 6.507 s
    # one picture per hop, in order, and a last one for the end of the stream
    assert [f.index for f in frames] == list(range(len(frames)))
    assert [f.stream_time for f in frames] == pytest.approx([HOP_S * (k + 1) for k in range(26)] + [total])
    assert all(f.skipped == 0 for f in frames)
    top = [(f.stream_time, f.heard[0][0]) for f in frames]
    assert all(len(f.heard) == 2 and f.heard[0][1] >= f.heard[1][1] for f in frames)
    assert all(caption == CAPTIONS["bell"] for t, caption in top if t <= CHANGE_S), top
    assert all(caption == CAPTIONS["drums"] for t, caption in top if t >= CHANGE_S + WINDOW_S), top
    switched = next(t for t, caption in top if caption == CAPTIONS["drums"])
    assert CHANGE_S < switched <= CHANGE_S + WINDOW_S


def test_steady_sound_keeps_the_picture_a_change_moves_it(frames):
    change = {f.stream_time: _change(a.picture, f.picture) for a, f in zip(frames, frames[1:])}
    steady = [c for t, c in change.items() if 2.0 <= t <= CHANGE_S or CHANGE_S + 2.5 <= t <= CHANGE_S + 3.5]
    moving = [c for t, c in change.items() if CHANGE_S < t <= CHANGE_S + WINDOW_S]
    assert max(steady) < 2.0 < 8.0 < max(moving), change
    # one seed and eased conditioning: the same picture for the same sound, whatever came before
    assert all(f.picture.size == (32, 32) for f in frames)


def test_easing_spreads_a_change_over_hops_and_settles_on_the_same_picture(engine, stream_file, frames):
    sharp = _frames(engine, stream_file, ease=0.0)
    slow = _frames(engine, stream_file, ease=0.9)
    # the conditioning is the moving average: eased_k = a * eased_(k-1) + (1 - a) * window_k
    for k in (13, 14):
        for name, value in slow[k].conditioning.items():
            expected = 0.9 * slow[k - 1].conditioning[name] + 0.1 * sharp[k].conditioning[name]
            assert np.allclose(value.numpy(), expected.numpy(), atol=1e-5)

    def largest_step(run):
        return max(_change(a.picture, b.picture) for a, b in zip(run, run[1:]) if CHANGE_S < b.stream_time)

    assert largest_step(slow) < largest_step(frames) < largest_step(sharp)
    # what it hears is the window's own (not eased)
    assert [f.heard for f in slow] == [f.heard for f in sharp]
    # long after the change, every easing shows nearly the same picture
    assert _change(frames[-1].picture, sharp[-1].picture) < 3.0


def test_frames_are_deterministic_for_a_seed(engine, stream_file, frames):
    again = _frames(engine, stream_file, seconds=2.0)
    assert [f.stream_time for f in again] == pytest.approx([0.25 * (k + 1) for k in range(8)])
    assert [f.picture.tobytes() for f in again] == [f.picture.tobytes() for f in frames[:8]]
    other = _frames(engine, stream_file, seed=1, seconds=2.0)
    assert all(a.picture.tobytes() != b.picture.tobytes() for a, b in zip(other, again))


def test_a_real_time_stream_skips_to_the_newest_window_when_pictures_are_slow(engine, stream_file, monkeypatch):
    """Pictures slower than the sound: no queue of stale windows; each picture hears the newest sound."""
    from seeingsounds.live import LiveOptions, file_blocks, live_frames

    pictures = engine.pictures

    def slow(*args, **kwargs):
        time.sleep(3 * HOP_S)  # each picture takes at least three hops of sound
        return pictures(*args, **kwargs)

    monkeypatch.setattr(engine, "pictures", slow)
    source = file_blocks(stream_file, as_fast_as_possible=False)
    assert source.realtime and source.sample_rate == 16000
    made = list(live_frames(engine, source, options=LiveOptions(hop=HOP_S, window=WINDOW_S, seconds=2.0)))
    times = [f.stream_time for f in made]
    assert times == sorted(set(times)) and times[-1] == pytest.approx(2.0)
    assert len(made) < 2.0 / HOP_S and all(f.skipped >= 1 for f in made[1:-1]), [(f.stream_time, f.skipped) for f in made]
    assert all(f.latency >= 0 for f in made)


def test_cli_writes_frames_with_provenance_a_log_and_a_recording_with_sound(run, stream_file, tmp_path, monkeypatch, capsys):
    # as a user types: relative paths from another working directory, through ..
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    rel_run = os.path.relpath(run, work)
    rel_input = os.path.relpath(stream_file, work)
    args = ["live", "--checkpoint", rel_run, "--input", rel_input, "--fast", "--hop", "0.5", "--window", "1",
            "--seconds", "5", "--seed", "3", "--volume", "0.8"]
    assert main([*args, "-o", "../session", "--record", "../session/session.mp4"]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "session"
    frames = sorted(p.name for p in folder.glob("frame*.png"))
    assert frames == [f"frame{k:05d}.png" for k in range(10)]
    assert "10 frames in ../session" in out and "drums playing" in out
    lines = (folder / "live.jsonl").read_text(encoding="utf-8").splitlines()
    header, records = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert header["Software"].startswith("seeingsounds ") and header["preset"] == "offline"
    assert header["live"] == {"hop": 0.5, "ease": 0.6, "window": 1.0, "sample_rate": 16000, "realtime": False}
    assert header["effects"] == [["volume", {"alpha": 0.8}]] and header["seed"] == 3
    assert [r["frame"] for r in records] == frames
    assert [set(r) for r in records] == [{"frame", "stream_time", "heard", "latency_s", "skipped"}] * 10
    assert [r["stream_time"] for r in records] == [0.5 * (k + 1) for k in range(10)]
    assert records[3]["heard"][0][0] == CAPTIONS["bell"] and records[-1]["heard"][0][0] == CAPTIONS["drums"]
    assert all(r["latency_s"] > 0 and r["skipped"] == 0 for r in records)
    meta = read_provenance(folder / "frame00009.png")
    assert meta["stream_time"] == 5.0 and meta["heard"][0][0] == CAPTIONS["drums"]
    assert meta["seed"] == 3 and meta["source"] == rel_input and len(meta["source_sha256"]) == 64
    assert meta["effect_descriptions"] and meta["checkpoint"] == rel_run

    # the recording: a picture stream and the sound, both 5 s; each picture shows while the hop it newly heard plays:
    # at 3.6 s, the picture of the sound up to 4.0 s
    with av.open(str(folder / "session.mp4")) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.width, video.height) == (256, 256) and audio.rate == 16000
        pictures = [f.to_ndarray(format="rgb24") for f in container.decode(video)]
    with av.open(str(folder / "session.mp4")) as container:
        sound = np.concatenate([f.to_ndarray()[0] for f in container.decode(container.streams.audio[0])])
    assert len(pictures) == 50  # 10 pictures a second
    assert abs(len(sound) / 16000 - 5.0) < 0.1
    original, _ = read_audio(stream_file)
    start = np.argmax(np.abs(np.correlate(sound[:4000], original[:2000], "valid")))  # AAC's priming delay
    assert start < 2048 and np.corrcoef(sound[start : start + 64000], original[: 64000])[0, 1] > 0.95
    shown = np.asarray(Image.fromarray(pictures[36]).resize((32, 32), Image.BOX), dtype=np.float32)
    made = {name: np.asarray(Image.open(folder / name).convert("RGB"), dtype=np.float32) for name in frames}
    assert min(made, key=lambda name: np.abs(made[name] - shown).mean()) == "frame00007.png"

    # the same session again replaces its own files, byte for byte the same pictures
    before = {name: (folder / name).read_bytes() for name in frames}
    assert main([*args, "--seconds", "2", "-o", "../session"]) == 0
    assert sorted(p.name for p in folder.glob("frame*.png")) == frames[:4]  # the earlier session's frames go
    assert all((folder / name).read_bytes() == before[name] for name in frames[:4])


def test_cli_refuses_to_overwrite_what_it_did_not_write_before_loading(run, stream_file, tmp_path, monkeypatch, capsys):
    from seeingsounds.engine import Engine

    def no_model(*a, **k):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(Engine, "load", no_model)
    base = ["live", "--checkpoint", str(run), "--input", str(stream_file), "--fast"]
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "frame00000.png").write_bytes(b"my own picture")
    (folder / "notes.jsonl").write_text("{}\n")
    cases = [
        (["-o", str(folder)], "frame00000.png exists and was not written by SeeingSounds"),
        (["-o", str(tmp_path / "x.png")], "live mode writes a folder of frames"),
        (["-o", str(tmp_path / "new"), "--record", str(stream_file)], "the session is recorded as an .mp4"),
        (["-o", str(tmp_path / "new"), "--record", str(tmp_path / "new" / "s.mp4"), "--ease", "1"], "--ease must be in [0, 1)"),
        (["-o", str(tmp_path / "new"), "--hop", "0"], "--hop must be at least 0.01 s"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (extra, err)
    assert (folder / "frame00000.png").read_bytes() == b"my own picture"
    (folder / "frame00000.png").unlink()
    (folder / "live.jsonl").write_text('{"a": 1}\n')
    assert main([*base, "-o", str(folder)]) == 2
    assert "live.jsonl exists and was not written by SeeingSounds" in capsys.readouterr().err


def test_missing_input_and_missing_microphone_are_one_clear_line(run, tmp_path, monkeypatch, capsys):
    from seeingsounds.engine import Engine

    monkeypatch.setattr(Engine, "load", lambda *a, **k: pytest.fail("the model must not load"))
    base = ["live", "--checkpoint", str(run), "-o", str(tmp_path / "out")]
    assert main([*base, "--input", str(tmp_path / "nothing.wav")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: sound file {tmp_path / 'nothing.wav'} does not exist: give --input an existing file " \
                  "(or leave it out to hear the microphone)\n"
    assert main([*base, "--fast"]) == 2
    assert "--fast reads a file as fast as possible: give --input FILE" in capsys.readouterr().err

    # sounddevice not installed
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    assert main(base) == 2
    assert capsys.readouterr().err == ("error: listening to the microphone needs the sounddevice package: "
                                       "pip install 'seeingsounds[live]' (or give --input FILE)\n")

    # sounddevice without the PortAudio library: its import fails with OSError
    class NoPortAudio:
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")
            return None

    monkeypatch.delitem(sys.modules, "sounddevice")
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    assert main(base) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the PortAudio library is missing (PortAudio library not found)" in err
    assert "apt-get install libportaudio2" in err

    # PortAudio present but no input device
    monkeypatch.setattr(sys, "meta_path", sys.meta_path[1:])

    class PortAudioError(Exception):
        pass

    def query_devices(device=None, kind=None):
        raise PortAudioError("No input device matching")

    monkeypatch.setitem(sys.modules, "sounddevice", SimpleNamespace(PortAudioError=PortAudioError,
                                                                    query_devices=query_devices))
    assert main(base) == 2
    assert capsys.readouterr().err == "error: no microphone found (No input device matching): plug one in or give --input FILE\n"


def test_a_microphone_stream_is_heard_like_a_file(engine, monkeypatch):
    """The microphone source with a stand-in for PortAudio that plays the bell: the same loop hears it."""
    from seeingsounds import live

    waves, rate = _waves()

    class FakeStream:
        def __init__(self, *, device, channels, samplerate, dtype, blocksize, callback):
            assert (channels, samplerate, dtype) == (1, rate, "float32")
            self.callback, self.blocksize = callback, blocksize

        def __enter__(self):
            bell = waves["bell"]
            for start in range(0, len(bell), self.blocksize):
                block = bell[start : start + self.blocksize]
                self.callback(block[:, None], len(block), None, None)
            return self

        def __exit__(self, *exc):
            return False

    class FakeSoundDevice:
        PortAudioError = OSError
        InputStream = FakeStream

        @staticmethod
        def query_devices(device=None, kind=None):
            return {"name": "test microphone", "default_samplerate": float(rate)}

    monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice)
    source = live.microphone_blocks()
    assert source.realtime and source.sample_rate == rate and source.name == "microphone: test microphone"
    made = list(live.live_frames(engine, source, options=live.LiveOptions(hop=0.5, window=WINDOW_S, seconds=2.0)))
    assert made and made[-1].stream_time == pytest.approx(2.0)
    assert all(f.heard[0][0] == CAPTIONS["bell"] for f in made)


def test_options_are_checked():
    from seeingsounds.live import LiveOptions

    assert LiveOptions(hop=0.2, ease=0.0, window=2, seconds=1).check().hop == 0.2
    for bad, message in [({"hop": -1}, "--hop must be at least 0.01 s"), ({"ease": 1.0}, "--ease must be in"),
                         ({"ease": float("nan")}, "--ease must be a number"), ({"window": 0}, "--window must be"),
                         ({"seconds": True}, "--seconds must be a number")]:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            LiveOptions(**bad).check()


def test_effects_go_through_the_one_render_and_a_short_stream_still_makes_a_picture(engine, stream_file, tmp_path):
    from seeingsounds.live import LiveOptions, array_blocks, live_frames
    from seeingsounds.request import Settings

    waves, rate = _waves()
    effects = [("lowpass", {"cutoff_hz": 300.0})]
    made = list(live_frames(engine, array_blocks(waves["bell"], rate, as_fast_as_possible=True),
                            settings=Settings(effects=effects), options=LiveOptions(hop=0.5, window=WINDOW_S, seconds=1.0)))
    plain = _frames(engine, stream_file, hop=0.5, seconds=1.0)
    assert [f.stream_time for f in made] == [0.5, 1.0]
    # the first frame's conditioning is its window's prediction, rendered with the effect (nothing eased yet)
    expected = engine.predict([(rate, waves["bell"][: rate // 2])], effects=effects)
    for name, value in made[0].conditioning.items():
        assert np.allclose(value.numpy(), expected[name].numpy(), atol=1e-6)
        assert not np.allclose(value.numpy(), plain[0].conditioning[name].numpy(), atol=1e-3)
    # a stream shorter than one hop: one picture at its end
    short = list(live_frames(engine, array_blocks(waves["drums"][:1000], rate, as_fast_as_possible=True),
                             options=LiveOptions(hop=0.5, window=WINDOW_S)))
    assert [f.stream_time for f in short] == [1000 / rate]


def test_ctrl_c_or_an_error_mid_session_keeps_what_was_made(run, engine, stream_file, tmp_path):
    from seeingsounds.live import LOG_NAME, LiveOptions, record_session
    from seeingsounds.request import LoadOptions, Settings

    def stop_after(n, error):
        def on_frame(frame):
            if frame.index == n - 1:
                raise error
        return on_frame

    load = LoadOptions(checkpoint=str(run))
    for n, error in ((3, KeyboardInterrupt()), (2, RuntimeError("the screen went away"))):
        out = tmp_path / type(error).__name__
        call = lambda: record_session(load, Settings(), out, input=str(stream_file), fast=True,  # noqa: E731
                                      options=LiveOptions(hop=0.5, window=WINDOW_S), record=out / "s.mp4",
                                      engine=engine, on_frame=stop_after(n, error))
        if isinstance(error, KeyboardInterrupt):
            summary = call()
            assert summary.interrupted and len(summary.frames) == n
        else:
            with pytest.raises(RuntimeError, match="the screen went away"):
                call()
        lines = (out / LOG_NAME).read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["frame"] for line in lines[1:]] == [f"frame{k:05d}.png" for k in range(n)]
        assert sorted(p.name for p in out.iterdir()) == [f"frame{k:05d}.png" for k in range(n)] + [LOG_NAME, "s.mp4"]
        with av.open(str(out / "s.mp4")) as container:  # a playable recording of the sound so far
            sound = sum(f.samples for f in container.decode(container.streams.audio[0]))
        assert abs(sound / 16000 - 0.5 * n) < 0.1


def test_a_pushed_feed_makes_the_frames_of_the_same_stream(engine, stream_file, frames):
    """A caller that pushes blocks (the web page's microphone) gets, hop for hop, the pictures and what it
    hears of the iterator over the same sound; a push short of a hop makes nothing."""
    from seeingsounds.live import LiveOptions, LiveSession
    from seeingsounds.request import Settings

    wave, rate = read_audio(stream_file)
    feed = LiveSession(engine, Settings(seed=0), LiveOptions(hop=HOP_S, ease=0.6, window=WINDOW_S)).feed(rate)
    block = int(HOP_S * rate) // 2
    made = [frame for start in range(0, len(wave), block) if (frame := feed.push(wave[start : start + block]))]
    assert len(made) == len(frames) - 1  # the iterator also draws the stream's last part, shorter than a hop
    for pushed, iterated in zip(made, frames):
        assert pushed.stream_time == pytest.approx(iterated.stream_time)
        assert [c for c, _ in pushed.heard] == [c for c, _ in iterated.heard]
        assert np.array_equal(np.asarray(pushed.picture), np.asarray(iterated.picture))
    assert feed.push(np.zeros(block // 4, np.float32)) is None
    with pytest.raises(ConfigError, match="sample rate"):
        LiveSession(engine).feed(0)
