"""What makes a resumed run the same run: option, data and caption checks, the loop counters, RNG state."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seeingsounds.data.manifest import file_sha256
from seeingsounds.errors import ConfigError
from seeingsounds.captions.caption_set import CaptionSet
from seeingsounds.presets import Preset
from seeingsounds.runs import CONFIG_FILE, EDITS_FILE, RunFolder
from seeingsounds.training.config import TrainConfig


def audio_digest(clips: Sequence[Any], content_hash: Callable[[Path], str]) -> str:
    """One sha256 over every train/val clip's (label, split, content hash), in order: where the clips lie
    is not part of it (a project moved or copied elsewhere is the same data; the manifest's or the tree
    listing's own hash pins the paths as written)."""
    digest = hashlib.sha256()
    for c in clips:
        if c.split != "test":
            digest.update(f"{c.label}\t{c.split}\t{content_hash(c.path)}\n".encode())
    return digest.hexdigest()


def check_same_audio(clips: Sequence[Any], cache: Any, saved: Mapping[str, Any] | None, run: RunFolder) -> str:
    """The :func:`audio_digest` of ``clips`` (content hashes through the feature ``cache`` when there
    is one); on resume (``saved``: the run's ``config.json``) refused when it changed."""
    digest = audio_digest(clips, cache.file_hash if cache is not None else file_sha256)
    if saved is not None:
        check_same_data({"clips_sha256": digest}, saved.get("data") or {}, run)
    return digest


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) RNG states, as tensors and plain values (``weights_only`` loads)."""
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


def set_rng_state(state: Mapping[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _same_path(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a == b
    return Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()


def field_defaults(cls: type) -> dict[str, Any]:
    """The default of every field of the dataclass ``cls`` that has one."""
    defaults = {}
    for f in fields(cls):
        if f.default is not MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not MISSING:
            defaults[f.name] = f.default_factory()
    return defaults


#: preset fields that do not change a run's result (a reworded description, or the judges ``evaluate``
#: uses, do not refuse a resume)
PRESET_NOTES = ("description", "judge_aic", "judge_clip")


def preset_differences(preset: Mapping[str, Any], saved: Mapping[str, Any] | None) -> list[str]:
    """``key=now (run: saved)`` for each field of ``preset`` that differs from the run's saved preset.

    A field the saved preset lacks (added to :class:`Preset` since the run was made) counts as its
    default; a field the run saved that :class:`Preset` no longer has counts only when it was set.
    """
    saved = {**field_defaults(Preset), **(saved or {})}
    changes = []
    for key in sorted(set(preset) | set(saved)):
        if key in PRESET_NOTES:
            continue
        if key not in preset:  # a field removed since the run was made
            if saved[key]:
                changes.append(f"{key}=<removed> (run: {saved[key]!r})")
        elif preset[key] != saved.get(key):
            changes.append(f"{key}={preset[key]!r} (run: {saved.get(key)!r})")
    return changes


def option_differences(config: TrainConfig, preset: Mapping[str, Any], saved: Mapping[str, Any]) -> list[str]:
    """``key=now (run: saved)`` for every option of ``config`` and field of ``preset`` that differs from a
    run's ``config.json`` (``saved``), the options that may change on a resume aside (declared with
    ``resumable=True`` in :class:`TrainConfig`). Path options are compared resolved; an option the saved
    config lacks (added to :class:`TrainConfig` since the run was made) counts as its default.
    Empty: these options train the same run."""
    mine = config.to_dict()
    theirs = {**field_defaults(TrainConfig), **(saved.get("train") or {})}
    diff = []
    for key, value in mine.items():
        if key in TrainConfig.RESUMABLE_CHANGES:
            continue
        same = _same_path(value, theirs.get(key)) if key in TrainConfig.PATH_FIELDS else value == theirs.get(key)
        if not same:
            diff.append(f"{key}={value!r} (run: {theirs.get(key)!r})")
    preset_changes = preset_differences(dict(preset), saved.get("preset"))
    if preset_changes:
        diff.append(f"preset {mine.get('preset')!r}: " + ", ".join(preset_changes))
    return diff


def trains_same_run(config: TrainConfig, preset: Mapping[str, Any], saved: Mapping[str, Any]) -> bool:
    """Whether ``config`` and ``preset`` would train the run whose ``config.json`` is ``saved`` (so that
    ``config`` with ``resume=True`` continues it); :func:`option_differences` says what differs."""
    return not option_differences(config, preset, saved)


def check_same_options(config: TrainConfig, preset: Mapping[str, Any], run: RunFolder) -> dict[str, Any]:
    """The saved ``config.json`` of ``run``, after checking that ``config`` continues it
    (:func:`option_differences`; ``--out run`` and ``--out /abs/run`` are the same run)."""
    saved = run.config()
    diff = option_differences(config, preset, saved)
    if diff:
        raise ConfigError("--resume: these options differ from the interrupted run's "
                          f"({run / CONFIG_FILE}): " + "; ".join(diff))
    return saved


#: the content hash of each path of a dataset fingerprint (:meth:`~seeingsounds.data.manifest.Dataset.fingerprint`)
_CONTENT_HASHES = {"data": ("data_sha256", "data_listing_sha256"), "captions": ("captions_sha256",)}


def check_same_data(current: Mapping[str, Any], saved: Mapping[str, Any], run: RunFolder) -> None:
    """Refuse a resume whose data (manifest, captions, audio hashes) changed since the run began. A manifest,
    tree or captions file that moved (a project copied elsewhere) is the same when its content hash is."""
    changed = []
    for key, value in current.items():
        if key not in saved:
            continue
        if any(h in current and h in saved for h in _CONTENT_HASHES.get(key, ())):
            continue  # the path may differ: the content hash (compared below) decides
        same = _same_path(value, saved[key]) if key in ("data", "captions") else value == saved[key]
        if not same:
            changed.append(key)
    if changed:
        raise ConfigError(f"--resume: the data changed since the interrupted run ({', '.join(changed)} differ "
                          f"from {run / CONFIG_FILE}); restore it, or start a new run in another --out")


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit <seeingsounds.training.trainer.Trainer.fit>` returns."""

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


@dataclass
class LoopState:
    """The counters of the training loop, saved in ``last/training_state.pt``."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_val_loss: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    epoch_loss_sum: float = 0.0
    epoch_count: int = 0
    finished: str | None = None

    @classmethod
    def from_saved(cls, state: Mapping[str, Any] | None) -> LoopState:
        if not state:
            return cls()
        return cls(epoch=int(state.get("epoch", 0)), step_in_epoch=int(state.get("step_in_epoch", 0)),
                   global_step=int(state.get("global_step", 0)), best_val_loss=state.get("best_val_loss"),
                   best_epoch=state.get("best_epoch"), bad_epochs=int(state.get("bad_epochs", 0)),
                   epoch_loss_sum=float(state.get("epoch_loss_sum", 0.0)),
                   epoch_count=int(state.get("epoch_count", 0)), finished=state.get("finished"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def already_finished(self, epochs: int) -> bool:
        """Whether the run resumed had stopped for good (early stopping, or all ``epochs`` done)."""
        return self.finished == "early_stopping" or bool(self.finished and self.epoch >= epochs)

    def start_epoch(self, skip: int) -> None:
        """A new epoch (``skip == 0``) starts its loss sums afresh; a resumed one keeps them."""
        if skip == 0:
            self.epoch_loss_sum, self.epoch_count = 0.0, 0

    def add_step(self, loss: float, samples: int) -> None:
        self.global_step += 1
        self.epoch_loss_sum += loss * samples
        self.epoch_count += samples

    @property
    def epoch_loss(self) -> float:
        """The mean training loss of the epoch so far."""
        return self.epoch_loss_sum / max(1, self.epoch_count)

    def end_epoch(self, monitor: float, epochs_done: int, *, epochs: int, patience: int,
                  min_delta: float) -> tuple[bool, str | None]:
        """Model selection and early stopping on ``monitor`` after ``epochs_done`` epochs:
        ``(improved, finished)``, ``finished`` being ``"early_stopping"``, ``"epochs"`` or None."""
        improved = self.best_val_loss is None or monitor < self.best_val_loss - min_delta
        if improved:
            self.best_val_loss, self.best_epoch, self.bad_epochs = float(monitor), epochs_done, 0
        else:
            self.bad_epochs += 1
        early = self.bad_epochs >= patience
        if early:
            return improved, "early_stopping"
        return improved, "epochs" if epochs_done >= epochs else None


def check_same_captions(captions: CaptionSet, run: RunFolder) -> None:
    """Refuse a resume whose caption set differs from the interrupted run's ``captions.json``."""
    if captions.to_json() != run.caption_set().to_json():
        raise ConfigError(f"--resume: the captions would differ from the interrupted run's ({run.path}/"
                          f"captions.json; {EDITS_FILE} lacks edits the engine now answers differently); "
                          "restore the run's caption_edits.jsonl, or start a new run in another --out")


def check_resume(config: TrainConfig, preset: Mapping[str, Any], data: Mapping[str, Any],
                 run: RunFolder) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The saved ``config.json`` and ``training_state.pt`` of ``run``, after checking that
    ``config`` and the dataset ``data`` (its fingerprint) continue it. The state is None when the
    run saved no epoch (it stopped during its first, e.g. on a full disk): it resumes from epoch 1."""
    saved = check_same_options(config, preset, run)
    check_same_data(data, saved.get("data") or {}, run)
    return saved, load_state(run) if run.holds_run() else None


def load_state(run: RunFolder) -> dict[str, Any]:
    """``last/training_state.pt`` (optimisers, RNG, loop counters)."""
    try:
        return torch.load(run.state_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"--resume: {run.state_path} is unreadable ({exc}); start a new run in another --out") \
            from None
