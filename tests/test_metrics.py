"""Metrics on hand-worked values (METRICS.md): caption retrieval, AIC, AIS, R@k."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seeingsounds.evaluation.metrics import (
    aic,
    ais,
    caption_retrieval,
    caption_similarity,
    cosine_matrix,
    l2_normalize,
    recall_at_k,
    target_ranks,
)


def test_l2_normalize_keeps_zero_rows():
    out = l2_normalize([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_cosine_matrix_is_scale_free_and_accepts_torch():
    a = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    b = np.array([[0.0, 5.0], [3.0, 3.0]])
    np.testing.assert_allclose(cosine_matrix(a, b), [[0.0, 1 / math.sqrt(2)], [1 / math.sqrt(2), 1.0]])


def test_caption_similarity_arrays_flatten_vs_mean():
    # pred: 1 sample, 2 tokens of width 2; captions: 2 targets
    pred = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    targets = np.array([[[0.0, 1.0], [1.0, 0.0]],  # same tokens, swapped order
                        [[1.0, 0.0], [0.0, 1.0]]])  # identical
    flat = caption_similarity(pred, targets)
    np.testing.assert_allclose(flat, [[0.0, 1.0]])  # flattened: token order matters
    mean = caption_similarity(pred, targets, sequence="mean")
    np.testing.assert_allclose(mean, [[1.0, 1.0]])  # token means are equal


def test_caption_similarity_dict_averages_heads_with_weights():
    pred = {"seq": np.array([[[1.0, 0.0]]]), "pooled": np.array([[1.0, 0.0]])}
    targets = {"seq": np.array([[[1.0, 0.0]], [[0.0, 1.0]]]), "pooled": np.array([[0.0, 1.0], [1.0, 1.0]])}
    # seq cosines [1, 0]; pooled cosines [0, 1/sqrt2]
    np.testing.assert_allclose(caption_similarity(pred, targets), [[0.5, 0.5 / math.sqrt(2)]])
    np.testing.assert_allclose(caption_similarity(pred, targets, weights={"seq": 3, "pooled": 1}),
                               [[0.75, 0.25 / math.sqrt(2)]])
    np.testing.assert_allclose(caption_similarity(pred, targets, weights={"pooled": 2.0}), [[0.0, 1 / math.sqrt(2)]])


def test_caption_similarity_rejects_mismatches():
    with pytest.raises(ValueError, match="lack"):
        caption_similarity({"a": np.ones((1, 2))}, {"b": np.ones((1, 2))})
    with pytest.raises(ValueError, match="both"):
        caption_similarity(np.ones((1, 2)), {"a": np.ones((1, 2))})
    with pytest.raises(ValueError, match="sequence"):
        caption_similarity(np.ones((1, 2)), np.ones((1, 2)), sequence="max")
    with pytest.raises(ValueError, match="agree"):
        caption_similarity(np.ones((1, 2, 3)), np.ones((1, 3, 3)))


def test_target_ranks_count_ties_against_target():
    s = np.array([[0.5, 0.5, 0.1], [0.9, 0.2, 0.3]])
    np.testing.assert_array_equal(target_ranks(s, [0, 2]), [2, 2])
    np.testing.assert_array_equal(target_ranks(s, [2, 0]), [3, 1])


def test_caption_retrieval_hand_worked():
    targets = np.eye(3)
    pred = np.array([[1.0, 0.0, 0.0],   # true 0: rank 1
                     [0.0, 0.0, 1.0],   # true 1: cos 0, tied with caption 0 -> rank 3
                     [0.6, 0.8, 0.0]])  # true 0: caption 1 better -> rank 2
    out = caption_retrieval(pred, targets, [0, 1, 0], k=2)
    assert out["top1"] == pytest.approx(100 / 3)
    assert out["topk"] == pytest.approx(200 / 3)
    assert out["mean_cosine"] == pytest.approx((1.0 + 0.0 + 0.6) / 3)
    assert out["mean_rank"] == pytest.approx(2.0)
    assert out["n"] == 3 and out["k"] == 2
    assert caption_retrieval(pred, targets, [0, 1, 0], k=10)["topk"] == 100.0  # k > captions


def test_caption_retrieval_empty_is_nan():
    out = caption_retrieval(np.zeros((0, 3)), np.eye(3), [], k=5)
    assert math.isnan(out["top1"]) and math.isnan(out["mean_cosine"]) and out["n"] == 0


def test_aic_hand_worked_and_ties_are_misses():
    classes = np.array([[1.0, 0.0], [0.0, 1.0]])
    images = np.array([[2.0, 1.0], [1.0, 3.0], [1.0, 1.0], [5.0, 0.1]])
    # predictions: 0, 1, tie, 0 ; labels 0, 0, 0, 0 -> hits 1, 0, 0 (tie), 1
    assert aic(images, classes, [0, 0, 0, 0]) == pytest.approx(50.0)
    assert aic(images[[2]], classes, [1]) == 0.0  # a tie never counts as a hit
    assert math.isnan(aic(np.zeros((0, 2)), classes, []))


def test_aic_rejects_bad_labels():
    with pytest.raises(ValueError, match="index"):
        aic(np.eye(2), np.eye(2), [0, 2])


def test_ais_hand_worked_strict_ties():
    # 2-d unit vectors; image i, its audio a_i, the pool = the other audios
    img = np.array([[1.0, 0.0], [1.0, 0.0]])
    aud = np.array([[1.0, 1.0], [0.0, 1.0]])
    # image 0: s+ = cos(45deg)=0.707 ; pool (other audio) a_1: cos = 0 -> win -> 1/1
    # image 1: s+ = 0 ; pool a_0: 0.707 -> loss -> 0/1
    assert ais(img, aud) == pytest.approx(50.0)
    # a third audio identical in direction to a_1 ties image 1's positive: strict -> loss
    pool = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 2.0], [-1.0, 0.0]])
    # image 0 pool = {a_1? no: rows equal to a_0 excluded} -> rows 1,2,3: cos 0, 0, -1 -> 3/3
    # image 1 pool: rows equal (after normalisation) to a_1 excluded -> rows 0, 3: 0.707 (loss), -1 (win) -> 1/2
    assert ais(img, aud, pool) == pytest.approx(100 * (1.0 + 0.5) / 2)
    # without exclusion the own audio stays in and always loses (s+ > s+ is false)
    assert ais(img, aud, pool, exclude_self=False) == pytest.approx(100 * (3 / 4 + 1 / 4) / 2)


def test_ais_all_equal_scores_zero_and_empty_is_nan():
    img = np.array([[1.0, 0.0], [1.0, 0.0]])
    aud = np.array([[0.0, 1.0], [0.0, -1.0]])  # both orthogonal to the images: every pair ties
    assert ais(img, aud) == 0.0
    assert math.isnan(ais(np.zeros((0, 2)), np.zeros((0, 2))))
    assert math.isnan(ais(img[:1], aud[:1]))  # the pool minus itself is empty


def test_recall_at_k_hand_worked():
    gallery = np.eye(3)
    queries = np.array([[1.0, 0.5, 0.0], [0.2, 0.1, 0.7], [0.0, 1.0, 1.0]])
    # targets: q0->1 (rank 2), q1->0 (rank 2), q2->2 (tie with 1 -> rank 2)
    assert recall_at_k(queries, gallery, [1, 0, 2], k=1) == 0.0
    assert recall_at_k(queries, gallery, [1, 0, 2], k=2) == 100.0
    # targets q0->0 (rank 1), q1->2 (rank 1), q2->1 (tied with 2 -> rank 2): 2 of 3 at k=1
    assert recall_at_k(queries, gallery, [0, 2, 1], k=1) == pytest.approx(200 / 3)
    assert recall_at_k(queries, gallery, [1, 0, 2], k=50) == 100.0  # k > gallery
    assert math.isnan(recall_at_k(np.zeros((0, 3)), gallery, [], k=5))
    with pytest.raises(ValueError, match="k must"):
        recall_at_k(queries, gallery, [0, 0, 0], k=0)


def test_caption_similarity_chunks_match_direct_cosine_and_accept_fp16_torch():
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((70, 3, 5))
    targets = rng.standard_normal((130, 3, 5))  # more rows than one chunk on both sides
    direct = cosine_matrix(pred.reshape(70, -1), targets.reshape(130, -1))
    np.testing.assert_allclose(caption_similarity(pred, targets), direct, atol=1e-6)
    half = caption_similarity(torch.tensor(pred, dtype=torch.float16), torch.tensor(targets, dtype=torch.float16))
    np.testing.assert_allclose(half, direct, atol=5e-3)
    mean = caption_similarity(pred, targets, sequence="mean")
    np.testing.assert_allclose(mean, cosine_matrix(pred.mean(1), targets.mean(1)), atol=1e-6)


def test_nan_similarity_is_never_a_hit():
    # an inf in an embedding makes its cosines NaN; `x >= nan` is False, which once gave rank 0 (a hit)
    classes = np.eye(2)
    images = np.array([[np.inf, 0.0], [1.0, 0.0]])
    assert aic(images, classes, [0, 0]) == pytest.approx(50.0)
    assert recall_at_k(images, classes, [0, 0], k=1) == pytest.approx(50.0)
    np.testing.assert_array_equal(target_ranks(np.array([[np.nan, 0.2], [0.5, np.nan]]), [0, 0]), [2, 1])
    assert caption_retrieval(images, classes, [0, 0], k=1)["top1"] == pytest.approx(50.0)


def test_ais_exclusion_matches_brute_force_on_a_larger_set():
    rng = np.random.default_rng(0)
    img, aud = rng.standard_normal((30, 8)), rng.standard_normal((10, 8))
    per_image = np.repeat(aud, 3, axis=0)  # 3 images per clip, as evaluate does with 3 seeds
    expected = []
    for i in range(30):
        a = per_image[i] / np.linalg.norm(per_image[i])
        x = img[i] / np.linalg.norm(img[i])
        others = [r / np.linalg.norm(r) for j, r in enumerate(aud) if j != i // 3]
        expected.append(np.mean([x @ a > x @ r for r in others]))
    assert ais(img, per_image, aud) == pytest.approx(100 * np.mean(expected))
