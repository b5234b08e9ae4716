"""The README's offline demo, end to end on the default preset (real aisfx + MiniLM weights), twice."""

from __future__ import annotations

import io
import json
import tempfile

import numpy as np
import pytest
from PIL import Image

from seeingsounds.errors import ConfigError


def test_demo_learns_classes_volume_and_mixes_and_runs_again(tmp_path, monkeypatch):
    from seeingsounds.demo import MARKER, run_demo

    # the demo's temporary files must all be gone afterwards: give it an empty temp dir to check
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "demo"
    log = io.StringIO()
    results = run_demo(out, stream=log, progress=False)
    text = log.getvalue()
    assert results["preset"] == "offline" and results["tokens_shape"] == [1, 8, 512]
    assert results["reused_run"] is False
    # measured with seed 0 (the demo's 60 epochs): held-out top-1 1.00; right class and volume bin
    # at 100 % / 35 % / 10 %: 0.93 / 0.93 / 1.00; fused caption first for 10 of 10 class pairs
    assert results["heldout_top1"] >= 0.9
    assert results["volume_sweep"][1.0] >= 0.8 and results["volume_sweep"][0.1] >= 0.8
    assert results["volume_sweep"][0.35] >= 0.6
    assert results["mix_fused"] >= 0.8 and len(results["mix_grid"]) == 10
    confusion = results["confusion"]
    assert sum(map(sum, confusion)) == 15 and sum(confusion[i][i] for i in range(5)) == round(15 * results["heldout_top1"])
    # the pictures: each written, readable, with its sentence in the log, the page and the report
    assert results["pictures"] == ["heard.png", "volume.png", "mixes.png", "training.png", "contact_sheet.png"]
    page = (out / "index.html").read_text()
    for name in results["pictures"]:
        with Image.open(out / name) as image:
            assert image.width >= 300 and image.height >= 150
        assert results["sentences"][name] in text and f'src="{name}"' in page
    with Image.open(results["report"]) as report:
        assert report.width >= 1200 and report.height >= 1000
    sheet = Image.open(results["contact_sheet"])
    assert results["image_size"] == [32, 32] and sheet.width >= 5 * 32
    # the edit: a drawn picture + a held-out clip at strength 0.6, its input and output tiles on the
    # sheet's second row (128 px tiles, 6 px apart, a 34 px label band), at the demo's image size
    edit = results["edit"]
    assert edit["strength"] == 0.6 and edit["num_inference_steps"] == 4 and edit["size"] == [32, 32]
    edit_input, edited = (np.asarray(Image.open(out / name).convert("RGB")) for name in ("edit_input.png", "edit.png"))
    assert edited.shape == edit_input.shape == (32, 32, 3)
    assert edit["mean_abs_change"] > 5 and np.abs(edited.astype(float) - edit_input).mean() == pytest.approx(
        edit["mean_abs_change"], abs=0.01)  # random generator weights: the edit does not keep the picture
    rgb, y = np.asarray(sheet.convert("RGB")), 6 + 128 + 34 + 6
    for column, tile in enumerate((edit_input, edited)):
        x = 6 + column * (128 + 6)
        assert (rgb[y : y + 128, x : x + 128] == tile.repeat(4, 0).repeat(4, 1)).all()
    assert f"edit: {edit['clip']}" in text and "does not keep the picture" in results["sentences"]["contact_sheet.png"]
    assert "RANDOM weights" in text and "seeingsounds generate" in text
    # a log gets a few lines, not a progress bar per epoch
    assert "\r" not in text and sum(line.strip().startswith("epoch") for line in text.splitlines()) == 0
    assert len(text.splitlines()) < 90
    assert json.loads((out / "results.json").read_text())["heldout_top1"] == results["heldout_top1"]

    # a second run reuses the dataset and the finished run: same numbers, nothing trained, no new run
    log2 = io.StringIO()
    again = run_demo(out, stream=log2, progress=False)
    assert again["reused_run"] is True and again["run"] == results["run"]
    for key in ("heldout_top1", "volume_sweep", "mix_fused", "confusion"):
        assert again[key] == results[key]
    assert again["edit"]["pixels_sha256"] == edit["pixels_sha256"]  # the same seed repeats the edit
    assert (np.asarray(Image.open(out / "edit.png").convert("RGB")) == edited).all()
    assert "reusing the run" in log2.getvalue()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("run")) == ["run"]
    # nothing temporary left behind: the scratch temp dir is empty (but for torch's compile cache, which
    # torch keeps there on purpose), no hidden temp files in the output
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")] == []
    hidden = sorted(p.relative_to(out).as_posix() for p in out.rglob(".*"))
    assert hidden == [MARKER, "run/.lock"] or hidden == [MARKER], hidden


def test_demo_trains_a_new_run_beside_one_made_with_other_options(tmp_path):
    from seeingsounds.demo import _run_folder
    from seeingsounds.presets import get_preset
    from seeingsounds.training import TrainConfig

    preset = get_preset("tiny")
    out = tmp_path / "demo"
    (out / "run" / "last").mkdir(parents=True)
    (out / "run" / "last" / "training_state.pt").write_bytes(b"x")

    def make(epochs_or_seed: int):
        def config(folder, resume):
            return TrainConfig(preset="tiny", data=str(out / "m.csv"), captions=str(out / "c.json"), out=str(folder),
                               seed=epochs_or_seed, resume=resume)
        return config

    saved = {"train": make(0)(out / "run", True).to_dict(), "preset": preset.to_dict()}
    (out / "run" / "config.json").write_text(json.dumps(saved))
    config, reused = _run_folder(out, make(0), preset)
    assert reused and config.resume and config.out == str(out / "run")
    config, reused = _run_folder(out, make(1), preset)  # another seed: a new run beside it
    assert not reused and not config.resume and config.out == str(out / "run-2")


def test_demo_refuses_a_folder_that_is_not_its_own_before_loading_models(tmp_path):
    from seeingsounds.demo import run_demo

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a demo output folder") as info:
        run_demo(mine, stream=io.StringIO())
    assert "\n" not in str(info.value)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        run_demo(blocker, stream=io.StringIO())


def test_demo_command_is_registered(capsys):
    from seeingsounds.cli.main import main
    from seeingsounds.demo import EPOCHS

    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    help_text = capsys.readouterr().out
    assert exit_info.value.code == 0 and "--epochs" in help_text and f"{EPOCHS}" in help_text
