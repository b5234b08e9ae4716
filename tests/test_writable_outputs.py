"""A wrong --cache-dir, --out or SEEINGSOUNDS_HOME fails in one line before any model loads (issue 12 §2).

Tests run as root, which writes into read-only folders, so "cannot be written" is made with a path
under a regular file (``a-file/x``), which fails for every user.
"""

from __future__ import annotations

import json

import pytest
import soundfile as sf
from conftest import sine

from seeingsounds.cli.main import main

SR = 16000


def one_error_line(err: str, path) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert str(path) in lines[0], err
    return lines[0]


@pytest.fixture
def blocker(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


@pytest.fixture
def dataset(tmp_path):
    lines = ["path,label"]
    for i, f in enumerate((220.0, 440.0)):
        p = tmp_path / f"clip{i}.wav"
        sf.write(p, sine(f, 1.0, SR, 0.5), SR)
        lines.append(f"{p.name},tone{i}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "captions.json").write_text(json.dumps({"tone0": "a low tone", "tone1": "a high tone"}))
    return tmp_path / "m.csv", tmp_path / "captions.json"


@pytest.fixture
def no_models(monkeypatch):
    """Fail the test if any model is loaded (the checks must come first)."""
    import seeingsounds.evaluation.runner as runner
    import seeingsounds.model as model
    import seeingsounds.precompute as precompute

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the output paths were checked")

    for module in (model, precompute):
        monkeypatch.setattr(module, "load_encoder", refuse)
        monkeypatch.setattr(module, "load_backend", refuse)
    monkeypatch.setattr(runner.Engine, "load", refuse)
    monkeypatch.setattr(runner.AudioConditioner, "from_pretrained", refuse)
    monkeypatch.setattr(runner, "get_judge", refuse)


def cache_args(dataset, cache_dir):
    manifest, captions = dataset
    return ["cache", "--preset", "tiny", "--data", str(manifest), "--captions", str(captions),
            "--cache-dir", str(cache_dir), "--no-progress"]


@pytest.mark.parametrize("where", ["the file", "under the file"])
def test_cache_command_with_an_unwritable_cache_dir_fails_before_any_model(dataset, blocker, where, capsys,
                                                                         no_models):
    cache_dir = blocker if where == "the file" else blocker / "x"
    assert main(cache_args(dataset, cache_dir)) == 2
    line = one_error_line(capsys.readouterr().err, cache_dir)
    assert "feature cache (--cache-dir)" in line
    assert blocker.read_text() == "not a folder"


def test_cache_command_with_an_unwritable_home_fails_before_any_model(dataset, tmp_path, blocker, monkeypatch,
                                                                      capsys, no_models):
    monkeypatch.setenv("SEEINGSOUNDS_HOME", str(blocker / "home"))
    assert main(cache_args(dataset, tmp_path / "cache")) == 2
    assert "SEEINGSOUNDS_HOME" in one_error_line(capsys.readouterr().err, blocker / "home")


def test_feature_cache_refuses_to_encode_into_an_unwritable_folder(blocker, tmp_path, tiny_encoder):
    """The library check: one ConfigError before the encoder is called, nothing written."""
    from seeingsounds.cache import AudioItem, FeatureCache
    from seeingsounds.errors import ConfigError

    clip = tmp_path / "clip.wav"
    sf.write(clip, sine(330.0, 1.0, SR, 0.5), SR)
    calls = []

    class CountingEncoder:
        def __getattr__(self, name):
            return getattr(tiny_encoder, name)

        def encode(self, waves, **kw):
            calls.append(len(waves))
            return tiny_encoder.encode(waves, **kw)

    cache = FeatureCache(blocker / "x")  # constructing it is fine: a read-only cache may be read
    with pytest.raises(ConfigError, match=r"feature cache \(--cache-dir\) .*a-file/x cannot be written"):
        cache.ensure_audio(CountingEncoder(), [AudioItem.of(clip)], progress=False)
    with pytest.raises(ConfigError, match="cannot be written"):
        cache.load_tokens(CountingEncoder(), AudioItem.of(clip))
    assert calls == [] and cache.stats.written == 0


def test_a_full_cache_is_read_without_writing(tmp_path, tiny_encoder, monkeypatch):
    """A cache that holds every entry serves them without needing to be writable."""
    from seeingsounds.cache import AudioItem, FeatureCache
    from seeingsounds.errors import ConfigError

    clip = tmp_path / "clip.wav"
    sf.write(clip, sine(330.0, 1.0, SR, 0.5), SR)
    items = [AudioItem.of(clip)]
    first = FeatureCache(tmp_path / "cache").audio_tokens(tiny_encoder, items, progress=False)

    def unwritable(self):
        raise ConfigError("not writable")

    monkeypatch.setattr(FeatureCache, "check_writable", unwritable)
    again = FeatureCache(tmp_path / "cache")
    assert again.audio_tokens(tiny_encoder, items, progress=False).equal(first)
    assert (again.stats.hits, again.stats.written) == (1, 0)


@pytest.fixture
def run_folder(tmp_path, tiny_preset, tiny_backend):
    import torch

    from seeingsounds.captions.caption_set import CaptionEntry, CaptionSet
    from seeingsounds.model import create_aligner
    from run_fixtures import save_caption_set
    from seeingsounds.tiny.audio_encoder import TINY_AST

    run = tmp_path / "run"
    torch.manual_seed(0)
    aligner = create_aligner(tiny_preset, TINY_AST["hidden_size"], tiny_backend.conditioning_spec())
    aligner.save_pretrained(run / "best")
    captions = CaptionSet()
    for name in ("tone0", "tone1"):
        captions.add(CaptionEntry(f"a photo of a {name}", "class", (name,)))
    save_caption_set(run, captions, tiny_backend.encode_captions(captions.texts))
    return run


def evaluate_args(run_folder, dataset, out, *extra):
    manifest, _ = dataset
    rows = ["path,label,split"] + [f"{manifest.parent / f'clip{i}.wav'},tone{i},test" for i in range(2)]
    (manifest.parent / "eval.csv").write_text("\n".join(rows) + "\n")
    return ["evaluate", "--checkpoint", str(run_folder), "--protocol", "landscape",
            "--data", str(manifest.parent / "eval.csv"), "--out", str(out), "--seeds", "0", *extra]


@pytest.mark.parametrize("mode", [[], ["--no-images"]])
def test_evaluate_with_an_unwritable_out_fails_before_any_model(run_folder, dataset, blocker, mode, capsys,
                                                                no_models):
    for out in (blocker, blocker / "report"):
        assert main(evaluate_args(run_folder, dataset, out, *mode)) == 2
        line = one_error_line(capsys.readouterr().err, out)
        assert "evaluation report folder (--out)" in line
    assert blocker.read_text() == "not a folder"


def test_evaluate_with_an_unwritable_home_fails_before_any_model(run_folder, dataset, tmp_path, blocker,
                                                                 monkeypatch, capsys, no_models):
    monkeypatch.setenv("SEEINGSOUNDS_HOME", str(blocker / "home"))
    assert main(evaluate_args(run_folder, dataset, tmp_path / "report")) == 2
    assert "SEEINGSOUNDS_HOME" in one_error_line(capsys.readouterr().err, blocker / "home")
