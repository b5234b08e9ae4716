"""The one caption index (seeingsounds.retrieval.CaptionIndex)."""

import numpy as np
import pytest
import torch

from seeingsounds.errors import ConfigError
from seeingsounds.retrieval import CHUNK_ROWS, CaptionIndex


def _data(n_pred=5, n_cap=CHUNK_ROWS + 7, seed=0):
    g = torch.Generator().manual_seed(seed)
    targets = {"seq": torch.randn(n_cap, 3, 4, generator=g), "pooled": torch.randn(n_cap, 6, generator=g)}
    pred = {"seq": torch.randn(n_pred, 3, 4, generator=g), "pooled": torch.randn(n_pred, 6, generator=g)}
    return pred, targets


def _reference(pred, targets, weights):
    total = sum(weights.values())
    out = 0
    for n, w in weights.items():
        p = pred[n].flatten(1).double()
        t = targets[n].flatten(1).double()
        out = out + (p / p.norm(dim=1, keepdim=True)) @ (t / t.norm(dim=1, keepdim=True)).T * (w / total)
    return out


def test_similarity_is_weighted_mean_of_cosines_over_chunks():
    pred, targets = _data()
    index = CaptionIndex(targets, ["seq", "pooled"], {"seq": 3.0, "pooled": 1.0})
    assert len(index) == CHUNK_ROWS + 7  # built over more than one chunk
    sim = index.similarity(pred)
    assert sim.shape == (5, CHUNK_ROWS + 7) and sim.dtype == torch.float32
    np.testing.assert_allclose(sim.double().numpy(), _reference(pred, targets, {"seq": 3.0, "pooled": 1.0}).numpy(),
                               atol=1e-6)
    # a name missing from the weights counts 1 (the trainer's loss-weight dicts)
    half = CaptionIndex(targets, ["seq", "pooled"], {"seq": 1.0}).similarity(pred)
    np.testing.assert_allclose(half.numpy(), _reference(pred, targets, {"seq": 1, "pooled": 1}).numpy(), atol=1e-6)


def test_matches_metrics_caption_similarity_and_zero_rows():
    from seeingsounds.evaluation.metrics import caption_similarity

    pred, targets = _data()
    pred["seq"][0] = 0  # a zero vector: cosine 0 with everything, never NaN
    ours = CaptionIndex(targets).similarity(pred).numpy()
    ref = caption_similarity({k: v.numpy() for k, v in pred.items()}, {k: v.numpy() for k, v in targets.items()})
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert np.isfinite(ours).all()


def test_low_precision_storage_keeps_the_ranking():
    pred, targets = _data(n_cap=20)
    exact = CaptionIndex(targets).similarity(pred)
    half = CaptionIndex(targets, dtype="fp16")
    assert all(t.dtype == torch.float16 for t in half.targets.values())
    approx = half.similarity(pred)
    assert approx.dtype == torch.float32
    assert (approx - exact).abs().max() < 5e-3
    assert torch.equal(approx.argmax(1), exact.argmax(1))


def test_topk_best_first_ties_by_row():
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    index = CaptionIndex(targets)
    values, rows = index.topk(torch.tensor([[2.0, 0.0]]), k=3)
    assert rows.tolist() == [[0, 2, 1]]
    np.testing.assert_allclose(values.numpy(), [[1.0, 1.0, 0.0]], atol=1e-7)
    assert index.topk(torch.tensor([[2.0, 0.0]]), k=99)[1].shape == (1, 4)  # clipped to the captions


def test_mean_mode_and_errors():
    pred, targets = _data(n_cap=4)
    mean = CaptionIndex({"seq": targets["seq"]}, sequence="mean").similarity({"seq": pred["seq"]})
    p, t = pred["seq"].mean(1), targets["seq"].mean(1)
    ref = torch.nn.functional.normalize(p, dim=1) @ torch.nn.functional.normalize(t, dim=1).T
    np.testing.assert_allclose(mean.numpy(), ref.numpy(), atol=1e-6)
    index = CaptionIndex(targets)
    with pytest.raises(ConfigError, match="shape"):
        index.similarity({"seq": torch.zeros(1, 3, 5), "pooled": torch.zeros(1, 6)})
    with pytest.raises(ConfigError, match="lacks"):
        index.similarity({"seq": pred["seq"]})
    with pytest.raises(ConfigError, match="lack"):
        CaptionIndex(targets, ["nope"])
    with pytest.raises(ConfigError, match="number of captions"):
        CaptionIndex({"a": torch.zeros(2, 3), "b": torch.zeros(3, 3)})


def test_select_keeps_rows_in_order():
    pred, targets = _data(n_cap=10)
    index = CaptionIndex(targets)
    sub = index.select([7, 2])
    assert len(sub) == 2 and len(index) == 10
    np.testing.assert_allclose(sub.similarity(pred).numpy(), index.similarity(pred).numpy()[:, [7, 2]], atol=1e-7)


def test_from_rows_reads_a_chunk_at_a_time_and_equals_the_whole():
    pred, targets = _data(n_cap=2 * CHUNK_ROWS + 3)
    asked = []

    def read(rows):
        rows = list(rows)
        asked.append(len(rows))
        return {n: t[rows].half() for n, t in targets.items()}  # stored as fp16, like a run's targets

    index = CaptionIndex.from_rows(read, 2 * CHUNK_ROWS + 3, ["seq", "pooled"])
    assert asked == [CHUNK_ROWS, CHUNK_ROWS, 3]
    whole = CaptionIndex({n: t.half() for n, t in targets.items()})
    np.testing.assert_allclose(index.similarity(pred).numpy(), whole.similarity(pred).numpy(), atol=1e-6)
