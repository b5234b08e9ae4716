"""Training loop: aligner heads onto the generator's own caption embeddings (paper Eq. 6 / Eq. 7).

Orchestration only. The parts: :mod:`~seeingsounds.training.pairs` (pairs, mix pool, epoch order,
dataset, feature source), :mod:`~seeingsounds.training.targets` (the target store),
:mod:`~seeingsounds.training.state` (resume checks, loop counters, RNG), :mod:`~seeingsounds.training.checkpoints`
(best/, last/, metrics, model selection, early stopping), :mod:`~seeingsounds.training.edits` (caption
edits), :mod:`~seeingsounds.training.objective` (the loss, the two AdamW optimisers: sequence heads at
``lr_sequence``, pooled heads at ``lr_pooled``) and :mod:`seeingsounds.runs` (the run folder, locked while training).

Everything cheap (dataset, options, output folder, resume compatibility) is checked before any model
loads. ``resume=True`` continues exactly where a run stopped. The same code runs on CPU, one GPU
(bf16 autocast) or several processes under ``accelerate launch`` / ``torchrun``; only the main process writes.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from seeingsounds.cache import FeatureCache
from seeingsounds.devices import mixed_precision, resolve_device
from seeingsounds.errors import ConfigError, DatasetError
from seeingsounds.runs import EDITS_FILE, TARGETS_FILE, RunFolder
from seeingsounds.training import pairs as P
from seeingsounds.training.checkpoints import Checkpoints, MetricsLog, load_last, run_record, write_run_files
from seeingsounds.training.config import TrainConfig
from seeingsounds.training.edits import augment_descriptions, build_run_captions
from seeingsounds.training.objective import (branch_optimizers, check_target_weights, learning_rates, per_sample_loss,
                                             validation_metrics)
from seeingsounds.training.state import (LoopState, TrainResult, check_resume, check_same_audio, check_same_captions,
                                         set_rng_state)
from seeingsounds.training.targets import RowRetrieval, TargetStore, open_store, prepare_store


def make_accelerator(device: str) -> Any:
    """An ``accelerate.Accelerator`` for ``device`` (:func:`seeingsounds.devices.resolve_device`) with
    the device's mixed precision; ``Accelerator(cpu=True)`` also joins a multi-CPU launch."""
    from accelerate import Accelerator

    resolved = resolve_device(device)
    return Accelerator(cpu=resolved.type == "cpu", mixed_precision=mixed_precision(resolved))


class Trainer:
    """Trains one run. ``encoder`` / ``backend`` may be passed in (already loaded) to save time.
    Call :meth:`fit` (it calls :meth:`setup` first when needed).

    ``log`` receives the progress lines (default: stderr); ``on_epoch``, when given, receives each
    completed epoch's ``metrics.jsonl`` record (``epoch``, ``train_loss``, ``val_loss``, ``best``, ...)
    instead of its ``epoch N: ...`` line, on the main process."""

    def __init__(self, config: TrainConfig, *, encoder: Any = None, backend: Any = None,
                 log: Callable[[str], None] | None = None,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None):
        self.config = config
        self.on_epoch = on_epoch
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
        self.descriptions: list[tuple[str, ...]] = []  # d_j of each effect chain
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
        self.features: P.FeatureSource | None = None
        self.class_index: RowRetrieval | None = None
        self.saved: dict[str, Any] | None = None  # config.json of the run resumed
        self.state: dict[str, Any] | None = None  # its training_state.pt
        self.loop = LoopState()
        self.metrics = MetricsLog(self.run, main=True)  # re-made in setup, once the process is known
        self.checkpoints: Checkpoints | None = None
        self.epoch_rows_cache: list[P.Row] = []
        #: ``<file>: <why>`` of each audio file skipped because it cannot be decoded (``--skip-bad``)
        self.undecodable: list[str] = []
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
        self._check_inputs()
        pools = P.MixPools.draw(self.dataset, self.config.mix_pairs, self.config.seed)
        self._build_captions(pools)
        self._build_model()
        self._build_pairs(pools)

    def _check_inputs(self) -> None:
        """Everything cheap, before any model loads: dataset, options, run folder (locked), resume."""
        from accelerate.utils import set_seed

        from seeingsounds.data.manifest import load_dataset
        from seeingsounds.presets import get_preset

        cfg = self.config
        self.dataset = ds = load_dataset(cfg.data, cfg.captions, seed=cfg.seed, val_fraction=cfg.val_fraction,
                                         skip_bad=cfg.skip_bad)
        self.preset = get_preset(cfg.preset)
        self.descriptions = augment_descriptions(cfg.augment)
        if cfg.mix_pairs and len(ds.labels) < 2:
            raise ConfigError("--mix-pairs needs at least two classes")
        self.accelerator = make_accelerator(cfg.device)
        main = self.accelerator.is_main_process
        self.metrics = MetricsLog(self.run, main)
        self.run.check_new_or_run(cfg.resume, reads=[cfg.data, cfg.captions])
        if main:
            self._held.enter_context(self.run.lock())
        if cfg.resume:
            self.saved, self.state = check_resume(cfg, self.preset.to_dict(), ds.fingerprint(), self.run)
            if self.state is None:
                self.log(f"{self.out} saved no epoch ({self.run.state_path} does not exist): "
                         "training it again from epoch 1")
        elif main:
            (self.run / EDITS_FILE).unlink(missing_ok=True)  # a fresh run asks its engine afresh
        if cfg.use_cache:
            self.cache = FeatureCache(cfg.cache_dir, dtype=cfg.cache_dtype)
            self.cache.check_writable(outside=[("run folder (--out)", self.out), ("data folder (--data)", ds.source)])
        if not ds.val:
            self.log(f"warning: no validation clips in {cfg.data} ({len(ds.train)} train clips, val_fraction "
                     f"{cfg.val_fraction}): best/ is chosen on the training loss; add clips per class or val rows")
        if len(ds.labels) == 1:
            self.log(f"warning: {cfg.data} has one class ({ds.labels[0]!r}): the aligner learns one caption and the "
                     "validation top-1 is 100 % whatever it hears; add a second class for a meaningful run")
        self.log(f"data: {ds.summary()}")
        set_seed(cfg.seed)

    def _build_captions(self, pools: P.MixPools) -> None:
        """The caption set: class, edited, and fused for the drawn class pairs only."""
        label_pairs = pools.label_pairs()
        with self.accelerator.main_process_first():
            self.caption_rows, edits = build_run_captions(self.config, self.run, self.dataset, self.descriptions,
                                                          label_pairs, write=self.accelerator.is_main_process)
        self.captions = self.caption_rows.captions
        if self.state is not None:  # a run that saved no epoch may also lack its captions.json
            check_same_captions(self.captions, self.run)
        self.counts = {**self.caption_rows.counts(), "mixes": len(pools.train) + len(pools.val),
                       "class_pairs_drawn": len(label_pairs), "edits_computed": edits}

    def _build_model(self) -> None:
        """Encoder and generator, the target store, the aligner and its two optimisers (restored on resume)."""
        from seeingsounds.model import create_aligner, load_backend, load_encoder

        cfg, device = self.config, self.accelerator.device
        encoder, backend = self._given
        self.encoder = (encoder if encoder is not None else load_encoder(self.preset)).to(device)
        self.backend = backend if backend is not None else load_backend(self.preset)
        self.spec = self.backend.conditioning_spec()
        check_target_weights(cfg.target_weights, self.spec)
        null, self.counts["targets_encoded"] = prepare_store(
            self.run / TARGETS_FILE, self.captions.texts, self.backend, cache=self.cache, device=device,
            dtype=cfg.dtype, batch_size=cfg.encode_batch_size, progress=cfg.progress,
            main=self.accelerator.is_main_process, resume=cfg.resume, wait=self.accelerator.wait_for_everyone)
        aligner = create_aligner(self.preset, self.encoder.hidden_size, self.spec, align=cfg.align,
                                 order=cfg.order, pooling=cfg.pooling, hidden_dim=cfg.hidden_dim, dropout=cfg.dropout)
        aligner.set_null_conditioning(null)
        self.names = aligner.aligned_names
        self.lr = learning_rates(cfg, self.preset)
        self.branches, optimizers = branch_optimizers(aligner, self.spec, self.names, self.lr, cfg.weight_decay)
        if self.state is not None:
            load_last(self.run, aligner, optimizers, self.branches, self.state)
        prepared = self.accelerator.prepare(aligner, *optimizers)
        self.model, self.optimizers = prepared[0], list(prepared[1:])
        self.checkpoints = Checkpoints(self.run, self.accelerator, self.model, self.branches, self.optimizers,
                                       self.metrics, seed=cfg.seed, lr=self.lr)
        self.targets = open_store(self.run / TARGETS_FILE, self.names, device,
                                  resident=self.caption_rows.class_rows + self.captions.rows("edited"),
                                  budget_gb=cfg.target_memory_gb, mixed_precision=self.accelerator.mixed_precision)
        if self.targets.resident_rows:
            self.log(f"caption targets: {self.targets.resident_rows} class/edited rows kept on {device}")

    def _build_pairs(self, pools: P.MixPools) -> None:
        """The train and validation pairs, their encoder features, the validation retrieval index."""
        cfg = self.config
        self.label_ids = {lb: i for i, lb in enumerate(self.dataset.labels)}
        build = (self.caption_rows, cfg.augment, self.descriptions, cfg.mix_ratio)
        self.train_pairs = P.build_pairs(self.dataset.train, pools.train, *build)
        self.val_pairs = P.build_pairs(self.dataset.val, pools.val, *build)
        self.features = P.prepare_features(self.train_pairs + self.val_pairs, self.encoder, self.cache,
                                           cache_augmented=cfg.cache_augmented, batch_size=cfg.encode_batch_size,
                                           progress=cfg.progress and self.accelerator.is_main_process,
                                           skip_bad=cfg.skip_bad)
        if self.cache is not None:
            self.log(f"feature cache {self.cache.root}: {self.cache.stats}")
        if self.features.failed:
            self._drop_undecodable(self.features.failed)
        if self.val_pairs:
            self.class_index = RowRetrieval(self.targets, self.caption_rows.class_rows, cfg.target_weights,
                                            self.accelerator.device)

    def _drop_undecodable(self, failed: Mapping[Any, str]) -> None:
        """Drop the pairs whose audio cannot be decoded (``--skip-bad``), say which files and why, and
        refuse a class left without a train clip. Every process drops the same pairs (the failures
        come from the feature cache's markers, or from decoding every file in each process)."""
        train, val = P.drop_failed(self.train_pairs, failed), P.drop_failed(self.val_pairs, failed)
        reasons = sorted(set(failed.values()))
        self.undecodable = reasons
        self.log(f"skipping {len(reasons)} audio file(s) that cannot be decoded (--skip-bad), with the "
                 f"{len(self.train_pairs) - len(train)} train and {len(self.val_pairs) - len(val)} validation "
                 "pairs that use them:\n" + "\n".join(f"  - {why}" for why in reasons))
        left = {p.label for p in train if p.term == 0}
        lost = [lb for lb in self.dataset.labels if lb not in left]
        if lost:
            raise DatasetError([f"class {lb!r} has no train clip left after skipping audio that cannot be decoded"
                                for lb in lost], header=f"the dataset {self.config.data} has problems")
        self.train_pairs, self.val_pairs = train, val

    # ---- epochs -----------------------------------------------------------------------------
    def epoch_rows(self, epoch: int) -> list[P.Row]:
        """The ordered rows of ``epoch``: a function of ``(seed, epoch)`` only."""
        return P.epoch_rows(self.train_pairs, epoch, self.config.seed, self.term_weights, self.label_ids)

    def _loader(self, rows: list[P.Row]) -> Any:
        cfg = self.config
        loader = self.features.loader(rows, batch_size=cfg.batch_size, num_workers=cfg.num_workers, seed=cfg.seed)
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

    def _step(self, batch: Mapping[str, Any]) -> tuple[float, int]:
        """One optimiser step on ``batch``: ``(mean weighted loss, samples)``."""
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
        return float(loss.detach()), len(per)

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
        self.model.train()
        self.timing = timing
        return validation_metrics(torch.cat(losses), torch.cat(terms), torch.cat(hits), self.term_weights)

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
        cfg, st = self.config, self.state or {}
        self.loop = LoopState.from_saved(st)
        start_epoch, start_step = self.loop.epoch, self.loop.step_in_epoch
        if self.loop.already_finished(cfg.epochs):
            self.log(f"{self.out}: the run already finished ({self.loop.finished})")
            self.metrics.open(start_epoch)
            return self._result(start_epoch, self.loop.finished)
        self._begin(st)
        steps_this_call, stopped, epoch = 0, "epochs", start_epoch
        self.model.train()
        try:
            for epoch in range(start_epoch, cfg.epochs):
                t0 = time.time()
                self.epoch_rows_cache = rows = self.epoch_rows(epoch)
                skip = start_step if epoch == start_epoch else 0
                budget = None if cfg.max_steps is None else cfg.max_steps - steps_this_call
                steps, ended = self._train_epoch(epoch, rows, skip, budget)
                steps_this_call += steps
                if not ended:  # max_steps inside the epoch: last/ holds the position in it
                    self.checkpoints.save_last(self.loop, epoch, skip + steps, None, rows)
                    return self._stop_at_max_steps(epoch, steps_this_call)
                train_loss, val = self.loop.epoch_loss, self.validate()
                improved, finished = self.checkpoints.end_epoch(
                    self.loop, epoch, train_loss, val, rows, epochs=cfg.epochs, patience=cfg.patience,
                    min_delta=cfg.min_delta, seconds=time.time() - t0)
                self._epoch_done(epoch, train_loss, val, improved)
                if budget is not None and steps >= budget and finished is None:
                    return self._stop_at_max_steps(epoch + 1, steps_this_call)
                if finished == "early_stopping":
                    stopped = finished
                    self.log(f"early stopping: no {'val' if self.val_pairs else 'training'}-loss improvement "
                             f"for {cfg.patience} epochs")
                    break
        except KeyboardInterrupt:
            self.log("interrupted: the last completed epoch is in last/; continue with --resume")
            raise
        return self._result(epoch + 1, stopped)

    def _epoch_done(self, epoch: int, train_loss: float, val: Mapping[str, float], improved: bool) -> None:
        """Report a completed epoch: its metrics record to ``on_epoch``, else one log line."""
        if self.on_epoch is None:
            self.log(f"epoch {epoch + 1}: train {train_loss:.5g}" + "".join(
                f", {k} {v:.4g}" for k, v in val.items() if k in ("val_loss", "val_top1")) + (" *" if improved else ""))
        elif self.accelerator is None or self.accelerator.is_main_process:
            self.on_epoch(dict(self.metrics.history[-1]))

    def _begin(self, state: Mapping[str, Any]) -> None:
        """Check the audio is the run's (resume), write ``config.json`` and ``captions.json``, open
        the metrics, restore the RNG state (resume)."""
        audio = check_same_audio(self.dataset.clips, self.cache, self.saved, self.run)
        if self.accelerator.is_main_process:
            record = run_record(self.config, self.preset, self.dataset, audio, self.encoder, self.backend,
                                names=self.names, lr=self.lr, cache=self.cache, counts=self.counts,
                                undecodable=self.undecodable)
            write_run_files(self.run, record, self.captions.to_json())
        self.metrics.open(self.loop.epoch)
        if state:
            set_rng_state(state["rng"])
            self.log(f"resuming {self.out} at epoch {self.loop.epoch + 1}, step {self.loop.step_in_epoch} "
                     f"(global step {self.loop.global_step})")

    def _train_epoch(self, epoch: int, rows: list[P.Row], skip: int, budget: int | None) -> tuple[int, bool]:
        """The steps of ``epoch`` after its first ``skip`` batches, at most ``budget`` unless that is
        where the epoch ends: ``(steps taken, whether the epoch ended)``."""
        cfg, acc = self.config, self.accelerator
        self.loop.start_epoch(skip)
        loader = self._loader(rows)
        if skip:
            loader = acc.skip_first_batches(loader, skip)
        total = math.ceil(len(rows) / cfg.batch_size / acc.num_processes)
        bar = tqdm(total=total, initial=skip, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                   disable=not cfg.progress or not acc.is_main_process, leave=False)
        steps, batches = 0, iter(loader)
        try:
            while True:
                t_data = time.perf_counter()
                batch = next(batches, None)
                if batch is None:
                    return steps, True
                self.timing["data"] += time.perf_counter() - t_data
                loss, samples = self._step(batch)
                steps += 1
                self.loop.add_step(loss, samples)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}")
                if budget is not None and steps >= budget and skip + steps < total:
                    return steps, False
        finally:
            bar.close()

    def _stop_at_max_steps(self, epochs: int, steps: int) -> TrainResult:
        self.log(f"stopped after {steps} steps (max_steps); resume with --resume")
        return self._result(epochs, "max_steps")

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
