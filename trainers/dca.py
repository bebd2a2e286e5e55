"""``-tr`` names for DCA (use with DCA plans: ``-p nnUNetPlansDCA`` or ``-p nnUNetPlansDCAResEncM``).

The training procedure is in nnunetv2_dca.training.dca; these classes only pick schedules and options, like
nnU-Net's own ``nnUNetTrainer_Xepochs`` variants.
"""

from nnunetv2_dca.training.budget import BudgetMixin
from nnunetv2_dca.training.schedule import FixedSchedule
from nnunetv2_dca.training.dca import DCATrainer


class nnUNetTrainerDCA(DCATrainer):
    """DCA with nnU-Net's schedule (1000 epochs x 250 iterations), lambda = 10 with sigmoid ramp-up."""


class nnUNetTrainerDCA_other(DCATrainer):
    """Each expert also predicts "an organ of another group" (docs/dca.md, "The other-organ channel")."""
    expert_other_channel = True


class nnUNetTrainerDCA_other_supAgg(nnUNetTrainerDCA_other):
    """nnUNetTrainerDCA_other whose aggregation decoder also learns from the labeled images' ground truth."""
    supervise_aggregation = True


class nnUNetTrainerDCA_other_supAgg_predExperts(nnUNetTrainerDCA_other_supAgg):
    """nnUNetTrainerDCA_other_supAgg whose prediction is the experts' fused output (D_A trains the encoder only)."""
    prediction_output = "experts"


class nnUNetTrainerDCA_seed(DCATrainer):
    """The seed's literal recipe: label-split to background, raw-logit fusion with mean background, no gate
    balance; lambda = 10 with nnU-Net's optimiser (docs/dca.md says why each of these was changed)."""
    expert_other_channel = False
    fusion = "logits"
    gate_balance_weight = 0.0


class nnUNetTrainerDCA_supAgg(DCATrainer):
    """Beyond the paper: the aggregation decoder also learns from the labeled batch's ground truth."""
    supervise_aggregation = True


class nnUNetTrainerDCA_smoke(FixedSchedule, DCATrainer):
    """2 epochs x 5 iterations, 2 validation iterations: checks the pipeline end to end on CPU."""
    schedule_epochs, schedule_iterations, schedule_val_iterations = 2, 5, 2


class nnUNetTrainerDCA_demo(FixedSchedule, DCATrainer):
    """The demo's schedule (`make demo`, 2d, CPU plans): a few minutes on 2 CPU cores, enough for the large organs."""
    schedule_epochs, schedule_iterations, schedule_val_iterations = 20, 40, 2


class nnUNetTrainerDCA_50epochs(FixedSchedule, DCATrainer):
    schedule_epochs = 50


class nnUNetTrainerDCA_100epochs(FixedSchedule, DCATrainer):
    schedule_epochs = 100


class nnUNetTrainerDCA_250epochs(FixedSchedule, DCATrainer):
    schedule_epochs = 250


class nnUNetTrainerDCA_budget(BudgetMixin, DCATrainer):
    """DCA with the benchmark's schedule and seed from the environment (see nnunetv2_dca/training/budget.py)."""


class nnUNetTrainerDCA_supAgg_budget(BudgetMixin, nnUNetTrainerDCA_supAgg):
    """nnUNetTrainerDCA_supAgg with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_other_budget(BudgetMixin, nnUNetTrainerDCA_other):
    """nnUNetTrainerDCA_other with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_other_supAgg_budget(BudgetMixin, nnUNetTrainerDCA_other_supAgg):
    """nnUNetTrainerDCA_other_supAgg with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_other_supAgg_predExperts_budget(BudgetMixin, nnUNetTrainerDCA_other_supAgg_predExperts):
    """nnUNetTrainerDCA_other_supAgg_predExperts with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_seed_budget(BudgetMixin, nnUNetTrainerDCA_seed):
    """nnUNetTrainerDCA_seed with the benchmark's schedule and seed from the environment."""
