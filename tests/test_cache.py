"""Feature cache: hits, misses, invalidation on every key part, corrupt entries, the `cache` command."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import soundfile as sf
import torch
from conftest import items_of, sine, write_sines

SR = 16000


@pytest.fixture()
def clips(tmp_path):
    return write_sines(tmp_path, (220.0, 440.0, 880.0), sr=SR)


def test_hits_misses_and_values(tmp_path, clips, tiny_encoder):
    from seeingsounds.audio.io import load_audio
    from seeingsounds.cache import FeatureCache

    cache = FeatureCache(tmp_path / "c")
    tokens = cache.audio_tokens(tiny_encoder, items_of(clips), progress=False)
    assert (cache.stats.hits, cache.stats.misses) == (0, 3)
    again = cache.audio_tokens(tiny_encoder, items_of(clips), progress=False)
    assert (cache.stats.hits, cache.stats.misses) == (3, 3)
    assert torch.equal(tokens, again)
    direct = tiny_encoder.encode([load_audio(p, target_sr=SR) for p in clips])
    torch.testing.assert_close(tokens, direct, atol=2e-2, rtol=2e-3)  # stored as fp16
    files = list((tmp_path / "c").rglob("*.safetensors"))
    assert len(files) == 3 and not [p for p in (tmp_path / "c").rglob("*") if p.name.endswith(".tmp")]
    # reused by another cache object (another run) and across datasets: same content, other path
    shutil.copy(clips[0], tmp_path / "elsewhere.wav")
    other = FeatureCache(tmp_path / "c")
    other.audio_tokens(tiny_encoder, items_of([tmp_path / "elsewhere.wav"]), progress=False)
    assert (other.stats.hits, other.stats.misses) == (1, 0)


def test_every_key_part_invalidates(tmp_path, clips, tiny_encoder):
    from seeingsounds.cache import FeatureCache

    root = tmp_path / "c"

    def misses(encoder=tiny_encoder, dtype="float16", **kw):
        cache = FeatureCache(root, dtype=dtype)
        cache.ensure_audio(encoder, items_of(clips[:1], **kw), progress=False)
        return cache.stats.misses

    assert misses() == 1 and misses() == 0
    # file content
    sf.write(clips[0], sine(330.0, 1.5, SR, 0.5), SR)
    assert misses() == 1 and misses() == 0
    # encoder identity (here: its dtype, part of config_dict)
    other = copy.deepcopy(tiny_encoder).double()
    assert other.identity() != tiny_encoder.identity()
    assert misses(encoder=other) == 1 and misses(encoder=other) == 0
    # preprocessing: window length, sample rate
    shorter = copy.deepcopy(tiny_encoder)
    shorter.window_samples = tiny_encoder.window_samples // 2
    assert misses(encoder=shorter) == 1
    resampled = copy.deepcopy(tiny_encoder)
    resampled.sample_rate = 8000
    assert FeatureCache(root).audio_path(resampled, items_of(clips[:1])[0])[0] != \
        FeatureCache(root).audio_path(tiny_encoder, items_of(clips[:1])[0])[0]
    # effect chain and its parameters
    assert misses(effects=[("volume", {"alpha": 0.1})]) == 1
    assert misses(effects=[("volume", {"alpha": 0.1})]) == 0
    assert misses(effects=[("volume", {"alpha": 0.3})]) == 1
    assert misses(effects=[("volume", {"alpha": 0.1}), ("reverb", {})]) == 1
    # mix partner and ratio
    assert misses(mix=(clips[1], 0.5)) == 1 and misses(mix=(clips[1], 0.5)) == 0
    assert misses(mix=(clips[2], 0.5)) == 1 and misses(mix=(clips[1], 0.3)) == 1
    # storage dtype
    assert misses(dtype="float32") == 1 and misses(dtype="float32") == 0


def test_transformed_and_mixed_entries_hold_the_transformed_audio(tmp_path, clips, tiny_encoder):
    from seeingsounds.audio.effects import apply_effects, mix
    from seeingsounds.audio.io import load_audio
    from seeingsounds.cache import FeatureCache

    cache = FeatureCache(tmp_path / "c", dtype="float32")
    quiet = cache.audio_tokens(tiny_encoder, items_of(clips[:1], effects=[("volume", {"alpha": 0.1})]), progress=False)
    wave = load_audio(clips[0], target_sr=SR)
    expected = tiny_encoder.encode([apply_effects(wave, SR, [("volume", {"alpha": 0.1})])[0]])
    torch.testing.assert_close(quiet, expected, atol=1e-4, rtol=1e-4)
    mixed = cache.audio_tokens(tiny_encoder, items_of(clips[:1], mix=(clips[2], 0.5)), progress=False)
    expected = tiny_encoder.encode([mix(wave, load_audio(clips[2], target_sr=SR), 0.5)])
    torch.testing.assert_close(mixed, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("damage", ["truncate", "flip", "swap", "empty"])
def test_corrupt_entries_are_deleted_and_recomputed(tmp_path, clips, tiny_encoder, damage):
    from seeingsounds.cache import FeatureCache

    cache = FeatureCache(tmp_path / "c")
    good = cache.audio_tokens(tiny_encoder, items_of(clips), progress=False)
    path = cache.audio_path(tiny_encoder, items_of(clips[:1])[0])[0]
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # a bit flip in the tensor data: header intact, checksum catches it
        path.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    elif damage == "swap":  # another entry's file under this name: its key does not match
        path.write_bytes(cache.audio_path(tiny_encoder, items_of(clips[1:2])[0])[0].read_bytes())
    else:
        path.write_bytes(b"")
    fresh = FeatureCache(tmp_path / "c")
    again = fresh.audio_tokens(tiny_encoder, items_of(clips), progress=False)
    # start-up reads headers only: a flipped data bit passes it and is caught when the entry is read
    expected = (1, 0, 3) if damage == "flip" else (1, 1, 2)
    assert (fresh.stats.corrupt, fresh.stats.misses, fresh.stats.hits) == expected
    assert fresh.stats.corrupt_files == [str(path)]
    assert torch.equal(again, good)
    assert FeatureCache(tmp_path / "c").read(path, cache.audio_path(tiny_encoder, items_of(clips[:1])[0])[1]) is not None


@pytest.mark.parametrize("call", ["audio_tokens", "load_tokens", "read_tokens"])
def test_an_empty_folder_in_place_of_an_entry_is_a_miss(tmp_path, clips, tiny_encoder, call):
    from seeingsounds.cache import CorruptEntryError, FeatureCache, read_tokens

    cache = FeatureCache(tmp_path / "c")
    good = cache.audio_tokens(tiny_encoder, items_of(clips), progress=False)
    path = cache.audio_path(tiny_encoder, items_of(clips[:1])[0])[0]
    path.unlink()
    path.mkdir()
    fresh = FeatureCache(tmp_path / "c")
    if call == "read_tokens":  # a path given by the user: named, and the empty folder is gone
        with pytest.raises(CorruptEntryError, match="missing or corrupt"):
            read_tokens(path)
        assert not path.exists()
        return
    if call == "audio_tokens":
        again = fresh.audio_tokens(tiny_encoder, items_of(clips), progress=False)
        assert torch.equal(again, good) and (fresh.stats.corrupt, fresh.stats.misses, fresh.stats.hits) == (1, 1, 2)
    else:  # the training dataset's read: recomputed and rewritten
        assert torch.equal(fresh.load_tokens(tiny_encoder, items_of(clips[:1])[0]), good[0].half())
        assert fresh.stats.corrupt == 1
    assert fresh.stats.corrupt_files == [str(path)] and path.is_file()


@pytest.mark.parametrize("call", ["audio_tokens", "load_tokens", "read_tokens", "cache-command"])
def test_a_folder_of_files_in_place_of_an_entry_is_named_and_kept(tmp_path, clips, tiny_encoder, capsys, call):
    from seeingsounds.cache import CorruptEntryError, FeatureCache, read_tokens
    from seeingsounds.cli.main import main

    cache = FeatureCache(tmp_path / "c")
    cache.audio_tokens(tiny_encoder, items_of(clips), progress=False)
    path = cache.audio_path(tiny_encoder, items_of(clips[:1])[0])[0]
    path.unlink()
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    if call == "cache-command":
        (tmp_path / "m.csv").write_text("path,label\n" + "".join(f"{p.name},tone\n" for p in clips))
        (tmp_path / "caps.json").write_text(json.dumps({"tone": "a tone"}))
        assert main(["cache", "--preset", "tiny", "--data", str(tmp_path / "m.csv"), "--captions",
                     str(tmp_path / "caps.json"), "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        last = err.rstrip().split("\n")[-1]  # after the encoder's loading bar
        assert last.startswith(f"error: the cache entry {path} is a folder holding files") and "Traceback" not in err
    else:
        with pytest.raises(CorruptEntryError, match="is a folder holding files, not an entry: move it out"):
            fresh = FeatureCache(tmp_path / "c")
            if call == "audio_tokens":
                fresh.audio_tokens(tiny_encoder, items_of(clips), progress=False)
            elif call == "load_tokens":
                fresh.load_tokens(tiny_encoder, items_of(clips[:1])[0])
            else:
                read_tokens(path)
    assert (path / "notes.txt").read_text() == "mine"  # nothing of the user's is deleted


def test_a_file_in_place_of_an_entry_folder_is_named(tmp_path, clips, tiny_encoder):
    from seeingsounds.cache import CorruptEntryError, FeatureCache

    cache = FeatureCache(tmp_path / "c")
    cache.audio_tokens(tiny_encoder, items_of(clips), progress=False)
    fan_out = cache.audio_path(tiny_encoder, items_of(clips[:1])[0])[0].parent
    shutil.rmtree(fan_out)
    fan_out.write_text("in the way")
    with pytest.raises(CorruptEntryError, match=f"^{fan_out} is a file where the feature cache keeps a folder"):
        FeatureCache(tmp_path / "c").audio_tokens(tiny_encoder, items_of(clips), progress=False)
    assert fan_out.read_text() == "in the way"


def test_caption_targets_cache(tmp_path, tiny_preset, tiny_backend):
    from seeingsounds.cache import FeatureCache
    from seeingsounds.model import load_backend

    loads = []

    def factory():
        loads.append(1)
        return tiny_backend.load_text_pipeline()

    cache = FeatureCache(tmp_path / "c")
    caps = ["a dog barks", "rain on a roof", "a dog barks"]
    first = cache.caption_targets(tiny_backend, caps, pipe_factory=factory, progress=False)
    assert first["prompt_embeds"].shape == (3, 16, 32) and torch.equal(first["prompt_embeds"][0], first["prompt_embeds"][2])
    assert (cache.stats.misses, len(loads)) == (2, 1)
    again = cache.caption_targets(tiny_backend, caps, pipe_factory=factory, progress=False)
    assert len(loads) == 1 and cache.stats.hits == 2  # all hits: the text encoders are not even loaded
    assert all(torch.equal(first[n], again[n]) for n in first)
    direct = tiny_backend.encode_captions(caps)
    assert all(t.dtype == torch.float16 for t in first.values())  # the cache dtype: no fp32 copy
    torch.testing.assert_close(first["pooled_prompt_embeds"].float(), direct["pooled_prompt_embeds"], atol=2e-3, rtol=2e-3)
    as32 = cache.caption_targets(tiny_backend, caps, pipe_factory=factory, progress=False, out_dtype=torch.float32)
    assert as32["prompt_embeds"].dtype == torch.float32 and torch.equal(as32["prompt_embeds"], first["prompt_embeds"].float())
    # caption text, max_sequence_length (-> spec), model id, revision and dtype are key parts
    cache.caption_targets(tiny_backend, ["a dog barks!"], pipe_factory=factory, progress=False)
    assert cache.stats.misses == 3
    short = load_backend(tiny_preset.replace(max_sequence_length=8))
    out = cache.caption_targets(short, ["a dog barks"], progress=False)
    assert cache.stats.misses == 4 and out["prompt_embeds"].shape == (1, 8, 32)
    ident = cache.backend_identity(tiny_backend)
    base = cache.target_path(ident, "x")[0]
    for change in ({"model_id": "elsewhere"}, {"revision": "abc"}, {"backend": "sd3"}):
        assert cache.target_path({**ident, **change}, "x")[0] != base
    assert FeatureCache(tmp_path / "c", dtype="float32").target_path(ident, "x")[0] != base
    # the text model that computes the targets (the minilm backend's text_model_id)
    other = copy.copy(tiny_backend)
    other.text_model_id = "some/other-minilm"
    assert cache.target_path(cache.backend_identity(other), "x")[0] != base


def test_cache_command(tmp_path, clips, capsys):
    from seeingsounds.cli.main import main

    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n" + "".join(f"{p.name},tone{i}\n" for i, p in enumerate(clips)))
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({f"tone{i}": f"a tone number {i}" for i in range(3)}))
    args = ["cache", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions),
            "--cache-dir", str(tmp_path / "c"), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "audio features: 0 hits, 3 misses" in out and "caption targets: 0 hits, 4 misses" in out
    assert main(args + ["--augment", "volume:alpha=0.1"]) == 0
    out = capsys.readouterr().out
    assert "audio features: 3 hits, 3 misses" in out and "caption targets: 4 hits, 0 misses" in out
    assert main(args[:-1] + ["--augment", "volume:gain=2"]) == 2
    assert "volume" in capsys.readouterr().err
