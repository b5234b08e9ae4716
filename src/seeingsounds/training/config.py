"""Every hyper-parameter of a training run, recorded in ``<out>/config.json``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seeingsounds.errors import ConfigError

#: the largest seed numpy's legacy seeding (which accelerate's set_seed calls) accepts
SEED_MAX = 2**32 - 1

DEVICES = ("auto", "cpu", "cuda", "mps")
CAPTION_ENGINES = ("template", "llm")


@dataclass
class TrainConfig:
    """A training run (paper Eq. 6, or Eq. 7 when ``augment`` / ``mix_pairs`` are set).

    ``None`` for ``lr_sequence``, ``lr_pooled``, ``order``, ``pooling`` and ``hidden_dim`` means
    the preset's value.
    """

    preset: str | dict[str, Any]
    data: str
    captions: str
    out: str
    epochs: int = 50
    batch_size: int = 32
    lr_sequence: float | None = None
    lr_pooled: float | None = None
    weight_decay: float = 0.01
    patience: int = 5
    min_delta: float = 0.0
    seed: int = 0
    val_fraction: float = 0.1
    skip_bad: bool = False
    use_cache: bool = True
    cache_dir: str | None = None
    cache_dtype: str = "float16"
    resume: bool = False
    align: str = "all"
    pooling: str | None = None
    order: str | None = None
    hidden_dim: int | None = None
    dropout: float = 0.0
    #: per-tensor loss weights, ``{name: weight}`` (default 1 each)
    target_weights: dict[str, float] = field(default_factory=dict)
    device: str = "auto"
    #: the text encoders' dtype while computing caption targets (``auto``: bf16 on an accelerator
    #: that supports it, fp16 on other accelerators, fp32 on the CPU; :mod:`seeingsounds.devices`)
    dtype: str = "auto"
    num_workers: int = 0
    encode_batch_size: int = 16
    #: stop after this many optimiser steps in this call (the run can be resumed later)
    max_steps: int | None = None
    progress: bool = True
    # ---- extended training (paper Eq. 7) ----
    #: effect chains T_j, each ``[(name, params), ...]``; one transformed pair per clip and chain
    augment: list[list[Any]] = field(default_factory=list)
    #: mixed pairs (a_i + a_j, g(t_u, t_v)) sampled per epoch
    mix_pairs: int = 0
    mix_ratio: float = 0.5
    augment_weight: float = 1.0
    mix_weight: float = 1.0
    caption_engine: str = "template"
    #: ``llm`` engine: endpoint base URL (None: the engine's default), chat model, sampling
    #: temperature (0: reproducible), and an extra JSON cache shared across runs (the run's own
    #: edits are always kept in ``<out>/caption_edits.jsonl``)
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_temperature: float = 0.0
    llm_cache: str | None = None
    #: encode transformed/mixed audio through the feature cache (True) or live every epoch (False,
    #: ``--augment-live``: the cache then holds the unmodified clips only)
    cache_augmented: bool = True
    #: on an accelerator, the class and edited caption targets are kept on the device (in the
    #: training dtype) when they fit in this many GiB (None: a quarter of the device's memory);
    #: otherwise, and always on the CPU, every batch reads its rows from the run's target file
    target_memory_gb: float | None = None

    def __post_init__(self) -> None:
        self.data, self.captions, self.out = str(self.data), str(self.captions), str(self.out)
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.patience < 1:
            problems.append(f"patience must be >= 1 epoch, got {self.patience}")
        for name in ("lr_sequence", "lr_pooled"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                problems.append(f"{name} must be a positive number, got {value}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            problems.append(f"weight_decay must be a number >= 0, got {self.weight_decay}")
        if not 0 <= self.seed <= SEED_MAX:
            problems.append(f"seed must be in 0..{SEED_MAX} (2**32-1), got {self.seed}")
        if self.device not in DEVICES:
            problems.append(f"device must be one of {DEVICES}, got {self.device!r}")
        from seeingsounds.devices import DTYPES as COMPUTE_DTYPES

        if self.dtype != "auto" and str(self.dtype).lower() not in COMPUTE_DTYPES:
            problems.append(f"dtype must be auto or one of {sorted(COMPUTE_DTYPES)}, got {self.dtype!r}")
        if self.num_workers < 0:
            problems.append(f"num_workers must be >= 0, got {self.num_workers}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps must be >= 1, got {self.max_steps}")
        if any(w < 0 for w in self.target_weights.values()):
            problems.append(f"target weights must be >= 0, got {self.target_weights}")
        if self.mix_pairs < 0:
            problems.append(f"mix_pairs must be >= 0, got {self.mix_pairs}")
        if not 0.0 < self.mix_ratio < 1.0:
            problems.append(f"mix_ratio must be in (0, 1), got {self.mix_ratio}")
        if self.augment_weight < 0 or self.mix_weight < 0:
            problems.append("augment_weight and mix_weight must be >= 0")
        if not 0.0 <= self.llm_temperature <= 2.0:
            problems.append(f"llm_temperature must be in [0, 2], got {self.llm_temperature}")
        if self.caption_engine != "llm":
            used = [n for n in ("llm_base_url", "llm_model", "llm_cache") if getattr(self, n) is not None]
            if used or self.llm_temperature != 0.0:
                problems.append(f"{', '.join(used) or 'llm_temperature'} only apply to caption_engine='llm'")
        if self.target_memory_gb is not None and self.target_memory_gb < 0:
            problems.append(f"target_memory_gb must be >= 0, got {self.target_memory_gb}")
        if self.caption_engine not in CAPTION_ENGINES:
            problems.append(f"caption_engine must be one of {CAPTION_ENGINES}, got {self.caption_engine!r}")
        # choices checked here, so a typo fails before any model is loaded
        from seeingsounds.aligner import ORDERS, POOLINGS
        from seeingsounds.cache import DTYPES
        from seeingsounds.model import ALIGN_CHOICES

        for name, value, choices in (("align", self.align, ALIGN_CHOICES), ("pooling", self.pooling, POOLINGS),
                                     ("order", self.order, ORDERS), ("cache_dtype", self.cache_dtype, tuple(DTYPES))):
            if value is not None and value not in choices:
                problems.append(f"{name} must be one of {choices}, got {value!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.hidden_dim is not None and self.hidden_dim < 1:
            problems.append(f"hidden_dim must be >= 1, got {self.hidden_dim}")
        self.augment = [[[str(n), dict(p or {})] for n, p in chain] for chain in self.augment]
        if problems:
            raise ConfigError("bad training options: " + "; ".join(problems))

    @property
    def extended(self) -> bool:
        """Whether this run trains with the extended objective (Eq. 7)."""
        return bool(self.augment) or self.mix_pairs > 0

    @property
    def out_dir(self) -> Path:
        return Path(self.out).expanduser()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"training config has unknown fields {sorted(unknown)}")
        return cls(**data)

    #: fields that may differ when a run is resumed (they do not change the result; the LLM's
    #: endpoint and cache may move: the run's edits come from ``<out>/caption_edits.jsonl``)
    RESUMABLE_CHANGES = ("resume", "epochs", "max_steps", "progress", "num_workers", "device",
                         "cache_dir", "patience", "encode_batch_size", "llm_base_url", "llm_cache",
                         "target_memory_gb", "dtype")
    #: fields holding paths: compared resolved, so a resume may spell them relative or absolute
    PATH_FIELDS = ("data", "captions", "out", "cache_dir", "llm_cache")

    def resolved_paths(self) -> dict[str, Any]:
        """:meth:`to_dict` with the path fields made absolute (what ``config.json`` records)."""
        out = self.to_dict()
        for name in self.PATH_FIELDS:
            if out[name] is not None:
                out[name] = str(Path(out[name]).expanduser().resolve())
        return out


def parse_augment(spec: str) -> list[list[Any]]:
    """One transformation chain from the command line.

    ``volume:alpha=0.1`` is one effect; ``reverb`` uses the effect's defaults;
    ``volume:alpha=0.35+reverb:room_size=0.8`` chains effects (applied left to right).
    Numbers are parsed as numbers. Returns ``[[name, {param: value}], ...]``.
    """
    chain: list[list[Any]] = []
    for part in str(spec).split("+"):
        part = part.strip()
        if not part:
            raise ConfigError(f"--augment {spec!r}: empty effect; write e.g. volume:alpha=0.1 or reverb")
        name, _, rest = part.partition(":")
        params: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"--augment {spec!r}: parameter {item!r} must be key=value, e.g. alpha=0.1")
            try:
                params[key.strip()] = float(value)
            except ValueError:
                params[key.strip()] = value.strip()
        chain.append([name.strip(), params])
    return chain
