"""The one conditioner: loads a checkpoint once, renders with audio.render, predicts in streamed batches."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sine

from seeingsounds.audio.render import render
from seeingsounds.conditioner import AudioConditioner
from seeingsounds.errors import AudioLoadError, ConfigError


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_preset, tiny_backend):
    from seeingsounds.model import create_aligner
    from seeingsounds.tiny.audio_encoder import TINY_AST

    folder = tmp_path_factory.mktemp("ckpt") / "aligner"
    torch.manual_seed(0)
    create_aligner(tiny_preset, TINY_AST["hidden_size"], tiny_backend.conditioning_spec()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    paths = []
    for i, freq in enumerate((220, 440, 880, 1760, 3520)):
        path = root / f"{i}.wav"
        sf.write(path, sine(freq, 1.0 + 0.3 * i, 16000), 16000)
        paths.append(path)
    return paths


def test_from_pretrained_resolves_auto_and_loads_the_presets_encoder(checkpoint, tiny_encoder):
    conditioner = AudioConditioner.from_pretrained(checkpoint, device="auto", encoder=tiny_encoder)
    expected = torch.device("cuda") if torch.cuda.is_available() else conditioner.device
    assert conditioner.device.type == expected.type
    if conditioner.device.type == "cpu":
        assert conditioner.dtype == torch.float32
    assert conditioner.preset.name == "tiny" and conditioner.sample_rate == 16000
    assert conditioner.names == list(conditioner.aligner.aligned_names)


def test_batches_equal_one_call_and_follow_the_render(checkpoint, tiny_encoder, clips):
    conditioner = AudioConditioner.from_pretrained(checkpoint, device="cpu", encoder=tiny_encoder)
    effects = [("lowpass", {"cutoff_hz": 800.0}), ("volume", {"alpha": 0.3})]
    batches = list(conditioner.predict([str(p) for p in clips], effects=effects, batch_size=2))
    assert [len(b["prompt_embeds"]) for b in batches] == [2, 2, 1]
    together = conditioner.predict_all([str(p) for p in clips], effects=effects, batch_size=5)
    for name, value in together.items():
        torch.testing.assert_close(torch.cat([b[name] for b in batches]), value, atol=1e-5, rtol=1e-5)
    # exactly the encoder + aligner on the one render of T_j(a)
    waves = [render(p, sample_rate=16000, num_samples=tiny_encoder.window_samples, effects=effects) for p in clips]
    with torch.no_grad():
        direct = conditioner.aligner(tiny_encoder.encode(waves))
    for name in together:
        torch.testing.assert_close(together[name], direct[name], atol=1e-5, rtol=1e-5)
    # arrays need their rate; a (rate, array) tuple carries it
    wave = sine(440, 1.0, 8000)
    one = conditioner.predict_all((8000, wave))
    two = conditioner.predict_all([wave], sample_rate=8000)
    torch.testing.assert_close(one["prompt_embeds"], two["prompt_embeds"])
    with pytest.raises(AudioLoadError, match="sample_rate"):
        conditioner.predict_all([wave])


def test_predict_is_lazy_and_checks_options_first(checkpoint, tiny_encoder, clips):
    conditioner = AudioConditioner.from_pretrained(checkpoint, device="cpu", encoder=tiny_encoder)
    seen = []

    def sources():
        for p in clips:
            seen.append(p)
            yield str(p)

    stream = conditioner.predict(sources(), batch_size=2)
    assert seen == []  # nothing rendered until asked
    next(stream)
    assert len(seen) == 2
    with pytest.raises(ConfigError, match="alpha"):
        conditioner.predict([str(clips[0])], effects=[("volume", {"alpha": -1.0})])
    with pytest.raises(ConfigError, match="batch_size"):
        conditioner.predict([str(clips[0])], batch_size=0)


def test_from_loaded_parts_checks_widths(tiny_encoder, tiny_preset, tiny_backend):
    from seeingsounds.model import create_aligner

    wrong = create_aligner(tiny_preset, 7, tiny_backend.conditioning_spec())
    with pytest.raises(ConfigError, match="width 7"):
        AudioConditioner(tiny_encoder, wrong)


def test_pipeline_predictions_match_the_conditioner(checkpoint, tiny_encoder, clips):
    """What SeeingSoundsPipeline generates from (its own path today) equals the conditioner's batches."""
    from seeingsounds.pipeline import SeeingSoundsPipeline

    pipe = SeeingSoundsPipeline.from_pretrained(checkpoint, device="cpu")
    ours = AudioConditioner(pipe.encoder, pipe.aligner).predict_all([str(p) for p in clips[:2]])
    theirs = pipe([str(p) for p in clips[:2]], num_inference_steps=1).conditioning
    for name in theirs:
        np.testing.assert_allclose(ours[name].numpy(), theirs[name].numpy(), atol=1e-4)
