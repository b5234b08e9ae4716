"""Issue 17 (second adversarial pass), items 2, 7 and 10: what ``generate -o`` / ``edit -o`` may write,
the frame limit of the video model, and the checks that come before any model loads."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from PIL import Image
from conftest import write_picture_and_mask
from test_pipeline import make_checkpoint, write_wav

from seeingsounds.cli.main import main
from seeingsounds.imaging import read_provenance


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("adversarial")
    write_picture_and_mask(root)
    return {"root": root, "ckpt": make_checkpoint(root / "ckpt", "tiny"),
            "wan": make_checkpoint(root / "wan", "tiny-wan"), "dog": write_wav(root / "dog.wav", 330), "image": root / "in.png", "mask": root / "mask.png"}


@pytest.fixture
def no_model(monkeypatch):
    """Loading the pipeline fails the test: every check must come first."""
    from seeingsounds.pipeline import SeeingSoundsPipeline

    def forbidden(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(SeeingSoundsPipeline, "from_pretrained", forbidden)


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def copy_inputs(setup, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: Path(shutil.copy(setup[name], folder / setup[name].name)) for name in ("image", "mask")}


# ---- item 2: an input is never an output ---------------------------------------------------------
@pytest.mark.parametrize("spelling", ["same", "relative", "dotdot", "symlink", "hardlink"])
@pytest.mark.parametrize("which", ["image", "mask"])
def test_edit_o_never_overwrites_the_picture_or_the_mask(setup, tmp_path, capsys, monkeypatch, no_model, spelling,
                                                          which):
    files = copy_inputs(setup, tmp_path / "pics")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the user types paths from another working folder
    target = files[which]
    output = {"same": str(target), "relative": f"../pics/{target.name}",
              "dotdot": f"../pics/../elsewhere/../pics/{target.name}"}.get(spelling)
    if spelling == "symlink":
        os.symlink(target, tmp_path / "elsewhere" / "link.png")
        output = "link.png"
    elif spelling == "hardlink":
        os.link(target, tmp_path / "elsewhere" / "hard.png")
        output = "hard.png"
    before = {k: sha(v) for k, v in files.items()}
    code = main(["edit", "--checkpoint", str(setup["ckpt"]), "--image", "../pics/in.png", "--mask", "../pics/mask.png",
                 str(setup["dog"]), "--steps", "2", "-o", output])
    err = one_error(capsys)
    assert code == 2 and "is also an input" in err and output in err, err
    assert {k: sha(v) for k, v in files.items()} == before
    links = {"symlink": ["link.png"], "hardlink": ["hard.png"]}.get(spelling, [])
    assert sorted(os.listdir(tmp_path / "elsewhere")) == links  # nothing written beside them


def test_generate_o_never_overwrites_an_input_in_its_folder(setup, tmp_path, capsys, no_model):
    """An output name (dog_s0.png) that is a hard link to the sound file itself."""
    out = tmp_path / "out"
    out.mkdir()
    sound = Path(shutil.copy(setup["dog"], tmp_path / "dog.wav"))
    os.link(sound, out / "dog_s0.png")  # an output name that is the input itself
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(sound), "--num-images", "2", "-o", str(out)])
    assert code == 2 and "is also an input" in one_error(capsys)
    assert sha(sound) == sha(setup["dog"])


# ---- item 2: a file we did not write is never replaced -------------------------------------------
def test_edit_does_not_replace_a_users_contact_sheet(setup, tmp_path, capsys, no_model):
    files = copy_inputs(setup, tmp_path)
    (tmp_path / "contact_sheet.png").write_bytes(b"the user's own sheet")
    code = main(["edit", "--checkpoint", str(setup["ckpt"]), "--image", str(files["image"]), str(setup["dog"]),
                 "-o", str(tmp_path / "edited.png")])
    err = one_error(capsys)
    assert code == 2 and "contact_sheet.png exists and was not written by SeeingSounds" in err and "delete" in err
    assert (tmp_path / "contact_sheet.png").read_bytes() == b"the user's own sheet"
    assert not (tmp_path / "edited.png").exists()


@pytest.mark.parametrize("name", ["dog_s0.png", "contact_sheet.png", "dog_s1.png"])
def test_generate_does_not_replace_a_users_png_in_the_output_folder(setup, tmp_path, capsys, no_model, name):
    out = tmp_path / "out"
    out.mkdir()
    Image.new("RGB", (8, 8), "red").save(out / name)  # a real PNG, but without our provenance
    before = sha(out / name)
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "--num-images", "2", "-o", str(out)])
    err = one_error(capsys)
    assert code == 2 and f"{name} exists and was not written by SeeingSounds" in err
    assert sha(out / name) == before


def test_a_dangling_symlink_or_a_folder_at_an_output_name_is_refused(setup, tmp_path, capsys, no_model):
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(tmp_path / "nowhere.png", out / "dog_s0.png")
    args = ["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o"]
    assert main([*args, str(out)]) == 2 and "was not written by SeeingSounds" in one_error(capsys)
    os.unlink(out / "dog_s0.png")
    (out / "dog_s0.png").mkdir()
    assert main([*args, str(out)]) == 2 and "is an existing folder" in one_error(capsys)


def test_video_poster_beside_a_single_mp4_is_not_a_users_png(setup, tmp_path, capsys, no_model):
    Image.new("RGB", (8, 8)).save(tmp_path / "clip.png")
    code = main(["generate", "--checkpoint", str(setup["wan"]), str(setup["dog"]), "-o", str(tmp_path / "clip.mp4")])
    assert code == 2 and "clip.png exists and was not written by SeeingSounds" in one_error(capsys)


def test_edit_o_named_like_the_sheet_would_be_overwritten_by_it(setup, tmp_path, capsys, no_model):
    code = main(["edit", "--checkpoint", str(setup["ckpt"]), "--image", str(setup["image"]), str(setup["dog"]),
                 "-o", str(tmp_path / "contact_sheet.png")])
    err = one_error(capsys)
    assert code == 2 and "is the name of this run's contact sheet" in err and "--no-sheet" in err


def test_an_audio_file_and_a_caption_that_would_share_an_output_name(setup, tmp_path, capsys, no_model):
    sound = Path(shutil.copy(setup["dog"], tmp_path / "caption00-dog.wav"))
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(sound), "--caption", "dog",
                 "-o", str(tmp_path / "out")])
    err = one_error(capsys)
    assert code == 2 and "would both be written to" in err and "caption00-dog_s0.png" in err


@pytest.mark.parametrize("name", ["out.jpg", "clip.webm", "sound.wav"])
def test_o_in_a_format_we_do_not_write_is_not_made_a_folder(setup, tmp_path, capsys, no_model, name):
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", str(tmp_path / name)])
    assert code == 2 and "images are written as .png" in one_error(capsys)
    assert not (tmp_path / name).exists()


def test_our_own_outputs_are_replaced_on_a_rerun(setup, tmp_path):
    args = ["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "--num-images", "2", "--steps", "2",
            "--size", "16", "-o", str(tmp_path / "out")]
    assert main(args) == 0
    first = {p.name: sha(p) for p in (tmp_path / "out").iterdir()}
    assert main([*args[:-2], "--seed", "1", "-o", str(tmp_path / "out")]) == 0  # dog_s1.png is replaced
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["contact_sheet.png", "dog_s0.png", "dog_s1.png",
                                                                    "dog_s2.png"]
    assert sha(tmp_path / "out" / "dog_s0.png") == first["dog_s0.png"]
    assert read_provenance(tmp_path / "out" / "dog_s1.png")["seed"] == 1


# ---- item 2: outputs never go among the clips of a data folder -----------------------------------
def test_outputs_never_go_into_a_folder_of_sound_clips(setup, tmp_path, capsys, no_model, monkeypatch):
    clips = tmp_path / "data" / "dog"
    clips.mkdir(parents=True)
    shutil.copy(setup["dog"], clips / "bark.wav")
    monkeypatch.chdir(tmp_path / "data")
    for argv in (["generate", "--checkpoint", str(setup["wan"]), str(setup["dog"]), "-o", "dog"],
                 ["generate", "--checkpoint", str(setup["wan"]), str(setup["dog"]), "-o", "dog/../dog/clip.mp4"],
                 ["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", "./dog"],
                 ["edit", "--checkpoint", str(setup["ckpt"]), "--image", str(setup["image"]), str(setup["dog"]),
                  "-o", "dog"]):
        assert main(argv) == 2, argv
        err = one_error(capsys)
        assert "holds sound files (bark.wav)" in err and "choose a folder of its own" in err, err
    os.symlink(clips, tmp_path / "pictures")  # a folder that is a class folder under another name
    assert main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", "../pictures"]) == 2
    assert "holds sound files (bark.wav)" in one_error(capsys)
    assert sorted(os.listdir(clips)) == ["bark.wav"]


def test_one_png_may_sit_beside_sound_files(setup, tmp_path):
    from seeingsounds.writers import check_targets

    shutil.copy(setup["dog"], tmp_path / "dog.wav")
    check_targets([tmp_path / "dog.png"], [tmp_path / "dog.wav"], tmp_path, single=True, video=False)


# ---- item 7: the video model's frame limit, before it loads --------------------------------------
@pytest.mark.parametrize("frames", ["129", "401", "100001"])
def test_too_many_frames_fail_before_load_with_the_reason(setup, tmp_path, capsys, no_model, frames):
    code = main(["generate", "--checkpoint", str(setup["wan"]), str(setup["dog"]), "--frames", frames,
                 "-o", str(tmp_path / "v")])
    err = one_error(capsys)
    assert code == 2 and f"num_frames {frames} is more than this video model's limit of 125" in err
    assert "rope_max_seq_len 32" in err and not (tmp_path / "v").exists()


def test_the_frame_limit_is_where_the_transformer_stops():
    """125 frames = 32 latent frames fit the tiny transformer's rotary table; 129 (33) make it fail."""
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    from seeingsounds.model import load_backend

    backend = load_backend("tiny-wan")
    config = backend.load_config("transformer")
    assert backend.max_num_frames[0] == 125 and backend.check_num_frames(125) == 125
    rope = WanRotaryPosEmbed(config["attention_head_dim"], config["patch_size"], config["rope_max_seq_len"])
    latent = lambda frames: torch.zeros(1, 1, (frames - 1) // backend.frame_step + 1, 4, 4)  # noqa: E731
    assert rope(latent(125))[0].shape[1] == 32 * 2 * 2
    with pytest.raises(RuntimeError):
        rope(latent(129))


def test_the_real_wan_frame_limit():
    from seeingsounds.generators.wan import WanBackend

    class Configs(WanBackend):
        def load_config(self, name):
            return {"transformer": {"rope_max_seq_len": 1024, "patch_size": [1, 2, 2]},
                    "vae": {"scale_factor_temporal": 4}}[name]

    limit, reason = Configs().max_num_frames
    assert limit == 1 + 4 * 1023 and "rope_max_seq_len 1024" in reason


# ---- item 10: model.safetensors follows the umask; checks before load ----------------------------
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_model_safetensors_follows_the_umask(tmp_path, umask, mode):
    from seeingsounds.aligner import SeeingSoundsAligner

    old = os.umask(umask)
    try:
        SeeingSoundsAligner(8, [{"name": "a", "shape": [4], "aligned": True}]).save_pretrained(tmp_path / "ckpt")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "ckpt").iterdir()}
    assert modes["model.safetensors"] == mode and modes["config.json"] == mode, modes


@pytest.mark.parametrize("argv,message", [
    (["edit", "--image", "{image}", "--strength", "0.001", "--steps", "20"],
     "strength 0.001 x 20 steps runs no diffusion step"),
    (["edit", "--image", "{image}", "--strength", "0.01"],
     "steps runs no diffusion step: raise the steps to at least 100"),
    (["generate", "--fps", "1000"], "--fps must be an integer in 1..240, got 1000"),
])
def test_strength_and_fps_fail_before_load(setup, tmp_path, capsys, no_model, argv, message):
    argv = [a.format(image=setup["image"]) for a in argv]
    code = main([*argv, "--checkpoint", str(setup["wan" if argv[0] == "generate" else "ckpt"]), str(setup["dog"]),
                 "-o", str(tmp_path / "x")])
    assert code == 2 and message in one_error(capsys)


def test_o_naming_a_file_fails_before_the_generator_configs_are_read(setup, tmp_path, capsys, no_model, monkeypatch):
    import seeingsounds.request

    monkeypatch.setattr(seeingsounds.request, "load_backend",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("configs read before -o was checked")))
    (tmp_path / "afile").write_text("keep")
    assert main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", str(tmp_path / "afile")]) == 2
    assert "exists and is not a folder" in one_error(capsys) and (tmp_path / "afile").read_text() == "keep"


@pytest.mark.parametrize("output", ["loop", "loop/one.png", "dangling", "dangling/sub"])
def test_o_through_a_broken_symlink_fails_before_load(setup, tmp_path, capsys, no_model, monkeypatch, output):
    monkeypatch.chdir(tmp_path)
    os.symlink("loop", "loop")
    os.symlink(tmp_path / "missing" / "x", "dangling")
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", output])
    err = one_error(capsys)
    assert code == 2 and "is a symbolic link to nothing" in err, err
    assert sorted(os.listdir(tmp_path)) == ["dangling", "loop"]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_pngs_and_atomic_files_follow_the_umask_too(tmp_path, umask, mode):
    from seeingsounds.imaging import save_png
    from seeingsounds.paths import atomic_write_text, current_umask

    old = os.umask(umask)
    try:
        assert current_umask() == umask
        save_png(Image.new("RGB", (4, 4)), tmp_path / "a.png", {})
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {"a.png": mode, "a.txt": mode}


def test_a_video_rerun_replaces_its_own_mp4_but_not_a_users(setup, tmp_path, capsys):
    from seeingsounds.video import read_mp4_provenance

    args = ["generate", "--checkpoint", str(setup["wan"]), str(setup["dog"]), "--steps", "1", "--size", "16",
            "--frames", "5", "-o", str(tmp_path / "v")]
    assert main(args) == 0 and main(args) == 0, capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "v")) == ["dog_s0.mp4", "dog_s0.png"]
    assert read_mp4_provenance(tmp_path / "v" / "dog_s0.mp4")["frames"] == 5
    (tmp_path / "v" / "dog_s0.mp4").write_bytes(b"someone else's video")
    assert main(args) == 2 and "dog_s0.mp4 exists and was not written by SeeingSounds" in capsys.readouterr().err
    assert (tmp_path / "v" / "dog_s0.mp4").read_bytes() == b"someone else's video"


def test_a_huge_num_images_fails_at_once(setup, tmp_path, capsys, no_model):
    """Its output names alone would fill the memory (2.6 GB and counting at 30 million)."""
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "--num-images", "30000000",
                 "-o", str(tmp_path / "x")])
    assert code == 2 and "would make 30000000 files, more than 10000 in one run" in one_error(capsys)
