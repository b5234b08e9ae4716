"""The one caption index: cosine similarity of predicted conditioning with a fixed set of caption targets.

Used by training validation, ``describe``, ``evaluate --no-images``, the demo and the web app, and behind
:func:`seeingsounds.evaluation.metrics.caption_similarity`. The similarity of a prediction with caption
``c`` is the weighted mean over the conditioning tensors ``names`` of the cosine of the flattened tensors
(``sequence="flatten"``; ``"mean"`` compares token means instead). A zero vector has cosine 0 with
everything.

The targets are normalised once, a chunk of rows at a time (FLUX-dev targets are 2 M values per caption),
and kept on the index's device in its dtype: fp32 on the CPU, bf16/fp16 on an accelerator
(:func:`seeingsounds.devices.resolve_dtype`). Predictions are normalised in fp32 and cast to that dtype for
the product; similarities come back as fp32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from seeingsounds.devices import resolve_device, resolve_dtype
from seeingsounds.errors import ConfigError

SEQUENCE_MODES = ("flatten", "mean")
#: target rows normalised at a time when the index is built (bounds the fp32 working copy)
CHUNK_ROWS = 64


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    array = np.asarray(x)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32 if array.dtype != np.float16 else None))


def _unit_rows(x: torch.Tensor, sequence: str) -> torch.Tensor:
    """Rows of ``x`` ([n, D] or [n, L, D]) as fp32 unit vectors [n, F] (zero rows stay zero)."""
    x = x.float()
    if x.ndim == 3 and sequence == "mean":
        x = x.mean(dim=1)
    x = x.flatten(1)
    norm = x.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, x / norm.clamp_min(1e-12), torch.zeros_like(x))


class CaptionIndex:
    """Caption targets ready for retrieval: ``similarity(pred) -> [B, N]``, ``topk(pred, k)``.

    Args:
        targets: ``name -> [N, ...]`` caption targets (tensors or arrays), or one array/tensor.
        names: the conditioning tensors compared (default: every key of ``targets``).
        weights: ``name -> weight`` in the mean over tensors (a missing name gets 1; renormalised to sum 1).
        device: where the targets live and the products run (default: the targets' own device;
            ``"auto"``: the accelerator when there is one).
        dtype: storage/compute dtype of the targets (default: fp32 on the CPU, bf16 where supported, else fp16).
        sequence: ``"flatten"`` (cosine of the [L*D] vectors) or ``"mean"`` (cosine of token means).

    Drop-in for the former ``training.objective.CaptionIndex`` (same constructor, ``names``,
    ``weights``, ``targets``, ``to`` and ``similarity``).
    """

    def __init__(self, targets: Mapping[str, Any] | Any, names: Sequence[str] | None = None,
                 weights: Mapping[str, float] | None = None, *, device: str | torch.device | None = None,
                 dtype: str | torch.dtype | None = None, sequence: str = "flatten"):
        if sequence not in SEQUENCE_MODES:
            raise ConfigError(f"sequence must be one of {SEQUENCE_MODES}, got {sequence!r}")
        self.single = not isinstance(targets, Mapping)
        if self.single:
            targets = {"": targets}
        self.names = list(targets) if names is None else list(names)
        if not self.names:
            raise ConfigError("a caption index needs at least one conditioning tensor")
        missing = [n for n in self.names if n not in targets]
        if missing:
            raise ConfigError(f"caption targets lack {missing}; they have {list(targets)}")
        raw = {n: _as_tensor(targets[n]) for n in self.names}
        sizes = {n: int(t.shape[0]) for n, t in raw.items()}
        if len(set(sizes.values())) != 1:
            raise ConfigError(f"caption targets disagree on the number of captions: {sizes}")
        w = {n: float((weights or {}).get(n, 1.0)) for n in self.names}
        if any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
            raise ConfigError(f"weights must be non-negative with a positive sum, got {w}")
        total = sum(w.values())
        self.weights = {n: v / total for n, v in w.items()}
        first = next(iter(raw.values()))
        self.device = first.device if device is None else resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.sequence = sequence
        self.shapes = {n: tuple(t.shape[1:]) for n, t in raw.items()}
        self.targets = {n: self._normalise(t) for n, t in raw.items()}

    @classmethod
    def from_rows(cls, read: Callable[[Sequence[int]], Mapping[str, torch.Tensor]], num_rows: int,
                  names: Sequence[str], weights: Mapping[str, float] | None = None, *,
                  device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                  sequence: str = "flatten") -> CaptionIndex:
        """An index over ``num_rows`` captions read ``CHUNK_ROWS`` at a time by ``read(rows) -> {name: [k, ...]}``
        (e.g. :meth:`seeingsounds.runs.RowFile.read`): only one chunk of raw targets is ever in memory."""
        first = read(range(min(CHUNK_ROWS, num_rows)))
        index = cls({n: first[n] for n in names}, names, weights, device=device, dtype=dtype, sequence=sequence)
        parts = {n: [t] for n, t in index.targets.items()}
        for start in range(CHUNK_ROWS, num_rows, CHUNK_ROWS):
            chunk = read(range(start, min(start + CHUNK_ROWS, num_rows)))
            for n in names:
                parts[n].append(index._normalise(_as_tensor(chunk[n])))
        index.targets = {n: torch.cat(p) for n, p in parts.items()}
        return index

    def _normalise(self, t: torch.Tensor) -> torch.Tensor:
        """Unit rows [N, F] on the device in the index dtype, built ``CHUNK_ROWS`` rows at a time."""
        parts = [_unit_rows(t[i : i + CHUNK_ROWS].to(self.device), self.sequence).to(self.dtype)
                 for i in range(0, t.shape[0], CHUNK_ROWS)]
        if not parts:
            width = int(np.prod(t.shape[1:])) if self.sequence == "flatten" or t.ndim < 3 else int(t.shape[-1])
            return torch.zeros(0, width, device=self.device, dtype=self.dtype)
        return torch.cat(parts)

    def __len__(self) -> int:
        return int(next(iter(self.targets.values())).shape[0])

    def to(self, device: str | torch.device, dtype: str | torch.dtype | None = None) -> CaptionIndex:
        """Move the (already normalised) targets; ``dtype`` defaults to the current one."""
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        if dtype is not None:
            self.dtype = resolve_dtype(dtype, self.device)
        self.targets = {n: t.to(self.device, self.dtype) for n, t in self.targets.items()}
        return self

    def select(self, rows: Sequence[int]) -> CaptionIndex:
        """A new index over the captions ``rows`` of this one (in that order; nothing re-normalised)."""
        picked = torch.as_tensor(list(rows), dtype=torch.long, device=self.device)
        out = object.__new__(CaptionIndex)
        out.__dict__.update(self.__dict__)
        out.targets = {n: t.index_select(0, picked) for n, t in self.targets.items()}
        return out

    def _check(self, name: str, p: torch.Tensor) -> None:
        if tuple(p.shape[1:]) != self.shapes[name]:
            label = f"{name!r} " if name else ""
            raise ConfigError(f"prediction {label}has shape {tuple(p.shape)}; the caption targets are "
                              f"[N, {', '.join(map(str, self.shapes[name]))}]")

    @torch.no_grad()
    def similarity_rows(self, predictions: Iterable[Mapping[str, Any]]) -> np.ndarray:
        """``[clips, N]`` float32 similarities of a stream of prediction batches: only the (small) rows are
        kept, never the predictions (a FLUX-dev prediction is ~2 M values per clip)."""
        rows = [self.similarity(pred).float().cpu().numpy() for pred in predictions]
        return np.concatenate(rows) if rows else np.zeros((0, len(self)), dtype=np.float32)

    def similarity(self, pred: Mapping[str, Any] | Any) -> torch.Tensor:
        """``[B, N]`` fp32 weighted mean over tensors of cosine(prediction, caption target), on the device."""
        if not isinstance(pred, Mapping):
            if not self.single:
                raise ConfigError(f"give the prediction as a dict with {self.names}")
            pred = {"": pred}
        out: torch.Tensor | None = None
        for n in self.names:
            if n not in pred:
                raise ConfigError(f"the prediction lacks {n!r}; it has {list(pred)}")
            p = _as_tensor(pred[n])
            self._check(n, p)
            unit = _unit_rows(p.to(self.device), self.sequence).to(self.dtype)
            sim = (unit @ self.targets[n].T).float() * self.weights[n]
            out = sim if out is None else out + sim
        assert out is not None
        return out

    def topk(self, pred: Mapping[str, Any] | Any, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` most similar captions per prediction, best first (ties: lower row first):
        ``(similarities [B, k], rows [B, k])``, both on the CPU."""
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        sim = self.similarity(pred).cpu()
        values, rows = torch.sort(sim, dim=1, descending=True, stable=True)
        k = min(int(k), sim.shape[1])
        return values[:, :k], rows[:, :k]
