"""A run's checkpoints and records, written at the end of every epoch (and at ``max_steps``).

``best/`` (when the monitored loss improved), ``last/`` with ``training_state.pt`` (loop counters,
optimisers, RNG state, the epoch's data order), ``metrics.jsonl`` (+ TensorBoard when installed),
``config.json`` and ``captions.json``. Only the main process writes; each folder and file is
replaced atomically, so an interruption leaves the previous complete checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from seeingsounds.paths import atomic_write_json, atomic_write_text
from seeingsounds.runs import (BEST, CAPTIONS_FILE, CONFIG_FILE, LAST, MODEL_FILE, STATE_FILE, RunFolder,
                              library_versions)
from seeingsounds.training.config import TrainConfig
from seeingsounds.training.state import LoopState, rng_state


class MetricsLog:
    """``metrics.jsonl`` (one line per epoch) and, when installed, TensorBoard, written by the main process."""

    def __init__(self, run: RunFolder, main: bool):
        self.run, self.main = run, main
        self.history: list[dict[str, Any]] = []
        self.tb: Any = None

    def open(self, completed: int) -> None:
        """Keep the lines of the completed epochs (drop those that will run again, and lines cut short)."""
        if not self.main:
            return
        self.history = self.run.keep_metrics(completed)
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional: tensorboard may not be installed

            self.tb = SummaryWriter(str(self.run / "tensorboard"))
        except Exception:  # noqa: BLE001
            self.tb = None

    def record(self, metrics: dict[str, Any]) -> None:
        self.history.append(metrics)
        if not self.main:
            return
        self.run.append_metrics(metrics)
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "global_step") and math.isfinite(v):
                    self.tb.add_scalar(k, v, metrics["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def tensor_bytes(value: Any) -> int:
    """The bytes of every tensor in ``value`` (nested dicts, lists and tuples): about what saving it takes."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Mapping):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0


def load_last(run: RunFolder, aligner: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer],
              branches: Sequence[str], state: Mapping[str, Any]) -> None:
    """Restore ``last/``'s weights into ``aligner`` and ``state``'s optimiser states (resume)."""
    from safetensors.torch import load_file

    aligner.load_state_dict(load_file(str(run.last / MODEL_FILE)), strict=True)
    for branch, opt in zip(branches, optimizers):
        opt.load_state_dict(state["optimizers"][branch])


def run_record(config: TrainConfig, preset: Any, dataset: Any, clips_sha256: str, encoder: Any, backend: Any, *,
               names: Sequence[str], lr: Mapping[str, float], cache: Any, counts: Mapping[str, int],
               undecodable: Sequence[str] = ()) -> dict[str, Any]:
    """What ``config.json`` records of a run: options, preset, data hashes (and the audio files skipped
    with ``--skip-bad``: unreadable headers, ``skipped``; data that cannot be decoded, ``undecodable``),
    encoder, generator, the aligned tensors, learning rates, feature cache, objective and caption counts."""
    return {
        "train": config.resolved_paths(), "preset": preset.to_dict(),
        "data": {**dataset.fingerprint(), "clips_sha256": clips_sha256, "skipped": list(dataset.skipped),
                 "undecodable": list(undecodable)},
        "encoder": {"name": encoder.name, "model_id": encoder.model_id, "identity": encoder.identity()},
        "generator": {"name": backend.name, "model_id": backend.model_id,
                      "max_sequence_length": backend.max_sequence_length,
                      "spec": {n: list(s.shape) for n, s in backend.conditioning_spec().items()}},
        "aligned": list(names), "learning_rates": dict(lr),
        "feature_cache": None if cache is None else {"dir": str(cache.root.resolve()), "dtype": cache.dtype_name},
        "objective": "eq7" if config.extended else "eq6", "captions": dict(counts),
    }


def write_run_files(run: RunFolder, record: Mapping[str, Any], captions_json: str) -> None:
    """``config.json`` (``record`` plus the library versions) and ``captions.json``."""
    atomic_write_json(run / CONFIG_FILE, {**record, "versions": library_versions()})
    atomic_write_text(run / CAPTIONS_FILE, captions_json)


class Checkpoints:
    """The epoch-end bookkeeping of one run: model selection, early stopping, metrics, ``best/``, ``last/``.

    ``model`` and ``optimizers`` are the (accelerate-prepared) aligner and its per-branch optimisers.
    """

    def __init__(self, run: RunFolder, accelerator: Any, model: Any, branches: Sequence[str],
                 optimizers: Sequence[Any], metrics: MetricsLog, *, seed: int, lr: Mapping[str, float]):
        self.run, self.accelerator, self.model = run, accelerator, model
        self.branches, self.optimizers = list(branches), list(optimizers)
        self.metrics, self.seed, self.lr = metrics, seed, dict(lr)

    def save(self, name: str, state: dict[str, Any] | None = None) -> None:
        """Replace ``<run>/<name>/`` by the aligner's weights (and ``training_state.pt``); a full
        disk keeps the previous folder and is one line naming the space needed."""
        if not self.accelerator.is_main_process:
            return
        model = self.accelerator.unwrap_model(self.model)

        def build(tmp: Path) -> None:
            model.save_pretrained(tmp)
            if state is not None:
                with open(tmp / STATE_FILE, "wb") as f:  # a file object: a full disk stays an OSError (ENOSPC)
                    torch.save(state, f)

        needed = tensor_bytes(model.state_dict()) + tensor_bytes(state)
        self.run.replace_folder(name, build, needed=needed)

    def training_state(self, loop: LoopState, epoch: int, step_in_epoch: int, finished: str | None,
                       rows: Sequence[Any]) -> dict[str, Any]:
        """``training_state.pt`` of the position ``(epoch, step_in_epoch)`` (recorded in ``loop``)."""
        loop.epoch, loop.step_in_epoch, loop.finished = epoch, step_in_epoch, finished
        return {**loop.to_dict(), "optimizers": {b: o.state_dict() for b, o in zip(self.branches, self.optimizers)},
                "rng": rng_state(),
                "data_order": {"seed": self.seed, "epoch": epoch,
                               "rows": torch.tensor([r[1] for r in rows], dtype=torch.long)}}

    def save_last(self, loop: LoopState, epoch: int, step_in_epoch: int, finished: str | None,
                  rows: Sequence[Any]) -> None:
        self.save(LAST, self.training_state(loop, epoch, step_in_epoch, finished, rows))

    def end_epoch(self, loop: LoopState, epoch: int, train_loss: float, val: Mapping[str, float],
                  rows: Sequence[Any], *, epochs: int, patience: int, min_delta: float,
                  seconds: float) -> tuple[bool, str | None]:
        """Epoch ``epoch`` (0-based) is done: select on ``val_loss`` (the training loss without
        validation), write ``best/`` when it improved, the metrics line, then ``last/`` (in that
        order: a run cut between them resumes this epoch, whose metrics line is then dropped).
        Returns ``(improved, finished)`` (:meth:`LoopState.end_epoch`)."""
        monitor = val.get("val_loss", train_loss)
        improved, finished = loop.end_epoch(monitor, epoch + 1, epochs=epochs, patience=patience,
                                            min_delta=min_delta)
        if improved:
            self.save(BEST)
        self.metrics.record({"epoch": epoch + 1, "global_step": loop.global_step, "train_loss": train_loss, **val,
                             **{f"lr_{b}": self.lr[b] for b in self.branches},
                             "seconds": round(seconds, 3), "best": improved})
        self.save_last(loop, epoch + 1, 0, finished, rows)
        return improved, finished
