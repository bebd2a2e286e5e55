"""``-tr`` names for Semi-MoE (any plans: stock ``nnUNetPlans``/ResEnc presets preprocessed with
``-preprocessor_name DCAPreprocessor``, or DCA plans ``-p nnUNetPlansDCA`` / ``nnUNetPlansDCA_CPU``).

The training procedure is in nnunetv2_dca.training.semi_moe; these classes only pick schedules and options, like
nnU-Net's own ``nnUNetTrainer_Xepochs`` variants. Network options (``num_experts``, ``gating``, ``expert_scope``) are
class attributes, because ``nnUNetv2_predict`` rebuilds the network from the trainer *class*.
"""

from nnunetv2_dca.training.budget import BudgetMixin
from nnunetv2_dca.training.schedule import FixedSchedule
from nnunetv2_dca.training.semi_moe import SemiMoETrainer


class nnUNetTrainerSemiMoE(SemiMoETrainer):
    """Semi-MoE with nnU-Net's schedule (1000 epochs x 250 iterations): 3 expert decoders on a shared encoder, image
    gate, balance weight 0.1, expert supervision 1, consistency lambda = 1 with sigmoid ramp-up."""


class nnUNetTrainerSemiMoE_voxelGate(SemiMoETrainer):
    """Per-voxel gates (1x1 conv over the experts' decoder features at each output scale) instead of one per image."""
    gating = "voxel"


class nnUNetTrainerSemiMoE_smoke(FixedSchedule, SemiMoETrainer):
    """2 epochs x 5 iterations, 2 validation iterations: checks the pipeline end to end on CPU."""
    schedule_epochs, schedule_iterations, schedule_val_iterations = 2, 5, 2


class nnUNetTrainerSemiMoE_50epochs(FixedSchedule, SemiMoETrainer):
    schedule_epochs = 50


class nnUNetTrainerSemiMoE_100epochs(FixedSchedule, SemiMoETrainer):
    schedule_epochs = 100


class nnUNetTrainerSemiMoE_250epochs(FixedSchedule, SemiMoETrainer):
    schedule_epochs = 250


class nnUNetTrainerSemiMoE_budget(BudgetMixin, SemiMoETrainer):
    """Semi-MoE with the benchmark's schedule and seed from the environment (see nnunetv2_dca/training/budget.py)."""
