"""Training the aligner (paper Eq. 6, extended objective Eq. 7)."""

from typing import Any

from seeingsounds.training.config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "Trainer", "train"]


def __getattr__(name: str) -> Any:  # lazy: the CLI reads TrainConfig's options for `--help` without loading torch
    if name in ("Trainer", "TrainResult", "train"):
        from seeingsounds.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
