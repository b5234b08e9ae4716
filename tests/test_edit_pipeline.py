"""Editing a picture with a sound: image-to-image and inpainting fed the aligner's predictions (tiny pipelines).

The tiny generators' VAEs are random, so the input "as the generator sees it" is its VAE round trip; it is
the output of an inpainting edit whose mask is empty (nothing may change), and distances are measured to it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_pipeline import make_checkpoint, write_wav

from seeingsounds.errors import ConfigError

STEPS = 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit")
    yy, xx = np.mgrid[0:32, 0:32]
    picture = Image.fromarray(np.stack([xx * 8, yy * 8, (xx + yy) * 4], -1).astype(np.uint8))
    picture.save(root / "in.png")
    return {"root": root, "ckpt": make_checkpoint(root / "ckpt", "tiny"), "dog": write_wav(root / "dog.wav", 330),
            "rain": write_wav(root / "rain.wav", 2500), "image": root / "in.png", "picture": picture}


@pytest.fixture(scope="module")
def pipe(setup):
    from seeingsounds.pipeline import SeeingSoundsPipeline

    return SeeingSoundsPipeline.from_pretrained(setup["ckpt"], device="cpu")


def arr(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def reconstruction(pipe, setup, seed: int) -> np.ndarray:
    empty = np.zeros((32, 32), np.uint8)
    return arr(pipe.edit(setup["picture"], str(setup["dog"]), strength=0.5, mask=empty, seed=seed,
                         num_inference_steps=STEPS).images[0])


def test_edit_is_deterministic_per_seed(pipe, setup):
    a = pipe.edit(str(setup["image"]), str(setup["dog"]), strength=0.6, seed=4, num_inference_steps=STEPS)
    b = pipe.edit(setup["picture"], str(setup["dog"]), strength=0.6, seed=4, num_inference_steps=STEPS)
    c = pipe.edit(setup["picture"], str(setup["dog"]), strength=0.6, seed=5, num_inference_steps=STEPS)
    assert a.images[0].size == (32, 32) and a.seeds == [4]
    assert np.array_equal(arr(a.images[0]), arr(b.images[0]))
    assert np.abs(arr(a.images[0]) - arr(c.images[0])).mean() > 1
    assert a.settings["strength"] == 0.6 and a.settings["masked"] is False


def test_lower_strength_stays_closer_to_the_input(pipe, setup):
    ref = reconstruction(pipe, setup, seed=1)
    mse = [float(((arr(pipe.edit(setup["picture"], str(setup["dog"]), strength=s, seed=1,
                                  num_inference_steps=STEPS).images[0]) - ref) ** 2).mean())
           for s in (0.2, 0.5, 1.0)]
    assert mse[0] < mse[1] < mse[2], mse
    assert mse[0] < 0.25 * mse[2]


def test_mask_keeps_the_outside(pipe, setup):
    ref = reconstruction(pipe, setup, seed=2)
    mask = np.zeros((32, 32), np.uint8)
    mask[:, 16:] = 255  # repaint the right half only
    out = pipe.edit(setup["picture"], str(setup["dog"]), strength=0.9, mask=mask, seed=2, num_inference_steps=STEPS)
    change = ((arr(out.images[0]) - ref) ** 2).mean(-1)
    outside, inside = change[:, :14].mean(), change[:, 18:].mean()  # 2 px from the seam: the decoder's reach
    assert outside < 0.2 * inside, (outside, inside)
    assert out.settings["masked"] is True


def test_the_conditioning_reaching_diffusers_is_the_aligners_prediction(pipe, setup, monkeypatch):
    import transformers

    def forbidden(*args, **kwargs):
        raise AssertionError("a text encoder was loaded to edit")

    for cls in ("CLIPTextModel", "T5EncoderModel"):
        monkeypatch.setattr(getattr(transformers, cls), "from_pretrained", forbidden)
    seen = []
    for inpaint in (False, True):
        edit_pipe = pipe.edit_pipeline(inpaint=inpaint)
        assert type(edit_pipe).__name__ == ("FluxInpaintPipeline" if inpaint else "FluxImg2ImgPipeline")
        assert edit_pipe.transformer is pipe.generator.transformer and edit_pipe.vae is pipe.generator.vae  # shared
        for name in ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
            assert getattr(edit_pipe, name) is None, name
        original = type(edit_pipe).__call__

        def spy(self, *args, _original=original, **kwargs):
            seen.append({k: kwargs[k].clone() for k in ("prompt_embeds", "pooled_prompt_embeds")})
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(type(edit_pipe), "__call__", spy)
    effects = [("volume", {"alpha": 0.2})]
    mix = (str(setup["rain"]), 0.3)
    out = pipe.edit(setup["picture"], [str(setup["dog"]), str(setup["rain"])], strength=0.5, seed=0,
                    num_inference_steps=STEPS, effects=effects, mix=mix)
    masked = pipe.edit(setup["picture"], str(setup["dog"]), strength=0.5, seed=0, num_inference_steps=STEPS,
                       mask=np.full((32, 32), 255, np.uint8))
    expected = pipe.conditioner.predict_all([str(setup["dog"]), str(setup["rain"])], effects=effects, mix=mix)
    for name in ("prompt_embeds", "pooled_prompt_embeds"):
        torch.testing.assert_close(seen[0][name], expected[name])
        torch.testing.assert_close(out.conditioning[name], expected[name])
        torch.testing.assert_close(seen[1][name], masked.conditioning[name])
    assert out.effects == ["medium-volume"] and pipe._text_pipe is None


@pytest.mark.parametrize(("preset", "img2img", "inpaint"), [
    ("tiny-sd3", "StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline"),
    ("tiny-sdxl", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline"),
    ("tiny-sd", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"),
])
def test_sd_family_edits_too(tmp_path, setup, monkeypatch, preset, img2img, inpaint):
    """The SD3/SDXL/SD img2img and inpaint twins get the aligner's prediction and its null conditioning
    as the negative (classifier-free guidance), never a text encoder's output."""
    from seeingsounds.pipeline import SeeingSoundsPipeline

    pipe = SeeingSoundsPipeline.from_pretrained(make_checkpoint(tmp_path / preset, preset), device="cpu")
    seen = []
    for masked, name in ((False, img2img), (True, inpaint)):
        edit_pipe = pipe.edit_pipeline(inpaint=masked)
        assert type(edit_pipe).__name__ == name
        assert all(getattr(edit_pipe, c, None) is None for c in pipe.backend.text_components)
        original = type(edit_pipe).__call__

        def spy(self, *args, _original=original, **kwargs):
            seen.append({k: v.clone() for k, v in kwargs.items() if k.endswith("prompt_embeds")})
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(type(edit_pipe), "__call__", spy)
    out = pipe.edit(setup["picture"], str(setup["dog"]), strength=0.5, seed=0, num_inference_steps=4)
    assert out.images[0].size == (32, 32)
    # SD3's inpaint pipeline needs the real 16 latent channels; the tiny SD3 twin has 4 (its img2img still runs)
    if preset != "tiny-sd3":
        masked = pipe.edit(setup["picture"], str(setup["dog"]), strength=0.5, seed=0, num_inference_steps=4,
                           mask=np.full((32, 32), 255, np.uint8))
        assert masked.images[0].size == (32, 32)
    assert len(seen) == (1 if preset == "tiny-sd3" else 2)
    for call in seen:
        torch.testing.assert_close(call["prompt_embeds"], out.conditioning["prompt_embeds"])
        null = pipe.aligner.null_conditioning("prompt_embeds")
        negative = pipe.backend.negative_conditioning(pipe.generator, {"prompt_embeds": null})["prompt_embeds"]
        torch.testing.assert_close(call["negative_prompt_embeds"], negative.unsqueeze(0))


def test_clear_errors(pipe, setup, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    with pytest.raises(ConfigError, match="broken.png is not a readable image"):
        pipe.edit(str(tmp_path / "broken.png"), str(setup["dog"]))
    with pytest.raises(ConfigError, match="missing.png does not exist"):
        pipe.edit(str(tmp_path / "missing.png"), str(setup["dog"]))
    with pytest.raises(ConfigError, match="mask is 16x32 but the image is 32x32"):
        pipe.edit(setup["picture"], str(setup["dog"]), mask=np.zeros((32, 16), np.uint8))
    for strength in (0, -0.5, 1.5, "high"):
        with pytest.raises(ConfigError, match="strength must be a number in \\(0, 1\\]"):
            pipe.edit(setup["picture"], str(setup["dog"]), strength=strength)
    with pytest.raises(ConfigError, match="runs no diffusion step"):
        pipe.edit(setup["picture"], str(setup["dog"]), strength=0.1, num_inference_steps=2)
