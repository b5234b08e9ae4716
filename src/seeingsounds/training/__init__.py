"""Training the aligner (paper Eq. 6, extended objective Eq. 7)."""

from seeingsounds.training.config import TrainConfig
from seeingsounds.training.trainer import Trainer, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "Trainer", "train"]
