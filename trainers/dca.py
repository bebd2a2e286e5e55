"""``-tr`` names for DCA (use with DCA plans: ``-p nnUNetPlansDCA`` or ``-p nnUNetPlansDCAResEncM``).

The training procedure is in nnunetv2_dca.training.dca; these classes only pick schedules and options, like
nnU-Net's own ``nnUNetTrainer_Xepochs`` variants.
"""

from nnunetv2_dca.training.budget import BudgetMixin
from nnunetv2_dca.training.schedule import FixedSchedule
from nnunetv2_dca.training.dca import DCATrainer


class nnUNetTrainerDCA(DCATrainer):
    """DCA's default recipe with nnU-Net's schedule (1000 epochs x 250 iterations): experts with an other-organ
    channel, D_A supervised on the labeled images too, the experts' fused scores as the prediction; lambda = 10 with
    sigmoid ramp-up (docs/dca.md, "The default recipe")."""


class nnUNetTrainerDCA_asBuilt(DCATrainer):
    """The first build's recipe (the default until issue 25): the seed's label-split (other groups' organs are
    background), D_A's output as the prediction, D_A learns from the pseudo-labels only."""
    expert_other_channel = False
    prediction_output = "aggregate"
    supervise_aggregation = False


class nnUNetTrainerDCA_other(nnUNetTrainerDCA_asBuilt):
    """The first build + each expert also predicts "an organ of another group" (docs/dca.md, "The other-organ
    channel")."""
    expert_other_channel = True


class nnUNetTrainerDCA_other_supAgg(nnUNetTrainerDCA_other):
    """nnUNetTrainerDCA_other whose aggregation decoder also learns from the labeled images' ground truth."""
    supervise_aggregation = True


class nnUNetTrainerDCA_other_supAgg_predExperts(nnUNetTrainerDCA_other_supAgg):
    """nnUNetTrainerDCA_other_supAgg whose prediction is the experts' fused output: the default recipe under the
    name it was screened with (its stored benchmark results carry this name)."""
    prediction_output = "experts"


class nnUNetTrainerDCA_seed(DCATrainer):
    """The seed's literal recipe: label-split to background, raw-logit fusion with mean background, no gate
    balance, D_A as the prediction; lambda = 10 with nnU-Net's optimiser (docs/dca.md says why each changed)."""
    expert_other_channel = False
    prediction_output = "aggregate"
    supervise_aggregation = False
    fusion = "logits"
    gate_balance_weight = 0.0


class _NoUnlabeledControl(DCATrainer):
    """Controls of issue 25 (docs/dca.md, "Controls"): no unlabeled loss, no gate balance, no D_A supervision, so D_A
    gets no gradient and the encoder learns from the experts' supervised losses alone; the prediction is the
    experts' fused output."""
    lambda_max = 0.0
    gate_balance_weight = 0.0
    supervise_aggregation = False
    prediction_output = "experts"


class nnUNetTrainerDCA_g1_lambda0(_NoUnlabeledControl):
    """One group, one expert with nnU-Net's decoder: nnU-Net's U-Net under another name (must match nnUNetTrainer)."""
    single_group = True
    expert_other_channel = False


class nnUNetTrainerDCA_lambda0(_NoUnlabeledControl):
    """Three experts with the seed's label-split (other groups' organs = background): label-split alone."""
    expert_other_channel = False


class nnUNetTrainerDCA_other_lambda0(_NoUnlabeledControl):
    """Three experts with the other-organ channel: the fix of the supervised path alone."""
    expert_other_channel = True


class nnUNetTrainerDCA_noUnlabeled(DCATrainer):
    """The default recipe with lambda = 0: every supervised part as in nnUNetTrainerDCA (D_A on the labeled images,
    gate balance), the unlabeled images' loss off. What the unlabeled images add is the default minus this."""
    lambda_max = 0.0


class nnUNetTrainerDCA_lambda01(DCATrainer):
    """Candidate (issue 25): the default recipe with a small unlabeled weight, lambda = 0.1 (what published
    semi-supervised code uses with SGD steps of nnU-Net's size: the pseudo-label term as a regulariser)."""
    lambda_max = 0.1


class nnUNetTrainerDCA_confidence(DCATrainer):
    """Candidate (issue 25): the default recipe whose aggregation decoder learns only from pseudo-label voxels with
    fused probability >= 0.9 (FixMatch-style confidence threshold; the share kept is logged as dca_pseudo_kept)."""
    pseudo_label_confidence = 0.9


class nnUNetTrainerDCA_equalExperts(DCATrainer):
    """Candidate (issue 25): the default recipe with experts of equal capacity (every expert the planned decoder,
    no dilation) instead of the seed's asymmetric experts."""
    equal_capacity_experts = True


class nnUNetTrainerDCA_ema(DCATrainer):
    """Candidate (issue 25): the default recipe whose pseudo-labels come from a mean teacher (EMA of the network,
    momentum 0.99) instead of the network itself."""
    ema_teacher_momentum = 0.99


class nnUNetTrainerDCA_supAgg(nnUNetTrainerDCA_asBuilt):
    """The first build + the aggregation decoder also learns from the labeled batch's ground truth."""
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


class nnUNetTrainerDCA_asBuilt_budget(BudgetMixin, nnUNetTrainerDCA_asBuilt):
    """nnUNetTrainerDCA_asBuilt with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_supAgg_budget(BudgetMixin, nnUNetTrainerDCA_supAgg):
    """nnUNetTrainerDCA_supAgg with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_other_budget(BudgetMixin, nnUNetTrainerDCA_other):
    """nnUNetTrainerDCA_other with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_other_supAgg_budget(BudgetMixin, nnUNetTrainerDCA_other_supAgg):
    """nnUNetTrainerDCA_other_supAgg with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_other_supAgg_predExperts_budget(BudgetMixin, nnUNetTrainerDCA_other_supAgg_predExperts):
    """nnUNetTrainerDCA_other_supAgg_predExperts with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_g1_lambda0_budget(BudgetMixin, nnUNetTrainerDCA_g1_lambda0):
    """nnUNetTrainerDCA_g1_lambda0 with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_lambda0_budget(BudgetMixin, nnUNetTrainerDCA_lambda0):
    """nnUNetTrainerDCA_lambda0 with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_other_lambda0_budget(BudgetMixin, nnUNetTrainerDCA_other_lambda0):
    """nnUNetTrainerDCA_other_lambda0 with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_noUnlabeled_budget(BudgetMixin, nnUNetTrainerDCA_noUnlabeled):
    """nnUNetTrainerDCA_noUnlabeled with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_seed_budget(BudgetMixin, nnUNetTrainerDCA_seed):
    """nnUNetTrainerDCA_seed with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_lambda01_budget(BudgetMixin, nnUNetTrainerDCA_lambda01):
    """nnUNetTrainerDCA_lambda01 with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_confidence_budget(BudgetMixin, nnUNetTrainerDCA_confidence):
    """nnUNetTrainerDCA_confidence with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_equalExperts_budget(BudgetMixin, nnUNetTrainerDCA_equalExperts):
    """nnUNetTrainerDCA_equalExperts with the benchmark's schedule and seed from the environment."""


class nnUNetTrainerDCA_ema_budget(BudgetMixin, nnUNetTrainerDCA_ema):
    """nnUNetTrainerDCA_ema with the benchmark's schedule and seed from the environment."""
