"""A run folder's caption set written inside the tests, as training writes it (no trainer needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from seeingsounds.captions.caption_set import CaptionSet
from seeingsounds.paths import atomic_write_text
from seeingsounds.runs import CAPTIONS_FILE, TARGETS_FILE, write_row_file


def save_caption_set(folder: str | Path, captions: CaptionSet, targets: Mapping[str, torch.Tensor]) -> None:
    """``captions.json`` and ``caption_targets.safetensors`` (fp16, row-aligned) in ``folder``."""
    folder = Path(folder)
    assert all(len(t) == len(captions) for t in targets.values()), "one target row per caption"
    shapes = {n: tuple(t.shape[1:]) for n, t in targets.items()}
    write_row_file(folder / TARGETS_FILE, shapes, len(captions), iter([(0, dict(targets))]))
    atomic_write_text(folder / CAPTIONS_FILE, captions.to_json())
