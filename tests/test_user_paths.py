"""Data paths as users type them: relative folders and manifests (``data``, ``./data``, ``sub/../data``,
a symlink, ``../proj/data`` from another working directory), through the real CLI of every command that
reads one: train, cache, evaluate --data, data (builders' --media / --annotations / -o), describe, generate.

Rows of a manifest are relative to the manifest's folder (README, :mod:`seeingsounds.data.manifest`);
a class folder's clips are relative to that folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import write_sines

from seeingsounds.cli.main import main

CAPTIONS = {"alpha": "a low tone", "beta": "a high tone"}
FREQS = {"alpha": (300.0, 330.0, 360.0, 390.0), "beta": (900.0, 990.0, 1100.0, 1200.0)}
#: 4 clips per class and --val-fraction 0.25: 3 train + 1 val per class
CLIPS = {"train": 6, "val": 2, "test": 0}


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Path:
    """``proj/data/<class>/clip{i}.wav``, ``proj/caps.json``, ``proj/lists/rel.csv`` (rows ``../data/...``),
    ``proj/lists/rel.jsonl``, the symlink ``proj/linkdata -> data`` and an empty ``proj/sub``; a sibling
    ``other/`` working directory."""
    base = tmp_path_factory.mktemp("users")
    proj = base / "proj"
    for label, freqs in FREQS.items():
        (proj / "data" / label).mkdir(parents=True)
        write_sines(proj / "data" / label, freqs, seconds=0.4)
    (proj / "caps.json").write_text(json.dumps(CAPTIONS))
    (proj / "lists").mkdir()
    rows = [(f"../data/{label}/clip{i}.wav", label) for label in FREQS for i in range(4)]
    (proj / "lists" / "rel.csv").write_text("path,label\n" + "".join(f"{p},{lb}\n" for p, lb in rows))
    (proj / "lists" / "rel.jsonl").write_text("".join(json.dumps({"path": p, "label": lb}) + "\n" for p, lb in rows))
    (proj / "linkdata").symlink_to("data", target_is_directory=True)
    (proj / "sub").mkdir()
    (base / "other").mkdir()
    return proj


def train_args(data: str, captions: str, out: str, cache: Path) -> list[str]:
    return ["train", "--preset", "tiny", "--data", data, "--captions", captions, "--out", out, "--epochs", "1",
            "--batch-size", "4", "--val-fraction", "0.25", "--cache-dir", str(cache), "--no-progress"]


def saved_data(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())["data"]


@pytest.mark.parametrize("spelling", ["data", "./data", "sub/../data", "linkdata", "data/", "lists/rel.csv",
                                      "lists/rel.jsonl", "./lists/../lists/rel.csv"])
def test_train_reads_relative_folders_and_manifests(proj, spelling, monkeypatch, capsys):
    monkeypatch.chdir(proj)
    out = "run-" + spelling.replace("/", "_").replace(".", "d")
    code = main(train_args(spelling, "caps.json", out, proj.parent / "cache"))
    err = capsys.readouterr().err
    assert code == 0, err
    data = saved_data(proj / out)
    assert data["clips"] == CLIPS
    assert data["data"] == str((proj / spelling).resolve())  # absolute: a resume may run elsewhere


@pytest.mark.parametrize("spelling", ["../proj/data", "../proj/linkdata/", "../proj/lists/rel.csv"])
def test_train_from_another_working_directory(proj, spelling, monkeypatch, capsys):
    monkeypatch.chdir(proj.parent / "other")
    out = "run-" + spelling.replace("/", "_").replace(".", "d")
    code = main(train_args(spelling, "../proj/caps.json", out, proj.parent / "cache"))
    assert code == 0, capsys.readouterr().err
    assert saved_data(proj.parent / "other" / out)["clips"] == CLIPS


@pytest.mark.parametrize("where,spelling", [("proj", "data"), ("proj", "./linkdata"), ("other", "../proj/data"),
                                            ("other", "../proj/lists/rel.jsonl")])
def test_cache_reads_relative_folders_and_manifests(proj, where, spelling, monkeypatch, capsys):
    monkeypatch.chdir(proj if where == "proj" else proj.parent / "other")
    captions = "caps.json" if where == "proj" else "../proj/caps.json"
    code = main(["cache", "--preset", "tiny", "--data", spelling, "--captions", captions, "--cache-dir",
                 str(proj.parent / "cache"), "--device", "cpu", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("2 classes, 8 train / 0 val clips; 8 encoder inputs\n")  # 90/10: round(0.4) = 0 val


@pytest.fixture(scope="module")
def run(proj, tmp_path_factory) -> Path:
    """A tiny run trained from the folder spelled relative (the checkpoint the later commands use)."""
    cwd = os.getcwd()
    os.chdir(proj)
    try:
        assert main(train_args("data", "caps.json", "run", proj.parent / "cache")) == 0
    finally:
        os.chdir(cwd)
    return proj / "run"


def test_evaluate_reads_a_relative_manifest_with_relative_rows(proj, run, monkeypatch, capsys):
    monkeypatch.chdir(proj.parent / "other")
    code = main(["evaluate", "--checkpoint", "../proj/run", "--protocol", "landscape", "--data",
                 "../proj/lists/rel.csv", "--out", "eval", "--no-images", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((proj.parent / "other" / "eval" / "report.json").read_text())
    assert report["counts"]["clips"] == 2  # the seeded 90/10 split: 1 test clip per class
    capsys.readouterr()
    code = main(["evaluate", "--checkpoint", "../proj/run", "--protocol", "landscape", "--data", "../proj/data",
                 "--out", "eval2", "--no-images", "--device", "cpu"])  # a class folder: evaluate needs a manifest
    assert code == 2 and "../proj/data is a folder, not a manifest file" in capsys.readouterr().err


def test_data_builder_relative_media_and_output_then_train(proj, run, monkeypatch, capsys):
    other = proj.parent / "other"
    monkeypatch.chdir(other)
    assert main(["data", "landscape", "--media", "../proj/linkdata", "-o", "built/land.csv"]) == 0
    assert "8 clip(s) in 2 class(es)" in capsys.readouterr().out
    rows = (other / "built" / "land.csv").read_text().splitlines()
    assert rows[0] == "path,label" and len(rows) == 9
    assert all(Path(r.split(",")[0]).is_absolute() for r in rows[1:])  # the media lie outside built/
    assert main(train_args("built/land.csv", "../proj/caps.json", "run-built", proj.parent / "cache")) == 0
    assert saved_data(other / "run-built")["clips"] == CLIPS
    # media below the manifest's folder: relative rows, read back from another directory
    monkeypatch.chdir(proj)
    assert main(["data", "landscape", "--media", "data", "-o", "inside.jsonl"]) == 0
    first = json.loads((proj / "inside.jsonl").read_text().splitlines()[0])
    assert first == {"path": "data/alpha/clip0.wav", "label": "alpha"}
    monkeypatch.chdir(other)
    assert main(train_args("../proj/inside.jsonl", "../proj/caps.json", "run-inside", proj.parent / "cache")) == 0
    assert saved_data(other / "run-inside")["clips"] == CLIPS


def test_data_builder_relative_annotations(proj, monkeypatch, capsys):
    """vggsound --annotations and esc50's default MEDIA/meta/esc50.csv, both spelled relative."""
    work = proj.parent / "builders"
    (work / "vgg").mkdir(parents=True)
    for i in range(2):
        (work / "vgg" / f"yt{i}_000010.wav").symlink_to(proj / "data" / "alpha" / f"clip{i}.wav")
    (work / "vgg.csv").write_text("yt0,10,dog barking,train\nyt1,10,dog barking,test\n")
    (work / "esc" / "audio").mkdir(parents=True)
    (work / "esc" / "meta").mkdir()
    (work / "esc" / "audio" / "1-1-A-0.wav").symlink_to(proj / "data" / "beta" / "clip0.wav")
    (work / "esc" / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n1-1-A-0.wav,1,0,dog,True,1,A\n")
    monkeypatch.chdir(work)
    assert main(["data", "vggsound", "--annotations", "./vgg.csv", "--media", "vgg", "-o", "v.csv"]) == 0
    assert (work / "v.csv").read_text() == "path,label\nvgg/yt0_000010.wav,dog barking\nvgg/yt1_000010.wav,dog barking\n"
    assert main(["data", "esc50", "--media", "esc/", "-o", "e.csv"]) == 0
    assert (work / "e.csv").read_text() == "path,label\nesc/audio/1-1-A-0.wav,dog\n"
    capsys.readouterr()


def test_describe_and_generate_read_relative_inputs(proj, run, monkeypatch, capsys):
    monkeypatch.chdir(proj.parent / "other")
    assert main(["describe", "--checkpoint", "../proj/run", "../proj/linkdata/alpha/clip0.wav", "--top-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "../proj/linkdata/alpha/clip0.wav" and lines[1].strip().startswith("1. ")
    assert main(["generate", "--checkpoint", "../proj/run/best", "../proj/data/beta/clip1.wav", "--steps", "1",
                 "--size", "32x32", "-o", "imgs"]) == 0
    assert (proj.parent / "other" / "imgs" / "clip1_s0.png").is_file()


def test_captions_files_spelled_relative(proj, run, monkeypatch, capsys):
    other = proj.parent / "other"
    monkeypatch.chdir(other)
    (other / "labels.txt").write_text("alpha\nbeta\n")
    assert main(["captions", "init", "--labels", "./labels.txt", "-o", "../proj/lists/../caps-init.json"]) == 0
    assert set(json.loads((proj / "caps-init.json").read_text())) == {"alpha", "beta"}
    assert main(["captions", "show", "../proj/caps-init.json"]) == 0
    capsys.readouterr()
    assert main(train_args("../proj/linkdata", "../proj/lists/../caps-init.json", "run-caps", proj.parent / "cache")) == 0
    assert saved_data(other / "run-caps")["clips"] == CLIPS


@pytest.mark.parametrize("first,then", [("./data", "../proj/linkdata"), ("lists/rel.csv", "../proj/lists/rel.csv")])
def test_resume_from_another_directory_with_another_spelling(proj, first, then, monkeypatch, capsys):
    """config.json records the data and captions files absolute, so the resumed run finds them the same."""
    monkeypatch.chdir(proj)
    out = f"run-resume-{first[:3]}"
    args = train_args(first, "caps.json", out, proj.parent / "cache")
    args[args.index("--epochs") + 1] = "2"
    assert main([*args, "--max-steps", "1"]) == 0
    monkeypatch.chdir(proj.parent / "other")
    moved = {first: then, "caps.json": "../proj/caps.json", out: f"../proj/{out}"}
    capsys.readouterr()
    assert main([moved.get(a, a) for a in args] + ["--resume"]) == 0, capsys.readouterr().err
    assert "finished after 2 epochs" in capsys.readouterr().out
