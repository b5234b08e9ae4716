"""What the aligner "hears": the run's captions nearest to the conditioning it predicts for a clip.

No generator and no text encoder are loaded: a training run stores its caption set with the
targets (``captions.json`` + ``caption_targets.safetensors``). Similarity is
:func:`seeingsounds.evaluation.metrics.caption_similarity` (cosine per conditioning tensor,
averaged over the aligned ones; unaligned tensors are constant and carry no evidence).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seeingsounds.errors import ConfigError


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


def _source_name(source: Any) -> str:
    return str(source) if isinstance(source, (str, Path)) else "<array>"


def load_wave(source: Any, sample_rate: int, *, effects: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
              mix: tuple[str | Path, float] | None = None) -> np.ndarray:
    """A clip as the encoder hears it: loaded at ``sample_rate``, mixed (``--mix``), then the effects
    (the order of :func:`seeingsounds.cli.common.apply_args`)."""
    from seeingsounds.audio.io import load_audio

    wave = load_audio(source, target_sr=sample_rate)
    if mix is not None:
        from seeingsounds.audio.effects import mix as mix_clips

        wave = mix_clips(wave, load_audio(mix[0], target_sr=sample_rate), float(mix[1]))
    if effects:
        from seeingsounds.audio.effects import apply_effects

        wave, _ = apply_effects(wave, sample_rate, [(n, dict(p)) for n, p in effects])
    return np.ascontiguousarray(wave, dtype=np.float32)


class Describer:
    """Loads a run's aligner, its audio encoder and its caption set once; describes many clips."""

    def __init__(self, checkpoint: str | Path, *, encoder: Any = None, device: str = "cpu"):
        from seeingsounds.aligner import SeeingSoundsAligner
        from seeingsounds.checkpoint import resolve_checkpoint
        from seeingsounds.presets import get_preset
        from seeingsounds.training.captionset import load_caption_set

        folder = resolve_checkpoint(checkpoint)
        self.captions, self.targets = load_caption_set(Path(checkpoint) if Path(checkpoint).exists() else folder)
        with contextlib.redirect_stdout(sys.stderr):  # huggingface_hub prints "Loading weights..."
            self.aligner = SeeingSoundsAligner.from_pretrained(folder).eval().to(device)
        if not self.aligner.preset:
            raise ConfigError(f"checkpoint {checkpoint} records no preset: cannot tell which audio encoder it needs")
        if encoder is None:
            from seeingsounds.model import load_encoder

            encoder = load_encoder(get_preset(self.aligner.preset), device=device)
        self.encoder = encoder
        self.names = self.aligner.aligned_names
        missing = [n for n in self.names if n not in self.targets]
        if missing:
            raise ConfigError(f"the run's caption targets lack {missing}; retrain")

    def predict(self, waves: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():
            tokens = self.encoder.encode(list(waves))
            pred = self.aligner(tokens.to(next(self.aligner.parameters()).device))
        return {n: pred[n].float().cpu().numpy() for n in self.names}

    def similarity(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Cosine similarity ``[N, C]`` of each clip's prediction with every caption of the run."""
        from seeingsounds.evaluation.metrics import caption_similarity

        pred = self.predict(waves)
        return caption_similarity(pred, {n: self.targets[n].numpy() for n in self.names})

    def describe(self, sources: Sequence[Any], *, top_k: int = 5,
                 effects: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
                 mix: tuple[str | Path, float] | None = None) -> list[Description]:
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        if isinstance(sources, (str, Path, bytes, bytearray)):  # one clip, not a sequence of clips
            sources = [sources]
        effects = [(n, dict(p)) for n, p in (effects or [])]
        if effects:
            from seeingsounds.audio.effects import describe_effect

            for name, params in effects:  # every option is checked before any audio is read
                describe_effect(name, **params)
        waves = [load_wave(s, self.encoder.sample_rate, effects=effects, mix=mix) for s in sources]
        sims = self.similarity(waves)
        out = []
        for source, row in zip(sources, sims):
            order = np.argsort(-row, kind="stable")[:top_k]
            matches = [Match(rank=r + 1, caption=self.captions.entries[i].text, similarity=float(row[i]),
                             kind=self.captions.entries[i].kind, labels=tuple(self.captions.entries[i].labels),
                             descriptions=tuple(self.captions.entries[i].descriptions))
                       for r, i in enumerate(order)]
            out.append(Description(_source_name(source), matches, effects,
                                   None if mix is None else (str(mix[0]), float(mix[1]))))
        return out


def describe_audio(checkpoint: str | Path, sources: Sequence[Any] | str | Path, *, top_k: int = 5,
                   effects: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
                   mix: tuple[str | Path, float] | None = None) -> list[Description]:
    """Describe each clip in ``sources`` (paths, bytes or ``(sample_rate, array)``) by the run's
    ``top_k`` nearest captions. ``effects`` (``[(name, params)]``) and ``mix`` (``(path, ratio)``)
    transform the audio first, as ``seeingsounds describe --volume/--mix`` do."""
    return Describer(checkpoint).describe(sources, top_k=top_k, effects=effects, mix=mix)
