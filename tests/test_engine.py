"""The engine layer (issue 19): one Request checked once, an Engine holding the loaded checkpoint, one
writer through one provenance, and backends that declare their output kind."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_pipeline import make_checkpoint, write_wav

from seeingsounds.engine import Engine, Made, inputs_per_call
from seeingsounds.errors import ConfigError
from seeingsounds.generators.base import IMAGE, VIDEO
from seeingsounds.imaging import read_provenance
from seeingsounds.model import load_backend
from seeingsounds.request import EditSpec, LoadOptions, Request, Settings, check_model_limits
from seeingsounds.video import read_mp4, read_mp4_provenance
from seeingsounds.writers import OutputWriter, output_provenance, sound_provenance


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(root / "in.png")
    return {"ckpt": make_checkpoint(root / "ckpt", "tiny"), "wan": make_checkpoint(root / "wan", "tiny-wan"),
            "dog": write_wav(root / "dog.wav", 330), "rain": write_wav(root / "rain.wav", 2500),
            "image": root / "in.png"}


@pytest.fixture(scope="module")
def engine(setup):
    return Engine.load(LoadOptions(checkpoint=str(setup["ckpt"]), device="cpu"))


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_backends_declare_their_output_kind():
    assert load_backend("tiny").output_kind is IMAGE and load_backend("tiny-wan").output_kind is VIDEO
    assert (IMAGE.suffix, VIDEO.suffix, IMAGE.video, VIDEO.video) == (".png", ".mp4", False, True)
    with pytest.raises(ConfigError, match="makes images"):
        load_backend("tiny").check_num_frames(9)
    assert load_backend("tiny-wan").check_num_frames(9) == 9


@pytest.mark.parametrize("change, message", [
    (dict(sounds=["missing.wav"]), "does not exist"),
    (dict(settings=Settings(seed=-1)), "seed"),
    (dict(settings=Settings(num_images=0)), "--num-images must be >= 1"),
    (dict(settings=Settings(guidance=float("nan"))), "guidance"),
    (dict(settings=Settings(effects=[("volume", {"alpha": -2})])), "alpha"),
    (dict(settings=Settings(mix=("nowhere.wav", 0.5))), "--mix file nowhere.wav does not exist"),
    (dict(settings=Settings(mix=("{dog}", 1.5))), "mix ratio"),
    (dict(edit=EditSpec(image="{image}", strength=0)), "strength"),
    (dict(edit=EditSpec(image="{image}"), settings=Settings(num_frames=9)), "edit makes images"),
    (dict(sounds=[]), "give at least one sound file"),
])
def test_a_request_is_checked_once_without_a_model(setup, change, message):
    values = {"sounds": [str(setup["dog"])], **change}
    settings = values.get("settings")
    if settings is not None and settings.mix is not None:
        settings.mix = (settings.mix[0].format(**setup), settings.mix[1])
    if values.get("edit") is not None:
        values["edit"].image = values["edit"].image.format(**setup)
    with pytest.raises(ConfigError, match=message):
        Request(**values).check()


def test_check_model_limits_reads_configs_and_returns_the_kind(setup):
    request = Request(sounds=[str(setup["dog"])]).check()
    assert check_model_limits(LoadOptions(str(setup["ckpt"])), request) is IMAGE
    assert check_model_limits(LoadOptions(str(setup["wan"])), request) is VIDEO
    with pytest.raises(ConfigError, match="larger than this generator's limit"):
        check_model_limits(LoadOptions(str(setup["ckpt"])), Request(sounds=[str(setup["dog"])],
                                                                     settings=Settings(width=4096)).check())
    with pytest.raises(ConfigError, match="edit needs an image checkpoint"):
        check_model_limits(LoadOptions(str(setup["wan"])),
                           Request(sounds=[str(setup["dog"])], edit=EditSpec(image=str(setup["image"]))).check())


def test_generate_yields_one_made_per_input_and_seed_equal_to_the_pipeline(setup, engine):
    sounds = [str(setup["dog"]), str(setup["rain"])]
    request = Request(sounds=sounds, settings=Settings(seed=5, num_images=2, batch_size=2)).check()
    made = list(engine.generate(request, keep_conditioning=True))
    assert [(m.input_index, m.seed) for m in made] == [(0, 5), (0, 6), (1, 5), (1, 6)]
    assert [m.source for m in made] == [sounds[0]] * 2 + [sounds[1]] * 2
    assert all(m.frames is None and m.conditioning is not None for m in made)
    direct = engine.pipe(sounds, seed=5, num_images_per_audio=2)
    for m, image in zip(made, direct.images):
        assert np.array_equal(pixels(m.picture), pixels(image))
    for k, m in enumerate(made):  # the prediction each picture was made from, per input
        for name, value in m.conditioning.items():
            assert np.allclose(value[0].numpy(), direct.conditioning[name][k // 2].numpy(), atol=1e-5)


def test_pictures_from_a_conditioning_are_the_generated_ones_and_fixed_by_seed(setup, engine):
    request = Request(sounds=[str(setup["dog"])], settings=Settings(seed=3)).check()
    made = next(iter(engine.generate(request, keep_conditioning=True)))
    resolved = engine.resolve(request.settings)
    again = engine.pictures(made.conditioning, seeds=[3], settings=resolved)
    other_seed = engine.pictures(made.conditioning, seeds=[4], settings=resolved)
    assert np.array_equal(pixels(again[0]), pixels(made.picture))
    assert not np.array_equal(pixels(other_seed[0]), pixels(made.picture))


def test_the_writer_writes_png_or_mp4_and_poster_with_one_provenance(setup, engine, tmp_path):
    settings = Settings(seed=1)
    common = output_provenance(engine, "my-ckpt", engine.resolve(settings))
    writer = OutputWriter(tmp_path, common)
    picture = Image.new("RGB", (32, 32), (10, 200, 30))
    png = writer.write(Made(picture=picture, seed=1, source="dog.wav", input_index=0), "sub/one",
                       meta=sound_provenance(setup["dog"], 1, settings))
    frames = np.zeros((5, 32, 32, 3), np.uint8)
    mp4 = writer.write(Made(picture=picture, seed=2, source="dog.wav", input_index=0, frames=frames, fps=4), "two")
    assert png == tmp_path / "sub" / "one.png" and mp4 == tmp_path / "two.mp4"
    meta = read_provenance(png)
    assert meta["checkpoint"] == "my-ckpt" and meta["preset"] == engine.preset.name and meta["seed"] == 1
    assert meta["source_sha256"] and meta["Software"].startswith("seeingsounds ")
    video_meta = read_mp4_provenance(mp4)
    assert (video_meta["frames"], video_meta["fps"], video_meta["checkpoint"]) == (5, 4, "my-ckpt")
    assert read_provenance(tmp_path / "two.png")["poster_of"] == "two.mp4"
    assert read_mp4(mp4)[0].shape[0] == 5
    assert writer.outputs == [png, mp4, tmp_path / "two.png"]
    assert writer.sheet() == tmp_path / "contact_sheet.png" and writer.outputs[0] == tmp_path / "contact_sheet.png"
    with pytest.raises(KeyError, match="seeed"):  # a misspelt provenance key is a bug, not a silent field
        writer.write(Made(picture=picture, seed=1, source="x", input_index=0), "three", meta={"seeed": 1})


def test_edit_through_the_engine_matches_the_pipeline(setup, engine):
    request = Request(sounds=[str(setup["dog"])], settings=Settings(seed=2, steps=4),
                      edit=EditSpec(image=str(setup["image"]), strength=0.5)).check()
    made = list(engine.edit(request))
    direct = engine.pipe.edit(str(setup["image"]), str(setup["dog"]), strength=0.5, seed=2, num_inference_steps=4)
    assert len(made) == 1 and np.array_equal(pixels(made[0].picture), pixels(direct.images[0]))


def test_inputs_per_call_keep_one_call_near_the_batch_size():
    assert [inputs_per_call(4, n) for n in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]
