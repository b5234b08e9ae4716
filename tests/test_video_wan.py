"""Sound to video with the Wan 2.1 backend: spec from configs, umT5 targets, real config on the meta device,
training its aligner with `seeingsounds train`, mp4 files that PyAV decodes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_pipeline import make_checkpoint, write_wav

from seeingsounds.cli.main import main
from seeingsounds.errors import ConfigError
from seeingsounds.video import read_mp4, write_mp4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    return {"ckpt": make_checkpoint(root / "ckpt", "tiny-wan"), "dog": write_wav(root / "dog.wav", 330),
            "rain": write_wav(root / "rain.wav", 2500)}


@pytest.fixture(scope="module")
def wan_pipe(setup):
    from seeingsounds.pipeline import SeeingSoundsPipeline

    return SeeingSoundsPipeline.from_pretrained(setup["ckpt"], device="cpu")


def test_spec_is_what_encode_prompt_returns_single_tensor():
    from seeingsounds.model import load_backend

    backend = load_backend("tiny-wan")
    assert {k: s.shape for k, s in backend.conditioning_spec().items()} == {"prompt_embeds": (16, 32)}
    targets = backend.encode_captions(["a dog barking", "rain on a roof", ""])
    assert set(targets) == {"prompt_embeds"} and targets["prompt_embeds"].shape == (3, 16, 32)
    # WanPipeline zeroes the states past the caption's tokens: the empty caption is one token (</s>)
    assert targets["prompt_embeds"][2, 1:].abs().max() == 0 and targets["prompt_embeds"][2, 0].abs().max() > 0
    assert (targets["prompt_embeds"][0] - targets["prompt_embeds"][1]).abs().max() > 1e-4


def test_audio_to_video_frames_and_posters_without_text_encoders(wan_pipe, setup, monkeypatch):
    import transformers
    from diffusers import WanPipeline

    seen = []
    original = WanPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append({k: kwargs[k].clone() for k in ("prompt_embeds", "negative_prompt_embeds")})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WanPipeline, "__call__", spy)

    assert wan_pipe.generator.text_encoder is None and wan_pipe.generator.tokenizer is None and wan_pipe.output_kind.video
    monkeypatch.setattr(transformers.UMT5EncoderModel, "from_pretrained",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("text encoder loaded")))
    out = wan_pipe([str(setup["dog"]), str(setup["rain"])], seed=2, num_frames=9, fps=12, height=32, width=48)
    assert [v.shape for v in out.videos] == [(9, 32, 48, 3)] * 2 and out.videos[0].dtype == np.uint8
    assert [im.size for im in out.images] == [(48, 32)] * 2
    assert np.array_equal(np.asarray(out.images[0]), out.videos[0][4])  # the poster is the middle frame
    assert out.settings["num_frames"] == 9 and out.settings["fps"] == 12 and out.seeds == [2, 2]
    # what reached WanPipeline is the aligner's prediction, and the empty caption's umT5 states as negatives
    # (the tiny random transformer barely reacts to its conditioning, so pixels cannot show this)
    torch.testing.assert_close(seen[0]["prompt_embeds"], out.conditioning["prompt_embeds"])
    null = wan_pipe.aligner.null_conditioning("prompt_embeds")
    torch.testing.assert_close(seen[0]["negative_prompt_embeds"], null.expand(2, *null.shape))
    again = wan_pipe(str(setup["dog"]), seed=2, num_frames=9, fps=12, height=32, width=48)
    assert np.abs(again.videos[0].astype(int) - out.videos[0].astype(int)).max() <= 2  # batch of 1 vs 2: float noise


def test_video_options_are_checked(wan_pipe, setup):
    with pytest.raises(ConfigError, match="1 \\+ a multiple of 4"):
        wan_pipe(str(setup["dog"]), num_frames=6)
    with pytest.raises(ConfigError, match="fps"):
        wan_pipe(str(setup["dog"]), fps=0)
    with pytest.raises(ConfigError, match="multiples of 16"):
        wan_pipe(str(setup["dog"]), height=40)
    with pytest.raises(ConfigError, match="video generator"):
        wan_pipe.edit(np.zeros((32, 32, 3), np.uint8), str(setup["dog"]))


def test_generate_writes_an_mp4_that_pyav_decodes(setup, tmp_path, capsys):
    out = tmp_path / "v"
    code = main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), str(setup["rain"]), "--seed", "3",
                 "--frames", "9", "--fps", "12", "--size", "48x32", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["contact_sheet.png", "dog_s3.mp4", "dog_s3.png", "rain_s3.mp4", "rain_s3.png"]
    frames, fps, meta = read_mp4(out / "dog_s3.mp4")
    assert frames.shape == (9, 32, 48, 3) and fps == 12.0
    assert (meta["frames"], meta["fps"], meta["seed"], meta["preset"]) == (9, 12, 3, "tiny-wan")
    assert meta["source"] == str(setup["dog"]) and meta["Software"].startswith("seeingsounds ")
    from seeingsounds.imaging import read_provenance

    assert read_provenance(out / "dog_s3.png")["poster_of"] == "dog_s3.mp4"
    # a single .mp4 output; an image suffix for a video checkpoint is refused before the model loads
    assert main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", str(tmp_path / "one.mp4")]) == 0
    assert read_mp4(tmp_path / "one.mp4")[0].shape == (5, 32, 32, 3)  # the preset's 5 frames, 32x32
    assert (tmp_path / "one.png").is_file()
    assert main(["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", str(tmp_path / "x.png")]) == 2
    assert ".mp4" in capsys.readouterr().err


def test_frames_are_checked_before_the_model_loads(setup, tmp_path, capsys, monkeypatch):
    from seeingsounds.pipeline import SeeingSoundsPipeline

    monkeypatch.setattr(SeeingSoundsPipeline, "from_pretrained",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded before the checks")))
    args = ["generate", "--checkpoint", str(setup["ckpt"]), str(setup["dog"]), "-o", str(tmp_path / "x")]
    assert main([*args, "--frames", "6"]) == 2
    assert "try 5 or 9" in capsys.readouterr().err
    image_ckpt = make_checkpoint(tmp_path / "img", "tiny")
    assert main(["generate", "--checkpoint", str(image_ckpt), str(setup["dog"]), "--fps", "8", "-o", str(tmp_path / "y")]) == 2
    assert "video checkpoints" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_mp4_writer_round_trip_and_errors(tmp_path):
    yy, xx = np.mgrid[0:16, 0:24]
    frames = np.stack([np.stack([xx * 10, yy * 15, np.full_like(xx, 30 * i)], -1) for i in range(7)]).astype(np.uint8)
    path = write_mp4(frames, tmp_path / "a.mp4", fps=10, metadata={"seed": 1, "caption": "é"})
    decoded, fps, meta = read_mp4(path)
    assert decoded.shape == frames.shape and fps == 10.0 and meta == {"seed": 1, "caption": "é"}
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 8  # lossy H.264 (4:2:0 chroma) of tiny frames
    assert np.abs(decoded[..., 2].mean(axis=(1, 2)) - 30 * np.arange(7)).max() < 6  # same frames, same order
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]  # atomic: no temp file left
    with pytest.raises(ConfigError, match="even"):
        write_mp4(frames[:, :15], tmp_path / "b.mp4", fps=10)
    with pytest.raises(ConfigError, match="uint8"):
        write_mp4(frames.astype(np.float32), tmp_path / "b.mp4", fps=10)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(ConfigError, match="bad.mp4"):
        read_mp4(tmp_path / "bad.mp4")


def test_train_the_video_aligner_one_epoch(tmp_path, capsys):
    """`seeingsounds train --preset tiny-wan` trains a single-tensor aligner on umT5 targets, as for images."""
    from seeingsounds.data.synthetic import make_synthetic_dataset
    from seeingsounds.pipeline import SeeingSoundsPipeline

    manifest, captions = make_synthetic_dataset(tmp_path / "data", train=4, val=1, test=1)
    out = tmp_path / "run"
    code = main(["train", "--preset", "tiny-wan", "--data", str(manifest), "--captions", str(captions), "--out", str(out),
                 "--epochs", "1", "--batch-size", "16", "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["preset"]["name"] == "tiny-wan"
    pipe = SeeingSoundsPipeline.from_pretrained(out, device="cpu")
    assert pipe.aligner.conditioning_shapes == {"prompt_embeds": (16, 32)}
    assert pipe.aligner.null_conditioning("prompt_embeds").abs().max() > 0  # the empty caption's umT5 states
    assert pipe(str(write_wav(tmp_path / "t.wav", 440)), num_frames=1).videos[0].shape == (1, 32, 32, 3)


def test_real_wan_config_on_meta_accepts_the_aligner_output():
    """Wan 2.1 T2V 1.3B's real configuration on the meta device (no weights): the wan-1.3b aligner's
    predictions are what its transformer consumes."""
    from diffusers import WanTransformer3DModel
    from transformers import ASTConfig, ASTModel, UMT5Config, UMT5EncoderModel

    from seeingsounds.generators.wan import wan_conditioning_spec
    from seeingsounds.model import create_aligner
    from seeingsounds.presets import get_preset

    # transformer/config.json and text_encoder/config.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers
    wan_1_3b = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                    out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
    umt5_xxl = dict(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=256384,
                    feed_forward_proj="gated-gelu", is_encoder_decoder=False)
    preset = get_preset("wan-1.3b")
    with torch.device("meta"):
        ast = ASTModel(ASTConfig())
        transformer = WanTransformer3DModel(**wan_1_3b)
        umt5 = UMT5EncoderModel(UMT5Config(**umt5_xxl))
        spec = wan_conditioning_spec(transformer.config, preset.max_sequence_length)
        aligner = create_aligner(preset, ast.config.hidden_size, spec)
        pred = aligner(ast(input_values=torch.empty(1, 1024, 128)).last_hidden_state)
        target = umt5(input_ids=torch.zeros(1, 512, dtype=torch.long)).last_hidden_state
        # 480x832, 81 frames -> latents [16, 21, 60, 104]
        out = transformer(hidden_states=torch.empty(1, 16, 21, 60, 104), timestep=torch.empty(1),
                          encoder_hidden_states=pred["prompt_embeds"]).sample
    assert set(pred) == {"prompt_embeds"}
    assert tuple(pred["prompt_embeds"].shape) == tuple(target.shape) == (1, 512, 4096)
    assert tuple(out.shape) == (1, 16, 21, 60, 104)
    assert sum(p.numel() for p in transformer.parameters()) == pytest.approx(1.42e9, rel=0.02)


def test_caption_path_writes_a_video_too(setup, tmp_path, capsys):
    out = tmp_path / "cap"
    assert main(["generate", "--checkpoint", str(setup["ckpt"]), "--caption", "rain on a roof", "--frames", "5",
                 "-o", str(out)]) == 0, capsys.readouterr().err
    # one video: its poster beside it, no contact sheet of a single tile
    assert sorted(p.name for p in out.iterdir()) == ["caption00-rain-on-a-roof_s0.mp4", "caption00-rain-on-a-roof_s0.png"]
    frames, _, meta = read_mp4(out / "caption00-rain-on-a-roof_s0.mp4")
    assert frames.shape == (5, 32, 32, 3) and meta["caption"] == "rain on a roof"
