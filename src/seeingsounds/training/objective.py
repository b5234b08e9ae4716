"""The alignment objective (paper Eq. 6 and Eq. 7) and cheap caption retrieval for validation.

Eq. 6: for every pair (audio, caption) the loss is the sum over conditioning tensors of the
squared error between prediction and the generator's own target. We use the *mean* squared error
per tensor (the sum divided by its element count, so a [512, 4096] sequence and a [768] vector
start on the same scale) times a per-tensor weight (default 1). Unaligned tensors (ablations)
have no head and no loss.

Eq. 7 adds two terms, each normalised by its own number of pairs: transformed pairs
``(T_j(a), f(t_y, d_j))`` (1 / nh) and mixed pairs ``(a_i + a_j, g(t_u, t_v))`` (1 / n(n-1)).
With minibatches drawn uniformly from all N pairs, giving pair i of term t the weight
``w_t * N / N_t`` makes the batch mean an unbiased estimate of
``sum_t w_t * mean_{pairs of t} L`` — which is exactly Eq. 6 when only original pairs exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from seeingsounds.errors import ConfigError

#: the terms of Eq. 7, in order
TERMS = ("original", "augmented", "mixed")


def check_target_weights(weights: Mapping[str, float], spec: Mapping[str, Any]) -> None:
    """Refuse loss weights of tensors the generator does not condition on."""
    unknown = sorted(set(weights) - set(spec))
    if unknown:
        raise ConfigError(f"loss weights for unknown tensors {unknown}; this generator has {list(spec)}")


def learning_rates(config: Any, preset: Any) -> dict[str, float]:
    """The run's ``{"sequence", "pooled"}`` learning rates: the options', else the preset's."""
    return {"sequence": config.lr_sequence or preset.lr_sequence, "pooled": config.lr_pooled or preset.lr_pooled}


def branch_optimizers(aligner: torch.nn.Module, spec: Mapping[str, Any], names: Sequence[str],
                      lr: Mapping[str, float], weight_decay: float) -> tuple[list[str], list[torch.optim.Optimizer]]:
    """One AdamW per branch: the sequence head(s) at ``lr["sequence"]``, the pooled head(s) at
    ``lr["pooled"]``; returns ``(branches, optimisers)`` for the branches that have heads."""
    groups: dict[str, list[Any]] = {"sequence": [], "pooled": []}
    for name in names:
        groups["pooled" if spec[name].pooled else "sequence"] += list(aligner.heads[name].parameters())
    branches = [b for b in ("sequence", "pooled") if groups[b]]
    return branches, [torch.optim.AdamW(groups[b], lr=lr[b], weight_decay=weight_decay) for b in branches]


def per_sample_loss(pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                    names: Sequence[str], weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """``L(a, t)`` per sample: ``sum_name w_name * mean((pred - target)^2)`` -> ``[B]`` (float32)."""
    weights = weights or {}
    total = None
    for name in names:
        diff = pred[name].float() - target[name]  # fp16/bf16 targets promote to fp32 element-wise
        loss = diff.pow(2).flatten(1).mean(1) * float(weights.get(name, 1.0))
        total = loss if total is None else total + loss
    if total is None:
        raise ValueError("no conditioning tensor to align")
    return total


def pair_weights(counts: Mapping[str, int], term_weights: Mapping[str, float]) -> dict[str, float]:
    """Per-pair weight of each term so that a uniform batch mean estimates Eq. 7 (see module doc)."""
    total = sum(int(c) for c in counts.values())
    return {t: float(term_weights.get(t, 1.0)) * total / int(c) for t, c in counts.items() if c}


def objective(per_sample: torch.Tensor, terms: torch.Tensor, counts: Mapping[str, int],
              term_weights: Mapping[str, float]) -> dict[str, torch.Tensor]:
    """Eq. 7 over a *complete* set of pairs (validation): ``{"loss", "loss_<term>"}``."""
    out: dict[str, torch.Tensor] = {}
    total = per_sample.new_zeros(())
    for i, term in enumerate(TERMS):
        mask = terms == i
        if counts.get(term, 0) and mask.any():
            mean = per_sample[mask].mean()
            out[f"loss_{term}"] = mean
            total = total + float(term_weights.get(term, 1.0)) * mean
    out["loss"] = total
    return out


def validation_metrics(per_sample: torch.Tensor, terms: torch.Tensor, hits: torch.Tensor,
                       term_weights: Mapping[str, float]) -> dict[str, float]:
    """``val_loss``, ``val_loss_<term>`` (Eq. 7 over every validation pair) and ``val_top1`` (the
    class-caption retrieval hit rate of the original pairs, in percent)."""
    counts = {t: int((terms == i).sum()) for i, t in enumerate(TERMS)}
    out = {k: float(v) for k, v in objective(per_sample, terms, counts, term_weights).items()}
    out["top1"] = float(100.0 * hits[terms == 0].mean()) if (terms == 0).any() else float("nan")
    return {f"val_{k}": v for k, v in out.items()}
