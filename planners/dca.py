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


class nnUNetPlannerDCA_CPU(nnUNetPlannerDCA):
    """nnUNetPlannerDCA with 8 base features (max 64) -> plans ``nnUNetPlansDCA_CPU``: the same pipeline at a
    width a laptop CPU trains in seconds per iteration (demo, CI, quick experiments). Not for real results."""
    dca_plans_name = "nnUNetPlansDCA_CPU"

    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb=None, preprocessor_name="DefaultPreprocessor",
                 plans_name=None, overwrite_target_spacing=None, suppress_transpose=False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_base_num_features = 8
        self.UNet_max_features_3d = self.UNet_max_features_2d = 64
