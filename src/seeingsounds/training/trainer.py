"""Training loop: aligner heads onto the generator's own caption embeddings (paper Eq. 6 / Eq. 7).

Orchestration only; the parts live beside it: :mod:`~seeingsounds.training.pairs` (pairs, the
seeded mix pool, the epoch order, the dataset), :mod:`~seeingsounds.training.targets` (the target
store), :mod:`~seeingsounds.training.state` (resume checks, RNG state),
:mod:`~seeingsounds.training.edits` (the run's caption edits) and :mod:`seeingsounds.runs` (the run folder).

* Everything cheap is checked before any model loads: dataset, options, the output folder
  (refused when it is not a run, is read by the run or cannot be written), resume compatibility.
  The folder is locked (``<out>/.lock``) while the run trains into it.
* Separate AdamW optimisers: sequence head(s) at ``lr_sequence``, pooled head(s) at ``lr_pooled``.
* Validation loss and caption-retrieval top-1 every epoch; model selection and early stopping on
  validation loss (on the training loss when there is no validation clip); ``<out>/best/`` and
  ``<out>/last/`` (+ ``training_state.pt``) written atomically every epoch; ``resume=True``
  continues exactly where a run stopped.
* ``accelerate``: the same code runs on CPU, one GPU (bf16 autocast) or several processes under
  ``accelerate launch`` / ``torchrun``; only the main process writes.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from seeingsounds.cache import AudioItem, FeatureCache, read_tokens
from seeingsounds.devices import mixed_precision, resolve_device
from seeingsounds.errors import ConfigError
from seeingsounds.paths import atomic_write_json, atomic_write_text, ensure_writable_dir
from seeingsounds.runs import EDITS_FILE, STATE_FILE, TARGETS_FILE, RunFolder, library_versions
from seeingsounds.training import pairs as P
from seeingsounds.training.config import TrainConfig
from seeingsounds.training.edits import RunCaptionEdits, engine_options
from seeingsounds.training.objective import TERMS, branch_optimizers, objective, per_sample_loss
from seeingsounds.training.state import (LoopState, MetricsLog, audio_digest, check_same_data, check_same_options,
                                         load_state, rng_state, set_rng_state)
from seeingsounds.training.targets import RowRetrieval, TargetStore, device_budget_bytes, prepare_store

#: cached tokens are held in memory when they fit in this many bytes (else read per batch)
PRELOAD_BYTES = 2 << 30
#: class-caption targets are held as a retrieval index (fp32 on the CPU) up to this size; larger
#: sets (FLUX-dev: 8 MiB a caption) are streamed from the target store at each validation batch
INDEX_BYTES = 1 << 30


@dataclass
class TrainResult:
    out: Path
    best_epoch: int | None
    best_val_loss: float | None
    epochs_completed: int
    global_step: int
    stopped: str
    history: list[dict[str, Any]] = field(default_factory=list)
    #: whether there were validation pairs (else ``best_val_loss`` is the best *training* loss)
    validated: bool = True

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def make_accelerator(device: str) -> Any:
    """An ``accelerate.Accelerator`` for ``device`` (:func:`seeingsounds.devices.resolve_device`) with
    the device's mixed precision; ``Accelerator(cpu=True)`` also joins a multi-CPU launch."""
    from accelerate import Accelerator

    resolved = resolve_device(device)
    return Accelerator(cpu=resolved.type == "cpu", mixed_precision=mixed_precision(resolved))


def augment_descriptions(augment: list[list[Any]]) -> list[tuple[str, ...]]:
    from seeingsounds.audio.effects import describe_effect

    return [tuple(describe_effect(name, **params) for name, params in chain) for chain in augment]


class Trainer:
    """Trains one run. ``encoder`` / ``backend`` may be passed in (already loaded) to save time.
    Call :meth:`fit` (it calls :meth:`setup` first when needed)."""

    def __init__(self, config: TrainConfig, *, encoder: Any = None, backend: Any = None,
                 log: Callable[[str], None] | None = None):
        self.config = config
        self.run = RunFolder(config.out_dir)
        self._given = (encoder, backend)
        self._log_fn = log or (lambda m: print(m, file=sys.stderr))
        self._held = contextlib.ExitStack()  # the run-folder lock, from setup to the end of fit
        self.accelerator: Any = None
        self.dataset: Any = None
        self.preset: Any = None
        self.encoder: Any = None
        self.backend: Any = None
        self.spec: dict[str, Any] = {}
        self.cache: FeatureCache | None = None
        self.caption_rows: P.RunCaptions | None = None
        self.captions: Any = None  # the CaptionSet
        self.targets: TargetStore | None = None
        self.model: Any = None
        self.optimizers: list[Any] = []
        self.branches: list[str] = []
        self.names: list[str] = []
        self.lr: dict[str, float] = {}
        self.term_weights = {"original": 1.0, "augmented": config.augment_weight, "mixed": config.mix_weight}
        self.label_ids: dict[str, int] = {}
        self.train_pairs: list[P.Pair] = []
        self.val_pairs: list[P.Pair] = []
        self.paths: dict[AudioItem, Path] = {}
        self.memory: dict[AudioItem, torch.Tensor] | None = None
        self.class_index: RowRetrieval | None = None
        self.saved: dict[str, Any] | None = None  # config.json of the run resumed
        self.state: dict[str, Any] | None = None  # its training_state.pt
        self.loop = LoopState()
        self.metrics = MetricsLog(self.run, main=True)  # re-made in setup, once the process is known
        self.epoch_rows_cache: list[P.Row] = []
        #: what setup built: captions per kind, mixes drawn, distinct class pairs fused, targets encoded
        self.counts: dict[str, int] = {}
        #: seconds spent per part of the training steps (data, targets, aligner) and the step count
        self.timing = {"data": 0.0, "targets": 0.0, "aligner": 0.0, "steps": 0}

    def log(self, message: str) -> None:
        if self.accelerator is None or self.accelerator.is_main_process:
            self._log_fn(message)

    @property
    def out(self) -> Path:
        return self.run.path

    # ---- setup ------------------------------------------------------------------------------
    def setup(self) -> None:
        """Validate inputs and the run folder, build the caption set, load models, targets, features."""
        from accelerate.utils import set_seed

        from seeingsounds.data.manifest import load_dataset
        from seeingsounds.presets import get_preset

        cfg = self.config
        # -- everything cheap first, before any model loads --------------------------------------
        self.dataset = ds = load_dataset(cfg.data, cfg.captions, seed=cfg.seed, val_fraction=cfg.val_fraction,
                                         skip_bad=cfg.skip_bad)
        self.preset = get_preset(cfg.preset)
        descriptions = augment_descriptions(cfg.augment)
        if cfg.mix_pairs and len(ds.labels) < 2:
            raise ConfigError("--mix-pairs needs at least two classes")
        self.accelerator = make_accelerator(cfg.device)
        main = self.accelerator.is_main_process
        self.metrics = MetricsLog(self.run, main)
        self.run.check_new_or_run(cfg.resume, reads=[cfg.data, cfg.captions])
        if main:
            self._held.enter_context(self.run.lock())
        if cfg.resume:
            self.saved = check_same_options(cfg, self.preset.to_dict(), self.run)
            check_same_data(ds.fingerprint(), self.saved.get("data") or {}, self.run)
            self.state = load_state(self.run)
        elif main:
            (self.run / EDITS_FILE).unlink(missing_ok=True)  # a fresh run asks its engine afresh
        if cfg.use_cache:
            self.cache = FeatureCache(cfg.cache_dir, dtype=cfg.cache_dtype)
            ensure_writable_dir(self.cache.root, "feature cache (--cache-dir)")
        if not ds.val:
            self.log(f"warning: no validation clips in {cfg.data} ({len(ds.train)} train clips, val_fraction "
                     f"{cfg.val_fraction}): best/ is chosen on the training loss; add clips per class or val rows")
        self.log(f"data: {ds.summary()}")
        set_seed(cfg.seed)

        # -- the caption set: class, edited, fused for the drawn class pairs only --------------------
        pools = P.MixPools.draw(ds, cfg.mix_pairs, cfg.seed)
        label_pairs = pools.label_pairs()
        with self.accelerator.main_process_first():
            editor = RunCaptionEdits(self.run / EDITS_FILE, cfg.caption_engine, engine_options(cfg),
                                     write=main) if cfg.extended else None
            self.caption_rows = P.RunCaptions.build(ds, descriptions, editor, label_pairs)
            if editor is not None:
                editor.close()
        self.captions = self.caption_rows.captions
        if cfg.resume and self.captions.to_json() != self.run.caption_set().to_json():
            raise ConfigError(f"--resume: the captions would differ from the interrupted run's ({self.run.path}/"
                              f"captions.json; {EDITS_FILE} lacks edits the engine now answers differently); "
                              "restore the run's caption_edits.jsonl, or start a new run in another --out")
        kinds = [e.kind for e in self.captions.entries]
        self.counts = {"captions": len(kinds), "class": kinds.count("class"), "edited": kinds.count("edited"),
                       "fused": kinds.count("fused"), "mixes": len(pools.train) + len(pools.val),
                       "class_pairs_drawn": len(label_pairs),
                       "edits_computed": editor.computed if editor is not None else 0}

        # -- models, targets, aligner ----------------------------------------------------------------
        from seeingsounds.model import create_aligner, load_backend, load_encoder

        device = self.accelerator.device
        encoder, backend = self._given
        self.encoder = (encoder if encoder is not None else load_encoder(self.preset)).to(device)
        self.backend = backend if backend is not None else load_backend(self.preset)
        self.spec = self.backend.conditioning_spec()
        unknown = sorted(set(cfg.target_weights) - set(self.spec))
        if unknown:
            raise ConfigError(f"loss weights for unknown tensors {unknown}; this generator has {list(self.spec)}")
        null, self.counts["targets_encoded"] = prepare_store(
            self.run / TARGETS_FILE, self.captions.texts, self.backend, cache=self.cache, device=device,
            dtype=cfg.dtype, batch_size=cfg.encode_batch_size, progress=cfg.progress, main=main, resume=cfg.resume,
            wait=self.accelerator.wait_for_everyone)
        aligner = create_aligner(self.preset, self.encoder.hidden_size, self.spec, align=cfg.align,
                                 order=cfg.order, pooling=cfg.pooling, hidden_dim=cfg.hidden_dim, dropout=cfg.dropout)
        aligner.set_null_conditioning(null)
        self.names = aligner.aligned_names
        self.lr = {"sequence": cfg.lr_sequence or self.preset.lr_sequence, "pooled": cfg.lr_pooled or self.preset.lr_pooled}
        self.branches, optimizers = branch_optimizers(aligner, self.spec, self.names, self.lr, cfg.weight_decay)
        if self.state is not None:
            from safetensors.torch import load_file

            aligner.load_state_dict(load_file(str(self.run.last / "model.safetensors")), strict=True)
            for branch, opt in zip(self.branches, optimizers):
                opt.load_state_dict(self.state["optimizers"][branch])
        prepared = self.accelerator.prepare(aligner, *optimizers)
        self.model, self.optimizers = prepared[0], list(prepared[1:])
        self.targets = TargetStore(self.run / TARGETS_FILE, self.names, device)
        resident = self.caption_rows.class_rows + self.captions.rows("edited")
        train_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.accelerator.mixed_precision,
                                                                          torch.float32)
        if self.targets.keep_resident(resident, device_budget_bytes(device, cfg.target_memory_gb), train_dtype):
            self.log(f"caption targets: {len(resident)} class/edited rows kept on {device}")

        # -- pairs and features --------------------------------------------------------------------
        self.label_ids = {lb: i for i, lb in enumerate(ds.labels)}
        build = (self.caption_rows, cfg.augment, descriptions, cfg.mix_ratio)
        self.train_pairs = P.build_pairs(ds.train, pools.train, *build)
        self.val_pairs = P.build_pairs(ds.val, pools.val, *build)
        cached = list(dict.fromkeys(p.item for p in self.train_pairs + self.val_pairs if self._cached(p.item)))
        if self.cache is not None:  # collective under a launcher: every process calls it
            found = self.cache.ensure_audio(self.encoder, cached, batch_size=cfg.encode_batch_size,
                                            progress=cfg.progress and main, desc="caching encoder features")
            self.paths = dict(zip(cached, found))
            self.log(f"feature cache {self.cache.root}: {self.cache.stats}")
            item_bytes = self.encoder.num_tokens * self.encoder.hidden_size * torch.finfo(self.cache.dtype).bits // 8
            if item_bytes * len(cached) <= PRELOAD_BYTES:
                self.memory = {it: read_tokens(self.paths[it]) for it in cached}
        if self.val_pairs:
            self.class_index = RowRetrieval(self.targets, self.caption_rows.class_rows, cfg.target_weights, device,
                                            INDEX_BYTES)

    def _cached(self, item: AudioItem) -> bool:
        """Whether ``item``'s tokens come from the cache (else the encoder runs live on it)."""
        if self.cache is None:
            return False
        return self.config.cache_augmented or not (item.effects or item.mix)

    # ---- epochs -----------------------------------------------------------------------------
    def epoch_rows(self, epoch: int) -> list[P.Row]:
        """The ordered rows of ``epoch``: a function of ``(seed, epoch)`` only."""
        return P.epoch_rows(self.train_pairs, epoch, self.config.seed, self.term_weights, self.label_ids)

    def _loader(self, rows: list[P.Row]) -> Any:
        # its own generator: starting an iterator must not draw from the global torch RNG, or a
        # run resumed mid-epoch would see other dropout masks than the uninterrupted run
        dataset = P.PairDataset(rows, paths=self.paths if self.cache is not None else {}, memory=self.memory,
                                sample_rate=self.encoder.sample_rate, window=self.encoder.window_samples)
        loader = DataLoader(dataset, batch_size=self.config.batch_size, shuffle=False,
                            num_workers=self.config.num_workers, collate_fn=P.collate, persistent_workers=False,
                            generator=torch.Generator().manual_seed(self.config.seed))
        return self.accelerator.prepare_data_loader(loader)

    def _loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t0 = time.perf_counter()
        tokens = P.encode_batch(batch["x"], lambda w: self.encoder.encode(w, batch_size=self.config.encode_batch_size),
                                self.accelerator.device)
        t1 = time.perf_counter()
        target = self.targets.gather(batch["caption"])
        t2 = time.perf_counter()
        with self.accelerator.autocast():
            pred = self.model(tokens)
        self.timing["data"] += t1 - t0
        self.timing["targets"] += t2 - t1
        self.timing["aligner"] += time.perf_counter() - t2
        return per_sample_loss(pred, target, self.names, self.config.target_weights), pred

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Eq. 6/7 on the validation pairs (first caption of each) and class-caption retrieval top-1."""
        if not self.val_pairs:
            return {}
        self.model.eval()
        timing = dict(self.timing)  # the step timing counts training steps only
        device = self.accelerator.device
        class_of = torch.tensor([self.label_ids[lb] for lb in self.caption_rows.class_label], device=device)
        losses, terms, hits = [], [], []
        for batch in self._loader(P.first_caption_rows(self.val_pairs, self.label_ids)):
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
        self.timing = timing
        return {f"val_{k}": v for k, v in out.items()}

    # ---- run files --------------------------------------------------------------------------
    def _save(self, name: str, state: dict[str, Any] | None = None) -> None:
        if not self.accelerator.is_main_process:
            return

        def build(tmp: Path) -> None:
            self.accelerator.unwrap_model(self.model).save_pretrained(tmp)
            if state is not None:
                torch.save(state, tmp / STATE_FILE)

        self.run.replace_folder(name, build)

    def _training_state(self, epoch: int, step_in_epoch: int, finished: str | None) -> dict[str, Any]:
        self.loop.epoch, self.loop.step_in_epoch, self.loop.finished = epoch, step_in_epoch, finished
        return {**self.loop.to_dict(), "optimizers": {b: o.state_dict() for b, o in zip(self.branches, self.optimizers)},
                "rng": rng_state(),
                "data_order": {"seed": self.config.seed, "epoch": epoch,
                               "rows": torch.tensor([r[1] for r in self.epoch_rows_cache], dtype=torch.long)}}

    def _write_run_files(self, audio_sha256: str) -> None:
        if not self.accelerator.is_main_process:
            return
        cache = None if self.cache is None else {"dir": str(self.cache.root.resolve()), "dtype": self.cache.dtype_name}
        atomic_write_json(self.run / "config.json", {
            "train": self.config.resolved_paths(), "preset": self.preset.to_dict(),
            "data": {**self.dataset.fingerprint(), "audio_sha256": audio_sha256},
            "encoder": {"name": self.encoder.name, "model_id": self.encoder.model_id,
                        "identity": self.encoder.identity()},
            "generator": {"name": self.backend.name, "model_id": self.backend.model_id,
                          "max_sequence_length": self.backend.max_sequence_length,
                          "spec": {n: list(s.shape) for n, s in self.spec.items()}},
            "aligned": self.names, "learning_rates": self.lr, "feature_cache": cache,
            "objective": "eq7" if self.config.extended else "eq6", "captions": self.counts,
            "versions": library_versions(),
        })
        atomic_write_text(self.run / "captions.json", self.captions.to_json())

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        try:
            if self.model is None:
                self.setup()
            return self._fit()
        finally:
            self.metrics.close()
            self._held.close()

    def _fit(self) -> TrainResult:
        from tqdm.auto import tqdm

        cfg, st = self.config, self.state or {}
        self.loop = LoopState.from_saved(st)
        start_epoch, start_step = self.loop.epoch, self.loop.step_in_epoch
        if self.loop.finished == "early_stopping" or (self.loop.finished and start_epoch >= cfg.epochs):
            self.log(f"{self.out}: the run already finished ({self.loop.finished})")
            self.metrics.open(start_epoch)
            return self._result(start_epoch, self.loop.finished)
        from seeingsounds.data.manifest import file_sha256

        audio = audio_digest(self.dataset.clips, self.cache.file_hash if self.cache is not None else file_sha256)
        if st:
            check_same_data({"audio_sha256": audio}, self.saved.get("data") or {}, self.run)
        self._write_run_files(audio)
        self.metrics.open(start_epoch)
        if st:
            set_rng_state(st["rng"])
            self.log(f"resuming {self.out} at epoch {start_epoch + 1}, step {start_step} "
                     f"(global step {self.loop.global_step})")
        steps_this_call, stopped, epoch = 0, "epochs", start_epoch
        loop = self.loop
        self.model.train()
        try:
            for epoch in range(start_epoch, cfg.epochs):
                t0 = time.time()
                self.epoch_rows_cache = rows = self.epoch_rows(epoch)
                loader = self._loader(rows)
                skip = start_step if epoch == start_epoch else 0
                if skip == 0:
                    loop.epoch_loss_sum, loop.epoch_count = 0.0, 0
                else:
                    loader = self.accelerator.skip_first_batches(loader, skip)
                total = math.ceil(len(rows) / cfg.batch_size / self.accelerator.num_processes)
                bar = tqdm(total=total, initial=skip, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                           disable=not cfg.progress or not self.accelerator.is_main_process, leave=False)
                step = skip
                batches = iter(loader)
                while True:
                    t_data = time.perf_counter()
                    batch = next(batches, None)
                    if batch is None:
                        break
                    self.timing["data"] += time.perf_counter() - t_data
                    per, _ = self._loss(batch)
                    t_step = time.perf_counter()
                    loss = (per * batch["weight"].to(per.device)).mean()
                    self.accelerator.backward(loss)
                    for opt in self.optimizers:
                        opt.step()
                    for opt in self.optimizers:
                        opt.zero_grad(set_to_none=True)
                    self.timing["aligner"] += time.perf_counter() - t_step
                    self.timing["steps"] += 1
                    step += 1
                    loop.global_step += 1
                    steps_this_call += 1
                    loop.epoch_loss_sum += float(loss.detach()) * len(per)
                    loop.epoch_count += len(per)
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
                    if cfg.max_steps is not None and steps_this_call >= cfg.max_steps and step < total:
                        bar.close()
                        self._save("last", self._training_state(epoch, step, None))
                        self.log(f"stopped after {steps_this_call} steps (max_steps); resume with --resume")
                        return self._result(epoch, "max_steps")
                bar.close()
                train_loss = loop.epoch_loss_sum / max(1, loop.epoch_count)
                val = self.validate()
                monitor = val.get("val_loss", train_loss)
                improved = loop.best_val_loss is None or monitor < loop.best_val_loss - cfg.min_delta
                if improved:
                    loop.best_val_loss, loop.best_epoch, loop.bad_epochs = float(monitor), epoch + 1, 0
                    self._save("best")
                else:
                    loop.bad_epochs += 1
                early = loop.bad_epochs >= cfg.patience
                done = early or epoch + 1 >= cfg.epochs
                finished = ("early_stopping" if early else "epochs") if done else None
                self.metrics.record({"epoch": epoch + 1, "global_step": loop.global_step, "train_loss": train_loss, **val,
                              **{f"lr_{b}": self.lr[b] for b in self.branches},
                              "seconds": round(time.time() - t0, 3), "best": improved})
                self._save("last", self._training_state(epoch + 1, 0, finished))
                self.log(f"epoch {epoch + 1}: train {train_loss:.5g}" + "".join(
                    f", {k} {v:.4g}" for k, v in val.items() if k in ("val_loss", "val_top1"))
                    + (" *" if improved else ""))
                if cfg.max_steps is not None and steps_this_call >= cfg.max_steps and not done:
                    self.log(f"stopped after {steps_this_call} steps (max_steps); resume with --resume")
                    return self._result(epoch + 1, "max_steps")
                if early:
                    stopped = "early_stopping"
                    self.log(f"early stopping: no {'val' if self.val_pairs else 'training'}-loss improvement "
                             f"for {cfg.patience} epochs")
                    break
        except KeyboardInterrupt:
            self.log("interrupted: the last completed epoch is in last/; continue with --resume")
            raise
        return self._result(epoch + 1, stopped)

    def _result(self, epochs: int, stopped: str) -> TrainResult:
        # wait for every process and leave the process group (a multi-process launch otherwise
        # aborts at exit with gloo threads still running)
        self.accelerator.wait_for_everyone()
        if self.accelerator.num_processes > 1:
            self.accelerator.end_training()
        return TrainResult(out=self.out, best_epoch=self.loop.best_epoch, best_val_loss=self.loop.best_val_loss,
                           epochs_completed=epochs, global_step=self.loop.global_step, stopped=stopped,
                           history=list(self.metrics.history), validated=bool(self.val_pairs))


def train(config: TrainConfig | None = None, *, encoder: Any = None, backend: Any = None,
          **options: Any) -> TrainResult:
    """Train an aligner: ``train(TrainConfig(...))`` or ``train(preset=..., data=..., captions=..., out=...)``."""
    if config is None:
        config = TrainConfig(**options)
    elif options:
        raise ConfigError("pass either a TrainConfig or keyword options, not both")
    return Trainer(config, encoder=encoder, backend=backend).fit()
