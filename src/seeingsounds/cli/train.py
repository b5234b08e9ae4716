"""``seeingsounds train``: train an aligner (paper Eq. 6; Eq. 7 with --augment / --mix-pairs).

Every option is a :class:`~seeingsounds.training.config.TrainConfig` field: its flag, help text and
default are declared there, once.
"""

from __future__ import annotations

import argparse
from typing import Any

from seeingsounds.cli.common import add_train_option, train_values_from_args
from seeingsounds.training.config import TrainConfig, train_options

COMMAND = "train"
HELP = "train an aligner on labelled audio + class captions (Eq. 6; Eq. 7 with --augment/--mix-pairs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    groups: dict[str | None, Any] = {None: parser}
    for f, option in train_options():
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        add_train_option(groups[option.group], f.name)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**train_values_from_args(args))


def run(args: argparse.Namespace) -> int:
    from seeingsounds.training import Trainer

    trainer = Trainer(config_from_args(args))
    result = trainer.fit()
    reason = {"epochs": "finished", "early_stopping": "stopped early", "max_steps": "paused at --max-steps"}
    if result.best_val_loss is None:
        best = "; no epoch completed yet"
    elif result.validated:
        best = f"; best val loss {result.best_val_loss:.5g} (epoch {result.best_epoch})"
    else:
        best = f"; no validation clips: best/ holds epoch {result.best_epoch} (training loss {result.best_val_loss:.5g})"
    if trainer.accelerator.is_main_process:  # one line, also under torchrun / accelerate launch
        print(f"{result.out}: {reason.get(result.stopped, result.stopped)} after {result.epochs_completed} epochs, "
              f"{result.global_step} steps{best}")
    return 0
