"""``seeingsounds edit``: edited PNGs with provenance (input and mask hashes, strength), checks before load."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image
from conftest import write_picture_and_mask
from test_pipeline import make_checkpoint, write_wav

from seeingsounds.cli.main import main
from seeingsounds.imaging import PROVENANCE_FIELDS, SOFTWARE_KEY, read_provenance


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit-cli")
    write_picture_and_mask(root)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "small-mask.png")
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    return {"root": root, "ckpt": make_checkpoint(root / "ckpt", "tiny"), "dog": write_wav(root / "dog.wav", 330),
            "rain": write_wav(root / "rain.wav", 2500), "image": root / "in.png", "mask": root / "mask.png"}


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_edit_writes_pngs_with_provenance_and_a_sheet(setup, tmp_path, capsys):
    args = ["edit", "--checkpoint", str(setup["ckpt"]), "--image", str(setup["image"]), str(setup["dog"]),
            str(setup["rain"]), "--strength", "0.5", "--seed", "7", "--steps", "10", "--mask", str(setup["mask"]),
            "--volume", "0.5"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0, capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["contact_sheet.png", "dog_s7.png", "rain_s7.png"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    meta = read_provenance(tmp_path / "a" / "rain_s7.png")
    assert meta["image"] == str(setup["image"]) and meta["image_sha256"] == sha(setup["image"])
    assert meta["mask"] == str(setup["mask"]) and meta["mask_sha256"] == sha(setup["mask"])
    assert meta["strength"] == 0.5 and meta["seed"] == 7 and meta["steps"] == 10 and meta["size"] == "32x32"
    assert meta["source_sha256"] == sha(setup["rain"]) and meta["effects"] == [["volume", {"alpha": 0.5}]]
    assert meta[SOFTWARE_KEY].startswith("seeingsounds ") and set(meta) <= set(PROVENANCE_FIELDS)
    with Image.open(tmp_path / "a" / "contact_sheet.png") as sheet:
        assert sheet.width > 2 * 128  # the input tile beside the two edits
    assert str(tmp_path / "a" / "dog_s7.png") in capsys.readouterr().out.split()


def test_strength_changes_the_png_and_one_png_output(setup, tmp_path):
    base = ["edit", "--checkpoint", str(setup["ckpt"]), "--image", str(setup["image"]), str(setup["dog"]), "--steps", "10"]
    assert main([*base, "--strength", "0.3", "-o", str(tmp_path / "low.png")]) == 0
    assert main([*base, "--strength", "0.9", "-o", str(tmp_path / "high.png")]) == 0
    low, high = Image.open(tmp_path / "low.png"), Image.open(tmp_path / "high.png")
    assert low.size == high.size == (32, 32) and low.tobytes() != high.tobytes()
    assert read_provenance(tmp_path / "low.png")["mask"] is None


@pytest.mark.parametrize("extra,message", [
    (["--strength", "0"], "strength must be a number in (0, 1]"),
    (["--strength", "1.5"], "strength must be a number in (0, 1]"),
    (["--mask", "{root}/small-mask.png"], "is 16x16 but the image"),
    (["--mask", "{root}/nope.png"], "nope.png does not exist"),
    (["--image-override", "{root}/broken.png"], "broken.png is not a readable image"),
    (["--image-override", "{root}/missing.png"], "missing.png does not exist"),
    (["--seed", "-1"], "--seed must be in 0..4294967295"),
    (["--size", "100000"], "limit of 64 px"),
    (["--checkpoint-override", "runs-missing/x/y"], "does not exist"),
])
def test_user_errors_fail_before_the_model_loads(setup, tmp_path, capsys, monkeypatch, extra, message):
    from seeingsounds.pipeline import SeeingSoundsPipeline

    monkeypatch.setattr(SeeingSoundsPipeline, "from_pretrained",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded before the checks")))
    image, checkpoint = str(setup["image"]), str(setup["ckpt"])
    extra = [e.format(root=setup["root"]) for e in extra]
    if extra[0] == "--image-override":
        image, extra = extra[1], []
    elif extra[0] == "--checkpoint-override":
        checkpoint, extra = extra[1], []
    code = main(["edit", "--checkpoint", checkpoint, "--image", image, str(setup["dog"]), "-o", str(tmp_path / "x"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


def test_edit_refuses_a_video_checkpoint(setup, tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "wan", "tiny-wan")
    assert main(["edit", "--checkpoint", str(ckpt), "--image", str(setup["image"]), str(setup["dog"]),
                 "-o", str(tmp_path / "x")]) == 2
    assert "video generator" in capsys.readouterr().err
