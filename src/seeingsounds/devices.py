"""Where models run and in what precision: the one resolution of ``--device`` and ``--dtype``.

``auto`` means the accelerator when there is one (CUDA, then Apple MPS), else the CPU. The automatic
dtype is bf16 on a CUDA device that supports it, fp16 on other accelerators, fp32 on the CPU. Every
command (train, cache, generate, describe, evaluate, serve) and every model (encoder, aligner, text
encoders, judges, generator) goes through these two functions. :func:`release_host_memory` keeps the
host's memory flat over long streams of large CPU batches.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable

import torch

from seeingsounds.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
#: accepted ``dtype`` spellings
DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "float32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}
#: the safetensors header's code of each of those dtypes (files are checked from their header alone)
SAFETENSORS_DTYPE_CODES: dict[torch.dtype, str] = {torch.float16: "F16", torch.bfloat16: "BF16",
                                                   torch.float32: "F32"}


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto``/``None``: cuda, else mps, else cpu; an explicit device is checked to exist."""
    if isinstance(device, torch.device):
        device = str(device)
    name = "auto" if device is None else str(device)
    kind = name.split(":", 1)[0]
    if kind not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)} (optionally cuda:N), got {name!r}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name}: no CUDA GPU is visible; use --device auto or cpu")
    if kind == "mps" and not mps_available():
        raise ConfigError(f"device {name}: Apple MPS is not available; use --device auto or cpu")
    return torch.device(name)


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (CUDA with compute capability >= 8)."""
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``auto``/``None``: bf16 where supported, fp16 on other accelerators, fp32 on the CPU.

    An explicit bf16 on a CUDA device without bf16 support is refused (it would run emulated, slowly).
    """
    if dtype is None or dtype == "auto":
        if device.type == "cpu":
            return torch.float32
        return torch.bfloat16 if bf16_supported(device) else torch.float16
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ConfigError(f"dtype must be one of float32, float16, bfloat16, got {dtype}")
        chosen = dtype
    else:
        key = str(dtype).lower()
        if key not in DTYPES:
            raise ConfigError(f"dtype must be one of auto, {', '.join(sorted(DTYPES))}; got {dtype!r}")
        chosen = DTYPES[key]
    if chosen is torch.bfloat16 and device.type == "cuda" and not bf16_supported(device):
        raise ConfigError(f"{device} does not support bfloat16: use --dtype fp16 (or auto)")
    return chosen


def mixed_precision(device: torch.device) -> str:
    """accelerate's ``mixed_precision`` for training on ``device``: ``bf16`` / ``fp16`` / ``no``."""
    if device.type == "cpu":
        return "no"
    if device.type == "cuda":
        return "bf16" if bf16_supported(device) else "fp16"
    return "no"


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` from the process's own C library; ``None`` off Linux or without glibc (musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_host_memory() -> bool:
    """Hand the pages the C allocator holds free back to the OS (glibc ``malloc_trim(0)``).

    A batch of large CPU tensors (a FLUX-dev adapter-first batch of 8 clips allocates ~1 GB of intermediates)
    is freed into glibc's heaps, which keep the pages; over hundreds of batches the free space fragments and
    the resident size creeps up (``benchmarks/evaluate_scale.py --no-release``: 2,257 -> 4,562 MiB from 200 to
    2,000 clips, with nothing per clip held). Called after every batch it keeps it flat (2,221 MiB at both),
    at no measurable cost there (0.516 s per clip with it, 0.560 without). Returns whether memory was handed
    back; ``False`` (and nothing done) where glibc is absent.
    """
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
