"""The caption set of a run: every caption it trained on, in row order.

The class captions t_y and, for Eq. 7, the edited captions f(t_y, d_j) and the fused captions
g(t_u, t_v). Row ``i`` of the run's targets (:mod:`seeingsounds.runs`) belongs to entry ``i``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from seeingsounds.errors import ConfigError

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
    #: entry -> first row (a dict, not ``list.index``: a caption set may hold many fused captions)
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
