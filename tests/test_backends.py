"""SD3 / SDXL / SD / SD-Turbo backends: specs from configs, targets from encode_prompt, audio -> image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_pipeline import make_checkpoint, pixels, write_wav

from seeingsounds.errors import ConfigError

#: tiny preset -> (expected spec, native diffusers pipeline class name, extra native call kwargs)
TINY = {
    "tiny-sd3": ({"prompt_embeds": (77 + 16, 32), "pooled_prompt_embeds": (48,)}, "StableDiffusion3Pipeline",
                 {"max_sequence_length": 16}),
    "tiny-sdxl": ({"prompt_embeds": (77, 64), "pooled_prompt_embeds": (24,)}, "StableDiffusionXLPipeline", {}),
    "tiny-sd": ({"prompt_embeds": (77, 32)}, "StableDiffusionPipeline", {}),
    "tiny-sd-turbo": ({"prompt_embeds": (77, 24)}, "StableDiffusionPipeline", {}),
}
TEXT_ENCODER_CLASSES = ("CLIPTextModel", "CLIPTextModelWithProjection", "T5EncoderModel")


@pytest.mark.parametrize("name", sorted(TINY))
def test_spec_from_configs_matches_encode_prompt(name):
    from seeingsounds.model import load_backend

    backend = load_backend(name)
    spec = {k: s.shape for k, s in backend.conditioning_spec().items()}
    assert spec == TINY[name][0]
    targets = backend.encode_captions(["a dog barking", "rain falling on a roof", ""])
    assert {k: tuple(v.shape) for k, v in targets.items()} == {k: (3, *s) for k, s in spec.items()}
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in targets.values())
    # different captions -> different targets
    assert (targets["prompt_embeds"][0] - targets["prompt_embeds"][1]).abs().max() > 1e-4


@pytest.mark.parametrize("name", sorted(TINY))
def test_sound_file_to_image_without_text_encoders(name, tmp_path, monkeypatch):
    import diffusers
    import transformers

    from seeingsounds.pipeline import SeeingSoundsPipeline

    ckpt = make_checkpoint(tmp_path / "ckpt", name)
    wav = write_wav(tmp_path / "tone.wav", 440.0)
    backend_spec = TINY[name][0]

    with monkeypatch.context() as m:
        def forbidden(*args, **kwargs):
            raise AssertionError("a text encoder was loaded to generate from audio")

        for cls in TEXT_ENCODER_CLASSES:
            m.setattr(getattr(transformers, cls), "from_pretrained", forbidden)
        pipe = SeeingSoundsPipeline.from_pretrained(ckpt, device="cpu")
        for component in pipe.backend.text_components:
            assert getattr(pipe.generator, component) is None, component
        out = pipe(str(wav), seed=0, num_images_per_audio=2, height=32, width=64)

    assert [im.size for im in out.images] == [(64, 32), (64, 32)]
    assert {k: tuple(v.shape[1:]) for k, v in out.conditioning.items()} == backend_spec
    assert set(pipe.aligner.conditioning_shapes) == set(backend_spec)  # SD: a single (sequence) head
    assert np.abs(pixels(out.images[0]) - pixels(out.images[1])).mean() > 1  # seeds 0 and 1

    # the text path equals the native diffusers text-to-image pipeline (same negatives, same noise)
    caption = "a bell ringing in a church tower"
    settings = out.settings
    ours = pipe.from_caption(caption, seed=3, height=32, width=64)
    native = getattr(diffusers, TINY[name][1]).from_pretrained(pipe.backend.model_id)
    native.set_progress_bar_config(disable=True)
    ref = native(caption, num_inference_steps=settings["num_inference_steps"], guidance_scale=settings["guidance_scale"],
                 height=32, width=64, generator=torch.Generator("cpu").manual_seed(3), **TINY[name][2]).images[0]
    assert np.abs(pixels(ours.images[0]) - pixels(ref)).max() <= 1

    # the audio path's negatives (the aligner's null conditioning) are the ones the text path uses
    target = pipe.encode_captions([caption])
    null = {n: pipe.aligner.null_conditioning(n) for n in pipe.aligner.conditioning_shapes}
    via_null = pipe.generate_from_conditioning(target, seeds=[3], negative=pipe.negative_conditioning(null, settings["guidance_scale"]),
                                               settings={**settings, "height": 32, "width": 64})
    assert np.abs(pixels(via_null[0]) - pixels(ours.images[0])).max() <= 1


def test_guidance_needs_negatives_only_where_the_pipeline_runs_cfg():
    from seeingsounds.model import load_backend

    assert load_backend("tiny").does_guidance(3.5) is False  # FLUX.1: distilled guidance
    sd3, sd = load_backend("tiny-sd3"), load_backend("tiny-sd")
    assert sd3.does_guidance(7.0) and not sd3.does_guidance(1.0)
    assert sd.does_guidance(7.5) and not sd.does_guidance(0.0)


def test_sdxl_negative_is_zeros_when_the_pipeline_forces_zeros():
    from types import SimpleNamespace

    from seeingsounds.model import load_backend

    backend = load_backend("tiny-sdxl")
    null = {"prompt_embeds": torch.ones(77, 64), "pooled_prompt_embeds": torch.ones(24)}
    zeros = backend.negative_conditioning(SimpleNamespace(config=SimpleNamespace(force_zeros_for_empty_prompt=True)), null)
    assert all(v.abs().sum() == 0 and v.shape == null[k].shape for k, v in zeros.items())
    kept = backend.negative_conditioning(SimpleNamespace(config=SimpleNamespace(force_zeros_for_empty_prompt=False)), null)
    assert torch.equal(kept["prompt_embeds"], null["prompt_embeds"])


def test_sd_checkpoint_refuses_sd_turbo(tmp_path):
    from seeingsounds.pipeline import SeeingSoundsPipeline

    ckpt = make_checkpoint(tmp_path / "sd", "tiny-sd")
    with pytest.raises(ConfigError, match=r"consumes \{'prompt_embeds': \(77, 24\)\}"):
        SeeingSoundsPipeline.from_pretrained(ckpt, preset="tiny-sd-turbo", device="cpu")


def test_real_presets_are_registered():
    from seeingsounds.presets import get_preset

    expected = {
        "sd3": ("sd3", "stabilityai/stable-diffusion-3-medium-diffusers"),
        "sdxl": ("sdxl", "stabilityai/stable-diffusion-xl-base-1.0"),
        "sd15": ("sd", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
        "sd-turbo": ("sd", "stabilityai/sd-turbo"),
    }
    for name, (generator, model_id) in expected.items():
        preset = get_preset(name)
        assert (preset.generator, preset.generator_id, preset.encoder) == (generator, model_id, "ast")
        tiny = get_preset(f"tiny-{name if name != 'sd15' else 'sd'}")
        assert tiny.encoder_id == "tiny:ast" and tiny.generator == generator
    turbo = get_preset("sd-turbo")
    assert (turbo.num_inference_steps, turbo.guidance_scale) == (1, 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("name,spec", [
    ("sd3", {"prompt_embeds": (333, 4096), "pooled_prompt_embeds": (2048,)}),
    ("sdxl", {"prompt_embeds": (77, 2048), "pooled_prompt_embeds": (1280,)}),
    ("sd15", {"prompt_embeds": (77, 768)}),
    ("sd-turbo", {"prompt_embeds": (77, 1024)}),
])
def test_real_generator_specs_from_hub_configs(name, spec):
    from seeingsounds.model import load_backend

    assert {k: s.shape for k, s in load_backend(name).conditioning_spec().items()} == spec


def test_encode_captions_loads_on_the_resolved_device_and_releases_its_pipeline(monkeypatch):
    import weakref

    from seeingsounds.model import load_backend

    backend = load_backend("tiny-sd3")
    original = type(backend).load_text_pipeline
    seen, refs = [], []

    def recording(self, *, device=None, dtype=None):
        pipe = original(self, device=device, dtype=dtype)
        seen.append((pipe.text_encoder.device.type, pipe.text_encoder.dtype))
        refs.append(weakref.ref(pipe))
        return pipe

    monkeypatch.setattr(type(backend), "load_text_pipeline", recording)
    out = backend.encode_captions(["a dog", "rain", "a bell"], batch_size=2, out_dtype=torch.float16)
    assert seen == [("cpu", torch.float32)]  # auto on a CPU machine: fp32 on the CPU
    assert refs[0]() is None  # its own pipeline is gone once the targets exist
    assert all(v.dtype == torch.float16 and v.shape[0] == 3 for v in out.values())
    reference = backend.encode_captions(["a dog", "rain", "a bell"], batch_size=3)
    torch.testing.assert_close(out["prompt_embeds"].float(), reference["prompt_embeds"], atol=1e-2, rtol=1e-2)
    bf16 = backend.encode_captions(["a dog"], device="cpu", dtype="bf16")
    assert seen[-1] == ("cpu", torch.bfloat16) and bf16["prompt_embeds"].dtype == torch.float32


def test_backend_registry_lists_builtins_lazily_without_an_import_cycle():
    import ast
    from pathlib import Path

    import seeingsounds.generators.base as base

    tree = ast.parse(Path(base.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("seeingsounds.generators.")}, imported
    assert base.available_backends() == ["flux", "minilm", "sd", "sd3", "sdxl", "wan"]
    for name, target in base.BUILTIN_BACKENDS.items():
        module, _, attr = target.partition(":")
        cls = getattr(__import__(module, fromlist=[attr]), attr)
        assert cls.name == name and issubclass(cls, base.GeneratorBackend)
    with pytest.raises(ConfigError, match="unknown generator backend 'nope'.*'flux'"):
        base.create_backend("nope", "x")
