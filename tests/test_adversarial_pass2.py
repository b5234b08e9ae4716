"""The second adversarial pass (issue 17, last bullet): other spellings and other files than the
first pass's. Each test names a case that lost a file, broke a resume or printed a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_sines

from seeingsounds.cli.main import main

CAPTIONS = {"alpha": "a low tone", "beta": "a high tone"}


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    """``proj/data/<class>/clip{i}.wav`` (3 clips a class) and ``proj/caps.json``."""
    proj = tmp_path_factory.mktemp("pass2") / "proj"
    for label, freqs in {"alpha": (300.0, 330.0, 360.0), "beta": (900.0, 990.0, 1100.0)}.items():
        (proj / "data" / label).mkdir(parents=True)
        write_sines(proj / "data" / label, freqs, seconds=0.3)
    (proj / "caps.json").write_text(json.dumps(CAPTIONS))
    return proj


@pytest.fixture
def no_models(monkeypatch):
    """Fail the test if a model is loaded (the checks must come first)."""
    import seeingsounds.model as model
    import seeingsounds.precompute as precompute

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the options were checked")

    for module in (model, precompute):
        monkeypatch.setattr(module, "load_encoder", refuse)
        monkeypatch.setattr(module, "load_backend", refuse)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def train_args(out: str, cache: str, *extra: str) -> list[str]:
    return ["train", "--preset", "tiny", "--data", "data", "--captions", "caps.json", "--out", out, "--epochs", "1",
            "--batch-size", "4", "--val-fraction", "0.34", "--cache-dir", cache, "--no-progress", *extra]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("cache", ["data", "./data/", "data/alpha", "data/../data/beta/cache"])
def test_a_cache_folder_in_the_data_folder_is_refused_and_the_data_untouched(proj, cache, monkeypatch, capsys,
                                                                            no_models, tmp_path):
    """`--cache-dir data` wrote audio/ and targets/ among the class folders: every later train
    failed on a class 'targets' without clips."""
    monkeypatch.chdir(proj)
    before = tree(proj / "data")
    assert main(train_args(str(tmp_path / "run"), cache)) == 2
    assert "the feature cache (--cache-dir) " in one_error_line(capsys)
    assert main(["cache", "--preset", "tiny", "--data", "data", "--captions", "caps.json", "--cache-dir", cache,
                 "--no-progress"]) == 2
    assert "is inside the data folder (--data)" in one_error_line(capsys)
    assert tree(proj / "data") == before
    assert sorted(p.name for p in (proj / "data").iterdir()) == ["alpha", "beta"]


def test_a_cache_folder_in_the_run_folder_is_refused(proj, monkeypatch, capsys, no_models, tmp_path):
    """`--cache-dir` equal to (or inside) `--out` made a run that `--resume` refused as 'not a run'."""
    monkeypatch.chdir(proj)
    for cache in (str(tmp_path / "run"), str(tmp_path / "run" / "features")):
        assert main(train_args(str(tmp_path / "run"), cache)) == 2
        assert "is inside the run folder (--out)" in one_error_line(capsys)
    assert not (tmp_path / "run" / "features").exists()


def test_a_cache_folder_that_is_another_run_is_refused(proj, monkeypatch, capsys, no_models, tmp_path):
    other = tmp_path / "other-run"
    (other / "best").mkdir(parents=True)
    (other / "config.json").write_text("{}")
    monkeypatch.chdir(proj)
    assert main(train_args(str(tmp_path / "run"), str(other))) == 2
    assert "not a feature cache (it holds best, config.json)" in one_error_line(capsys)
    assert sorted(p.name for p in other.iterdir()) == ["best", "config.json"]


def cache_args(*extra: str) -> list[str]:
    return ["cache", "--preset", "tiny", "--data", "data", "--captions", "caps.json", "--no-progress", *extra]


@pytest.mark.parametrize("extra,message", [
    (["--batch-size", "0"], "batch size must be an integer >= 1, got 0"),  # was range()'s ValueError
    (["--batch-size", "-1"], "batch size must be an integer >= 1, got -1"),  # was: encoded nothing, rc 0
    (["--seed", "-1"], "the split seed must be an integer >= 0, got -1"),  # was numpy's ValueError
])
def test_cache_options_fail_in_one_line_before_any_model(proj, extra, message, monkeypatch, capsys, no_models,
                                                         tmp_path):
    monkeypatch.chdir(proj)
    assert main(cache_args("--cache-dir", str(tmp_path / "c"), *extra)) == 2
    assert message in one_error_line(capsys)


def test_cache_dtype_is_refused_by_the_parser_before_any_model(tmp_path):
    """``--dtype fp8`` was refused only after the audio encoder ran; now the flag's choices refuse it."""
    done = subprocess.run([sys.executable, "-m", "seeingsounds.cli.main", *cache_args("--dtype", "fp8")],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "invalid choice: 'fp8'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("extra,message", [
    (["--seed", "-1"], "seed must be in 0..4294967295"),  # numpy's ValueError in the split
    (["--seed", str(2**32)], "seed must be in 0..4294967295"),  # numpy's ValueError in accelerate's set_seed
    (["--lr-sequence", "inf"], "lr_sequence must be a positive number, got inf"),
    (["--lr-pooled", "inf"], "lr_pooled must be a positive number, got inf"),
    (["--weight-decay", "nan"], "weight_decay must be a number >= 0, got nan"),
    (["--weight-decay", "-1"], "weight_decay must be a number >= 0, got -1.0"),
])
def test_train_options_fail_in_one_line_before_any_model(proj, extra, message, monkeypatch, capsys, no_models,
                                                         tmp_path):
    monkeypatch.chdir(proj)
    assert main(train_args(str(tmp_path / "run"), str(tmp_path / "c"), *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from test_pipeline import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt", "tiny")


@pytest.fixture
def no_pipeline(monkeypatch):
    from seeingsounds.pipeline import SeeingSoundsPipeline

    def forbidden(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(SeeingSoundsPipeline, "from_pretrained", forbidden)


@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "101"])
def test_guidance_nan_inf_or_huge_fails_before_load(proj, checkpoint, value, capsys, no_pipeline, tmp_path):
    """NaN/inf made black images with rc 0; 1e308 a traceback inside the generator after it loaded."""
    clip = proj / "data" / "alpha" / "clip0.wav"
    assert main(["generate", "--checkpoint", str(checkpoint), str(clip), "-o", str(tmp_path / "out"),
                 f"--guidance={value}"]) == 2
    assert "--guidance must be a number in 0..100" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_the_api_refuses_a_nan_guidance_too():
    from seeingsounds.errors import ConfigError
    from seeingsounds.request import check_guidance

    with pytest.raises(ConfigError, match="guidance_scale must be a number in 0..100"):
        check_guidance(float("nan"))
    assert check_guidance(3) == 3.0


@pytest.mark.parametrize("lora,message", [
    ("nope.safetensors", "LoRA weights nope.safetensors do not exist"),  # was diffusers' "offline mode" ValueError
    ("data/alpha/clip0.wav", "LoRA weights data/alpha/clip0.wav is not a .safetensors or .bin file"),  # OSError
    ("data", "the LoRA folder data holds no .safetensors or .bin file"),
])
def test_a_lora_that_is_no_weights_fails_before_load(proj, checkpoint, lora, message, monkeypatch, capsys, no_pipeline,
                                                     tmp_path):
    monkeypatch.chdir(proj)
    assert main(["generate", "--checkpoint", str(checkpoint), "data/alpha/clip0.wav", "-o", str(tmp_path / "out"),
                 "--lora", lora]) == 2
    assert message in one_error_line(capsys)


@pytest.fixture(scope="module")
def run(proj, tmp_path_factory) -> Path:
    """A 1-epoch tiny run of ``proj/data`` at ``proj/run`` and the manifest ``proj/list.csv`` of the same clips."""
    rows = "".join(f"data/{label}/clip{i}.wav,{label}\n" for label in CAPTIONS for i in range(3))
    (proj / "list.csv").write_text("path,label\n" + rows)
    cwd = Path.cwd()
    os.chdir(proj)
    try:
        assert main(train_args("run", str(tmp_path_factory.mktemp("cache")))) == 0
    finally:
        os.chdir(cwd)
    return proj / "run"


def evaluate_args(*extra: str) -> list[str]:
    return ["evaluate", "--checkpoint", "run", "--protocol", "landscape", "--data", "list.csv", "--no-images",
            "--device", "cpu", *extra]


def test_a_run_evaluated_with_the_default_out_can_still_be_resumed(proj, run, monkeypatch, capsys, tmp_path):
    """evaluate's default --out is <run>/eval-<protocol>: `train --resume` then refused the run as
    'not empty and not a training run (it holds eval-landscape)'."""
    monkeypatch.chdir(proj)
    assert main(evaluate_args()) == 0
    assert (run / "eval-landscape" / "report.json").is_file()
    capsys.readouterr()
    assert main(train_args("run", str(tmp_path / "c"), "--resume", "--epochs", "2")) == 0, capsys.readouterr().err
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if "epoch" in json.loads(line)][-1] == 2
    assert (run / "eval-landscape" / "report.json").is_file()


def test_evaluate_out_naming_a_run_is_refused(proj, run, monkeypatch, capsys):
    monkeypatch.chdir(proj)
    before = sorted(p.name for p in run.iterdir())
    assert main(evaluate_args("--out", "./run")) == 2
    assert "--out run is a training run: choose a folder of its own" in one_error_line(capsys)
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.parametrize("extra,message", [(["--split-seed", "-1"], "--split-seed must be >= 0, got -1"),
                                           (["--batch-size", "0"], "--batch-size must be >= 1, got 0")])
def test_evaluate_options_fail_in_one_line(proj, run, extra, message, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(proj)
    assert main(evaluate_args("--out", str(tmp_path / "ev"), *extra)) == 2
    assert message in one_error_line(capsys)


@pytest.mark.parametrize("output", ["run", "./run/", "run/best", "run/pictures", "run/one.png"])
def test_generate_o_into_a_run_is_refused(proj, run, output, monkeypatch, capsys, no_pipeline):
    """`generate -o run` wrote its PNGs among the run's files: `train --resume` then refused the run."""
    monkeypatch.chdir(proj)
    before = tree(run)
    assert main(["generate", "--checkpoint", "run", "data/alpha/clip0.wav", "-o", output]) == 2
    assert "the training run" in one_error_line(capsys)
    assert tree(run) == before


def test_augment_to_a_non_utf8_name_is_one_line(proj, tmp_path, capsys):
    """libsndfile's path encoding raised UnicodeEncodeError (a traceback) for a name in another encoding."""
    output = os.fsdecode(bytes(tmp_path) + b"/out\xff.wav")
    assert main(["augment", str(proj / "data" / "alpha" / "clip0.wav"), "-o", output, "--volume", "0.5"]) == 2
    assert "out\\xff.wav is not UTF-8 text" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_offline_alignment_training_data_from_a_relative_manifest(tmp_path, monkeypatch):
    """The offline benchmark rewrote its split by hand: rows of a manifest given relative to the working
    directory were written relative to *it*, so train (which counts from the manifest's folder) found no clip."""
    from seeingsounds.data.manifest import load_dataset
    from seeingsounds.evaluation.offline_alignment import _write_training_data, split_protocol

    labels = ["a", "b", "c", "d", "e"]
    for i, label in enumerate(labels):
        (tmp_path / "src" / label).mkdir(parents=True)
        write_sines(tmp_path / "src" / label, (200.0 + 100 * i,) * 4, seconds=0.2)
    rows = "".join(f"{label}/clip{j}.wav,{label}\n" for label in labels for j in range(4))
    (tmp_path / "src" / "m.csv").write_text("path,label\n" + rows)
    monkeypatch.chdir(tmp_path)
    split = split_protocol("src/m.csv", seed=0, unseen_fraction=0.4)
    manifest, captions = _write_training_data(Path("out/data"), split, {label: f"sound {label}" for label in labels})
    dataset = load_dataset(manifest, captions)
    assert sorted(str(c.path.resolve()) for c in dataset.clips) == sorted(
        str((tmp_path / p).resolve()) for name in ("train", "val") for p, _ in split[name])
    assert {c.split for c in dataset.clips} == {"train", "val"}


def test_a_negative_synthetic_seed_is_one_line(tmp_path):
    """`demo --seed -1` ended in numpy's 'expected non-negative integer' traceback."""
    from seeingsounds.data.synthetic import make_synthetic_dataset
    from seeingsounds.errors import ConfigError

    with pytest.raises(ConfigError, match="seed must be an integer >= 0, got -1"):
        make_synthetic_dataset(tmp_path / "d", seed=-1)
    assert not (tmp_path / "d").exists()
