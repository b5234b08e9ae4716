"""The web demo's functions, without a browser: controls -> effects, upload limits, the request itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import sine
from test_audio_video_formats import _flac_without_length
from PIL import Image

from seeingsounds.app.service import Limits, controls_to_effects, implied_caption, read_checked, transform
from seeingsounds.errors import AudioLoadError, ConfigError


def test_neutral_controls_apply_no_effect():
    assert controls_to_effects() == []
    assert controls_to_effects(volume=1.0, reverb=0, pitch=0, lowpass=0, echo=0) == []


def test_controls_map_to_effects_in_the_cli_order():
    effects = controls_to_effects(volume=0.15, reverb=0.6, pitch=-5, lowpass=800, echo=0.25)
    assert effects == [
        ("pitch", {"semitones": -5.0}),
        ("lowpass", {"cutoff_hz": 800.0}),
        ("echo", {"delay_seconds": 0.25}),
        ("reverb", {"room_size": 0.6}),
        ("volume", {"alpha": 0.15}),
    ]


def test_transform_mixes_then_applies_effects_and_describes_them():
    sr = 16000
    a, b = sine(440, 1.0, sr), sine(880, 0.5, 8000)
    out, descriptions = transform(a, sr, controls_to_effects(volume=0.1), (b, 8000), 0.5)
    assert descriptions == ["low-volume"]
    assert len(out) == sr  # the second clip was resampled to 16 kHz (0.5 s) and padded under the first
    mixed, _ = transform(a, sr, [], (b, 8000), 0.5)
    np.testing.assert_allclose(out, 0.1 * mixed, atol=1e-4)
    clean, none = transform(a, sr, [])
    assert none == [] and np.array_equal(clean, a)


def test_implied_caption_fuses_then_edits():
    assert implied_caption("a train passing by", ["low-volume"]) == "a distant train passing by"
    fused = implied_caption("a train passing by", [], "a helicopter hovering")
    assert fused == "a train passing by and a helicopter hovering"
    assert implied_caption("a bell ringing", []) == "a bell ringing"


def test_read_checked_refuses_too_long_and_too_large(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, sine(440, 3.0, 8000), 8000)
    wave, sr = read_checked(path, Limits(max_upload_mb=1, max_seconds=5))
    assert sr == 8000 and len(wave) == 24000
    with pytest.raises(AudioLoadError, match=r"long\.wav.*3\.0 s long.*at most 2 s"):
        read_checked(path, Limits(max_upload_mb=1, max_seconds=2))
    with pytest.raises(AudioLoadError, match=r"is 0\.048 MB; this demo takes files up to 0\.01 MB"):
        read_checked(path, Limits(max_upload_mb=0.01, max_seconds=5))


def test_a_flac_of_unknown_length_passes_the_duration_check(tmp_path):
    """The header says 'length unknown' (libsndfile would report 96076792050570.6 s): the decoded length decides."""
    path = _flac_without_length(tmp_path / "stream.flac", sr=16000, seconds=1.0)
    wave, sr = read_checked(path, Limits(max_upload_mb=1, max_seconds=5))
    assert sr == 16000 and len(wave) == 16000
    long = _flac_without_length(tmp_path / "long.flac", sr=8000, seconds=6.0)
    with pytest.raises(AudioLoadError, match=r"long\.flac.*longer than 5 s, the most this demo takes"):
        read_checked(long, Limits(max_upload_mb=1, max_seconds=5))


def test_read_checked_names_a_broken_file_without_its_folder(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioLoadError) as info:
        read_checked(path, Limits())
    assert str(info.value).startswith("cannot use audio broken.wav: unreadable or corrupt audio")
    assert str(tmp_path) not in str(info.value)


def test_limits_must_be_positive():
    with pytest.raises(ConfigError):
        Limits(max_upload_mb=0)


# ---- one request through the real model (the tiny demo run trained on the bundled sounds) ----------


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from seeingsounds.app.service import WebService
    from seeingsounds.demo_checkpoint import demo_checkpoint

    return WebService(demo_checkpoint() / "best", limits=Limits(max_upload_mb=1, max_seconds=10),
                      output_dir=tmp_path_factory.mktemp("app-out"))


@pytest.fixture(scope="module")
def sounds():
    from seeingsounds.assets import example_sounds

    return example_sounds()


def test_request_with_mix_and_effect(service, sounds):
    from seeingsounds.audio.io import audio_fingerprint, read_audio
    from seeingsounds.imaging import PROVENANCE_FIELDS, read_provenance

    steps = []
    result = service.run(str(sounds["bell"]), volume=0.15, mix_sound=str(sounds["crow"]), mix_ratio=0.4,
                        seed=7, steps=2, size=32, num_images=2, progress=lambda f, text: steps.append((f, text)))
    assert result.caption == "a distant bell ringing and a crow cawing"
    assert result.seeds == [7, 8] and len(result.images) == 2
    for path, seed in zip(result.images, result.seeds):
        with Image.open(path) as image:
            assert image.size == (32, 32) and image.format == "PNG"
        provenance = read_provenance(path)
        assert set(provenance) <= set(PROVENANCE_FIELDS)  # the one spelling of `seeingsounds generate`
        assert provenance["seed"] == seed and provenance["steps"] == 2 and provenance["size"] == "32x32"
        assert provenance["source"] == "bell.flac" and provenance["source_sha256"] == audio_fingerprint(sounds["bell"])
        assert provenance["mix"] == {"path": "crow.flac", "sha256": audio_fingerprint(sounds["crow"]), "ratio": 0.4}
        assert provenance["effects"] == [["volume", {"alpha": 0.15}]]
        assert provenance["effect_descriptions"] == ["low-volume"]
        assert provenance["caption"] == result.caption and provenance["preset"] == "tiny"
    assert len(result.hears) == 5 and all(-1.0 <= s <= 1.0 for s in result.hears.values())
    heard, sr = read_audio(result.audio)
    assert sr == service.sample_rate == 16000
    bell = read_audio(sounds["bell"])[0]
    assert len(heard) == len(bell)  # the 3 s bell is the longer clip of the mix
    assert [f for f, _ in steps] == sorted(f for f, _ in steps) and len(steps) >= 4  # progress moves forward


def test_clean_request_hears_its_class_first(service, sounds):
    for name, caption in (("bell", "a bell ringing"), ("drums", "drums playing a breakbeat")):
        result = service.run(str(sounds[name]), steps=1, size=32)
        assert next(iter(result.hears)) == caption
        assert result.caption == caption
        assert list(result.hears.values()) == sorted(result.hears.values(), reverse=True)


def test_what_it_hears_is_what_describe_says(service, sounds):
    from seeingsounds.describe import describe_audio

    result = service.run(str(sounds["guitar"]), volume=0.15, reverb=0.5, steps=1, size=32)
    described = describe_audio(service.checkpoint, [sounds["guitar"]], top_k=100,
                               effects=[("reverb", {"room_size": 0.5}), ("volume", {"alpha": 0.15})])[0]
    expected = [(m.caption, m.similarity) for m in described.matches if m.kind == "class"][:service.top_k]
    assert list(result.hears) == [c for c, _ in expected]
    assert list(result.hears.values()) == pytest.approx([s for _, s in expected], abs=1e-5)


def test_a_request_predicts_each_clip_once(service, sounds, monkeypatch):
    """The clean sounds once (for the caption), the effected mix once: the prediction the images are made
    from is what the page says it hears."""
    batches: list[int] = []
    predict = service.engine.conditioner.predict_waves
    monkeypatch.setattr(service.engine.conditioner, "predict_waves", lambda waves: batches.append(len(waves)) or predict(waves))
    result = service.run(str(sounds["bell"]), volume=0.15, mix_sound=str(sounds["crow"]), mix_ratio=0.4, steps=1,
                        size=32)
    assert batches == [2, 1]  # was [2, 1, 1]: the effected mix predicted for "what it hears", then for the images
    assert len(result.hears) == service.top_k  # test_what_it_hears_is_what_describe_says checks the numbers


def test_request_errors_a_user_can_fix(service, sounds, tmp_path):
    with pytest.raises(ConfigError, match="upload or record a sound"):
        service.run(None)
    with pytest.raises(ConfigError, match=r"positive multiple of \d+, got 33"):
        service.run(str(sounds["bell"]), size=33)
    with pytest.raises(ConfigError, match="1..4"):
        service.run(str(sounds["bell"]), num_images=5)
    with pytest.raises(ConfigError, match=r"'pitch': semitones=30.0 is outside"):
        service.run(str(sounds["bell"]), pitch=30)
    long = tmp_path / "long.flac"
    sf.write(long, sine(220, 11.0, 16000), 16000)
    with pytest.raises(AudioLoadError, match=r"second sound is 11\.0 s long"):
        service.run(str(sounds["bell"]), mix_sound=str(long))


def test_serve_command_defaults_to_this_machine_only():
    from seeingsounds.cli.main import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.checkpoint) == ("127.0.0.1", 7860, None)
    assert (args.max_upload_mb, args.max_seconds, args.concurrency, args.share) == (25.0, 60.0, 1, False)
    args = build_parser().parse_args(["serve", "--checkpoint", "runs/x", "--host", "0.0.0.0", "--concurrency", "2"])
    assert (args.checkpoint, args.host, args.concurrency) == ("runs/x", "0.0.0.0", 2)


def test_example_picker_survives_the_hourly_output_clean_up(service):
    """The example copies live under output_dir, which _request_dir prunes of folders older than an hour."""
    import os
    import time

    from seeingsounds.app.service import OUTPUT_TTL
    from seeingsounds.app.ui import build_app

    app = build_app(service.checkpoint, service=service)
    pick = next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == "pick_example")
    first = pick("bell")
    assert first is not None and os.path.isfile(first)
    old = time.time() - OUTPUT_TTL - 60
    for folder in service.output_dir.iterdir():
        os.utime(folder, (old, old))
    service._request_dir()  # the next request's clean-up removes the examples folder too
    assert not os.path.exists(first)
    again = pick("piano")
    assert again is not None and os.path.isfile(again)
    assert pick("bell") is not None and os.path.isfile(pick("bell"))


def test_serve_lora_and_offload_reach_the_pipeline(tmp_path, monkeypatch, capsys):
    """`serve --lora X` loads the LoRA into the generator; the page's PNGs name it (not the server's folders)."""
    from test_evaluate import make_tiny_lora

    import seeingsounds.app.ui as app_module
    from seeingsounds.demo_checkpoint import demo_checkpoint
    from seeingsounds.assets import example_sounds
    from seeingsounds.cli.main import build_parser, main
    from seeingsounds.imaging import read_provenance

    checkpoint = demo_checkpoint() / "best"
    args = build_parser().parse_args(["serve", "--lora", "x.safetensors", "--cpu-offload", "--device", "cuda"])
    assert (args.lora, args.cpu_offload, args.device) == ("x.safetensors", True, "cuda")
    from seeingsounds.pipeline import SeeingSoundsPipeline

    lora = make_tiny_lora(tmp_path / "lora", SeeingSoundsPipeline.from_pretrained(checkpoint, device="cpu").backend.model_id)
    served = {}
    monkeypatch.setattr(app_module, "launch_app", lambda app, **kw: served.update(app=app, **kw))
    assert main(["serve", "--checkpoint", str(checkpoint), "--lora", str(lora), "--port", "0"]) == 0
    service = served["app"].seeingsounds_service
    try:
        assert service.engine.pipe.generator.transformer.peft_config  # the adapter is attached
        result = service.run(str(example_sounds()["bell"]), steps=1, size=32)
        provenance = read_provenance(result.images[0])
        assert provenance["lora"] == "lora" and provenance["Software"].startswith("seeingsounds ")
        assert provenance["checkpoint"] == f"{demo_checkpoint().name}/best" and str(tmp_path) not in json.dumps(provenance)
        assert str(demo_checkpoint()) not in json.dumps(provenance)
    finally:
        service.close()
    assert "serving" in capsys.readouterr().out


def test_live_blocks_from_the_page_become_pictures_that_name_the_sound(service, sounds):
    """What the Live tab's stream does, without a browser: 48 kHz int16 stereo blocks of half a second (what the
    page's microphone sends) make a picture per block once the first hop arrived, and it hears the bell; a
    second stream with another seed draws another picture of the same sound."""
    from seeingsounds.app.service import mono_block
    from seeingsounds.audio.io import read_audio, resample

    bell, rate = read_audio(sounds["bell"])
    pcm = np.round(resample(bell, rate, 48000) * 20000).astype(np.int16)
    stereo = np.stack([pcm, pcm], axis=1)
    assert np.allclose(mono_block(stereo[:100]), pcm[:100] / 32768.0)
    views = {}
    for seed in (0, 1):
        feed = service.live_feed(48000, seed=seed, ease=0.5)
        views[seed] = [v for start in range(0, len(stereo), 24000)
                       if (v := service.live_push(feed, stereo[start : start + 24000])) is not None]
    assert [round(v.stream_time, 2) for v in views[0]] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    # once the 2 s window holds 1.5 s of the bell: a shorter start (padded with silence, as a short clip is at
    # training) sounds, to this tiny run of six clips, most like its shortest clip, the 0.5 s crow call
    heard = [(v.stream_time, next(iter(v.hears))) for v in views[0]]
    assert [caption for time, caption in heard if time >= 1.5] == ["a bell ringing"] * 4, heard
    assert views[0][-1].picture.size == (32, 32)
    assert not np.array_equal(np.asarray(views[0][-1].picture), np.asarray(views[1][-1].picture))
    with pytest.raises(ConfigError, match="ease"):
        service.live_feed(48000, ease=1.5)
