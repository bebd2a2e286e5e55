"""nnU-Net's standard trainer on a CPU-sized budget, for the demo and smoke tests.

The training itself is nnU-Net's, unchanged; only the schedule is shortened (like nnU-Net's own
``nnUNetTrainer_5epochs`` variants). It is the labeled-only baseline of the README demo.
"""

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dca.training.budget import BudgetMixin


class nnUNetTrainer_smoke(nnUNetTrainer):
    """2 epochs x 5 iterations, 2 validation iterations: checks a pipeline end to end in about a minute on CPU."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 5
        self.num_val_iterations_per_epoch = 2


class nnUNetTrainer_budget(BudgetMixin, nnUNetTrainer):
    """nnU-Net's trainer with the benchmark's schedule and seed from the environment (the labeled-only baseline and
    the pseudo-label recipe of ``nnunetv2-dca benchmark``; see nnunetv2_dca/training/budget.py)."""
