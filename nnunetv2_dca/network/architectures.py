"""The plans <-> network mapping, in one place: which DCA / Semi-MoE network stands on which stock nnU-Net network,
and how a plans ``architecture`` entry (``network_class_name``, ``arch_kwargs``, ``_kw_requires_import``) is turned
into another one on the same encoder. Imported by the planner, the trainers, the cost report, the benchmark and the
inference tools; like the networks it imports nothing of nnunetv2."""

from __future__ import annotations

from typing import Dict, List, Mapping

from nnunetv2_dca.network.dca_unet import default_expert_settings
from nnunetv2_dca.network.moe_unet import validate_moe_settings

_DNA = "dynamic_network_architectures.architectures.unet."
# Stock network (DNA class path, as nnU-Net's plans spell it) -> our network on the same encoder.
DCA_NETWORKS: Dict[str, str] = {
    _DNA + "PlainConvUNet": "nnunetv2_dca.network.dca_unet.DCAPlainConvUNet",
    _DNA + "ResidualEncoderUNet": "nnunetv2_dca.network.dca_unet.DCAResidualEncoderUNet",
}
MOE_NETWORKS: Dict[str, str] = {
    _DNA + "PlainConvUNet": "nnunetv2_dca.network.moe_unet.MoEPlainConvUNet",
    _DNA + "ResidualEncoderUNet": "nnunetv2_dca.network.moe_unet.MoEResidualEncoderUNet",
}
# arch_kwargs keys only our networks know (removed to rebuild the stock network of the same plans)
DCA_ARCH_KEYS = ("class_groups", "expert_n_conv_per_stage", "expert_dilations", "detach_expert_features",
                 "detach_encoder_for_aggregation", "expert_other_channel", "prediction_output",
                 "prediction_fusion")
MOE_ARCH_KEYS = ("num_experts", "gating", "expert_scope")
# Unlabeled samples per labeled sample in a semi-supervised step (the seed's 2 + 2; the trainers' default
# unlabeled_batch_size=None): what the planner's VRAM factor and the cost report's step FLOPs assume.
UNLABELED_PER_LABELED = 1.0
# The default DCA recipe also runs D_A on the labeled samples (DCATrainer.supervise_aggregation takes its default from
# here): the planner's VRAM factor and the cost report's step budget for it.
SUPERVISE_AGGREGATION = True


class DCAPlanningError(ValueError):
    """The dataset or the planner settings do not allow a DCA plan."""


class SemiMoEArchitectureError(ValueError):
    """The plans' network has no Semi-MoE counterpart, or the MoE settings are invalid."""


def is_dca(network_class_name: str) -> bool:
    return network_class_name in DCA_NETWORKS.values()


def is_moe(network_class_name: str) -> bool:
    return network_class_name in MOE_NETWORKS.values()


def dca_architecture(architecture: Mapping, class_groups: List[List[int]]) -> Dict:
    """A stock plan's ``architecture`` entry turned into the DCA network's, with explicit expert settings."""
    name = architecture["network_class_name"]
    if name not in DCA_NETWORKS:
        raise DCAPlanningError(f"no DCA network for {name}; supported encoders: {sorted(DCA_NETWORKS)}")
    kwargs = dict(architecture["arch_kwargs"])
    convs, dilations = default_expert_settings(kwargs["n_conv_per_stage_decoder"], kwargs["n_stages"] - 1,
                                               len(class_groups))
    kwargs.update({"class_groups": [sorted(int(c) for c in g) for g in class_groups], "expert_n_conv_per_stage": convs,
                   "expert_dilations": dilations, "detach_expert_features": True,
                   "detach_encoder_for_aggregation": False})
    return {"network_class_name": DCA_NETWORKS[name], "arch_kwargs": kwargs,
            "_kw_requires_import": tuple(architecture["_kw_requires_import"])}


def stock_architecture(architecture: Mapping) -> Dict:
    """The stock nnU-Net network of the same plans (DCA and Semi-MoE networks mapped back; others unchanged)."""
    reverse = {v: k for k, v in [*DCA_NETWORKS.items(), *MOE_NETWORKS.items()]}
    name = architecture["network_class_name"]
    ours = set(DCA_ARCH_KEYS) | set(MOE_ARCH_KEYS)
    kwargs = {k: v for k, v in architecture["arch_kwargs"].items() if k not in ours}
    return {"network_class_name": reverse.get(name, name), "arch_kwargs": kwargs,
            "_kw_requires_import": tuple(architecture["_kw_requires_import"])}


def semi_moe_architecture(architecture: Mapping, num_experts: int = 3, gating: str = "image",
                          expert_scope: str = "decoder") -> Dict:
    """A plans ``architecture`` entry turned into the Semi-MoE network's on the same encoder.

    Accepts DNA's ``PlainConvUNet`` / ``ResidualEncoderUNet`` (stock and ResEnc plans), the DCA networks (mapped back
    to the stock network of the same plans, DCA-only keys dropped) and the MoE networks themselves (idempotent; the
    arguments replace their MoE keys). Everything else raises :class:`SemiMoEArchitectureError` naming the class."""
    validate_moe_settings(num_experts, gating, expert_scope, SemiMoEArchitectureError)
    stock = stock_architecture(architecture)  # DCA or MoE network -> its stock network; others unchanged
    name = stock["network_class_name"]
    if name not in MOE_NETWORKS:
        raise SemiMoEArchitectureError(
            f"Semi-MoE has no network for {architecture['network_class_name']!r}; supported (network_class_name in "
            f"the plans): {sorted(MOE_NETWORKS)} and the DCA networks on them. Plan with nnU-Net's default planner, "
            f"a ResEnc preset or a DCA planner.")
    kwargs = dict(stock["arch_kwargs"])
    kwargs.update({"num_experts": num_experts, "gating": gating, "expert_scope": expert_scope})
    return {"network_class_name": MOE_NETWORKS[name], "arch_kwargs": kwargs,
            "_kw_requires_import": tuple(stock["_kw_requires_import"])}
