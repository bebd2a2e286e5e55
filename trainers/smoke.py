"""nnU-Net's standard trainer on a CPU-sized budget, for the demo and smoke tests.

The training itself is nnU-Net's, unchanged; only the schedule is shortened (like nnU-Net's own
``nnUNetTrainer_5epochs`` variants). It is the labeled-only baseline of the README demo.
"""

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dca.training.budget import BudgetMixin
from nnunetv2_dca.training.schedule import FixedSchedule


class nnUNetTrainer_smoke(FixedSchedule, nnUNetTrainer):
    """2 epochs x 5 iterations, 2 validation iterations: checks a pipeline end to end in about a minute on CPU."""
    schedule_epochs, schedule_iterations, schedule_val_iterations = 2, 5, 2


class nnUNetTrainer_budget(BudgetMixin, nnUNetTrainer):
    """nnU-Net's trainer with the benchmark's schedule and seed from the environment (the labeled-only baseline and
    the pseudo-label recipe of ``nnunetv2-dca benchmark``; see nnunetv2_dca/training/budget.py)."""
