"""``seeingsounds train``: train an aligner (paper Eq. 6; Eq. 7 with --augment / --mix-pairs).

Every option is a :class:`~seeingsounds.training.config.TrainConfig` field: its flag, help text and
default are declared there, once. ``--config FILE`` reads the options from a file; the flags given on
the command line override it (a flag not given leaves the file's value, not the flag's default).
"""

from __future__ import annotations

import argparse
from typing import Any

from seeingsounds.cli.common import add_train_option, train_values_from_args
from seeingsounds.training.config import TrainConfig, train_options

CONFIG_HELP = ("start from the options of a run's config.json or of a JSON/YAML file of options (batch_size or "
               "batch-size: value); the flags given here override it. Relative paths in the file count from "
               "the file's folder, as a manifest's rows do")

COMMAND = "train"
HELP = "train an aligner on labelled audio + class captions (Eq. 6; Eq. 7 with --augment/--mix-pairs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    groups: dict[str | None, Any] = {None: parser}
    for f, option in train_options():
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        # a flag not given is absent from args (SUPPRESS), so that it leaves --config's value; the required
        # options are checked by TrainConfig.from_options, which knows whether the file gives them
        required = {"required": False, "help": f"{option.help} (required unless --config gives it)"} \
            if option.group is None else {}
        add_train_option(groups[option.group], f.name, default=argparse.SUPPRESS, **required)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig.from_options(train_values_from_args(args), args.config)


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
