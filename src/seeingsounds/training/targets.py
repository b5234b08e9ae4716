"""The target store: the generator's caption targets of a run, stored once and read per batch.

The store is the run's ``caption_targets.safetensors`` (fp16, row-aligned with ``captions.json``,
:mod:`seeingsounds.runs`): it is what ``describe`` and ``evaluate`` read too, so the run holds
one copy of its targets. It is written a chunk of captions at a time from the feature cache (or
from the text encoders directly without a cache), never holding all targets in memory, and read
row by row: a batch reads only its own rows. No fp32 copy of all targets exists anywhere.

On an accelerator the class and edited-caption targets (the rows most batches use) are kept on
the device in the training dtype when they fit a memory budget (``target_memory_gb``, default a
quarter of the device's memory); the rest stream from the file.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from seeingsounds.devices import DTYPES
from seeingsounds.retrieval import CaptionIndex
from seeingsounds.runs import RowFile, write_row_file

#: captions encoded / copied into the store at a time
CHUNK = 32
#: validation's class-caption targets are held as one retrieval index (fp32) up to this size; larger
#: sets (FLUX-dev: 8 MiB a caption) are streamed from the store at each validation batch
INDEX_BYTES = 1 << 30


def captions_digest(texts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def device_budget_bytes(device: torch.device, budget_gb: float | None) -> int:
    """Bytes of targets allowed to live on ``device`` (0 on the CPU: there they stream)."""
    if device.type == "cpu":
        return 0
    if budget_gb is not None:
        return int(budget_gb * (1 << 30))
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory // 4
    return 0


class TargetStore:
    """Row access to a run's caption targets: ``gather(rows) -> {name: [B, ...]}`` (fp32, on ``device``)."""

    def __init__(self, path: str | Path, names: Sequence[str], device: torch.device | str = "cpu"):
        self.file = RowFile(path)
        self.names = list(names)
        self.device = torch.device(device)
        self._slot: torch.Tensor | None = None  # row -> index into the resident table, -1: streamed
        self._table: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.file)

    @property
    def row_bytes(self) -> int:
        """Bytes of one row (all tensors) in the file's dtype."""
        return sum(self.file.row_bytes(n) for n in self.names)

    @property
    def resident_rows(self) -> int:
        return 0 if self._slot is None else int((self._slot >= 0).sum())

    def keep_resident(self, rows: Sequence[int], budget_bytes: int, dtype: torch.dtype) -> bool:
        """Copy ``rows`` to the device in ``dtype`` if they fit ``budget_bytes``; whether they did."""
        rows = sorted(set(int(r) for r in rows))
        need = len(rows) * sum(math.prod(self.file.row_shape(n)) for n in self.names) * (torch.finfo(dtype).bits // 8)
        if not rows or need > budget_bytes:
            return False
        self._table = {n: torch.empty(len(rows), *self.file.row_shape(n), dtype=dtype, device=self.device)
                       for n in self.names}
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            for n, t in self.file.read(chunk, self.names).items():
                self._table[n][start : start + len(chunk)] = t.to(self.device, dtype)
        self._slot = torch.full((len(self),), -1, dtype=torch.long)
        self._slot[torch.tensor(rows)] = torch.arange(len(rows))
        return True

    def read(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        """The stored rows (file dtype, CPU)."""
        return self.file.read([int(r) for r in rows], self.names)

    def gather(self, rows: torch.Tensor | Sequence[int]) -> dict[str, torch.Tensor]:
        """Targets ``{name: [len(rows), ...]}`` on the device, in the stored dtype (fp16; the resident
        table's dtype when rows are resident): resident rows from the device table, the others read
        from the file. The loss computes in fp32 by type promotion, without an fp32 copy."""
        rows = torch.as_tensor(rows, dtype=torch.long).cpu()
        if self._slot is None:
            return {n: t.to(self.device, non_blocking=True) for n, t in self.read(rows.tolist()).items()}
        slots = self._slot[rows]
        here, streamed = (slots >= 0).nonzero().flatten(), (slots < 0).nonzero().flatten()
        read = self.read(rows[streamed].tolist()) if len(streamed) else {}
        out = {}
        for n in self.names:
            table = self._table[n]
            t = torch.empty(len(rows), *self.file.row_shape(n), dtype=table.dtype, device=self.device)
            if len(here):
                t[here.to(self.device)] = table[slots[here].to(self.device)]
            if len(streamed):
                t[streamed.to(self.device)] = read[n].to(self.device, table.dtype)
            out[n] = t
        return out

    def close(self) -> None:
        self.file.close()
        self._table = {}


def open_store(path: str | Path, names: Sequence[str], device: torch.device, *, resident: Sequence[int],
               budget_gb: float | None, mixed_precision: str) -> TargetStore:
    """The run's store, read onto ``device``, with the ``resident`` rows kept there in the training
    dtype (accelerate's ``mixed_precision``: bf16 / fp16 / no) when they fit the budget."""
    store = TargetStore(path, names, device)
    store.keep_resident(resident, device_budget_bytes(device, budget_gb), DTYPES.get(mixed_precision, torch.float32))
    return store


def write_store(path: str | Path, texts: Sequence[str], shapes: Mapping[str, Sequence[int]],
                targets_of: Callable[[list[str]], Mapping[str, torch.Tensor]], *,
                metadata: Mapping[str, str] | None = None, progress: bool = False) -> Path:
    """Write the store for ``texts``: ``targets_of(chunk)`` gives ``{name: [len(chunk), ...]}`` for
    :data:`CHUNK` captions at a time (only one chunk is in memory)."""
    from tqdm.auto import tqdm

    texts = list(texts)
    bar = tqdm(total=len(texts), desc="writing caption targets", unit="caption",
               disable=not progress or len(texts) < 4 * CHUNK)

    def chunks() -> Any:
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start : start + CHUNK]
            yield start, targets_of(chunk)
            bar.update(len(chunk))

    try:
        meta = {"captions_sha256": captions_digest(texts), **dict(metadata or {})}
        return write_row_file(path, shapes, len(texts), chunks(), dtype=torch.float16, metadata=meta)
    finally:
        bar.close()


def store_matches(path: str | Path, texts: Sequence[str], metadata: Mapping[str, str]) -> bool:
    """Whether the store at ``path`` already holds exactly these captions' targets (resume)."""
    if not Path(path).is_file():
        return False
    try:
        with RowFile(path) as f:
            meta = f.metadata
            return (len(f) == len(texts) and meta.get("captions_sha256") == captions_digest(texts)
                    and all(meta.get(k) == v for k, v in metadata.items()))
    except Exception:  # unreadable: rebuild it  # noqa: BLE001
        return False


def cached_targets(cache: Any, backend: Any) -> Callable[[list[str]], dict[str, torch.Tensor]]:
    """``targets_of`` reading verified feature-cache entries (a corrupt one is recomputed)."""
    def targets_of(chunk: list[str]) -> dict[str, torch.Tensor]:
        per = [cache.load_targets(backend, text) for text in chunk]
        return {n: torch.stack([p[n] for p in per]) for n in per[0]}
    return targets_of


def encoded_targets(backend: Any, pipe: Any, batch_size: int) -> Callable[[list[str]], dict[str, torch.Tensor]]:
    """``targets_of`` running the text encoders (no feature cache)."""
    def targets_of(chunk: list[str]) -> dict[str, torch.Tensor]:
        return backend.encode_captions(chunk, pipe=pipe, batch_size=batch_size, out_dtype=torch.float16)
    return targets_of


def prepare_store(path: str | Path, texts: Sequence[str], backend: Any, *, cache: Any, device: torch.device,
                  dtype: str | torch.dtype | None, batch_size: int, progress: bool, main: bool, resume: bool,
                  wait: Callable[[], None]) -> tuple[dict[str, torch.Tensor], int]:
    """Write the target store of ``texts`` at ``path`` (by the ``main`` process; kept on ``resume``
    when it already holds them) and return ``(null conditioning, targets encoded)``.

    With a feature cache the targets are encoded there (missing ones only, the text encoders on
    ``device`` in ``dtype``; several processes share the work) and copied into the store a chunk at a time;
    without one the text encoders run once, here, and write the store directly. The null
    conditioning is the targets of ``""``. ``wait`` is the processes' barrier.
    """
    texts = list(texts)
    meta = {"generator": backend.name, "model_id": str(backend.model_id),
            "max_sequence_length": str(backend.max_sequence_length)}
    shapes = {n: tuple(s.shape) for n, s in backend.conditioning_spec().items()}
    reuse = resume and store_matches(path, texts, meta)
    if cache is not None:
        written = cache.stats.written
        if not reuse:
            cache.ensure_targets(backend, texts + [""], device=device, dtype=dtype, batch_size=batch_size,
                                 progress=progress)
            if main:
                write_store(path, texts, shapes, cached_targets(cache, backend), metadata=meta, progress=progress)
        null = cache.load_targets(backend, "", device=device, dtype=dtype)
        encoded = cache.stats.written - written
    else:
        from seeingsounds.devices import resolve_dtype
        from seeingsounds.generators.base import release_memory

        pipe = backend.load_text_pipeline(device=device, dtype=resolve_dtype(dtype, device))
        targets_of = encoded_targets(backend, pipe, batch_size)
        if main and not reuse:
            write_store(path, texts, shapes, targets_of, metadata=meta, progress=progress)
        null = {n: t[0] for n, t in targets_of([""]).items()}
        encoded = 1 + (0 if reuse else len(texts))
        del pipe, targets_of
        release_memory()
    wait()
    return {n: t.float() for n, t in null.items()}, encoded


class RowRetrieval:
    """Similarity of predictions with some rows of a store (validation: the class captions).

    One :class:`~seeingsounds.retrieval.CaptionIndex` when its fp32 copy fits ``max_bytes``; else
    the rows are read and normalised :data:`CHUNK` at a time for every call (FLUX-dev: 8 MiB a
    caption in fp32, 2.6 GB for VGGSound's 309 classes).
    """

    def __init__(self, store: TargetStore, rows: Sequence[int], weights: Mapping[str, float] | None,
                 device: torch.device, max_bytes: int = INDEX_BYTES):
        self.store, self.rows, self.weights, self.device = store, list(rows), dict(weights or {}), device
        fits = len(self.rows) * store.row_bytes * 2 <= max_bytes  # row_bytes: fp16
        self.index = self._index(self.rows) if fits else None

    def _index(self, rows: list[int]) -> CaptionIndex:
        return CaptionIndex(self.store.read(rows), self.store.names, self.weights, device=self.device)

    def similarity(self, pred: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[B, len(rows)]`` (fp32)."""
        if self.index is not None:
            return self.index.similarity(pred)
        return torch.cat([self._index(self.rows[i : i + CHUNK]).similarity(pred)
                          for i in range(0, len(self.rows), CHUNK)], dim=1)
