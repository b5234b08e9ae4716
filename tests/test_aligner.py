"""The aligner (paper Eq. 2-5): shapes per order and ablation, save/load, what gets gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seeingsounds.aligner import AttentionPooling, AveragePooling, SeeingSoundsAligner
from seeingsounds.errors import ConfigError
from seeingsounds.generators.base import TensorSpec
from seeingsounds.model import create_aligner

SPEC = {"prompt_embeds": TensorSpec("prompt_embeds", (16, 32)),
        "pooled_prompt_embeds": TensorSpec("pooled_prompt_embeds", (24,))}


@pytest.mark.parametrize("order", ["adapter_first", "pool_first"])
@pytest.mark.parametrize("pooling", ["attention", "average"])
def test_output_shapes(tiny_preset, order, pooling):
    aligner = create_aligner(tiny_preset, 40, SPEC, order=order, pooling=pooling)
    out = aligner(torch.randn(3, 97, 40))
    assert tuple(out["prompt_embeds"].shape) == (3, 16, 32)
    assert tuple(out["pooled_prompt_embeds"].shape) == (3, 24)
    has_attention = any(isinstance(m, AttentionPooling) for m in aligner.modules())
    assert has_attention == (pooling == "attention")


def test_order_decides_where_attention_runs(tiny_preset):
    first = create_aligner(tiny_preset, 40, SPEC, order="adapter_first")
    pool = create_aligner(tiny_preset, 40, SPEC, order="pool_first")
    assert first.heads["prompt_embeds"].pooling.queries.shape == (16, 32)  # output width
    assert pool.heads["prompt_embeds"].pooling.queries.shape == (16, 40)  # encoder width


def test_average_pooling_is_adaptive_then_mean():
    tokens = torch.arange(12, dtype=torch.float32).reshape(1, 6, 2)
    assert torch.equal(AveragePooling(3)(tokens), torch.tensor([[[1.0, 2.0], [5.0, 6.0], [9.0, 10.0]]]))
    assert torch.equal(AveragePooling(1)(tokens), tokens.mean(1, keepdim=True))


def test_save_load_round_trip_is_bit_identical(tiny_preset, tmp_path):
    torch.manual_seed(0)
    aligner = create_aligner(tiny_preset, 40, SPEC)
    aligner.set_null_conditioning({"prompt_embeds": torch.randn(16, 32), "pooled_prompt_embeds": torch.randn(24)})
    aligner.save_pretrained(tmp_path / "ckpt")
    loaded = SeeingSoundsAligner.from_pretrained(tmp_path / "ckpt")
    x = torch.randn(2, 97, 40)
    a, b = aligner.eval()(x), loaded.eval()(x)
    for name in a:
        assert torch.equal(a[name], b[name])
    assert torch.equal(loaded.null_conditioning("prompt_embeds"), aligner.null_conditioning("prompt_embeds"))
    assert loaded.preset["name"] == "tiny"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_only_adapters_and_pooling_get_gradients(tiny_preset, tiny_encoder, tiny_backend):
    """The frozen encoder gets no gradient; every aligner parameter does."""
    aligner = create_aligner(tiny_preset, tiny_encoder.hidden_size, tiny_backend.conditioning_spec())
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    inputs = tiny_encoder.feature_extractor([wave, wave], sampling_rate=16000, return_tensors="pt").input_values
    tokens = tiny_encoder.model(input_values=inputs).last_hidden_state  # grad mode on: frozen by requires_grad
    out = aligner(tokens)
    sum(v.pow(2).mean() for v in out.values()).backward()
    assert all(p.grad is None for p in tiny_encoder.parameters())
    named = dict(aligner.named_parameters())
    assert named and all(p.grad is not None and p.grad.abs().sum() > 0 for p in named.values())
    assert all(n.split(".")[2] in ("adapter", "pooling") for n in named)


def test_unaligned_tensor_is_fed_the_empty_caption_embedding(tiny_preset):
    aligner = create_aligner(tiny_preset, 40, SPEC, align="sequence")
    null = torch.randn(24)
    aligner.set_null_conditioning({"pooled_prompt_embeds": null})
    out = aligner(torch.randn(2, 97, 40))
    assert list(aligner.heads) == ["prompt_embeds"]
    assert torch.equal(out["pooled_prompt_embeds"], null.expand(2, 24))


def test_input_checks(tiny_preset):
    aligner = create_aligner(tiny_preset, 40, SPEC)
    with pytest.raises(ConfigError, match="audio tokens"):
        aligner(torch.randn(2, 97, 41))
    with pytest.raises(ConfigError, match="order"):
        SeeingSoundsAligner(40, [SPEC["prompt_embeds"].as_head()], order="sideways")
    with pytest.raises(ConfigError, match="at least one"):
        create_aligner(tiny_preset, 40, SPEC, aligned=[])
    with pytest.raises(ConfigError, match="null embedding"):
        aligner.set_null_conditioning({"pooled_prompt_embeds": torch.zeros(5)})


def test_loading_is_strict(tiny_preset, tmp_path):
    """A checkpoint whose weights do not fit its config is refused, never half-loaded."""
    from safetensors.torch import load_file, save_file

    create_aligner(tiny_preset, 40, SPEC).save_pretrained(tmp_path / "ckpt")
    weights = load_file(tmp_path / "ckpt" / "model.safetensors")
    weights.pop(next(k for k in weights if k.endswith("queries")))
    save_file(weights, tmp_path / "ckpt" / "model.safetensors")
    with pytest.raises(RuntimeError, match="queries"):
        SeeingSoundsAligner.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(ConfigError, match="model.safetensors"):
        (tmp_path / "ckpt" / "model.safetensors").unlink()
        SeeingSoundsAligner.from_pretrained(tmp_path / "ckpt")
