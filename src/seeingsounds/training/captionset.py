"""The caption set of a run and its targets, stored beside the checkpoints.

``<run>/captions.json`` lists every caption the run trained on — the class captions t_y and, for
Eq. 7, the edited captions f(t_y, d_j) and the fused captions g(t_u, t_v) — and
``<run>/caption_targets.safetensors`` holds their targets (fp16), row-aligned. ``describe`` ranks
these captions without loading any text encoder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from seeingsounds.errors import ConfigError
from seeingsounds.paths import atomic_path, atomic_write_text

CAPTIONS_FILE = "captions.json"
TARGETS_FILE = "caption_targets.safetensors"
KINDS = ("class", "edited", "fused")


@dataclass(frozen=True)
class CaptionEntry:
    """One caption: its text, what it describes (labels, effect descriptions) and how it was made."""

    text: str
    kind: str
    labels: tuple[str, ...]
    descriptions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"], d["descriptions"] = list(self.labels), list(self.descriptions)
        return d


@dataclass
class CaptionSet:
    """Ordered, de-duplicated captions (by text, kind, labels, descriptions)."""

    entries: list[CaptionEntry] = field(default_factory=list)
    #: entry -> first row (a dict, not ``list.index``: fused captions of all class pairs are many)
    _rows: dict[CaptionEntry, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def add(self, entry: CaptionEntry) -> int:
        """Row of ``entry`` (added when new)."""
        if entry.kind not in KINDS:
            raise ConfigError(f"caption kind must be one of {KINDS}, got {entry.kind!r}")
        if len(self._rows) != len(self.entries):  # entries given or changed from outside: re-index
            self._rows = {}
            for i, e in enumerate(self.entries):
                self._rows.setdefault(e, i)
        row = self._rows.get(entry)
        if row is None:
            self.entries.append(entry)
            row = self._rows[entry] = len(self.entries) - 1
        return row

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.entries]

    def rows(self, kind: str) -> list[int]:
        return [i for i, e in enumerate(self.entries) if e.kind == kind]

    def to_json(self) -> str:
        return json.dumps({"captions": [e.to_dict() for e in self.entries]}, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CaptionSet:
        data = json.loads(text)
        return cls([CaptionEntry(e["text"], e["kind"], tuple(e["labels"]), tuple(e.get("descriptions", ())))
                    for e in data["captions"]])


def save_caption_set(folder: str | Path, captions: CaptionSet, targets: Mapping[str, torch.Tensor],
                     dtype: torch.dtype = torch.float16) -> None:
    """Write ``captions.json`` and ``caption_targets.safetensors`` (row-aligned) atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    for name, t in targets.items():
        if len(t) != len(captions):
            raise ConfigError(f"{len(t)} targets of {name} for {len(captions)} captions")
    data = {n: t.detach().to("cpu", dtype).contiguous() for n, t in targets.items()}
    with atomic_path(folder / TARGETS_FILE) as tmp:
        save_file(data, tmp, metadata={"rows": str(len(captions))})
    atomic_write_text(folder / CAPTIONS_FILE, captions.to_json())


def find_run_folder(checkpoint: str | Path) -> Path:
    """The folder holding ``captions.json`` for a run folder or one of its checkpoints."""
    path = Path(checkpoint).expanduser()
    for folder in (path, path.parent):
        if (folder / CAPTIONS_FILE).is_file() and (folder / TARGETS_FILE).is_file():
            return folder
    raise ConfigError(
        f"no {CAPTIONS_FILE} + {TARGETS_FILE} in {path} or its parent: point to a training run folder "
        "(made by `seeingsounds train`), which stores the captions it was trained on"
    )


def load_caption_set(folder: str | Path) -> tuple[CaptionSet, dict[str, torch.Tensor]]:
    """The captions and their float32 targets of a run (see :func:`find_run_folder`)."""
    from safetensors.torch import load_file

    folder = find_run_folder(folder)
    try:
        captions = CaptionSet.from_json((folder / CAPTIONS_FILE).read_text(encoding="utf-8"))
        targets = {n: t.float() for n, t in load_file(str(folder / TARGETS_FILE)).items()}
    except Exception as exc:
        raise ConfigError(f"the caption set in {folder} is unreadable ({exc}); retrain or restore it") from None
    bad = [n for n, t in targets.items() if len(t) != len(captions)]
    if bad:
        raise ConfigError(f"{folder}: targets {bad} do not match the {len(captions)} captions; retrain")
    return captions, targets


def class_rows(captions: CaptionSet, labels: Sequence[str]) -> dict[str, list[int]]:
    """Rows of the class captions of each label."""
    out: dict[str, list[int]] = {lb: [] for lb in labels}
    for i, e in enumerate(captions.entries):
        if e.kind == "class" and e.labels[0] in out:
            out[e.labels[0]].append(i)
    return out
