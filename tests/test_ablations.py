"""Table 4 switches change what is trained and what the generator is fed.

* ``align="sequence"`` (T5-only) / ``align="pooled"`` (CLIP-only): the other tensor has no head,
  no parameters, no gradient, and is fed the empty caption's embedding for every input.
* ``pooling="average"`` (w/o attention pooling): adaptive average pooling for the sequence head,
  mean pooling for the pooled head: no attention parameters at all.
"""

from __future__ import annotations

import pytest
import torch

from seeingsounds.aligner import AttentionPooling, AveragePooling
from seeingsounds.model import create_aligner

SEQ, POOLED = "prompt_embeds", "pooled_prompt_embeds"


@pytest.fixture(scope="module")
def spec(tiny_backend):
    s = tiny_backend.conditioning_spec()
    assert set(s) == {SEQ, POOLED} and s[SEQ].shape == (16, 32) and s[POOLED].shape == (24,)
    return s


@pytest.fixture(scope="module")
def empty_caption(tiny_backend):
    """The generator's own embedding of the empty caption (what unaligned tensors are fed)."""
    out = tiny_backend.encode_captions([""])
    return {k: v[0] for k, v in out.items()}


def _make(tiny_preset, spec, **kw):
    torch.manual_seed(0)
    return create_aligner(tiny_preset, 24, spec, **kw)


def _grads_after_backward(aligner):
    tokens = torch.randn(3, 7, 24)
    out = aligner(tokens)
    loss = sum(v.pow(2).mean() for v in out.values())
    if loss.requires_grad:
        loss.backward()
    return {n: p.grad for n, p in aligner.named_parameters()}


def test_full_model_trains_both_heads_with_attention(tiny_preset, spec):
    aligner = _make(tiny_preset, spec)
    assert aligner.aligned_names == [SEQ, POOLED]
    grads = _grads_after_backward(aligner)
    heads = {n.split(".")[1] for n in grads}
    assert heads == {SEQ, POOLED}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())
    assert any("pooling.queries" in n for n in grads)  # attention pooling is trained
    assert sum(isinstance(m, AttentionPooling) for m in aligner.modules()) == 2


@pytest.mark.parametrize("align, trained, frozen", [("sequence", SEQ, POOLED), ("pooled", POOLED, SEQ)])
def test_single_branch_trains_one_head_and_feeds_the_empty_caption(tiny_preset, spec, empty_caption, align, trained, frozen):
    full = _make(tiny_preset, spec)
    aligner = _make(tiny_preset, spec, align=align)
    aligner.set_null_conditioning(empty_caption)
    assert aligner.aligned_names == [trained]
    grads = _grads_after_backward(aligner)
    assert grads and all(n.startswith(f"heads.{trained}.") for n in grads)  # no parameter of the other branch
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())
    assert aligner.num_parameters() == sum(p.numel() for n, p in full.named_parameters() if n.startswith(f"heads.{trained}."))
    # at inference the unaligned tensor is the empty-caption embedding, whatever the audio
    with torch.no_grad():
        a = aligner(torch.randn(2, 7, 24))
        b = aligner(torch.randn(4, 11, 24) * 5)
    for out in (a, b):
        for row in out[frozen]:
            torch.testing.assert_close(row, empty_caption[frozen])
    assert not torch.allclose(a[trained][0], a[trained][1])  # the aligned tensor does follow the audio
    assert empty_caption[frozen].abs().sum() > 0  # and the null buffer is the real embedding, not zeros
    # the null buffer travels with the checkpoint (state dict), not as a parameter
    assert f"null_{frozen}" in aligner.state_dict() and f"null_{frozen}" not in dict(aligner.named_parameters())


def test_without_attention_pooling_has_no_attention_parameters(tiny_preset, spec):
    full = _make(tiny_preset, spec)
    avg = _make(tiny_preset, spec, pooling="average")
    assert sum(isinstance(m, AttentionPooling) for m in avg.modules()) == 0
    assert sum(isinstance(m, AveragePooling) for m in avg.modules()) == 2
    names = [n for n, _ in avg.named_parameters()]
    assert not any("pooling" in n for n in names)
    # only adapters remain: exactly the full model minus its attention-pooling parameters
    attention = sum(p.numel() for n, p in full.named_parameters() if ".pooling." in n)
    assert attention > 0 and avg.num_parameters() == full.num_parameters() - attention
    grads = _grads_after_backward(avg)
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_average_pooling_is_adaptive_for_the_sequence_and_mean_for_the_pooled_head(tiny_preset, spec):
    avg = _make(tiny_preset, spec, pooling="average").eval()
    tokens = torch.randn(2, 32, 24)
    out = avg(tokens)
    seq_head, pooled_head = avg.heads[SEQ], avg.heads[POOLED]
    adapted_seq = seq_head.adapter(tokens)  # adapter_first: [2, 32, 32]
    # 32 tokens -> 16 queries: adaptive pooling averages consecutive pairs
    torch.testing.assert_close(out[SEQ], adapted_seq.reshape(2, 16, 2, 32).mean(2))
    torch.testing.assert_close(out[POOLED], pooled_head.adapter(tokens).mean(1))
