"""`seeingsounds train` never loses a file on a wrong --out, locks its run, and says what it did (issue 12 §2)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import synthetic_train_data, train_args

from seeingsounds.cli.main import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_train_data(tmp_path_factory, "safety")


@pytest.fixture
def no_models(monkeypatch):
    """Fail the test if a model is loaded (the checks must come first)."""
    import seeingsounds.model as model

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the output folder was checked")

    monkeypatch.setattr(model, "load_encoder", refuse)
    monkeypatch.setattr(model, "load_backend", refuse)


def test_out_that_is_the_data_folder_or_holds_other_files_is_refused(data, tmp_path, capsys, no_models):
    root, manifest, captions = data
    before = {p: p.read_bytes() for p in (manifest, captions)}
    assert main(train_args(data, root)) == 2
    err = capsys.readouterr().err
    assert "which the run reads" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in before} == before  # the input captions.json is untouched

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}')
    (mine / "metrics.jsonl").write_text("my numbers\n")
    assert main(train_args(data, mine)) == 2
    assert "not empty and not a training run (it holds config.json)" in capsys.readouterr().err
    assert (mine / "config.json").read_text() == '{"my": "settings"}'
    assert sorted(p.name for p in mine.iterdir()) == ["config.json", "metrics.jsonl"]


def test_unwritable_out_fails_in_one_line_before_any_model(data, tmp_path, capsys, no_models):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(train_args(data, blocker)) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(train_args(data, blocker / "run")) == 2  # cannot be created: its parent is a file
    err = capsys.readouterr().err
    assert "cannot be written" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    if os.geteuid() != 0:  # root writes into read-only folders
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            assert main(train_args(data, ro / "run")) == 2
            assert "cannot be written" in capsys.readouterr().err
        finally:
            ro.chmod(0o755)


def test_resume_accepts_the_run_spelled_relative_or_absolute(data, tmp_path, monkeypatch, capsys):
    root, manifest, captions = data
    monkeypatch.chdir(tmp_path)
    rel_manifest = os.path.relpath(manifest, tmp_path)
    args = ["train", "--preset", "tiny", "--data", rel_manifest, "--captions", str(captions), "--out", "run",
            "--epochs", "2", "--batch-size", "8", "--cache-dir", str(root / "cache"), "--no-progress"]
    assert main([*args, "--max-steps", "2"]) == 0
    absolute = [str(tmp_path / "run") if a == "run" else str(manifest) if a == rel_manifest else a for a in args]
    capsys.readouterr()
    assert main([*absolute, "--resume"]) == 0, capsys.readouterr().err
    assert "finished after 2 epochs" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert saved["out"] == str(tmp_path / "run") and saved["data"] == str(manifest)


def test_no_validation_clips_warns_and_reports_no_val_loss(data, tmp_path, capsys):
    root, manifest, captions = data
    with open(manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]  # 4 clips per class, no split column
    small = tmp_path / "small.csv"
    small.write_text("path,label\n" + "".join(f"{root / r['path']},{r['label']}\n" for r in rows))
    old = os.umask(0o022)
    try:
        code = main(["train", "--preset", "tiny", "--data", str(small), "--captions", str(captions), "--out",
                     str(tmp_path / "run"), "--epochs", "2", "--cache-dir", str(root / "cache"), "--no-progress"])
    finally:
        os.umask(old)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "warning: no validation clips" in err
    assert "best val loss" not in out and "no validation clips: best/ holds epoch" in out
    for name in ("best", "last"):  # tempfile.mkdtemp alone would make them 0700
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o755


def test_second_train_into_the_same_out_fails_at_once_and_kill_9_then_resume_works(data, tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "seeingsounds.cli.main", *train_args(data, out)[:-1],
                              "--no-progress", "--epochs", "1000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "last" / "training_state.pt").is_file():
            assert first.poll() is None, first.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the first run saved no epoch in time"
            time.sleep(0.5)
        start = time.monotonic()
        assert main(train_args(data, out, "--resume", "--epochs", "1000")) == 2
        err = capsys.readouterr().err
        assert time.monotonic() - start < 60 and "in use by another training process" in err
        assert main(train_args(data, out)) == 2  # and a fresh start is refused anyway
        assert "already holds a training run" in capsys.readouterr().err
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        done = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["epoch"]
        assert main(train_args(data, out, "--resume", "--epochs", str(done + 1))) == 0, capsys.readouterr().err
        epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert epochs == list(range(1, done + 2))  # one line per epoch, none twice
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_fresh_partial_run_folder_is_reused(data, tmp_path):
    """A run stopped before its first epoch (only run files, no checkpoint) can be started again."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"train": {}}))
    (out / "caption_edits.jsonl").write_text('{"op": "edit", "inputs": ["a", "b"], "output": "stale"}\n')
    assert main(train_args(data, out)) == 0
    assert Path(out / "best" / "model.safetensors").is_file()
    assert not (out / "caption_edits.jsonl").exists()  # a fresh run does not reuse another's edits


def test_llm_and_live_options_reach_the_config():
    import argparse

    from seeingsounds.cli.train import add_arguments, config_from_args
    from seeingsounds.errors import ConfigError

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--preset", "tiny", "--data", "d.csv", "--captions", "c.json", "--out", "o", "--mix-pairs", "4"]
    cfg = config_from_args(parser.parse_args([*base, "--caption-engine", "llm", "--llm-base-url", "http://127.0.0.1:9/v1",
                                              "--llm-model", "m", "--llm-cache", "llm.json", "--augment-live"]))
    assert (cfg.llm_base_url, cfg.llm_model, cfg.llm_cache, cfg.llm_temperature) == ("http://127.0.0.1:9/v1", "m",
                                                                                      "llm.json", 0.0)
    assert cfg.cache_augmented is False
    with pytest.raises(ConfigError, match="only apply to caption_engine='llm'"):
        config_from_args(parser.parse_args([*base, "--llm-model", "m"]))


def test_resume_of_a_run_saved_before_new_options_and_a_changed_preset_is_named(data, tmp_path, capsys):
    """Options and preset fields added since a run was made count as their defaults; a preset change
    names the field that changed (not ``preset='tiny' (run: 'tiny')``)."""
    out = tmp_path / "run"
    assert main(train_args(data, out, "--epochs", "2", "--max-steps", "1")) == 0, capsys.readouterr().err
    config_path = out / "config.json"
    saved = json.loads(config_path.read_text())
    del saved["train"]["dropout"], saved["train"]["cache_augmented"], saved["train"]["dtype"]
    del saved["preset"]["fps"], saved["preset"]["lora"], saved["preset"]["encoder_options"]
    config_path.write_text(json.dumps(saved))
    capsys.readouterr()

    changed = json.loads(json.dumps(saved))
    changed["preset"]["lr_sequence"] = 0.5
    config_path.write_text(json.dumps(changed))
    assert main(train_args(data, out, "--epochs", "2", "--resume")) == 2
    err = capsys.readouterr().err
    assert "preset 'tiny': lr_sequence=0.001 (run: 0.5)" in err, err
    assert "dropout" not in err and "fps" not in err and len(err.strip().splitlines()) == 1

    config_path.write_text(json.dumps(saved))
    assert main(train_args(data, out, "--epochs", "2", "--resume")) == 0, capsys.readouterr().err
    assert "finished after 2 epochs" in capsys.readouterr().out


def test_option_differences_name_each_field():
    from seeingsounds.presets import get_preset
    from seeingsounds.training.state import preset_differences

    tiny = get_preset("tiny").to_dict()
    assert preset_differences(tiny, {**tiny, "description": "reworded"}) == []
    assert preset_differences(tiny, {**tiny, "extra": {}}) == []  # a removed field, never set
    assert preset_differences(tiny, {**tiny, "extra": {"a": 1}}) == ["extra=<removed> (run: {'a': 1})"]
    assert preset_differences(tiny, {**tiny, "height": 64, "width": 16}) == ["height=32 (run: 64)",
                                                                             "width=32 (run: 16)"]
    assert preset_differences({**tiny, "fps": 8}, {k: v for k, v in tiny.items() if k != "fps"}) == [
        "fps=8 (run: None)"]


def test_option_missing_from_saved_config_is_its_default(tmp_path):
    from seeingsounds.errors import ConfigError
    from seeingsounds.presets import get_preset
    from seeingsounds.runs import RunFolder
    from seeingsounds.training.config import TrainConfig
    from seeingsounds.training.state import check_same_options

    cfg = TrainConfig(preset="tiny", data=str(tmp_path / "d.csv"), captions=str(tmp_path / "c.json"),
                      out=str(tmp_path), dropout=0.0)
    tiny = get_preset("tiny").to_dict()
    train = cfg.resolved_paths()
    del train["dropout"], train["target_weights"], train["augment"]
    (tmp_path / "config.json").write_text(json.dumps({"train": train, "preset": tiny}))
    run = RunFolder(tmp_path)
    assert check_same_options(cfg, tiny, run)["train"] == train
    changed = TrainConfig(**{**cfg.to_dict(), "dropout": 0.25})
    with pytest.raises(ConfigError, match=r"dropout=0.25 \(run: 0.0\)$"):
        check_same_options(changed, tiny, run)


def test_one_class_trains_with_a_warning_that_top1_means_nothing(data, tmp_path, capsys):
    root, manifest, captions = data
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    first = rows[0]["label"]
    one = tmp_path / "one.csv"
    one.write_text("path,label,split\n" + "".join(f"{root / r['path']},{r['label']},{r['split']}\n"
                                                  for r in rows if r["label"] == first))
    code = main(["train", "--preset", "tiny", "--data", str(one), "--captions", str(captions), "--out",
                 str(tmp_path / "run"), "--epochs", "1", "--cache-dir", str(root / "cache"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"has one class ({first!r})" in err and "validation top-1 is 100 %" in err
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["val_top1"] for m in metrics if "val_top1" in m] == [100.0]  # what the warning says
