"""What the aligner "hears": the run's captions nearest to the conditioning it predicts for a clip.

No generator and no text encoder are loaded: a training run stores its caption set with the
targets (``captions.json`` + ``caption_targets.safetensors``). Predictions come from
:class:`seeingsounds.conditioner.AudioConditioner` and are ranked by
:class:`seeingsounds.retrieval.CaptionIndex` (cosine per conditioning tensor, averaged over the
aligned ones; unaligned tensors are constant and carry no evidence), a batch of clips at a time: the
memory does not grow with the number of clips.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seeingsounds.audio.render import check_chain
from seeingsounds.conditioner import DEFAULT_BATCH_SIZE, AudioConditioner, as_sources, display_name
from seeingsounds.errors import ConfigError
from seeingsounds.retrieval import CaptionIndex
from seeingsounds.runs import RunFolder


@dataclass(frozen=True)
class Match:
    """One caption of the run, ranked for a clip."""

    rank: int
    caption: str
    similarity: float
    kind: str
    labels: tuple[str, ...]
    descriptions: tuple[str, ...] = ()


@dataclass
class Description:
    """The ``top_k`` captions nearest to what the aligner predicts for ``source``."""

    source: str
    matches: list[Match]
    effects: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    mix: tuple[str, float] | None = None

    @property
    def top(self) -> Match:
        return self.matches[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "effects": [[n, dict(p)] for n, p in self.effects],
            "mix": None if self.mix is None else {"path": self.mix[0], "ratio": self.mix[1]},
            "matches": [{**asdict(m), "labels": list(m.labels), "descriptions": list(m.descriptions)}
                        for m in self.matches],
        }

    def to_text(self) -> str:
        lines = [self.source + (f"  (effects: {', '.join(n for n, _ in self.effects)})" if self.effects else "")
                 + (f"  (mixed with {self.mix[0]} at {self.mix[1]:g})" if self.mix else "")]
        for m in self.matches:
            tag = " + ".join(m.labels) + (f"; {', '.join(m.descriptions)}" if m.descriptions else "")
            lines.append(f"  {m.rank:>2}. {m.similarity:+.3f}  {m.caption}  [{tag}]")
        return "\n".join(lines)


class Describer:
    """Loads a run's aligner, its audio encoder and its caption set once; describes many clips.

    ``device="auto"`` is the accelerator when there is one (encoder, aligner and caption targets alike);
    ``dtype=None`` is bf16 where supported, fp16 on other accelerators, fp32 on the CPU.
    """

    def __init__(self, checkpoint: str | Path, *, encoder: Any = None, device: str | torch.device | None = "auto",
                 dtype: str | torch.dtype | None = None, conditioner: AudioConditioner | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE):
        run = RunFolder.find(checkpoint)
        self.captions = run.caption_set()
        self.conditioner = conditioner or AudioConditioner.from_pretrained(checkpoint, device=device, dtype=dtype,
                                                                           encoder=encoder)
        self.encoder = self.conditioner.encoder
        self.aligner = self.conditioner.aligner
        self.names = self.conditioner.names
        with run.targets_file() as stored:
            missing = [n for n in self.names if n not in stored.tensors]
            if missing:
                raise ConfigError(f"the run's caption targets lack {missing}; retrain")
            if len(stored) != len(self.captions):
                raise ConfigError(f"{run.path}: {len(stored)} caption targets for {len(self.captions)} captions; retrain")
            # read and normalised a chunk of captions at a time: the raw (fp16) targets are never all in memory
            self.index = CaptionIndex.from_rows(lambda rows: stored.read(rows, self.names), len(stored), self.names,
                                                device=self.conditioner.device, dtype=self.conditioner.dtype)
        self.batch_size = int(batch_size)

    def similarity_batches(self, sources: Iterable[Any], *, effects: Any = None, mix: Any = None,
                           sample_rate: int | None = None) -> Iterator[np.ndarray]:
        """Cosine similarity ``[B, C]`` (float32) of each batch of clips with every caption of the run."""
        for pred in self.conditioner.predict(sources, effects=effects, mix=mix, batch_size=self.batch_size,
                                             sample_rate=sample_rate):
            yield self.index.similarity(pred).cpu().numpy()

    def similarity(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Cosine similarity ``[N, C]`` of waveforms (at the encoder's rate) with every caption of the run."""
        rate = self.conditioner.sample_rate
        sources = [(rate, np.asarray(w, dtype=np.float32)) for w in waves]
        return self.index.similarity_rows(self.conditioner.predict(sources, batch_size=self.batch_size))

    def iter_describe(self, sources: Sequence[Any] | Any, *, top_k: int = 5,
                      effects: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
                      mix: tuple[str | Path, float] | None = None) -> Iterator[Description]:
        """:meth:`describe`, one :class:`Description` at a time (streaming over any number of clips)."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        sources = as_sources(sources)
        chain = [(n, dict(p)) for n, p in check_chain(effects)]  # every option checked before any audio is read
        mixed = None if mix is None else (str(mix[0]), float(mix[1]))
        position = 0
        for sims in self.similarity_batches(sources, effects=chain, mix=mix):
            for row in sims:
                order = np.argsort(-row, kind="stable")[:top_k]
                entries = self.captions.entries
                matches = [Match(rank=r + 1, caption=entries[i].text, similarity=float(row[i]), kind=entries[i].kind,
                                 labels=tuple(entries[i].labels), descriptions=tuple(entries[i].descriptions))
                           for r, i in enumerate(order)]
                yield Description(display_name(sources[position]), matches, chain, mixed)
                position += 1

    def describe(self, sources: Sequence[Any] | Any, *, top_k: int = 5,
                 effects: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
                 mix: tuple[str | Path, float] | None = None) -> list[Description]:
        """The ``top_k`` nearest captions of the run for each clip (paths, bytes or ``(rate, array)``)."""
        return list(self.iter_describe(sources, top_k=top_k, effects=effects, mix=mix))


def describe_audio(checkpoint: str | Path, sources: Sequence[Any] | str | Path, *, top_k: int = 5,
                   effects: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
                   mix: tuple[str | Path, float] | None = None, device: str | None = "auto",
                   dtype: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> list[Description]:
    """Describe each clip in ``sources`` (paths, bytes or ``(sample_rate, array)``) by the run's
    ``top_k`` nearest captions. ``effects`` (``[(name, params)]``) and ``mix`` (``(path, ratio)``)
    transform the audio first, as ``seeingsounds describe --volume/--mix`` do."""
    return Describer(checkpoint, device=device, dtype=dtype, batch_size=batch_size).describe(
        sources, top_k=top_k, effects=effects, mix=mix)
