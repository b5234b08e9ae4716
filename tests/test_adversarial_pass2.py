"""The second adversarial pass (issue 17, last bullet): other spellings and other files than the
first pass's. Each test names a case that lost a file, broke a resume or printed a traceback."""

from __future__ import annotations

import json
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
