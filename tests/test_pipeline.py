"""SeeingSoundsPipeline on tiny offline models: audio in, images out, text encoders never loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sine

from seeingsounds.errors import AudioLoadError, ConfigError
from seeingsounds.tiny.audio_encoder import TINY_AST

SR = 16000


def make_checkpoint(folder: Path, preset_name: str, *, seed: int = 0, input_dim: int | None = None) -> Path:
    """An untrained aligner for ``preset_name`` whose null conditioning is the generator's own "" embedding."""
    from seeingsounds.model import create_aligner, load_backend
    from seeingsounds.presets import get_preset

    preset = get_preset(preset_name)
    backend = load_backend(preset)
    torch.manual_seed(seed)
    aligner = create_aligner(preset, input_dim or TINY_AST["hidden_size"], backend.conditioning_spec())
    aligner.set_null_conditioning({k: v[0] for k, v in backend.encode_captions([""]).items()})
    aligner.save_pretrained(folder)
    return folder


def write_wav(path: Path, freq: float, seconds: float = 1.0, sr: int = SR) -> Path:
    sf.write(path, sine(freq, seconds, sr), sr, subtype="FLOAT")
    return path


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sounds")
    return {"low": write_wav(root / "low.wav", 220), "high": write_wav(root / "high.wav", 3000),
            "rate": write_wav(root / "rate.wav", 220, sr=22050)}


@pytest.fixture(scope="module")
def flux_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny")


@pytest.fixture(scope="module")
def flux_pipe(flux_checkpoint):
    from seeingsounds.pipeline import SeeingSoundsPipeline

    return SeeingSoundsPipeline.from_pretrained(flux_checkpoint, device="cpu")


def test_pipeline_loads_without_text_encoders(flux_pipe):
    gen = flux_pipe.generator
    for name in ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
        assert getattr(gen, name) is None, name
    assert flux_pipe._text_pipe is None
    assert flux_pipe.dtype == torch.float32 and flux_pipe.device.type == "cpu"
    assert flux_pipe.preset.name == "tiny"


def test_audio_to_images_shapes_seeds_and_sources(flux_pipe, sounds):
    out = flux_pipe([str(sounds["low"]), str(sounds["high"])], seed=5, num_images_per_audio=2, height=32, width=48)
    assert len(out.images) == 4
    assert all(im.size == (48, 32) for im in out.images)
    assert out.seeds == [5, 6, 5, 6]
    assert out.sources == [str(sounds["low"])] * 2 + [str(sounds["high"])] * 2
    assert out.conditioning["prompt_embeds"].shape == (2, 16, 32)
    assert out.conditioning["pooled_prompt_embeds"].shape == (2, 24)
    assert out.settings == {"num_inference_steps": 2, "guidance_scale": 3.5, "height": 32, "width": 48}
    # different seeds -> different images; different sounds -> different conditioning -> other pixels
    assert np.abs(pixels(out.images[0]) - pixels(out.images[1])).mean() > 1
    assert (out.conditioning["prompt_embeds"][0] - out.conditioning["prompt_embeds"][1]).abs().max() > 1e-3
    assert not np.array_equal(pixels(out.images[0]), pixels(out.images[2]))


def test_same_input_and_seed_give_the_same_pixels_whatever_the_batching(flux_pipe, sounds):
    """Identical in the same batches; up to rounding (GEMMs of other shapes sum in another order) in others."""
    paths = [str(sounds["low"]), str(sounds["high"])]
    a = flux_pipe(paths, seed=3, batch_size=1)
    again = flux_pipe(paths, seed=3, batch_size=1)
    b = flux_pipe(paths, seed=3, batch_size=4)
    c = flux_pipe(str(sounds["high"]), seeds=[3])
    assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(a.images, again.images))
    assert all(np.abs(pixels(x) - pixels(y)).max() <= 2 for x, y in zip(a.images, b.images))
    assert np.abs(pixels(c.images[0]) - pixels(a.images[1])).max() <= 2


def test_inputs_array_bytes_and_file_agree(flux_pipe, sounds):
    path = sounds["low"]
    wave = sine(220, 1.0, SR)
    from_file = flux_pipe.conditioner.predict_all(str(path))
    from_array = flux_pipe.conditioner.predict_all(wave, sample_rate=SR)
    from_tuple = flux_pipe.conditioner.predict_all((SR, wave))
    from_bytes = flux_pipe.conditioner.predict_all(path.read_bytes())
    for name, value in from_file.items():
        assert value.shape[0] == 1 and value.dtype == torch.float32
        torch.testing.assert_close(from_array[name], value)
        torch.testing.assert_close(from_tuple[name], value)
        torch.testing.assert_close(from_bytes[name], value)
    # the same tone at 22.05 kHz is resampled to the encoder's 16 kHz: close, not equal
    resampled = flux_pipe.conditioner.predict_all(str(sounds["rate"]))
    assert (resampled["prompt_embeds"] - from_file["prompt_embeds"]).abs().max() < 0.05


def test_effects_and_mix_change_what_the_aligner_hears(flux_pipe, sounds):
    base = flux_pipe.conditioner.predict_all(str(sounds["low"]))
    same = flux_pipe.conditioner.predict_all(str(sounds["low"]), effects=[])
    quiet = flux_pipe.conditioner.predict_all(str(sounds["low"]), effects=[("volume", {"alpha": 0.1})])
    mixed = flux_pipe.conditioner.predict_all(str(sounds["low"]), mix=(str(sounds["high"]), 0.5))
    torch.testing.assert_close(same["prompt_embeds"], base["prompt_embeds"])
    assert (quiet["prompt_embeds"] - base["prompt_embeds"]).abs().max() > 1e-3
    assert (mixed["prompt_embeds"] - base["prompt_embeds"]).abs().max() > 1e-3
    out = flux_pipe(str(sounds["low"]), effects=[("volume", {"alpha": 0.1})])
    assert out.effects == ["low-volume"]


def test_strict_input_checks(flux_pipe, sounds, tmp_path):
    with pytest.raises(ConfigError, match="multiples of 2"):
        flux_pipe(str(sounds["low"]), height=33)
    with pytest.raises(ConfigError, match="num_inference_steps"):
        flux_pipe(str(sounds["low"]), num_inference_steps=0)
    with pytest.raises(ConfigError, match="seeds"):
        flux_pipe([str(sounds["low"]), str(sounds["high"])], seeds=[1, 2, 3])
    with pytest.raises(AudioLoadError, match="sample_rate"):
        flux_pipe(sine(220))
    with pytest.raises(AudioLoadError, match="missing.wav"):
        flux_pipe(str(tmp_path / "missing.wav"))
    with pytest.raises(ConfigError, match="empty list"):
        flux_pipe([])


def test_text_path_matches_the_native_diffusers_pipeline(flux_pipe):
    """from_caption loads the text encoders on demand and gives the generator's own text-to-image result."""
    from diffusers import FluxPipeline

    caption = "a dog barking in a backyard"
    ours = flux_pipe.from_caption(caption, seed=7)
    assert flux_pipe._text_pipe is not None and flux_pipe._text_pipe.text_encoder_2 is not None
    assert flux_pipe.generator.text_encoder_2 is None  # the image pipeline stays text-encoder free
    native = FluxPipeline.from_pretrained(flux_pipe.backend.model_id)
    native.set_progress_bar_config(disable=True)
    ref = native(caption, num_inference_steps=2, guidance_scale=3.5, height=32, width=32, max_sequence_length=16,
                 generator=torch.Generator("cpu").manual_seed(7)).images[0]
    assert ours.sources == [caption] and ours.seeds == [7]
    assert np.abs(pixels(ours.images[0]) - pixels(ref)).max() <= 1


def test_checkpoint_for_flux_refuses_sdxl_before_loading_weights(flux_checkpoint, monkeypatch):
    from diffusers import DiffusionPipeline
    from transformers import ASTModel

    from seeingsounds.pipeline import SeeingSoundsPipeline

    def forbidden(*args, **kwargs):
        raise AssertionError("weights were loaded before the shape check")

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", forbidden)
    monkeypatch.setattr(ASTModel, "from_pretrained", forbidden)
    with pytest.raises(ConfigError) as info:
        SeeingSoundsPipeline.from_pretrained(flux_checkpoint, preset="tiny-sdxl", device="cpu")
    message = str(info.value)
    assert "sdxl" in message and "consumes" in message
    assert "(16, 32)" in message and "(77, 64)" in message


def test_audio_encoder_mismatch_is_refused(tmp_path):
    from seeingsounds.pipeline import SeeingSoundsPipeline

    ckpt = make_checkpoint(tmp_path / "wide", "tiny", input_dim=48)
    with pytest.raises(ConfigError, match="width 48"):
        SeeingSoundsPipeline.from_pretrained(ckpt, device="cpu")


def test_run_folder_and_generator_override(flux_checkpoint, tmp_path, sounds):
    """A training run folder resolves to best/; generator_id points to a local copy of the generator."""
    import shutil

    from seeingsounds.pipeline import SeeingSoundsPipeline
    from seeingsounds.tiny import tiny_path

    run = tmp_path / "run"
    shutil.copytree(flux_checkpoint, run / "best")
    local = shutil.copytree(tiny_path("flux"), tmp_path / "my-flux")
    pipe = SeeingSoundsPipeline.from_pretrained(run, generator_id=str(local), device="cpu")
    assert pipe.backend.model_id == str(local)
    assert pipe(str(sounds["low"])).images[0].size == (32, 32)


def test_lora_changes_the_image_and_its_absence_does_not(flux_checkpoint, flux_pipe, sounds, tmp_path):
    pytest.importorskip("peft")
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from seeingsounds.pipeline import SeeingSoundsPipeline

    transformer = FluxTransformer2DModel.from_pretrained(flux_pipe.backend.model_id, subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                       target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    # a strong random LoRA (B scaled up) so its effect on a 2-step tiny model is visible in pixels
    state = {k: v * (30.0 if "lora_B" in k else 1.0) for k, v in get_peft_model_state_dict(transformer).items()}
    FluxPipeline.save_lora_weights(tmp_path / "lora", transformer_lora_layers=state)
    assert (tmp_path / "lora" / "pytorch_lora_weights.safetensors").is_file()

    base = pixels(flux_pipe(str(sounds["low"]), seed=1).images[0])
    with_lora = SeeingSoundsPipeline.from_pretrained(flux_checkpoint, device="cpu", lora=tmp_path / "lora")
    assert with_lora.generator.transformer.peft_config  # the adapter is attached
    lora_image = pixels(with_lora(str(sounds["low"]), seed=1).images[0])
    again = pixels(SeeingSoundsPipeline.from_pretrained(flux_checkpoint, device="cpu")(str(sounds["low"]), seed=1).images[0])
    assert np.abs(lora_image - base).mean() > 1.0
    assert np.array_equal(again, base)
    with pytest.raises(ConfigError, match="LoRA"):
        SeeingSoundsPipeline.from_pretrained(flux_checkpoint, device="cpu", lora=tmp_path / "nope")


def test_lora_with_text_encoder_layers_loads_from_a_home_path(flux_checkpoint, flux_pipe, sounds, tmp_path, monkeypatch):
    """A LoRA trained with its text encoder (DreamBooth --train_text_encoder) loads into the text-encoder-free
    generator: its transformer layers apply, its text-encoder layers are skipped. ``~`` paths are expanded."""
    pytest.importorskip("peft")
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    from seeingsounds.pipeline import SeeingSoundsPipeline

    model_id = flux_pipe.backend.model_id
    transformer = FluxTransformer2DModel.from_pretrained(model_id, subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                       target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    state = {k: v * (30.0 if "lora_B" in k else 1.0) for k, v in get_peft_model_state_dict(transformer).items()}
    text_encoder = inject_adapter_in_model(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                                      target_modules=["q_proj"]),
                                           CLIPTextModel.from_pretrained(model_id, subfolder="text_encoder"))
    FluxPipeline.save_lora_weights(tmp_path / "home" / "te-lora", transformer_lora_layers=state,
                                   text_encoder_lora_layers=get_peft_model_state_dict(text_encoder))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    pipe = SeeingSoundsPipeline.from_pretrained(flux_checkpoint, device="cpu", lora="~/te-lora")
    assert pipe.generator.transformer.peft_config and pipe.generator.text_encoder is None
    assert pipe.lora == str(tmp_path / "home" / "te-lora")
    base = pixels(flux_pipe(str(sounds["low"]), seed=1).images[0])
    assert np.abs(pixels(pipe(str(sounds["low"]), seed=1).images[0]) - base).mean() > 1.0


def test_dtype_and_offload_options_are_checked(flux_checkpoint, monkeypatch):
    """bf16 only where the device supports it (devices.py is the one resolution)."""
    import seeingsounds.devices as devices
    from seeingsounds.devices import resolve_dtype
    from seeingsounds.pipeline import SeeingSoundsPipeline

    monkeypatch.setattr(devices, "bf16_supported", lambda device: True)
    assert resolve_dtype(None, torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(devices, "bf16_supported", lambda device: False)
    assert resolve_dtype(None, torch.device("cuda")) == torch.float16  # e.g. a T4 or V100
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype("fp16", torch.device("cpu")) == torch.float16
    with pytest.raises(ConfigError, match="dtype"):
        resolve_dtype("int8", torch.device("cpu"))
    with pytest.raises(ConfigError, match="cpu_offload"):
        SeeingSoundsPipeline.from_pretrained(flux_checkpoint, device="cpu", cpu_offload=True)


def test_seeds_are_range_checked(flux_pipe, sounds):
    for bad in (-1, 2**32, 2**64):
        with pytest.raises(ConfigError, match="0..4294967295"):
            flux_pipe(str(sounds["low"]), seed=bad)
    with pytest.raises(ConfigError, match="every seed"):
        flux_pipe(str(sounds["low"]), seeds=[-1])
    with pytest.raises(ConfigError, match="limit of 64 px"):
        flux_pipe(str(sounds["low"]), height=100000, width=32)
    assert flux_pipe.size_limit[0] == 64 and "sample_size" in flux_pipe.size_limit[1]  # tiny VAE: 32 px, x2


def test_save_pretrained_round_trip_gives_identical_images(flux_pipe, sounds, tmp_path):
    from seeingsounds.pipeline import SeeingSoundsPipeline

    folder = flux_pipe.save_pretrained(tmp_path / "saved")
    again = SeeingSoundsPipeline.from_pretrained(folder, device="cpu")
    assert again.preset.to_dict() == {**flux_pipe.preset.to_dict(), "lora": ""}
    a = flux_pipe(str(sounds["low"]), seed=3, num_images_per_audio=2)
    b = again(str(sounds["low"]), seed=3, num_images_per_audio=2)
    for x, y in zip(a.images, b.images):
        assert np.array_equal(pixels(x), pixels(y))
    for name in a.conditioning:
        assert torch.equal(a.conditioning[name], b.conditioning[name])
        assert torch.equal(flux_pipe.aligner.null_conditioning(name), again.aligner.null_conditioning(name))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        flux_pipe.save_pretrained(tmp_path / "afile")


def test_preset_lora_is_used_when_none_is_given(flux_checkpoint, flux_pipe, sounds, tmp_path):
    """A checkpoint whose preset names a LoRA loads it by default; lora="" loads none; save_pretrained keeps it."""
    pytest.importorskip("peft")
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from seeingsounds.pipeline import SeeingSoundsPipeline

    transformer = FluxTransformer2DModel.from_pretrained(flux_pipe.backend.model_id, subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k"]))
    state = {k: v * (30.0 if "lora_B" in k else 1.0) for k, v in get_peft_model_state_dict(transformer).items()}
    FluxPipeline.save_lora_weights(tmp_path / "lora", transformer_lora_layers=state)
    with_lora = SeeingSoundsPipeline.from_pretrained(flux_checkpoint, device="cpu", lora=tmp_path / "lora")
    saved = with_lora.save_pretrained(tmp_path / "meant-for-lora")
    by_default = SeeingSoundsPipeline.from_pretrained(saved, device="cpu")
    assert by_default.lora == str(tmp_path / "lora") and by_default.preset.lora == str(tmp_path / "lora")
    assert by_default.generator.transformer.peft_config
    assert np.array_equal(pixels(by_default(str(sounds["low"]), seed=1).images[0]),
                          pixels(with_lora(str(sounds["low"]), seed=1).images[0]))
    without = SeeingSoundsPipeline.from_pretrained(saved, device="cpu", lora="")
    assert without.lora is None and not getattr(without.generator.transformer, "peft_config", None)
    assert np.array_equal(pixels(without(str(sounds["low"]), seed=1).images[0]),
                          pixels(flux_pipe(str(sounds["low"]), seed=1).images[0]))


def test_from_caption_with_cpu_offload_keeps_the_text_encoders_off_the_gpu(flux_checkpoint, monkeypatch):
    """With cpu_offload the text pipeline is loaded on the CPU and offloaded (each encoder visits the GPU only
    while it runs); checked on the CPU by recording where it would be moved."""
    from diffusers import DiffusionPipeline

    from seeingsounds.pipeline import SeeingSoundsPipeline

    pipe = SeeingSoundsPipeline.from_pretrained(flux_checkpoint, device="cpu")
    calls = []
    monkeypatch.setattr(DiffusionPipeline, "enable_model_cpu_offload",
                        lambda self, device=None, **kw: calls.append((type(self).__name__, str(device))))
    moves = []
    original_to = DiffusionPipeline.to

    def record_to(self, *args, **kwargs):
        moves.append([str(a) for a in args] + [str(v) for v in kwargs.values()])
        return original_to(self, *args, **kwargs)

    monkeypatch.setattr(DiffusionPipeline, "to", record_to)
    pipe.cpu_offload, pipe.device = True, torch.device("cuda")
    text = pipe.text_pipeline
    assert calls == [("FluxPipeline", "cuda")]
    assert all("cuda" not in " ".join(m) for m in moves), moves
    assert text.text_encoder_2.device.type == "cpu" and text.text_encoder.device.type == "cpu"
    assert text.transformer is None and text.vae is None  # the text pipeline holds only the text encoders


def test_unreachable_hub_checkpoint_is_one_clear_error():
    """An ``owner/name`` that is no local folder goes to the hub; offline (as in the tests) that is one line."""
    from seeingsounds.pipeline import SeeingSoundsPipeline

    with pytest.raises(ConfigError, match="not a local folder and the model hub could not provide it") as info:
        SeeingSoundsPipeline.from_pretrained("someone/some-run", device="cpu")
    assert "\n" not in str(info.value)


def test_presets_recorded_by_older_checkpoints_still_load():
    from seeingsounds.presets import Preset, get_preset

    old = {k: v for k, v in get_preset("tiny").to_dict().items() if k not in ("num_frames", "fps", "lora")}
    assert Preset.from_dict(old) == get_preset("tiny")  # fields added since take their defaults
    with pytest.raises(ConfigError, match="unknown fields"):  # the removed `extra` field is not read any more
        Preset.from_dict({**old, "extra": {}})
