"""Trainer variants that only change nnU-Net's schedule, the way nnU-Net's own ``nnUNetTrainer_Xepochs`` do, but
declared with class attributes instead of a copied ``__init__`` per variant."""

from __future__ import annotations

import time
from typing import Optional

import torch


class EpochClock:
    """The one timer of a training epoch (``time.perf_counter`` from nnU-Net's ``on_train_epoch_start``): the
    benchmark's seconds per iteration (``BudgetMixin``) and the semi-supervised progress log read it."""

    _train_epoch_start = 0.0

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._train_epoch_start = time.perf_counter()

    def train_epoch_seconds(self) -> float:
        """Seconds since the current training epoch started."""
        return time.perf_counter() - self._train_epoch_start


class FixedSchedule:
    """Put before a trainer class and set the attributes; ``None`` keeps nnU-Net's value (1000 epochs x 250
    iterations, 50 validation iterations). nnU-Net rebuilds trainers from ``checkpoint['init_args']``, which this
    mixin leaves unchanged."""

    schedule_epochs: Optional[int] = None
    schedule_iterations: Optional[int] = None
    schedule_val_iterations: Optional[int] = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        for attr, value in (("num_epochs", self.schedule_epochs),
                            ("num_iterations_per_epoch", self.schedule_iterations),
                            ("num_val_iterations_per_epoch", self.schedule_val_iterations)):
            if value is not None:
                setattr(self, attr, value)
