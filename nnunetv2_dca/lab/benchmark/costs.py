"""Each arm's network cost on the benchmark's plans (the report's cost table, and the ETA's guess for arms not
measured yet), following each DCA arm's recipe and Semi-MoE's settings."""

from __future__ import annotations

import json
from typing import Dict, Mapping, Sequence

from nnunetv2_dca.lab.benchmark.arms import DCA_ARMS, PLANS_DCA, PLANS_STOCK, dca_arm_trainer


def arm_network_costs(arms: Sequence[str], plans_files: Mapping[str, str], configuration: str,
                      dataset_json: Mapping) -> Dict[str, Dict[str, float]]:
    """:func:`nnunetv2_dca.network.cost.network_cost` of each arm's network (DCA arms: their trainer's recipe)."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_dca.network.cost import network_cost

    costs = {}
    for arm in arms:
        with open(plans_files[PLANS_DCA if arm in DCA_ARMS else PLANS_STOCK], encoding="utf-8") as f:
            plans = json.load(f)
        arch = plans["configurations"][configuration]["architecture"]
        if arm == "semimoe":
            from nnunetv2_dca.network.architectures import semi_moe_architecture
            from nnunetv2_dca.training.semi_moe import SemiMoETrainer

            t = SemiMoETrainer
            arch = semi_moe_architecture(arch, t.num_experts, t.gating, t.expert_scope)
        aggregate_labeled = False
        if arm in DCA_ARMS:  # the arm's own recipe: heads, prediction output, D_A on the labeled samples
            t = dca_arm_trainer(arm)
            arch = {**arch, "arch_kwargs": t.recipe_arch_kwargs(arch["arch_kwargs"])}
            aggregate_labeled = t.supervise_aggregation
        pm = PlansManager(plans)
        cm = pm.get_configuration(configuration)
        n_in = determine_num_input_channels(pm, cm, dataset_json)
        n_out = pm.get_label_manager(dataset_json).num_segmentation_heads
        costs[arm] = network_cost(arch, cm.patch_size, n_in, n_out, aggregate_labeled=aggregate_labeled)
    return costs


def cost_ratios(costs: Mapping[str, Mapping[str, float]]) -> Dict[str, float]:
    """Cost per epoch relative to the baseline, for the ETA of arms not measured yet: the ratio of the networks'
    training-step FLOPs per labeled patch (forward + backward, the unlabeled share included; see
    nnunetv2_dca.network.cost). A guess, replaced by measurement once the arm runs."""
    base = costs["baseline"]["training_step_gflops"]
    return {arm: c["training_step_gflops"] / base for arm, c in costs.items()}
