"""``seeingsounds generate``: PNGs with provenance, determinism, contact sheet, --caption."""

from __future__ import annotations

import hashlib

import pytest
from PIL import Image
from test_pipeline import make_checkpoint, write_wav

from seeingsounds import __version__
from seeingsounds.cli.main import main
from seeingsounds.imaging import contact_sheet, read_provenance, save_png


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return {
        "ckpt": make_checkpoint(root / "ckpt", "tiny"),
        "dog": write_wav(root / "dog.wav", 330),
        "rain": write_wav(root / "rain.wav", 2500),
        "other": write_wav(root / "other.wav", 880),
    }


def test_pngs_are_byte_identical_across_runs_and_carry_provenance(setup, tmp_path, capsys):
    args = ["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), str(setup["rain"]),
            "--seed", "4", "--num-images", "2", "--steps", "2", "--size", "48x32", "--volume", "0.1",
            "--mix", str(setup["other"]), "--mix-ratio", "0.25"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["contact_sheet.png", "dog_s4.png", "dog_s5.png", "rain_s4.png", "rain_s5.png"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    with Image.open(tmp_path / "a" / "rain_s5.png") as im:
        assert im.size == (48, 32)
        text = dict(im.text)
    assert text["source"] == str(setup["rain"])
    assert text["source_sha256"] == hashlib.sha256(setup["rain"].read_bytes()).hexdigest()
    assert (text["seed"], text["steps"], text["size"], text["preset"]) == ("5", "2", "48x32", "tiny")
    assert text["checkpoint"] == str(setup["ckpt"]) and text["Software"] == f"seeingsounds {__version__}"
    meta = read_provenance(tmp_path / "a" / "rain_s5.png")
    assert meta["effects"] == [["volume", {"alpha": 0.1}]] and meta["effect_descriptions"] == ["low-volume"]
    assert meta["mix"] == {"path": str(setup["other"]), "ratio": 0.25,
                           "sha256": hashlib.sha256(setup["other"].read_bytes()).hexdigest()}
    assert meta["guidance"] == 3.5 and meta["seeingsounds_version"] == __version__
    with Image.open(tmp_path / "a" / "contact_sheet.png") as sheet:
        assert sheet.width > 2 * 128 and sheet.height > 2 * 128
    assert read_provenance(tmp_path / "a" / "contact_sheet.png")["images"] == [
        "dog_s4.png", "dog_s5.png", "rain_s4.png", "rain_s5.png"]
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "a" / "dog_s4.png") in printed


def test_settings_change_the_png(setup, tmp_path):
    base = ["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"])]
    assert main([*base, "-o", str(tmp_path / "s0.png")]) == 0
    assert main([*base, "--seed", "1", "-o", str(tmp_path / "s1.png")]) == 0
    assert main([*base, "--volume", "0.1", "-o", str(tmp_path / "quiet.png")]) == 0
    a, b, c = (Image.open(tmp_path / n) for n in ("s0.png", "s1.png", "quiet.png"))
    assert a.size == (32, 32)  # the preset's size
    assert a.tobytes() != b.tobytes() and a.tobytes() != c.tobytes()
    assert read_provenance(tmp_path / "s1.png")["seed"] == 1


def test_caption_is_written_beside_the_audio_images(setup, tmp_path):
    out = tmp_path / "cap"
    assert main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]),
                 "--caption", "a dog barking in a backyard", "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["caption00-a-dog-barking-in-a-backyard_s0.png", "contact_sheet.png", "dog_s0.png"]
    meta = read_provenance(out / names[0])
    assert meta["caption"] == "a dog barking in a backyard" and "source" not in meta
    # caption only, no audio
    assert main(["generate", "--checkpoint", str(setup["ckpt"]), "--caption", "rain", "-o", str(tmp_path / "r.png")]) == 0
    assert read_provenance(tmp_path / "r.png")["caption"] == "rain"


@pytest.mark.parametrize("extra,message", [
    (["--size", "big"], "--size must look like"),
    (["--size", "33x32"], "multiples of 2"),
    (["--num-images", "0"], "--num-images must be >= 1"),
    (["--mix-ratio", "0.3"], "--mix-ratio needs --mix"),
])
def test_user_errors_exit_2_with_a_message(setup, tmp_path, capsys, extra, message):
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", str(tmp_path / "x"), *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_missing_inputs_and_single_png_with_many_images(setup, tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(setup["ckpt"]), str(tmp_path / "nope.wav"), "-o", str(tmp_path / "o")]) == 2
    assert "nope.wav does not exist" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "--num-images", "2",
                 "-o", str(tmp_path / "one.png")]) == 2
    assert "give a folder" in capsys.readouterr().err


def test_contact_sheet_and_png_writer(tmp_path):
    red, blue = Image.new("RGB", (32, 32), "red"), Image.new("RGB", (32, 32), "blue")
    sheet = contact_sheet([red, blue, red], ["a\nseed 0", "b", "c"])
    assert sheet.size[0] == 2 * (128 + 6) + 6  # 2 columns of 128-px tiles
    assert sheet.getpixel((6 + 64, 6 + 64)) == (255, 0, 0)
    assert sheet.getpixel((6 + 134 + 64, 6 + 64)) == (0, 0, 255)
    path = save_png(red, tmp_path / "r.png", {"seed": 3, "caption": "é ünïcode", "mix": None})
    assert read_provenance(path) == {"seed": 3, "caption": "é ünïcode", "mix": None}
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]  # no temp file left behind
    assert b"tIME" not in path.read_bytes()


def test_bad_effect_value_fails_before_the_generator_loads(setup, tmp_path, capsys, monkeypatch):
    from seeingsounds.pipeline import SeeingSoundsPipeline

    def forbidden(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(SeeingSoundsPipeline, "from_pretrained", forbidden)
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "--reverb", "5",
                 "-o", str(tmp_path / "x")])
    assert code == 2
    assert "room_size" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ---- issue 12 §2: wrong paths and bad values fail at once, before any model loads --------------
@pytest.fixture
def no_model(monkeypatch):
    """Loading a model (or reaching the hub) fails the test: the checks must come first."""
    import huggingface_hub

    from seeingsounds.pipeline import SeeingSoundsPipeline

    def forbidden(*args, **kwargs):
        raise AssertionError("the model was loaded (or the hub asked) before the options were checked")

    monkeypatch.setattr(SeeingSoundsPipeline, "from_pretrained", forbidden)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", forbidden)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", forbidden)


@pytest.mark.parametrize("checkpoint", ["./runs/missing", "/nonexistent/run", "~/no-such-run", "missing-run",
                                        "runs/a/b", "{tmp}/run"])
def test_missing_local_checkpoint_fails_at_once(setup, tmp_path, capsys, no_model, checkpoint):
    checkpoint = checkpoint.format(tmp=tmp_path)
    code = main(["generate", "--checkpoint", checkpoint, str(setup["dog"]), "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


def test_owner_name_with_a_local_owner_folder_is_a_missing_path(setup, tmp_path, capsys, no_model, monkeypatch):
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--checkpoint", "runs/demo", str(setup["dog"]), "-o", "x"]) == 2
    assert "runs/demo does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("seed,message", [("-1", "--seed must be in 0..4294967295"),
                                          (str(2**64), "--seed must be in 0..4294967295"),
                                          (str(2**32), "--seed must be in 0..4294967295")])
def test_seed_range_is_checked_before_load(setup, tmp_path, capsys, no_model, seed, message):
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "--seed", seed, "-o", str(tmp_path / "x")])
    assert code == 2 and message in capsys.readouterr().err
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "--seed", str(2**32 - 1),
                 "--num-images", "2", "-o", str(tmp_path / "x")])
    assert code == 2 and "--seed + --num-images - 1 must be in" in capsys.readouterr().err


def test_size_upper_bound_from_the_model_before_load(setup, tmp_path, capsys, no_model):
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "--size", "100000", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "limit of 64 px" in err and "VAE's sample_size" in err, err


def test_size_limit_reasons_of_the_real_configs():
    """The bound and its reason from each generator's configs (a hard one for SD3's positional table)."""
    from seeingsounds.request import size_limit
    from seeingsounds.presets import get_preset

    class Configs:
        def __init__(self, **configs):
            self.configs = configs

        def load_config(self, name):
            if name not in self.configs:
                raise OSError(name)
            return self.configs[name]

    four = {"block_out_channels": [128, 256, 512, 512]}
    flux = Configs(vae={**four, "sample_size": 1024}, transformer={"joint_attention_dim": 4096})
    assert size_limit(flux, get_preset("flux-dev")) == (2048, size_limit(flux, get_preset("flux-dev"))[1])
    sdxl = Configs(vae={**four, "sample_size": 1024}, unet={"sample_size": 128})
    assert size_limit(sdxl, get_preset("sdxl"))[0] == 2048
    sd3 = Configs(vae={**four, "sample_size": 1024}, transformer={"sample_size": 128, "patch_size": 2, "pos_embed_max_size": 96})
    limit, reason = size_limit(sd3, get_preset("sd3"))
    assert limit == 1536 and "pos_embed_max_size 96" in reason


def test_unwritable_output_fails_before_load(setup, tmp_path, capsys, no_model):
    (tmp_path / "file.txt").write_text("keep me")
    for output in (tmp_path / "file.txt" / "out", tmp_path / "file.txt" / "one.png"):
        assert main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", str(output)]) == 2
        assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "file.txt").read_text() == "keep me"
    assert main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", str(tmp_path / "file.txt")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_read_only_output_folder_fails_before_load(setup, tmp_path, capsys, no_model):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions do not stop writes")
        assert main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", str(locked / "out")]) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_sounds_named_in_another_script_keep_their_own_outputs(setup, tmp_path, capsys):
    """`generate 狗.wav -o out` then `generate 猫.wav -o out` both wrote out/caption_s0.png (the ASCII slug left
    nothing of either name), so the second run silently replaced the first run's picture."""
    out = tmp_path / "out"
    dog, cat = write_wav(tmp_path / "狗.wav", 330), write_wav(tmp_path / "猫.wav", 880)
    for sound in (dog, cat, tmp_path / "Cafe\u0301 Bell.wav"):
        if not sound.exists():
            write_wav(sound, 2500)
        assert main(["generate", "--checkpoint", str(setup["ckpt"]), str(sound), "-o", str(out),
                     "--steps", "1", "--size", "32x32"]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.glob("*_s0.png")) == ["café-bell_s0.png", "狗_s0.png", "猫_s0.png"]
    assert read_provenance(out / "狗_s0.png")["source"] == str(dog)


def test_ctrl_c_names_the_finished_outputs_it_keeps(setup, tmp_path, capsys, monkeypatch):
    """After Ctrl-C, `generate` printed only 'interrupted': the user was not told which outputs were kept."""
    from seeingsounds.engine import Engine

    made_so_far = Engine.generate

    def two_then_ctrl_c(self, request, **kwargs):
        for k, made in enumerate(made_so_far(self, request, **kwargs)):
            if k == 2:
                raise KeyboardInterrupt
            yield made

    monkeypatch.setattr(Engine, "generate", two_then_ctrl_c)
    out = tmp_path / "out"
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), str(setup["rain"]),
                 "--num-images", "2", "--steps", "1", "--size", "32x32", "-o", str(out)])
    assert code == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"interrupted: 2 of 4 outputs finished and kept in {out} (dog_s0.png, dog_s1.png)")
    assert sorted(p.name for p in out.iterdir()) == ["dog_s0.png", "dog_s1.png"]  # whole files, no sheet
    assert all(Image.open(out / name).size == (32, 32) for name in ("dog_s0.png", "dog_s1.png"))
