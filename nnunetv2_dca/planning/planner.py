"""DCA experiment planning on top of nnU-Net's planners (default U-Net and the ResEnc presets).

nnU-Net's planner is kept as it is: same spacing, patch-size search, topology, normalisation, resampling. The DCA
layer changes four things, each through a hook nnU-Net's planners already call:

* the class groups: log-gap grouping of the labeled voxel counts (fingerprint key ``class_voxel_counts``, counted
  from ``labelsTr`` when a cached stock fingerprint lacks it), or the user's groups from
  ``nnUNet_preprocessed/DatasetXXX/dca_groups.json`` (``{"groups": [[...], ...]}`` or ``{"num_groups": G}``, written
  by ``nnunetv2-dca groups --save``); stored in the plans under ``"dca"``;
* the architecture (``get_plans_for_configuration``): ``network_class_name`` becomes the DCA network on the same
  encoder, ``arch_kwargs`` gain ``class_groups`` and the explicit per-expert decoder settings, so trainer and
  predictor rebuild the same network from the plans alone;
* the VRAM estimate (``static_estimate_VRAM_usage``), see :data:`UNLABELED_PER_LABELED`;
* data identifiers: always ``<plans name>_<configuration>`` (the ResEnc presets share ``nnUNetPlans_*`` folders,
  which nnU-Net's preprocessing deletes and rewrites), and the preprocessor becomes ``DCAPreprocessor``, which also
  preprocesses ``imagesTrUnlabeled``.
"""

from __future__ import annotations

import os
import warnings
from typing import Mapping, Optional, Tuple

from nnunetv2_dca.network.architectures import (SUPERVISE_AGGREGATION, UNLABELED_PER_LABELED, DCAPlanningError,
                                                dca_architecture)
from nnunetv2_dca.planning.grouping import (DEFAULT_NUM_GROUPS, GROUPS_FILE, Grouping, explicit_grouping,
                                            log_gap_grouping)
from nnunetv2_dca.planning.labels import foreground_classes, load_class_voxel_counts

DEFAULT_PREPROCESSOR = "DCAPreprocessor"

# VRAM factor. nnU-Net sizes patch and batch so that estimate(network, patch) / ref_bs * batch_size stays at the
# reference value of its GPU memory target; the estimate is the network's feature-map count for one sample. A DCA
# training step carries an unlabeled batch of the labeled batch's size (seed: 2 labeled + 2 unlabeled;
# nnUNetTrainerDCA's default) and keeps, per labeled sample, what DCAUNet.compute_training_step_feature_map_size
# counts: the encoder on both samples, the experts (with heads) on the labeled one, D_A + DFAM on both (the default
# recipe supervises D_A on the labeled one too: SUPERVISE_AGGREGATION) and the experts' stage outputs on the
# unlabeled one (the experts' other work there runs without autograd). nnU-Net's search then shrinks
# patch/batch until a DCA step fits the same -gpu_memory_target as a stock plan would; a test checks the factor
# against the activation memory autograd keeps in a real step. The planned batch_size is the *labeled* batch size.
# (UNLABELED_PER_LABELED and the plans <-> network mapping live in nnunetv2_dca/network/architectures.py.)
STOCK_PLANS_NAMES = ("nnUNetPlans", "nnUNetResEncUNetPlans", "nnUNetResEncUNetMPlans", "nnUNetResEncUNetLPlans",
                     "nnUNetResEncUNetXLPlans")


def dca_feature_map_estimate(patch_size, input_channels: int, num_classes: int, architecture: Mapping,
                             unlabeled_per_labeled: float = UNLABELED_PER_LABELED) -> float:
    """Feature maps of one labeled sample's DCA training step incl. its share of unlabeled samples (see
    :data:`UNLABELED_PER_LABELED`); the quantity nnU-Net compares against its reference."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    with torch.device("meta"):  # shapes only: no weights are allocated for the patch-size search
        net = get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                     architecture["_kw_requires_import"], input_channels, num_classes,
                                     allow_init=False)  # deep supervision as nnU-Net's own estimate
    return float(net.compute_training_step_feature_map_size(list(patch_size), unlabeled_per_labeled,
                                                            aggregate_labeled=SUPERVISE_AGGREGATION))


def resolve_grouping(raw_dataset_folder: str, dataset_json: Mapping, preprocessed_dataset_folder: str
                     ) -> Tuple[Grouping, str]:
    """Groups for planning and where they came from (the user's dca_groups.json or the log-gap rule)."""
    names = foreground_classes(dataset_json)  # refuses region-based labels, drops background and ignore
    fp_file = os.path.join(preprocessed_dataset_folder, "dataset_fingerprint.json")
    counts = load_class_voxel_counts(raw_dataset_folder, dataset_json, fp_file)
    counts = {k: counts.get(k, 0) for k in names}
    groups_file = os.path.join(preprocessed_dataset_folder, GROUPS_FILE)
    if os.path.isfile(groups_file):
        from nnunetv2_dca.errors import read_json
        from nnunetv2_dca.planning.grouping import GroupingError

        fix = ('write {"groups": [[6], [1, 2, 3], [5, 12, 13]]} (head group first) or {"num_groups": 3} there '
               "(nnunetv2-dca groups -d ID --save does), or delete it for the log-gap rule")
        spec = read_json(groups_file, "class groups file", fix)
        groups, num_groups = spec.get("groups"), spec.get("num_groups")
        try:
            if groups is not None:
                if not isinstance(groups, list) or not all(
                        isinstance(g, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in g)
                        for g in groups):
                    raise GroupingError(f"'groups' must be a list of lists of class ids, got {groups!r}")
                return explicit_grouping(groups, counts, names), groups_file
            if num_groups is not None:
                if not isinstance(num_groups, int) or isinstance(num_groups, bool) or num_groups < 1:
                    raise GroupingError(f"'num_groups' must be an integer >= 1, got {num_groups!r}")
                return log_gap_grouping(counts, num_groups, names), groups_file
        except GroupingError as e:
            raise DCAPlanningError(f"{groups_file}: {e}; {fix}") from None
        raise DCAPlanningError(f"{groups_file} needs a 'groups' or a 'num_groups' key, found {sorted(spec)}; {fix}")
    return log_gap_grouping(counts, DEFAULT_NUM_GROUPS, names), f"log-gap ({DEFAULT_NUM_GROUPS} groups)"


class DCAPlannerMixin:
    """Put before an nnU-Net planner class: ``class P(DCAPlannerMixin, ExperimentPlanner)``."""

    dca_plans_name = "nnUNetPlansDCA"

    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: Optional[float] = None,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: Optional[str] = None,
                 overwrite_target_spacing=None, suppress_transpose: bool = False):
        plans_name = plans_name or self.dca_plans_name
        if plans_name in STOCK_PLANS_NAMES:
            raise DCAPlanningError(f"plans name {plans_name!r} belongs to nnU-Net's own plans; DCA plans need their "
                                   f"own name and data folders (default {self.dca_plans_name})")
        if preprocessor_name == "DefaultPreprocessor":
            preprocessor_name = DEFAULT_PREPROCESSOR  # nnU-Net's CLI always passes its default
        elif preprocessor_name != DEFAULT_PREPROCESSOR:
            warnings.warn(f"preprocessor {preprocessor_name!r} instead of {DEFAULT_PREPROCESSOR}: imagesTrUnlabeled "
                          f"will only be preprocessed if that class does it", stacklevel=2)
        # None: the preset's own target (8 GB default/M, 24 GB L, 40 GB XL)
        target = {} if gpu_memory_target_in_gb is None else {"gpu_memory_target_in_gb": gpu_memory_target_in_gb}
        super().__init__(dataset_name_or_id, preprocessor_name=preprocessor_name, plans_name=plans_name,
                         overwrite_target_spacing=overwrite_target_spacing, suppress_transpose=suppress_transpose,
                         **target)
        from nnunetv2.paths import nnUNet_preprocessed

        self.dca_grouping, self.dca_grouping_source = resolve_grouping(
            self.raw_dataset_folder, self.dataset_json, os.path.join(nnUNet_preprocessed, self.dataset_name))
        self.dca_num_classes = 1 + len(foreground_classes(self.dataset_json))
        self.dca_unlabeled_per_labeled = UNLABELED_PER_LABELED

    def generate_data_identifier(self, configuration_name: str) -> str:
        return self.plans_identifier + "_" + configuration_name

    def static_estimate_VRAM_usage(self, patch_size, input_channels: int, output_channels: int,
                                   arch_class_name: str, arch_kwargs: dict, arch_kwargs_req_import) -> float:
        # nnU-Net calls this with its stock network; estimate the DCA network on the same encoder instead.
        # output_channels from nnU-Net counts an ignore label as a class; the network's own count is used.
        stock = {"network_class_name": arch_class_name, "arch_kwargs": arch_kwargs,
                 "_kw_requires_import": arch_kwargs_req_import}
        return dca_feature_map_estimate(patch_size, input_channels, self.dca_num_classes,
                                        dca_architecture(stock, self.dca_grouping.groups),
                                        self.dca_unlabeled_per_labeled)

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier: str,
                                    approximate_n_voxels_dataset: float, _cache: dict) -> dict:
        plan = super().get_plans_for_configuration(spacing, median_shape, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        plan["architecture"] = dca_architecture(plan["architecture"], self.dca_grouping.groups)
        return plan

    def save_plans(self, plans: dict) -> None:
        g = self.dca_grouping
        plans["dca"] = {
            # provenance only: the groups the network is built from (and every reader uses) are the
            # configurations' arch_kwargs.class_groups, see nnunetv2_dca/planning/class_groups.py
            "planned_class_groups": [sorted(grp) for grp in g.groups],
            "grouping_source": self.dca_grouping_source,
            "class_voxel_counts": {str(k): int(v) for k, v in g.voxel_counts.items()},
            "zero_voxel_classes": g.zero_voxel_classes,
            "unlabeled_per_labeled_in_vram_estimate": self.dca_unlabeled_per_labeled,
        }
        super().save_plans(plans)
