"""SeeingSoundsPipeline goes through its one AudioConditioner, a chunk of inputs at a time, with the same pixels."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from test_pipeline import make_checkpoint, pixels, write_wav

from seeingsounds.audio.render import render
from seeingsounds.conditioner import AudioConditioner

SR = 16000
FREQS = (220, 330, 500, 800, 1200, 2000, 3000)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("pipeline-conditioner")
    clips = [write_wav(root / f"tone{f}.wav", f) for f in FREQS]
    # longer than the encoder's ~2 s window and at another rate: cropped and resampled
    long = write_wav(root / "long.wav", 440, seconds=5.0, sr=22050)
    return {"ckpt": make_checkpoint(root / "ckpt", "tiny", seed=3), "clips": [str(c) for c in clips], "long": str(long)}


@pytest.fixture(scope="module")
def pipe(setup):
    from seeingsounds.pipeline import SeeingSoundsPipeline

    return SeeingSoundsPipeline.from_pretrained(setup["ckpt"], device="cpu")


def by_hand(pipe, sources, *, batch_size: int, window: bool) -> dict[str, torch.Tensor]:
    """The pre-conditioner path: render every clip, encoder.encode all, aligner per batch of ``batch_size``."""
    sr = pipe.encoder.sample_rate
    waves = [render(s, sample_rate=sr, num_samples=pipe.encoder.window_samples if window else None) for s in sources]
    tokens = pipe.encoder.encode(waves, batch_size=batch_size)
    with torch.no_grad():
        outs = [pipe.aligner(tokens[i : i + batch_size].to(pipe.device, pipe.dtype))
                for i in range(0, len(tokens), batch_size)]
    return {k: torch.cat([o[k] for o in outs]).float().cpu() for k in outs[0]}


def test_the_pipeline_holds_one_conditioner_over_its_encoder_and_aligner(pipe):
    assert isinstance(pipe.conditioner, AudioConditioner)
    assert pipe.aligner is pipe.conditioner.aligner and pipe.encoder is pipe.conditioner.encoder
    assert (pipe.conditioner.device, pipe.conditioner.dtype) == (pipe.device, pipe.dtype)
    assert next(pipe.aligner.parameters()).dtype == torch.float32 and not pipe.aligner.training


def test_predictions_equal_encoder_and_aligner_by_hand_bit_for_bit(pipe, setup):
    sources = setup["clips"][:5] + [setup["long"]]
    ours = pipe.conditioner.predict_all(sources, batch_size=4)
    # the window render (what training hears) and the old whole-clip render (cropped by the encoder) agree here
    for window in (True, False):
        expected = by_hand(pipe, sources, batch_size=4, window=window)
        assert set(ours) == set(expected) == {"prompt_embeds", "pooled_prompt_embeds"}
        for name in expected:
            assert ours[name].dtype == torch.float32 and ours[name].shape[0] == 6
            assert torch.equal(ours[name], expected[name]), (name, window)


def test_image_for_seed_0_equals_prompt_embeds_given_by_hand_to_diffusers(pipe, setup):
    clip = setup["clips"][1]
    ours = pipe(clip, seed=0)
    cond = by_hand(pipe, [clip], batch_size=1, window=True)
    native = pipe.generator(prompt_embeds=cond["prompt_embeds"], pooled_prompt_embeds=cond["pooled_prompt_embeds"],
                            num_inference_steps=pipe.preset.num_inference_steps, guidance_scale=pipe.preset.guidance_scale,
                            height=pipe.preset.height, width=pipe.preset.width, output_type="pil",
                            generator=[torch.Generator("cpu").manual_seed(0)]).images[0]
    assert np.array_equal(pixels(ours.images[0]), pixels(native))
    assert torch.equal(ours.conditioning["prompt_embeds"], cond["prompt_embeds"])


def record_order(pipe, monkeypatch) -> list[tuple[str, int]]:
    """("predict", clips) / ("generate", rows) events, in the order the pipeline does them."""
    events: list[tuple[str, int]] = []
    predict, generate = pipe.conditioner.predict_waves, pipe.backend.generate

    def spy_predict(waves):
        events.append(("predict", len(waves)))
        return predict(waves)

    def spy_generate(generator, rows, **kwargs):
        events.append(("generate", len(kwargs["seeds"])))
        return generate(generator, rows, **kwargs)

    monkeypatch.setattr(pipe.conditioner, "predict_waves", spy_predict)
    monkeypatch.setattr(pipe.backend, "generate", spy_generate)
    return events


def test_many_clips_stream_a_chunk_at_a_time_with_the_same_pixels(pipe, setup, monkeypatch):
    """7 clips x 2 images, batch 3: conditioning of 3 clips, their 6 images, the next 3 ... never all 7 at once;
    the images equal one pass of generate_from_conditioning over every row (the old path)."""
    clips = setup["clips"]
    cond = pipe.conditioner.predict_all(clips, batch_size=3)
    rows = {k: v.repeat_interleave(2, dim=0) for k, v in cond.items()}
    seeds = [s for _ in clips for s in (4, 5)]
    settings = pipe.resolve_settings(None, None, None, None)
    old = pipe.generate_from_conditioning(rows, seeds=seeds, negative=None, settings=settings, batch_size=3)

    events = record_order(pipe, monkeypatch)
    out = pipe(clips, seed=4, num_images_per_audio=2, batch_size=3)
    assert events == [("predict", 3), ("generate", 3), ("generate", 3),
                      ("predict", 3), ("generate", 3), ("generate", 3),
                      ("predict", 1), ("generate", 2)]
    assert out.seeds == seeds and out.sources == [c for c in clips for _ in range(2)]
    assert len(out.images) == 14
    for a, b in zip(out.images, old):
        assert np.array_equal(pixels(a), pixels(b))
    for name in cond:  # the output keeps one row per input, float32 on the CPU
        assert torch.equal(out.conditioning[name], cond[name])

    events.clear()
    lean = pipe(clips, seed=4, num_images_per_audio=2, batch_size=3, return_conditioning=False)
    assert lean.conditioning == {} and len(events) == 8
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(lean.images, out.images))


def test_bad_seeds_and_effects_are_refused_before_any_audio_is_encoded(pipe, setup, monkeypatch):
    from seeingsounds.errors import ConfigError

    events = record_order(pipe, monkeypatch)
    with pytest.raises(ConfigError, match="seeds"):
        pipe(setup["clips"][:2], seeds=[1, 2, 3])
    with pytest.raises(ConfigError):
        pipe(setup["clips"][:2], effects=[("no-such-effect", {})])
    with pytest.raises(ConfigError, match="mix"):
        pipe(setup["clips"][:2], mix=(setup["clips"][2],))
    assert events == []


def test_edit_streams_through_the_conditioner(pipe, setup, monkeypatch):
    picture = np.full((32, 32, 3), 120, np.uint8)
    clips = setup["clips"][:5]
    whole = pipe.edit(picture, clips, strength=0.5, seed=2, num_inference_steps=4, batch_size=5)
    predicted: list[int] = []
    original = pipe.conditioner.predict_waves
    monkeypatch.setattr(pipe.conditioner, "predict_waves", lambda waves: predicted.append(len(waves)) or original(waves))
    chunked = pipe.edit(picture, clips, strength=0.5, seed=2, num_inference_steps=4, batch_size=2)
    assert predicted == [2, 2, 1]
    expected = pipe.conditioner.predict_all(clips, batch_size=2)  # the same batches: a GEMM's sums depend on its shape
    for name in expected:
        assert torch.equal(chunked.conditioning[name], expected[name])
    # batches of 2 vs 5 images: the same images up to float noise
    assert all(np.abs(pixels(a) - pixels(b)).max() <= 2 for a, b in zip(chunked.images, whole.images))


def test_a_directly_built_pipeline_makes_its_own_conditioner(pipe):
    """The benchmarks build the pipeline from loaded parts; a conditioner over other parts is refused."""
    from seeingsounds.errors import ConfigError
    from seeingsounds.pipeline import SeeingSoundsPipeline

    parts = {"backend": pipe.backend, "generator": pipe.generator, "preset": pipe.preset, "device": pipe.device,
             "dtype": pipe.dtype}
    built = SeeingSoundsPipeline(aligner=pipe.aligner, encoder=pipe.encoder, **parts)
    assert built.conditioner is not pipe.conditioner and built.aligner is pipe.aligner
    other = AudioConditioner(pipe.encoder, pipe.aligner)
    with pytest.raises(ConfigError, match="conditioner"):
        SeeingSoundsPipeline(aligner=pipe.aligner, encoder=object(), **parts, conditioner=other)
