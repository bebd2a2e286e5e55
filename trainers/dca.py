"""``-tr`` names for DCA (use with DCA plans: ``-p nnUNetPlansDCA`` or ``-p nnUNetPlansDCAResEncM``).

The training procedure is in nnunetv2_dca.training.dca; these classes only pick schedules and options, like
nnU-Net's own ``nnUNetTrainer_Xepochs`` variants.
"""

import torch

from nnunetv2_dca.training.budget import BudgetMixin
from nnunetv2_dca.training.dca import DCATrainer


class nnUNetTrainerDCA(DCATrainer):
    """DCA with nnU-Net's schedule (1000 epochs x 250 iterations), lambda = 10 with sigmoid ramp-up."""


class nnUNetTrainerDCA_supAgg(DCATrainer):
    """Beyond the paper: the aggregation decoder also learns from the labeled batch's ground truth."""
    supervise_aggregation = True


class nnUNetTrainerDCA_smoke(DCATrainer):
    """2 epochs x 5 iterations, 2 validation iterations: checks the pipeline end to end on CPU."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 5
        self.num_val_iterations_per_epoch = 2


class nnUNetTrainerDCA_50epochs(DCATrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 50


class nnUNetTrainerDCA_100epochs(DCATrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 100


class nnUNetTrainerDCA_250epochs(DCATrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 250


class nnUNetTrainerDCA_budget(BudgetMixin, DCATrainer):
    """DCA with the benchmark's schedule and seed from the environment (see nnunetv2_dca/training/budget.py)."""


class nnUNetTrainerDCA_supAgg_budget(BudgetMixin, nnUNetTrainerDCA_supAgg):
    """nnUNetTrainerDCA_supAgg with the benchmark's schedule and seed from the environment."""
