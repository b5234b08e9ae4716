"""Training pairs (audio, caption) of Eq. 6 / Eq. 7, their seeded order, and the dataset that serves them.

* original pairs ``(a, t_y)``, one per clip;
* transformed pairs ``(T_j(a), f(t_y, d_j))``, one per clip and effect chain;
* mixed pairs ``(a_i + a_j, g(t_u, t_v))``: a **fixed pool** of ``mix_pairs`` mixes of two clips of
  different classes, drawn once from the run's seed and reused every epoch. So the fused captions
  (and their targets) exist only for the class pairs actually drawn, the feature cache holds a
  bounded set of mixes (it stops growing after the first epoch), and a resumed run sees the same
  mixes without storing them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm.auto import tqdm

from seeingsounds.cache import AudioItem, CorruptEntryError, FeatureCache, load_item_wave, read_tokens, recorded_failure
from seeingsounds.captions.caption_set import CaptionEntry, CaptionSet
from seeingsounds.captions.edit import CaptionEditor, augmented_captions
from seeingsounds.errors import AudioLoadError, ConfigError
from seeingsounds.training.objective import TERMS, pair_weights

#: seeds of the two mix pools (train, validation), combined with the run's seed
TRAIN_MIX_SEED, VAL_MIX_SEED = 2, 7919
#: cached tokens are held in memory when they fit in this many bytes (else read per batch)
PRELOAD_BYTES = 2 << 30


@dataclass(frozen=True)
class Pair:
    """One training pair: what the encoder hears, candidate caption rows (one drawn per epoch), term."""

    item: AudioItem
    captions: tuple[int, ...]
    term: int
    label: str


#: one row of an epoch: (audio item, caption row, term, weight, label id or -1)
Row = tuple[AudioItem, int, int, float, int]


def draw_mixes(clips: Sequence[Any], count: int, rng: np.random.Generator) -> list[tuple[Any, Any]]:
    """``count`` ordered pairs of clips of different classes (empty with fewer than two classes)."""
    out: list[tuple[Any, Any]] = []
    if count <= 0 or len({c.label for c in clips}) < 2:
        return out
    while len(out) < count:
        i, j = rng.integers(len(clips), size=2)
        a, b = clips[int(i)], clips[int(j)]
        if a.label != b.label:
            out.append((a, b))
    return out


@dataclass
class MixPools:
    """The run's mixes: ``train`` (``mix_pairs`` of them) and ``val`` (in proportion to the split)."""

    train: list[tuple[Any, Any]]
    val: list[tuple[Any, Any]]

    @classmethod
    def draw(cls, dataset: Any, mix_pairs: int, seed: int) -> MixPools:
        train = draw_mixes(dataset.train, mix_pairs, np.random.default_rng([seed, TRAIN_MIX_SEED]))
        val: list[tuple[Any, Any]] = []
        if mix_pairs and dataset.val:
            n_val = max(1, round(mix_pairs * len(dataset.val) / max(1, len(dataset.train))))
            val = draw_mixes(dataset.val, n_val, np.random.default_rng([seed, VAL_MIX_SEED]))
        return cls(train, val)

    def label_pairs(self) -> list[tuple[str, str]]:
        """The distinct class pairs drawn (unordered: the first order seen), train then val."""
        seen: dict[frozenset[str], tuple[str, str]] = {}
        for a, b in self.train + self.val:
            seen.setdefault(frozenset((a.label, b.label)), (a.label, b.label))
        return list(seen.values())


class RunCaptions:
    """The caption set of a run and the rows of each (kind, labels, descriptions)."""

    def __init__(self, captions: CaptionSet, class_labels: list[str]):
        self.captions = captions
        #: label of each class-caption row, in row order (the retrieval classes of validation)
        self.class_label = class_labels
        self.class_rows = [i for i, e in enumerate(captions.entries) if e.kind == "class"]
        self._index: dict[tuple[Any, ...], list[int]] = {}
        for i, e in enumerate(captions.entries):
            self._index.setdefault(self._key(e.kind, e.labels, e.descriptions), []).append(i)

    @staticmethod
    def _key(kind: str, labels: Sequence[str], descriptions: Sequence[str]) -> tuple[Any, ...]:
        return kind, frozenset(labels) if kind == "fused" else tuple(labels), tuple(descriptions)

    @classmethod
    def build(cls, dataset: Any, descriptions: Sequence[tuple[str, ...]], editor: CaptionEditor | None,
              label_pairs: Sequence[tuple[str, str]]) -> RunCaptions:
        """Class captions t_y; edited captions f(t_y, d_j) per chain; fused captions g(t_u, t_v) for
        ``label_pairs`` only (the pairs the mix pools drew)."""
        captions = CaptionSet()
        class_label: list[str] = []
        for label in dataset.labels:
            for text in dataset.captions[label]:
                captions.add(CaptionEntry(text, "class", (label,)))
                class_label.append(label)
        if editor is not None and (descriptions or label_pairs):
            aug = augmented_captions({lb: dataset.captions[lb] for lb in dataset.labels}, descriptions, editor,
                                     label_pairs)
            for (label, descs), text in aug.edited.items():
                captions.add(CaptionEntry(text, "edited", (label,), tuple(descs)))
            for (u, v), text in aug.fused.items():
                captions.add(CaptionEntry(text, "fused", (u, v)))
        return cls(captions, class_label)

    def counts(self) -> dict[str, int]:
        """Captions in all and per kind."""
        kinds = [e.kind for e in self.captions.entries]
        return {"captions": len(kinds), "class": kinds.count("class"), "edited": kinds.count("edited"),
                "fused": kinds.count("fused")}

    def rows_of(self, kind: str, labels: Sequence[str], descriptions: Sequence[str] = ()) -> tuple[int, ...]:
        rows = tuple(self._index.get(self._key(kind, labels, descriptions), ()))
        if not rows:
            raise ConfigError(f"no {kind} caption for {tuple(labels)} {tuple(descriptions)}")
        return rows


def build_pairs(clips: Sequence[Any], mixes: Sequence[tuple[Any, Any]], captions: RunCaptions,
                augment: Sequence[Sequence[Any]], descriptions: Sequence[tuple[str, ...]],
                mix_ratio: float) -> list[Pair]:
    """Original, transformed and mixed pairs of one split, in that order."""
    pairs = [Pair(AudioItem.of(c.path), captions.rows_of("class", (c.label,)), 0, c.label) for c in clips]
    for chain, descs in zip(augment, descriptions):
        for c in clips:
            pairs.append(Pair(AudioItem.of(c.path, effects=chain), captions.rows_of("edited", (c.label,), descs),
                              1, c.label))
    for a, b in mixes:
        pairs.append(Pair(AudioItem.of(a.path, mix=(b.path, mix_ratio)), captions.rows_of("fused", (a.label, b.label)),
                          2, f"{a.label}+{b.label}"))
    return pairs


def epoch_rows(pairs: Sequence[Pair], epoch: int, seed: int, term_weights: Mapping[str, float],
               label_ids: Mapping[str, int]) -> list[Row]:
    """The ordered rows of ``epoch`` — a function of ``(pairs, seed, epoch)`` only, so a resumed run
    sees exactly the same data: one caption drawn per pair, Eq. 7 weights, a seeded permutation."""
    counts = {t: sum(p.term == i for p in pairs) for i, t in enumerate(TERMS)}
    weights = pair_weights(counts, term_weights)
    rng = np.random.default_rng([seed, epoch, 1])
    choice = [p.captions[int(rng.integers(len(p.captions)))] for p in pairs]
    order = rng.permutation(len(pairs))
    return [(pairs[i].item, choice[i], pairs[i].term, weights[TERMS[pairs[i].term]], label_id(pairs[i], label_ids))
            for i in order]


def first_caption_rows(pairs: Sequence[Pair], label_ids: Mapping[str, int]) -> list[Row]:
    """Validation rows: every pair once, with its first caption, unweighted."""
    return [(p.item, p.captions[0], p.term, 1.0, label_id(p, label_ids)) for p in pairs]


def label_id(pair: Pair, label_ids: Mapping[str, int]) -> int:
    """The class id of an original pair (retrieval is scored on those), else -1."""
    return label_ids.get(pair.label, -1) if pair.term == 0 else -1


class PairDataset(TorchDataset):
    """Rows of an epoch as ``(audio, caption row, term, weight, label id)``.

    The audio of a row is its cached tokens ``[m, d]`` (held in ``memory`` when preloaded, else
    read and verified from the entry in ``paths``) or, for an item encoded live (or whose entry
    fails its integrity check), its waveform ``[n]``, encoded batch-wise on the training device.
    """

    def __init__(self, rows: Sequence[Row], *, paths: Mapping[AudioItem, Path],
                 memory: Mapping[AudioItem, torch.Tensor] | None, sample_rate: int, window: int):
        self.rows, self.paths, self.memory = rows, paths, memory
        self.sample_rate, self.window = sample_rate, window

    def __len__(self) -> int:
        return len(self.rows)

    def audio(self, item: AudioItem) -> torch.Tensor:
        if self.memory is not None and item in self.memory:
            return self.memory[item]
        path = self.paths.get(item)
        if path is not None:
            try:
                return read_tokens(path)
            except CorruptEntryError:  # deleted by the check; encoded live now, cached again next start
                pass
        return torch.from_numpy(load_item_wave(item, self.sample_rate, self.window))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, float, int]:
        item, caption, term, weight, label = self.rows[i]
        return self.audio(item), caption, term, weight, label


def collate(batch: list[tuple[torch.Tensor, int, int, float, int]]) -> dict[str, Any]:
    return {
        "x": [b[0] for b in batch],
        "caption": torch.tensor([b[1] for b in batch], dtype=torch.long),
        "term": torch.tensor([b[2] for b in batch], dtype=torch.long),
        "weight": torch.tensor([b[3] for b in batch], dtype=torch.float32),
        "label": torch.tensor([b[4] for b in batch], dtype=torch.long),
    }


def encode_batch(xs: Sequence[torch.Tensor], encode: Callable[[list[np.ndarray]], torch.Tensor],
                 device: torch.device) -> torch.Tensor:
    """Tokens ``[B, m, d]`` (fp32, on ``device``): cached tokens as they are, waveforms through ``encode``."""
    live = [i for i, x in enumerate(xs) if x.ndim == 1]
    out = list(xs)
    if live:
        for i, t in zip(live, encode([xs[i].cpu().numpy() for i in live])):
            out[i] = t
    return torch.stack([x.to(device, torch.float32) for x in out])


@dataclass
class FeatureSource:
    """Where the tokens of each item come from: its feature-cache entry (``paths``; held in
    ``memory`` when preloaded) or, for items not in ``paths``, the encoder run live on its waveform."""

    paths: dict[AudioItem, Path]
    memory: dict[AudioItem, torch.Tensor] | None
    sample_rate: int
    window: int
    #: items whose audio cannot be decoded (``skip_bad``), with the reason (``<file>: <why>``)
    failed: dict[AudioItem, str] = field(default_factory=dict)

    def loader(self, rows: Sequence[Row], *, batch_size: int, num_workers: int, seed: int) -> DataLoader:
        """The rows in order, batched. The loader has its own generator: starting an iterator must
        not draw from the global torch RNG, or a run resumed mid-epoch would see other dropout
        masks than the uninterrupted run."""
        dataset = PairDataset(rows, paths=self.paths, memory=self.memory, sample_rate=self.sample_rate,
                              window=self.window)
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate,
                          persistent_workers=False, generator=torch.Generator().manual_seed(seed))


def prepare_features(pairs: Sequence[Pair], encoder: Any, cache: FeatureCache | None, *, cache_augmented: bool,
                     batch_size: int, progress: bool, skip_bad: bool = False) -> FeatureSource:
    """Cache the encoder features of the pairs' items (collective under a launcher: every process
    calls it, each encoding its share), preloading them when they fit :data:`PRELOAD_BYTES`.
    Without a cache, or for transformed/mixed items with ``cache_augmented=False``, the items are
    encoded live.

    A clip that cannot be decoded fails naming the file; with ``skip_bad`` it is listed in
    ``failed`` instead (:func:`drop_failed` removes the pairs that use it). Every process lists the
    same items: the cache records each failure beside its entry; without a cache each process decodes
    every file once here (less than one epoch costs, which decodes them all again).
    """
    source = FeatureSource({}, None, encoder.sample_rate, encoder.window_samples)
    if cache is None:
        if skip_bad:
            source.failed = decode_failures(pairs, encoder.sample_rate, encoder.window_samples, progress=progress)
        return source
    cached = list(dict.fromkeys(p.item for p in pairs if cache_augmented or not (p.item.effects or p.item.mix)))
    found = cache.ensure_audio(encoder, cached, batch_size=batch_size, progress=progress,
                               desc="caching encoder features", skip_bad=skip_bad)
    if skip_bad:
        source.failed = {it: why for it, path in zip(cached, found) if (why := recorded_failure(path)) is not None}
    source.paths = {it: path for it, path in zip(cached, found) if it not in source.failed}
    item_bytes = encoder.num_tokens * encoder.hidden_size * torch.finfo(cache.dtype).bits // 8
    if item_bytes * len(source.paths) <= PRELOAD_BYTES:
        source.memory = {it: read_tokens(path) for it, path in source.paths.items()}
    return source


def decode_failures(pairs: Sequence[Pair], sample_rate: int, window: int, *, progress: bool) -> dict[AudioItem, str]:
    """``{plain item: "<file>: <why>"}`` for each file the pairs use (clip or mix partner) that cannot
    be decoded, each decoded once (``skip_bad`` without a feature cache)."""
    files = list(dict.fromkeys(f for p in pairs for f in (p.item.path, *([] if p.item.mix is None else [p.item.mix[0]]))))
    failed: dict[AudioItem, str] = {}
    for path in tqdm(files, desc="checking the audio decodes", unit="clip", disable=not progress):
        item = AudioItem.of(path)
        try:
            load_item_wave(item, sample_rate, window)
        except AudioLoadError as exc:
            failed[item] = f"{exc.source}: {exc.reason}"
    return failed


def drop_failed(pairs: Sequence[Pair], failed: Mapping[AudioItem, str]) -> list[Pair]:
    """``pairs`` without those whose audio failed to decode: the pair's own item failed, or it uses a file
    (as clip or mix partner) whose plain item failed — also where that transformed or mixed item was
    never decoded (encoded live, ``cache_augmented=False``)."""
    bad_files = {it.path for it in failed if not it.effects and it.mix is None}

    def usable(item: AudioItem) -> bool:
        return not (item in failed or item.path in bad_files or (item.mix is not None and item.mix[0] in bad_files))

    return [p for p in pairs if usable(p.item)]
