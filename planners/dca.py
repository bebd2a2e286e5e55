"""``-pl`` names for DCA plans: nnU-Net's default planner and its ResEnc presets, each with the DCA layer
(class groups, DCA network, VRAM factor, own data folders; see nnunetv2_dca.planning.planner)."""

from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
    nnUNetPlannerResEncL, nnUNetPlannerResEncM, nnUNetPlannerResEncXL)

from nnunetv2_dca.planning.planner import DCAPlannerMixin


class nnUNetPlannerDCA(DCAPlannerMixin, ExperimentPlanner):
    """nnU-Net's default U-Net planner -> plans ``nnUNetPlansDCA``."""
    dca_plans_name = "nnUNetPlansDCA"


class nnUNetPlannerDCAResEncM(DCAPlannerMixin, nnUNetPlannerResEncM):
    """ResEnc M preset (~8 GB target, nnU-Net's recommendation) -> plans ``nnUNetPlansDCAResEncM``."""
    dca_plans_name = "nnUNetPlansDCAResEncM"


class nnUNetPlannerDCAResEncL(DCAPlannerMixin, nnUNetPlannerResEncL):
    """ResEnc L preset (~24 GB target) -> plans ``nnUNetPlansDCAResEncL``."""
    dca_plans_name = "nnUNetPlansDCAResEncL"


class nnUNetPlannerDCAResEncXL(DCAPlannerMixin, nnUNetPlannerResEncXL):
    """ResEnc XL preset (~40 GB target) -> plans ``nnUNetPlansDCAResEncXL``."""
    dca_plans_name = "nnUNetPlansDCAResEncXL"
