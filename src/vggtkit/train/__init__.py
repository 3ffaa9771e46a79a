"""Training: the paper's losses (released and paper variants), configuration, the trainer and data parallelism."""

from __future__ import annotations

from vggtkit.train.config import TrainConfig, apply_overrides, load_train_config
from vggtkit.train.losses import LossConfig, MultitaskLoss
from vggtkit.train.trainer import TrainResult, train

__all__ = [
    "LossConfig",
    "MultitaskLoss",
    "TrainConfig",
    "TrainResult",
    "apply_overrides",
    "load_train_config",
    "train",
]
