"""Judges: tiny CLIP / Wav2CLIP through the real loading path; Wav2CLIP re-implementation checks."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seeingsounds.errors import ConfigError
from seeingsounds.evaluation import judges as judges_module
from seeingsounds.evaluation.judges import CLIP_B32, CLIP_L14, available_judges, default_judge_id, get_judge
from seeingsounds.encoders.wav2clip import CHECKPOINT_NAME, WAV2CLIP_URL, Spectrogram, Wav2CLIPAudioEncoder
from seeingsounds.evaluation.wav2clip import Wav2CLIPJudge, resolve_checkpoint
from conftest import sine

WAV2CLIP_SRC = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "wav2clip"


def _image(color, size=(40, 30)):
    return Image.new("RGB", size, color)


def test_registry_defaults_are_the_papers_judges():
    assert available_judges() == ["aic", "clip", "wav2clip"]
    assert default_judge_id("aic") == CLIP_L14 == "openai/clip-vit-large-patch14"
    assert default_judge_id("clip") == CLIP_B32 == "openai/clip-vit-base-patch32"
    assert resolve_checkpoint(None) == WAV2CLIP_URL
    with pytest.raises(ConfigError, match="unknown judge"):
        get_judge("fid")


def test_get_judge_is_lazy_and_cached():
    judge = get_judge("clip", "some/hub-id-that-is-not-there")
    assert judge._parts is None  # nothing loaded yet
    assert get_judge("clip", "some/hub-id-that-is-not-there") is judge


def test_tiny_clip_judge_embeds_normalised_and_deterministic():
    judge = get_judge("aic", "tiny:clip-judge")
    images = [_image("red"), _image("blue", (64, 64)), _image("red")]
    emb = judge.embed_images(images)
    assert emb.shape == (3, 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb[0], emb[2], atol=1e-6)  # same image, same embedding
    assert not np.allclose(emb[0], emb[1], atol=1e-3)
    texts = judge.embed_texts(["dog barking", "a train", "dog barking"])
    assert texts.shape == (3, 32)
    np.testing.assert_allclose(texts[0], texts[2], atol=1e-6)
    assert judge.embed_images([]).shape == (0, 32) and judge.embed_texts([]).shape == (0, 32)


def test_tiny_clip_judge_loads_through_clipmodel_from_pretrained():
    from transformers import CLIPModel

    from seeingsounds.tiny import tiny_path

    folder = tiny_path("clip-judge")
    assert (folder / "preprocessor_config.json").is_file() and (folder / "config.json").is_file()
    model = CLIPModel.from_pretrained(folder)
    assert model.config.projection_dim == 32 and model.config.vision_config.image_size == 32


def test_tiny_wav2clip_is_a_flat_checkpoint_in_the_release_layout():
    from seeingsounds.tiny import tiny_path

    state = torch.load(tiny_path("wav2clip") / CHECKPOINT_NAME, weights_only=True)
    assert {k.split(".")[0] for k in state} == {"audio_encoder", "audio_transform"}
    assert "audio_encoder.spectrogram.window" in state
    assert {k for k in state if k.startswith("audio_transform")} == {
        "audio_transform.sequential.0.weight", "audio_transform.sequential.0.bias",
        "audio_transform.sequential.3.weight", "audio_transform.sequential.3.bias",
    }


def test_wav2clip_judge_resamples_and_normalises():
    judge = get_judge("wav2clip", "tiny:wav2clip")
    tone16 = sine(440, 1.0, 16000)
    tone44 = sine(440, 1.0, 44100)
    emb = judge.embed_audio([tone16, sine(3000, 0.5, 16000)], 16000)
    assert emb.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    emb44 = judge.embed_audio(tone44, 44100)  # resampled to 16 kHz first
    assert float(emb44[0] @ emb[0]) > 0.99
    assert judge.embed_audio(np.zeros(100, np.float32), 16000).shape == (1, 32)  # shorter than n_fft: padded
    with pytest.raises(ValueError, match="non-empty"):
        judge.embed_audio([np.zeros(0, np.float32)], 16000)
    with pytest.raises(ConfigError, match="sample_rate"):
        Wav2CLIPJudge("tiny:wav2clip", sample_rate=22050)


def test_wav2clip_embedding_does_not_depend_on_the_batch():
    model = Wav2CLIPAudioEncoder((4, 8, 16, 32)).eval()
    a, b = torch.from_numpy(sine(300)), torch.from_numpy(sine(2000, amp=0.05))
    with torch.no_grad():
        together = model(torch.stack([a, b]))
        alone = model(a[None])
    torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=1e-5)


def test_spectrogram_matches_torchaudio_definition():
    """torchaudio Spectrogram(n_fft=512, hop=353): periodic Hann, centred reflect padding, |X|^2."""
    x = np.random.default_rng(0).standard_normal(4000).astype(np.float64)
    n_fft, hop = 512, 353
    padded = np.pad(x, n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = [padded[i * hop : i * hop + n_fft] * window for i in range(1 + len(x) // hop)]
    expected = np.abs(np.fft.rfft(np.stack(frames), axis=1)).T ** 2  # [257, frames]
    got = Spectrogram().double()(torch.from_numpy(x)[None, None])[0, 0].numpy()
    assert got.shape == expected.shape == (257, 12)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)  # float32 window buffer


def _load_wav2clip_resnet(monkeypatch):
    """wav2clip's own ResNet module, with torchaudio's Spectrogram replaced by ours (it is checked above)."""
    path = WAV2CLIP_SRC / "model" / "resnet.py"
    if not path.is_file():
        pytest.skip("wav2clip is not installed (pip install --no-deps wav2clip)")
    fake = types.ModuleType("torchaudio")
    fake.transforms = types.SimpleNamespace(Spectrogram=lambda n_fft, hop_length: Spectrogram(n_fft, hop_length))
    monkeypatch.setitem(sys.modules, "torchaudio", fake)
    spec = importlib.util.spec_from_file_location("_wav2clip_resnet_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_width_matches_wav2clip_reference_resnet(monkeypatch):
    reference_module = _load_wav2clip_resnet(monkeypatch)
    torch.manual_seed(0)
    reference = reference_module.ResNet(reference_module.BasicBlock, [2, 2, 2, 2], pool="avgpool").eval()
    ours = Wav2CLIPAudioEncoder()  # real widths 64..512
    # the release checkpoint keys: audio_encoder.<ResNet keys>, audio_transform.sequential.{0,3}.*
    state = {f"audio_encoder.{k}": v for k, v in reference.state_dict().items()}
    state.update({f"audio_transform.{k}": v for k, v in ours.audio_transform.state_dict().items()})
    assert set(state) == set(ours.state_dict())
    loaded = Wav2CLIPAudioEncoder.from_state_dict(state)
    assert loaded.widths == (64, 128, 256, 512) and loaded.embed_dim == 512
    x = torch.from_numpy(sine(440, 1.0, 16000) + sine(1234, 1.0, 16000, 0.1))[None]
    with torch.no_grad():
        torch.testing.assert_close(loaded.audio_encoder(x), reference(x), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(loaded(x), loaded.audio_transform(reference(x)), atol=1e-4, rtol=1e-4)


def test_wav2clip_checkpoint_errors_say_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="download"):
        resolve_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="no Wav2CLIP.pt"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(ConfigError, match="not a Wav2CLIP checkpoint"):
        Wav2CLIPAudioEncoder.from_state_dict({"fc.weight": torch.zeros(1)})


@pytest.mark.slow
def test_real_judges_load():
    clip = get_judge("clip")
    assert clip.embed_texts(["a dog"]).shape == (1, 512)
    w2c = get_judge("wav2clip")
    assert w2c.embed_audio(sine(440), 16000).shape == (1, 512)


def test_module_does_not_import_transformers_eagerly():
    assert "CLIPModel" not in vars(judges_module)
