"""Training loop: aligner heads onto the generator's own caption embeddings (paper Eq. 6 / Eq. 7).

* Frozen encoder tokens come from the feature cache (:mod:`seeingsounds.cache`) or live.
* Separate AdamW optimisers: sequence head(s) at ``lr_sequence``, pooled head(s) at ``lr_pooled``.
* Validation loss and caption-retrieval top-1 every epoch; model selection and early stopping on
  validation loss; ``<out>/best/`` (best val loss) and ``<out>/last/`` (+ ``training_state.pt``)
  written atomically every epoch; ``resume=True`` continues exactly where a run stopped.
* Seeded: each epoch's pair list, caption choice and order derive from ``(seed, epoch)`` only.
* ``accelerate``: the same code runs on CPU, one GPU (bf16 autocast) or several GPUs under
  ``accelerate launch``; only the main process writes.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from seeingsounds.cache import AudioItem, FeatureCache, load_item_wave, read_tokens
from seeingsounds.errors import ConfigError
from seeingsounds.paths import atomic_write_json
from seeingsounds.training.captionset import CaptionEntry, CaptionSet, save_caption_set
from seeingsounds.training.config import TrainConfig
from seeingsounds.training.objective import TERMS, CaptionIndex, objective, pair_weights, per_sample_loss

STATE_FILE = "training_state.pt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
#: cached tokens are held in memory when they fit in this many bytes (else read per batch)
PRELOAD_BYTES = 2 << 30


@dataclass(frozen=True)
class Pair:
    """One training pair: what the encoder hears, candidate caption rows (one drawn per epoch), term."""

    item: AudioItem
    captions: tuple[int, ...]
    term: int
    label: str


@dataclass
class TrainResult:
    out: Path
    best_epoch: int | None
    best_val_loss: float | None
    epochs_completed: int
    global_step: int
    stopped: str
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


Row = tuple[Any, int, int, float, int]


class _Rows(TorchDataset):
    """The rows of one epoch: (audio source, caption row, term, weight, label id or -1).

    A source is a cache entry (-> tokens ``[m, d]``) or an :class:`AudioItem` encoded live
    (-> its waveform ``[n]``, encoded batch-wise on the training device).
    """

    def __init__(self, rows: list[Row], memory: Mapping[Path, torch.Tensor] | None, live: tuple[int, int]):
        self.rows, self.memory, self.live = rows, memory, live

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, float, int]:
        source, caption, term, weight, label = self.rows[i]
        if isinstance(source, AudioItem):
            x = torch.from_numpy(load_item_wave(source, *self.live))
        elif self.memory is not None and source in self.memory:
            x = self.memory[source]
        else:
            x = read_tokens(source)
        return x, caption, term, weight, label


def _collate(batch: list[tuple[torch.Tensor, int, int, float, int]]) -> dict[str, torch.Tensor]:
    return {
        "x": [b[0] for b in batch],
        "caption": torch.tensor([b[1] for b in batch], dtype=torch.long),
        "term": torch.tensor([b[2] for b in batch], dtype=torch.long),
        "weight": torch.tensor([b[3] for b in batch], dtype=torch.float32),
        "label": torch.tensor([b[4] for b in batch], dtype=torch.long),
    }


def _library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for name in ("seeingsounds", "torch", "transformers", "diffusers", "accelerate", "safetensors", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _metrics_epoch(line: str) -> int | None:
    """The epoch of one ``metrics.jsonl`` line, or None for a blank or partly written one."""
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, TypeError, KeyError):
        return None


def make_accelerator(device: str) -> Any:
    """An ``accelerate.Accelerator`` for ``device`` (auto: cuda, then mps, then cpu); bf16 autocast on GPU."""
    from accelerate import Accelerator

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible; use --device auto or cpu")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps: Apple MPS is not available; use --device auto or cpu")
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    # without an accelerator, Accelerator(cpu=True) is what joins a torchrun/accelerate multi-CPU launch
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available() and not mps)
    bf16 = not cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return Accelerator(cpu=cpu, mixed_precision="bf16" if bf16 else "no")


class Trainer:
    """Trains one run. ``encoder`` / ``backend`` may be passed in (already loaded) to save time.

    Call :meth:`fit`. Everything is validated (dataset, captions, effects, resume compatibility)
    before the first model is loaded.
    """

    def __init__(self, config: TrainConfig, *, encoder: Any = None, backend: Any = None,
                 log: Callable[[str], None] | None = None):
        self.config = config
        self._encoder, self._backend = encoder, backend
        self._log_fn = log

    # ---- small helpers ----------------------------------------------------------------------
    def log(self, message: str) -> None:
        if getattr(self, "accelerator", None) is not None and not self.accelerator.is_main_process:
            return
        (self._log_fn or (lambda m: print(m, file=sys.stderr)))(message)

    @property
    def out(self) -> Path:
        return self.config.out_dir

    # ---- setup ------------------------------------------------------------------------------
    def _check_resume(self, preset_dict: dict[str, Any]) -> dict[str, Any] | None:
        """The saved state to resume from, after checking the run's config matches ours."""
        cfg = self.config
        state_path = self.out / "last" / STATE_FILE
        if not cfg.resume:
            if (self.out / "last").exists() or (self.out / "best").exists():
                raise ConfigError(f"{self.out} already holds a training run: pass --resume to continue it, "
                                  "or choose another --out")
            return None
        if not state_path.is_file():
            if (self.out / "best").exists():  # stopped after best/ was written, before last/: nothing to resume
                raise ConfigError(f"--resume: {state_path} does not exist (the run stopped before its first epoch "
                                  f"was saved); start again without --resume in another --out, or delete {self.out}")
            raise ConfigError(f"--resume: {state_path} does not exist; start the run without --resume")
        saved = json.loads((self.out / CONFIG_FILE).read_text(encoding="utf-8"))
        mine, theirs = cfg.to_dict(), saved["train"]
        diff = [k for k in mine if k not in TrainConfig.RESUMABLE_CHANGES and mine[k] != theirs.get(k)]
        if saved.get("preset") != preset_dict:
            diff.append("preset")
        if diff:
            raise ConfigError("--resume: these options differ from the interrupted run's "
                              f"({self.out / CONFIG_FILE}): " + ", ".join(
                                  f"{k}={mine.get(k)!r} (run: {theirs.get(k)!r})" for k in diff))
        # same options, but edited files (manifest, captions; audio: see fit) would silently change the data
        self._saved_data = saved.get("data") or {}
        self._check_same_data(self.dataset.fingerprint())
        return torch.load(state_path, map_location="cpu", weights_only=True)

    def _check_same_data(self, current: Mapping[str, Any]) -> None:
        saved = getattr(self, "_saved_data", None) or {}
        changed = [k for k in current if k in saved and current[k] != saved[k]]
        if changed:
            raise ConfigError(f"--resume: the data changed since the interrupted run ({', '.join(changed)} differ "
                              f"from {self.out / CONFIG_FILE}); restore it, or start a new run in another --out")

    def _augment_descriptions(self) -> list[tuple[str, ...]]:
        from seeingsounds.audio.effects import describe_effect

        return [tuple(describe_effect(name, **params) for name, params in chain) for chain in self.config.augment]

    def setup(self) -> None:
        """Validate inputs, load models, compute/cached targets and features, build the aligner."""
        from seeingsounds.data.manifest import load_dataset
        from seeingsounds.model import create_aligner, load_backend, load_encoder
        from seeingsounds.presets import get_preset

        cfg = self.config
        # -- everything cheap first: dataset, preset, options, resume compatibility ---------------
        self.dataset = load_dataset(cfg.data, cfg.captions, seed=cfg.seed, val_fraction=cfg.val_fraction,
                                    skip_bad=cfg.skip_bad)
        self.preset = get_preset(cfg.preset)
        self.descriptions = self._augment_descriptions()
        if cfg.mix_pairs and len(self.dataset.labels) < 2:
            raise ConfigError("--mix-pairs needs at least two classes")
        state = self._check_resume(self.preset.to_dict())
        self.lr = {"sequence": cfg.lr_sequence or self.preset.lr_sequence,
                   "pooled": cfg.lr_pooled or self.preset.lr_pooled}

        from accelerate.utils import set_seed

        self.accelerator = make_accelerator(cfg.device)
        set_seed(cfg.seed)
        self.log(f"data: {self.dataset.summary()}")
        device = self.accelerator.device
        self.encoder = (self._encoder if self._encoder is not None else load_encoder(self.preset)).to(device)
        self.backend = self._backend if self._backend is not None else load_backend(self.preset)
        self.spec = self.backend.conditioning_spec()
        self.cache = FeatureCache(cfg.cache_dir, dtype=cfg.cache_dtype) if cfg.use_cache else None

        # -- caption set and targets ---------------------------------------------------------------
        self.captions = self._build_captions()
        texts = self.captions.texts + [""]
        with self.accelerator.main_process_first():
            if self.cache is not None:
                targets = self.cache.caption_targets(self.backend, texts, progress=cfg.progress)
            else:
                targets = self.backend.encode_captions(texts)
        self.targets = {n: t[:-1].contiguous() for n, t in targets.items()}
        null = {n: t[-1] for n, t in targets.items()}

        # -- aligner and optimisers ----------------------------------------------------------------
        aligner = create_aligner(self.preset, self.encoder.hidden_size, self.spec, align=cfg.align,
                                 order=cfg.order, pooling=cfg.pooling, hidden_dim=cfg.hidden_dim, dropout=cfg.dropout)
        aligner.set_null_conditioning(null)
        self.names = aligner.aligned_names
        unknown = sorted(set(cfg.target_weights) - set(self.spec))
        if unknown:
            raise ConfigError(f"loss weights for unknown tensors {unknown}; this generator has {list(self.spec)}")
        groups = {"sequence": [], "pooled": []}
        for name in self.names:
            groups["pooled" if self.spec[name].pooled else "sequence"] += list(aligner.heads[name].parameters())
        self.branches = [b for b in ("sequence", "pooled") if groups[b]]
        optimizers = [torch.optim.AdamW(groups[b], lr=self.lr[b], weight_decay=cfg.weight_decay) for b in self.branches]
        if state is not None:
            from safetensors.torch import load_file

            aligner.load_state_dict(load_file(str(self.out / "last" / "model.safetensors")), strict=True)
            for branch, opt in zip(self.branches, optimizers):
                opt.load_state_dict(state["optimizers"][branch])
        prepared = self.accelerator.prepare(aligner, *optimizers)
        self.model, self.optimizers = prepared[0], list(prepared[1:])
        self.state = state

        # -- pairs and features ----------------------------------------------------------------------
        self.label_ids = {lb: i for i, lb in enumerate(self.dataset.labels)}
        self._build_pairs()
        self.live = (self.encoder.sample_rate, self.encoder.window_samples)
        self.paths: dict[AudioItem, Path] = {}
        static = [p.item for p in self.train_pairs + self.val_pairs if self._cached(p.item)]
        if self.cache is not None:
            with self.accelerator.main_process_first():
                self._ensure(static, "caching encoder features")
            self.log(f"feature cache {self.cache.root}: {self.cache.stats}")
        self.memory: dict[Path, torch.Tensor] | None = None
        item_bytes = self.encoder.num_tokens * self.encoder.hidden_size * torch.finfo(self.cache.dtype).bits // 8 \
            if self.cache is not None else 0
        if self.cache is not None and item_bytes * len(set(static)) <= PRELOAD_BYTES:
            self.memory = {self.paths[it]: read_tokens(self.paths[it]) for it in dict.fromkeys(static)}
        self.class_index = CaptionIndex({n: self.targets[n][self.class_rows] for n in self.names}, self.names,
                                        cfg.target_weights).to(device)

    def _ensure(self, items: Sequence[AudioItem], desc: str) -> None:
        todo = [it for it in dict.fromkeys(items) if it not in self.paths]
        if not todo:
            return
        paths = self.cache.ensure_audio(self.encoder, todo, batch_size=self.config.encode_batch_size,
                                        progress=self.config.progress, desc=desc)
        self.paths.update(zip(todo, paths))

    def _build_captions(self) -> CaptionSet:
        captions = CaptionSet()
        ds = self.dataset
        self.class_rows: list[int] = []
        self.class_label: list[str] = []
        for label in ds.labels:
            for text in ds.captions[label]:
                self.class_rows.append(captions.add(CaptionEntry(text, "class", (label,))))
                self.class_label.append(label)
        if self.config.extended:
            from seeingsounds.captions.edit import all_pairs, augmented_captions, get_editor

            editor = get_editor(self.config.caption_engine)
            pairs = all_pairs(ds.labels) if self.config.mix_pairs else []
            aug = augmented_captions({lb: ds.captions[lb] for lb in ds.labels}, self.descriptions, editor, pairs)
            for (label, descs), text in aug.edited.items():
                captions.add(CaptionEntry(text, "edited", (label,), tuple(descs)))
            for (u, v), text in aug.fused.items():
                captions.add(CaptionEntry(text, "fused", (u, v)))
            self.augmented = aug
        return captions

    def _rows_of(self, kind: str, labels: tuple[str, ...], descriptions: tuple[str, ...] = ()) -> tuple[int, ...]:
        def key(kind: str, labels: tuple[str, ...], descriptions: tuple[str, ...]) -> tuple[Any, ...]:
            return kind, frozenset(labels) if kind == "fused" else labels, descriptions

        entries = self.captions.entries
        lookup = getattr(self, "_row_lookup", None)
        if lookup is None or lookup[0] is not entries or lookup[1] != len(entries):  # one pass, not one per pair
            index: dict[tuple[Any, ...], list[int]] = {}
            for i, e in enumerate(entries):
                index.setdefault(key(e.kind, e.labels, e.descriptions), []).append(i)
            lookup = self._row_lookup = (entries, len(entries), index)
        rows = tuple(lookup[2].get(key(kind, tuple(labels), tuple(descriptions)), ()))
        if not rows:
            raise ConfigError(f"no {kind} caption for {labels} {descriptions}")
        return rows

    def _pairs_for(self, clips: Sequence[Any]) -> list[Pair]:
        pairs = [Pair(AudioItem.of(c.path), self._rows_of("class", (c.label,)), 0, c.label) for c in clips]
        for chain, descs in zip(self.config.augment, self.descriptions):
            for c in clips:
                pairs.append(Pair(AudioItem.of(c.path, effects=chain), self._rows_of("edited", (c.label,), descs),
                                  1, c.label))
        return pairs

    def _mix_pairs(self, clips: Sequence[Any], count: int, rng: np.random.Generator) -> list[Pair]:
        """``count`` mixes of two clips of different classes (a_i + a_j, g(t_u, t_v))."""
        out: list[Pair] = []
        if count <= 0 or len({c.label for c in clips}) < 2:
            return out
        while len(out) < count:
            i, j = rng.integers(len(clips), size=2)
            a, b = clips[int(i)], clips[int(j)]
            if a.label == b.label:
                continue
            item = AudioItem.of(a.path, mix=(b.path, self.config.mix_ratio))
            out.append(Pair(item, self._rows_of("fused", (a.label, b.label)), 2, f"{a.label}+{b.label}"))
        return out

    def _build_pairs(self) -> None:
        cfg, ds = self.config, self.dataset
        self.train_pairs = self._pairs_for(ds.train)
        self.val_pairs = self._pairs_for(ds.val)
        if cfg.mix_pairs and ds.val:
            n_val = max(1, round(cfg.mix_pairs * len(ds.val) / max(1, len(ds.train))))
            self.val_pairs += self._mix_pairs(ds.val, n_val, np.random.default_rng([cfg.seed, 7919]))
        self.term_weights = {"original": 1.0, "augmented": cfg.augment_weight, "mixed": cfg.mix_weight}

    # ---- epochs -----------------------------------------------------------------------------
    def epoch_rows(self, epoch: int) -> list[Row]:
        """The ordered (source, caption row, term, weight, label) rows of ``epoch`` — a function of
        ``(seed, epoch)`` only, so a resumed run sees exactly the same data."""
        cfg = self.config
        pairs = list(self.train_pairs)
        if cfg.mix_pairs:
            pairs += self._mix_pairs(self.dataset.train, cfg.mix_pairs, np.random.default_rng([cfg.seed, epoch, 2]))
            if self.cache is not None:
                self._ensure([p.item for p in pairs if self._cached(p.item)], "caching mixed audio")
        counts = {t: sum(p.term == i for p in pairs) for i, t in enumerate(TERMS)}
        weights = pair_weights(counts, self.term_weights)
        rng = np.random.default_rng([cfg.seed, epoch, 1])
        choice = [p.captions[int(rng.integers(len(p.captions)))] for p in pairs]
        order = rng.permutation(len(pairs))
        return [(self._source(pairs[i].item), choice[i], pairs[i].term, weights[TERMS[pairs[i].term]],
                 self._label_id(pairs[i])) for i in order]

    def _label_id(self, pair: Pair) -> int:
        return self.label_ids.get(pair.label, -1) if pair.term == 0 else -1

    def _cached(self, item: AudioItem) -> bool:
        """Whether ``item``'s tokens come from the cache (else the encoder runs live on it)."""
        if self.cache is None:
            return False
        return self.config.cache_augmented or not (item.effects or item.mix)

    def _source(self, item: AudioItem) -> Any:
        return self.paths[item] if self._cached(item) else item

    def _loader(self, rows: list[Row]) -> Any:
        # its own generator: starting an iterator must not draw from the global torch RNG, or a
        # run resumed mid-epoch would see other dropout masks than the uninterrupted run
        loader = DataLoader(_Rows(rows, self.memory, self.live), batch_size=self.config.batch_size, shuffle=False,
                            num_workers=self.config.num_workers, collate_fn=_collate,
                            persistent_workers=False, generator=torch.Generator().manual_seed(self.config.seed))
        return self.accelerator.prepare_data_loader(loader)

    def _tokens(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Tokens ``[B, m, d]`` of a batch: cached tokens as they are, waveforms through the encoder."""
        device = self.accelerator.device
        live = [i for i, x in enumerate(xs) if x.ndim == 1]
        if not live:
            return torch.stack([x.to(device, torch.float32) for x in xs])
        encoded = self.encoder.encode([xs[i].cpu().numpy() for i in live], batch_size=self.config.encode_batch_size)
        out = list(xs)
        for i, t in zip(live, encoded):
            out[i] = t
        return torch.stack([x.to(device, torch.float32) for x in out])

    def _loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tokens = self._tokens(batch["x"])
        with self.accelerator.autocast():
            pred = self.model(tokens)
        rows = batch["caption"].cpu()
        target = {n: self.targets[n][rows].to(self.accelerator.device) for n in self.names}
        return per_sample_loss(pred, target, self.names, self.config.target_weights), pred

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Eq. 6/7 on the validation pairs (first caption of each) and class-caption retrieval top-1."""
        if not self.val_pairs:
            return {}
        self.model.eval()
        rows = [(self._source(p.item), p.captions[0], p.term, 1.0, self._label_id(p)) for p in self.val_pairs]
        device = self.accelerator.device
        class_of = torch.tensor([self.label_ids[lb] for lb in self.class_label], device=device)
        losses, terms, hits = [], [], []
        for batch in self._loader(rows):
            per, pred = self._loss(batch)
            sims = self.class_index.similarity({k: pred[k] for k in self.names})
            hit = (class_of[sims.argmax(1)] == batch["label"].to(device)).float()
            per, term, hit = self.accelerator.gather_for_metrics((per, batch["term"].to(device), hit))
            losses.append(per.float().cpu())
            terms.append(term.cpu())
            hits.append(hit.cpu())
        per, term, hit = torch.cat(losses), torch.cat(terms), torch.cat(hits)
        counts = {t: int((term == i).sum()) for i, t in enumerate(TERMS)}
        out = {k: float(v) for k, v in objective(per, term, counts, self.term_weights).items()}
        out["top1"] = float(100.0 * hit[term == 0].mean()) if (term == 0).any() else float("nan")
        self.model.train()
        return {f"val_{k}": v for k, v in out.items()}

    # ---- checkpoints ------------------------------------------------------------------------
    def _save_folder(self, name: str, state: dict[str, Any] | None = None) -> None:
        """Write ``<out>/<name>/`` atomically: build a temp folder, then swap it in."""
        if not self.accelerator.is_main_process:
            return
        target = self.out / name
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.out))
        try:
            self.accelerator.unwrap_model(self.model).save_pretrained(tmp)
            if state is not None:
                torch.save(state, tmp / STATE_FILE)
            old = None
            if target.exists():
                old = self.out / f".{name}.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _training_state(self, epoch: int, step_in_epoch: int, finished: str | None) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "optimizers": {b: o.state_dict() for b, o in zip(self.branches, self.optimizers)},
            "rng": _rng_state(),
            "best_val_loss": self.best_val,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "epoch_loss_sum": self.epoch_loss_sum,
            "epoch_count": self.epoch_count,
            "finished": finished,
            "data_order": {"seed": self.config.seed, "epoch": epoch,
                           "rows": torch.tensor([r[1] for r in self.epoch_rows_cache] if self.epoch_rows_cache else [])},
        }

    def _audio_digest(self) -> str:
        """One sha256 over every train/val clip's (path, label, split, content hash)."""
        import hashlib

        from seeingsounds.data.manifest import file_sha256

        digest = hashlib.sha256()
        for c in self.dataset.clips:
            if c.split == "test":
                continue
            content = self.cache.file_hash(c.path) if self.cache is not None else file_sha256(c.path)
            digest.update(f"{c.path}\t{c.label}\t{c.split}\t{content}\n".encode())
        return digest.hexdigest()

    def _write_run_files(self, audio_sha256: str) -> None:
        if not self.accelerator.is_main_process:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        cache_info = None if self.cache is None else {"dir": str(self.cache.root), "dtype": self.cache.dtype_name}
        atomic_write_json(self.out / CONFIG_FILE, {
            "train": self.config.to_dict(),
            "preset": self.preset.to_dict(),
            "data": {**self.dataset.fingerprint(), "audio_sha256": audio_sha256},
            "encoder": {"name": self.encoder.name, "model_id": self.encoder.model_id,
                        "identity": self.encoder.identity()},
            "generator": {"name": self.backend.name, "model_id": self.backend.model_id,
                          "max_sequence_length": self.backend.max_sequence_length,
                          "spec": {n: list(s.shape) for n, s in self.spec.items()}},
            "aligned": self.names,
            "learning_rates": self.lr,
            "feature_cache": cache_info,
            "objective": "eq7" if self.config.extended else "eq6",
            "versions": _library_versions(),
        })
        save_caption_set(self.out, self.captions, self.targets)

    def _metrics_writers(self, completed: int) -> None:
        path = self.out / METRICS_FILE
        if not self.accelerator.is_main_process:
            self.tb = None
            return
        if path.exists():  # keep the completed epochs; drop lines of epochs that will be run again
            kept = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()
                    if (e := _metrics_epoch(ln)) is not None and e <= completed]  # and lines cut short
            self.history = [json.loads(ln) for ln in kept]
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")
            os.replace(tmp, path)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out / "tensorboard"))
        except Exception:  # tensorboard is optional
            self.tb = None

    def _record(self, metrics: dict[str, Any]) -> None:
        self.history.append(metrics)
        if not self.accelerator.is_main_process:
            return
        with open(self.out / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "global_step") and math.isfinite(v):
                    self.tb.add_scalar(k, v, metrics["epoch"])
            self.tb.flush()

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        from tqdm.auto import tqdm

        if not hasattr(self, "model"):
            self.setup()
        cfg = self.config
        st = self.state or {}
        self.global_step = int(st.get("global_step", 0))
        self.best_val = st.get("best_val_loss")
        self.best_epoch = st.get("best_epoch")
        self.bad_epochs = int(st.get("bad_epochs", 0))
        self.epoch_loss_sum = float(st.get("epoch_loss_sum", 0.0))
        self.epoch_count = int(st.get("epoch_count", 0))
        start_epoch, start_step = int(st.get("epoch", 0)), int(st.get("step_in_epoch", 0))
        self.history: list[dict[str, Any]] = []
        self.epoch_rows_cache: list[Any] = []
        if st.get("finished") == "early_stopping" or (st.get("finished") and start_epoch >= cfg.epochs):
            self.log(f"{self.out}: the run already finished ({st['finished']})")
            self._metrics_writers(start_epoch)
            return self._result(start_epoch, st["finished"])
        audio = self._audio_digest()
        if st:
            self._check_same_data({"audio_sha256": audio})
        self._write_run_files(audio)
        self._metrics_writers(start_epoch)
        if st:
            _set_rng_state(st["rng"])
            self.log(f"resuming {self.out} at epoch {start_epoch + 1}, step {start_step} (global step {self.global_step})")
        steps_this_call = 0
        stopped = "epochs"
        epoch = start_epoch
        self.model.train()
        try:
            for epoch in range(start_epoch, cfg.epochs):
                t0 = time.time()
                rows = self.epoch_rows(epoch)
                self.epoch_rows_cache = rows
                loader = self._loader(rows)
                skip = start_step if epoch == start_epoch else 0
                if skip == 0:
                    self.epoch_loss_sum, self.epoch_count = 0.0, 0
                if skip:
                    loader = self.accelerator.skip_first_batches(loader, skip)
                total = math.ceil(len(rows) / cfg.batch_size / self.accelerator.num_processes)
                bar = tqdm(total=total, initial=skip, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                           disable=not cfg.progress or not self.accelerator.is_main_process, leave=False)
                step = skip
                for batch in loader:
                    per, _ = self._loss(batch)
                    loss = (per * batch["weight"].to(per.device)).mean()
                    self.accelerator.backward(loss)
                    for opt in self.optimizers:
                        opt.step()
                    for opt in self.optimizers:
                        opt.zero_grad(set_to_none=True)
                    step += 1
                    self.global_step += 1
                    steps_this_call += 1
                    self.epoch_loss_sum += float(loss.detach()) * len(per)
                    self.epoch_count += len(per)
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
                    if cfg.max_steps is not None and steps_this_call >= cfg.max_steps and step < total:
                        bar.close()
                        self._save_folder("last", self._training_state(epoch, step, None))
                        self.log(f"stopped after {steps_this_call} steps (max_steps); resume with --resume")
                        return self._result(epoch, "max_steps")
                bar.close()
                train_loss = self.epoch_loss_sum / max(1, self.epoch_count)
                val = self.validate()
                monitor = val.get("val_loss", train_loss)
                improved = self.best_val is None or monitor < self.best_val - cfg.min_delta
                if improved:
                    self.best_val, self.best_epoch, self.bad_epochs = float(monitor), epoch + 1, 0
                    self._save_folder("best")
                else:
                    self.bad_epochs += 1
                early = self.bad_epochs >= cfg.patience
                done = early or epoch + 1 >= cfg.epochs
                finished = ("early_stopping" if early else "epochs") if done else None
                metrics = {"epoch": epoch + 1, "global_step": self.global_step, "train_loss": train_loss, **val,
                           **{f"lr_{b}": self.lr[b] for b in self.branches},
                           "seconds": round(time.time() - t0, 3), "best": improved}
                self._record(metrics)
                self._save_folder("last", self._training_state(epoch + 1, 0, finished))
                self.log(f"epoch {epoch + 1}: train {train_loss:.5g}" + "".join(
                    f", {k} {v:.4g}" for k, v in val.items() if k in ("val_loss", "val_top1"))
                    + (" *" if improved else ""))
                if cfg.max_steps is not None and steps_this_call >= cfg.max_steps and not done:
                    self.log(f"stopped after {steps_this_call} steps (max_steps); resume with --resume")
                    return self._result(epoch + 1, "max_steps")
                if early:
                    stopped = "early_stopping"
                    self.log(f"early stopping: no val-loss improvement for {cfg.patience} epochs")
                    break
        except KeyboardInterrupt:
            self.log("interrupted: the last completed epoch is in last/; continue with --resume")
            raise
        finally:
            if getattr(self, "tb", None) is not None:
                self.tb.close()
        return self._result(epoch + 1, stopped)

    def _end(self) -> None:
        """Wait for every process and leave the process group (a multi-process launch otherwise
        aborts at exit with gloo threads still running)."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.num_processes > 1:
            self.accelerator.end_training()

    def _result(self, epochs: int, stopped: str) -> TrainResult:
        self._end()
        return TrainResult(out=self.out, best_epoch=self.best_epoch, best_val_loss=self.best_val,
                           epochs_completed=epochs, global_step=self.global_step, stopped=stopped,
                           history=list(getattr(self, "history", [])))


def train(config: TrainConfig | None = None, *, encoder: Any = None, backend: Any = None,
          **options: Any) -> TrainResult:
    """Train an aligner: ``train(TrainConfig(...))`` or ``train(preset=..., data=..., captions=..., out=...)``."""
    if config is None:
        config = TrainConfig(**options)
    elif options:
        raise ConfigError("pass either a TrainConfig or keyword options, not both")
    return Trainer(config, encoder=encoder, backend=backend).fit()
