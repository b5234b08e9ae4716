"""Evaluation metrics (see ``METRICS.md``): caption retrieval, AIC, AIS and R@k.

Numpy (caption similarity through :class:`seeingsounds.retrieval.CaptionIndex`). Every function accepts numpy arrays, torch tensors or nested lists, and
L2-normalises embeddings itself before any cosine similarity (a zero vector stays zero, so its
cosine with everything is 0).

Conventions shared by all metrics:

* **Percent.** AIC, AIS, R@k and the top-1 / top-k of caption retrieval are percentages in
  [0, 100], as in the paper's tables. Mean cosines are plain cosines in [-1, 1].
* **Empty inputs.** A metric over zero queries / images returns ``nan`` (no evidence), never 0.
* **Ties are counted against the model.** A prediction is right only if it is *strictly* better
  than every wrong candidate: for top-1 (AIC, retrieval top-1) a tie between the true class and
  another class is a miss; for top-k the rank of the target is ``1 + #(candidates with
  similarity >= target's, other than the target)``. So a constant (collapsed) model scores 0,
  never chance-by-index-order. AIS uses strict ``>`` as METRICS.md prescribes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from seeingsounds.retrieval import CHUNK_ROWS, CaptionIndex

__all__ = [
    "l2_normalize",
    "cosine_matrix",
    "caption_similarity",
    "caption_retrieval",
    "retrieval_scores",
    "target_ranks",
    "aic",
    "ais",
    "recall_at_k",
]

SEQUENCE_MODES = ("flatten", "mean")


def _to_numpy(x: Any) -> np.ndarray:
    """A float64 numpy copy of an array, torch tensor (any device/dtype) or nested list."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def l2_normalize(x: Any, axis: int = -1) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    x = _to_numpy(x)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def cosine_matrix(a: Any, b: Any) -> np.ndarray:
    """Cosine similarity of every row of ``a`` [N, D] with every row of ``b`` [M, D] -> [N, M]."""
    a, b = _to_numpy(a), _to_numpy(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"cosine_matrix expects 2-d arrays [N, D] and [M, D], got {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding widths differ: {a.shape[1]} vs {b.shape[1]}")
    return l2_normalize(a) @ l2_normalize(b).T


def caption_similarity(
    pred: Any,
    caption_targets: Any,
    weights: Mapping[str, float] | None = None,
    sequence: str = "flatten",
) -> np.ndarray:
    """Cosine similarity of predicted conditioning with every caption target: [N, C] (float64).

    Args:
        pred: the aligner's predictions, an array ([N, D] or [N, L, D]) or a dict
            ``name -> array`` with one entry per conditioning tensor (e.g. ``prompt_embeds``
            [N, L, D] and ``pooled_prompt_embeds`` [N, D]).
        caption_targets: the captions' targets in the same form ([C, D] / [C, L, D] or a dict
            with the same names).
        weights: dicts only; ``name -> weight`` of each tensor's cosine matrix in the average
            (default: equal weights). Names missing from ``weights`` get weight 0; the weights
            are renormalised to sum to 1.
        sequence: how a sequence tensor [*, L, D] is compared: ``"flatten"`` (default: cosine
            of the [L*D] vectors, token order matters) or ``"mean"`` (cosine of the token means).

    The numbers of :class:`seeingsounds.retrieval.CaptionIndex` (fp32 on the CPU), which this builds
    and queries a chunk of predictions at a time. The average over tensors matters: with the paper's
    1e-7 learning rate the pooled head barely moves on short runs, so retrieval must not rest on one
    head alone.
    """
    if sequence not in SEQUENCE_MODES:
        raise ValueError(f"sequence must be one of {SEQUENCE_MODES}, got {sequence!r}")
    if isinstance(pred, Mapping) != isinstance(caption_targets, Mapping):
        raise ValueError("pred and caption_targets must both be arrays or both be dicts name -> array")
    if isinstance(pred, Mapping):
        names = list(pred)
        missing = [n for n in names if n not in caption_targets]
        if missing:
            raise ValueError(f"caption_targets lack {missing}; they have {list(caption_targets)}")
        if not names:
            raise ValueError("pred is an empty dict: nothing to compare")
        if weights is not None:
            unknown = set(weights) - set(names)
            if unknown:
                raise ValueError(f"weights name tensors that pred lacks: {sorted(unknown)}; pred has {names}")
            w = {n: float(weights.get(n, 0.0)) for n in names}
            if any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
                raise ValueError(f"weights must be non-negative with a positive sum, got {dict(weights)}")
            names = [n for n in names if w[n] > 0]
            weights = {n: w[n] for n in names}
        targets = {n: caption_targets[n] for n in names}
        preds = {n: pred[n] for n in names}
    else:
        targets, preds = caption_targets, pred
    first = next(iter(preds.values())) if isinstance(preds, Mapping) else preds
    for name, p in (preds.items() if isinstance(preds, Mapping) else [("pred", preds)]):
        t = targets[name] if isinstance(targets, Mapping) else targets
        p_shape, t_shape = tuple(np.shape(p)), tuple(np.shape(t))
        if len(p_shape) not in (2, 3):
            raise ValueError(f"pred must be [N, D] or [N, L, D], got shape {p_shape}")
        if len(p_shape) != len(t_shape) or p_shape[1:] != t_shape[1:]:
            raise ValueError(f"pred {p_shape} and caption_targets {t_shape} must agree except in the first axis")
    index = CaptionIndex(targets, weights=weights, device="cpu", dtype=torch.float32, sequence=sequence)
    n = int(np.shape(first)[0])
    out = np.zeros((n, len(index)), dtype=np.float64)
    for i in range(0, n, CHUNK_ROWS):
        chunk = {k: v[i : i + CHUNK_ROWS] for k, v in preds.items()} if isinstance(preds, Mapping) else preds[i : i + CHUNK_ROWS]
        out[i : i + CHUNK_ROWS] = index.similarity(chunk).double().numpy()
    return out


def target_ranks(similarity: Any, targets: Any) -> np.ndarray:
    """1-based rank of each row's target column, ties counted against the target.

    ``rank_i = 1 + #{j != t_i : S[i, j] >= S[i, t_i]}``.
    """
    s = _to_numpy(similarity)
    t = np.asarray(targets, dtype=np.int64).reshape(-1)
    if s.ndim != 2:
        raise ValueError(f"similarity must be [N, C], got {s.shape}")
    if t.shape[0] != s.shape[0]:
        raise ValueError(f"{t.shape[0]} targets for {s.shape[0]} rows")
    if t.size and (t.min() < 0 or t.max() >= s.shape[1]):
        raise ValueError(f"targets must index the {s.shape[1]} columns, got range [{t.min()}, {t.max()}]")
    if not t.size:
        return np.zeros(0, dtype=np.int64)
    # a NaN similarity (e.g. from an inf embedding) is no evidence: it must never rank first,
    # yet ``x >= nan`` is False for every x, which would give a NaN target rank 0, i.e. a hit
    s = np.where(np.isnan(s), -np.inf, s)
    own = s[np.arange(len(t)), t][:, None]
    return (s >= own).sum(axis=1).astype(np.int64)  # counts the target itself once -> 1-based


def _percent(hits: np.ndarray) -> float:
    return float("nan") if hits.size == 0 else float(100.0 * hits.mean())


def caption_retrieval(
    pred: Any,
    caption_targets: Any,
    labels: Sequence[int] | Any,
    k: int = 5,
    *,
    weights: Mapping[str, float] | None = None,
    sequence: str = "flatten",
) -> dict[str, float]:
    """Rank every caption for each prediction; ``labels[i]`` is the row of the true caption.

    Returns ``{"top1", "topk", "k", "mean_cosine", "mean_rank", "n"}``: top-1 and top-k
    accuracy in percent (ties count against the model, see the module docstring), the mean
    cosine between each prediction and its true caption (in [-1, 1]), the mean 1-based rank,
    and the number of predictions. ``k`` larger than the number of captions is clipped (top-k is
    then 100). Empty inputs give ``nan`` for every score.
    """
    return retrieval_scores(caption_similarity(pred, caption_targets, weights=weights, sequence=sequence), labels, k)


def retrieval_scores(similarity: Any, labels: Sequence[int] | Any, k: int = 5) -> dict[str, float]:
    """:func:`caption_retrieval`'s scores from a similarity matrix ``[N, C]`` (e.g. streamed through a
    :class:`~seeingsounds.retrieval.CaptionIndex`): ``{"top1", "topk", "k", "mean_cosine", "mean_rank", "n"}``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    sim = _to_numpy(similarity)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    ranks = target_ranks(sim, labels)
    own = sim[np.arange(len(labels)), labels] if labels.size else np.zeros(0)
    return {
        "top1": _percent(ranks <= 1),
        "topk": _percent(ranks <= k),
        "k": int(k),
        "mean_cosine": float(own.mean()) if own.size else float("nan"),
        "mean_rank": float(ranks.mean()) if ranks.size else float("nan"),
        "n": int(labels.size),
    }


def aic(image_embeds: Any, class_text_embeds: Any, labels: Sequence[int] | Any) -> float:
    """AIC: top-1 zero-shot accuracy (percent) of images against class-name text embeddings.

    ``labels[i]`` is the row of ``class_text_embeds`` of the class of the audio that produced
    image i. Prediction = argmax of cosine; a tie between the true class and another class is a
    miss (never resolved in the model's favour by index order). No images -> ``nan``.
    """
    sim = cosine_matrix(image_embeds, class_text_embeds)
    return _percent(target_ranks(sim, labels) <= 1)


def ais(image_embeds: Any, audio_embeds: Any, pool_embeds: Any | None = None,
        *, exclude_self: bool = True) -> float:
    """AIS: mean over images of the fraction of pool audios less similar than the image's own.

    Args:
        image_embeds: [N, D] CLIP (ViT-B/32) embeddings of the generated images.
        audio_embeds: [N, D] Wav2CLIP embeddings of each image's source audio (row-aligned).
        pool_embeds: [M, D] Wav2CLIP embeddings of the comparison pool R. ``None`` means the
            validation audios themselves (``audio_embeds``).
        exclude_self: drop from image i's pool every entry equal to its own audio embedding
            (METRICS.md: R holds "the *other* validation audios"). Equality is exact after
            normalisation, so several images generated from one clip all exclude that clip, and
            a pool that is exactly ``audio_embeds`` excludes row i. With ``False`` the own audio
            stays in the pool and always counts as a loss (``s+ > s+`` is false).

    ``AIS_i = 100 * #{r in R_i : cos(img_i, a_i) > cos(img_i, r)} / |R_i|`` with a strict ``>``
    (a tie is a loss). Images whose pool is empty are skipped; no usable image -> ``nan``.
    """
    img, aud = l2_normalize(image_embeds), l2_normalize(audio_embeds)
    pool = aud if pool_embeds is None else l2_normalize(pool_embeds)
    if img.ndim != 2 or aud.shape != img.shape:
        raise ValueError(f"image_embeds {img.shape} and audio_embeds {aud.shape} must both be [N, D]")
    if pool.ndim != 2 or (pool.size and pool.shape[1] != img.shape[1]):
        raise ValueError(f"pool_embeds must be [M, {img.shape[1]}], got {pool.shape}")
    if img.shape[0] == 0 or pool.shape[0] == 0:
        return float("nan")
    positive = np.einsum("nd,nd->n", img, aud)[:, None]  # [N, 1]
    negatives = img @ pool.T  # [N, M]
    keep = np.ones_like(negatives, dtype=bool)
    if exclude_self:  # row by row: an [N, M, D] comparison would not fit in memory for large sets
        for i in range(aud.shape[0]):
            keep[i] = ~np.all(pool == aud[i], axis=-1)
    sizes = keep.sum(axis=1)
    wins = ((positive > negatives) & keep).sum(axis=1)
    usable = sizes > 0
    if not usable.any():
        return float("nan")
    return float(100.0 * np.mean(wins[usable] / sizes[usable]))


def recall_at_k(query_embeds: Any, gallery_embeds: Any, targets: Sequence[int] | Any, k: int) -> float:
    """R@k (percent): queries whose target gallery row is among the k most similar.

    ``targets[i]`` is the gallery row that is right for query i (a class text or a ground-truth
    frame). Ties count against the query: the target's rank is 1 + the number of *other* gallery
    items at least as similar. ``k`` >= gallery size gives 100 (every target is within the
    whole gallery). No queries -> ``nan``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    sim = cosine_matrix(query_embeds, gallery_embeds)
    return _percent(target_ranks(sim, targets) <= k)
