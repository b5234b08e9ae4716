"""Precompute a dataset's frozen-model outputs into the feature cache (``seeingsounds cache``).

Encoder tokens of every clip (and of each effect chain asked for) and the targets of every class
caption plus the empty caption, computed where the models run best (:mod:`seeingsounds.devices`)
and shared across processes under ``accelerate launch`` / ``torchrun`` (each process encodes its
share, every entry is written once: :func:`seeingsounds.cache.share_work`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seeingsounds.cache import AudioItem, CacheStats, FeatureCache, launch_rank, recorded_failure
from seeingsounds.devices import resolve_device, resolve_dtype
from seeingsounds.errors import ConfigError
from seeingsounds.generators.base import release_memory
from seeingsounds.model import load_backend, load_encoder
from seeingsounds.paths import home
from seeingsounds.presets import Preset, get_preset


@dataclass
class PrecomputeResult:
    root: Path
    encoder_inputs: int
    audio: CacheStats
    targets: CacheStats
    #: this process's rank under a launcher (0 alone): only rank 0 needs to report
    rank: int = 0
    #: ``<file>: <why>`` of each audio file that cannot be decoded, skipped (``skip_bad``), sorted
    undecodable: list[str] = field(default_factory=list)


def precompute_dataset(dataset: Any, preset: Preset | str, cache: FeatureCache, *,
                       chains: Sequence[Sequence[tuple[str, Mapping[str, Any]]]] = (), include_test: bool = False,
                       device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                       batch_size: int = 16, progress: bool = True, skip_bad: bool = False) -> PrecomputeResult:
    """Cache the tokens of ``dataset``'s clips (train/val, ``include_test`` adds test; once plain and
    once per effect chain in ``chains``) and the targets of its captions and of ``""``.

    The audio encoder runs on ``device`` in fp32 (its precision is part of the cache key, as in
    ``train``) and is released before the text encoders load on ``device`` in ``dtype``
    (auto: bf16 where supported, fp16 on other accelerators, fp32 on the CPU). The cache folder and
    ``home()`` (where tiny models are built) are checked writable before any model loads.
    A clip that cannot be decoded fails naming the file; with ``skip_bad`` it is skipped (recorded in
    the cache, so ``train --skip-bad`` skips it without decoding it again) and listed in the result.
    """
    preset = get_preset(preset)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be an integer >= 1, got {batch_size!r}")
    # a wrong --cache-dir, SEEINGSOUNDS_HOME, device or dtype fails here, before any model loads
    cache.check_writable(outside=[("data folder (--data)", dataset.source)])
    home(writable=True)
    target = resolve_device(device)
    resolve_dtype(dtype, target)
    clips = [c for c in dataset.clips if include_test or c.split != "test"]
    items = [AudioItem.of(c.path, effects=chain) for chain in [[], *chains] for c in clips]
    encoder = load_encoder(preset, device=target)
    paths = cache.ensure_audio(encoder, items, batch_size=batch_size, progress=progress, skip_bad=skip_bad)
    undecodable = sorted({why for path in paths if (why := recorded_failure(path)) is not None}) if skip_bad else []
    del encoder
    release_memory()
    audio, cache.stats = cache.stats, CacheStats()
    texts = [t for label in dataset.labels for t in dataset.captions[label]] + [""]
    cache.ensure_targets(load_backend(preset), texts, device=target, dtype=dtype, batch_size=batch_size,
                         progress=progress)
    targets, cache.stats = cache.stats, CacheStats()
    return PrecomputeResult(cache.root, len(items), audio, targets, launch_rank(), undecodable)
