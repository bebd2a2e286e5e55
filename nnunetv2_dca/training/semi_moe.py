"""Semi-MoE's training procedure (seed ``000``: expert pool, gate, balance loss, cross-expert consistency on unlabeled
images) on the semi-supervised base trainer, with the network of :mod:`nnunetv2_dca.network.moe_unet`.

One step: ``L_seg(mixture(x_l), y_l) + expert_supervision_weight * mean_k L_seg(E_k(x_l), y_l) + balance_weight *
balance(gates) + lambda(t) * consistency(E_1(x_u), ..., E_K(x_u))``, every term on nnU-Net's own loss object and
deep-supervision weights. The seed, our choices where it is silent, the balance loss's corrected sign and the
reasons for every default: docs/semi_moe.md. The network comes from any nnU-Net plans through
:func:`nnunetv2_dca.network.architectures.semi_moe_architecture` (stock or DCA plans; the plans file is unchanged, so
the stock ``nnUNetv2_predict`` rebuilds it from the plans and the ``-tr`` class).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Union

import torch

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunetv2_dca.network.architectures import semi_moe_architecture, stock_architecture
from nnunetv2_dca.network.moe_unet import MoEUNet
from nnunetv2_dca.training.moe_losses import balance_loss, expert_consistency_loss, gate_entropy, mean_gate
from nnunetv2_dca.training.semi_supervised import nnUNetTrainerSemiSupervised

TensorOrList = Union[torch.Tensor, List[torch.Tensor]]

def deep_supervision_weights(loss, num_scales: int) -> Optional[List[float]]:
    """The per-scale weights of nnU-Net's deep-supervision loss wrapper (None = equal weights, e.g. no wrapper)."""
    weights = getattr(loss, "weight_factors", None)
    if weights is None or len(weights) != num_scales:
        return None
    return [float(w) for w in weights]


def _plans_architecture(configuration_manager) -> Dict:
    return {"network_class_name": configuration_manager.network_arch_class_name,
            "arch_kwargs": configuration_manager.network_arch_init_kwargs,
            "_kw_requires_import": configuration_manager.network_arch_init_kwargs_req_import}


class SemiMoETrainer(nnUNetTrainerSemiSupervised):
    # network (class attributes: the predictor calls build_network_architecture on the class)
    num_experts: int = 3
    gating: str = "image"
    expert_scope: str = "decoder"
    # losses (the reasons for each default: docs/semi_moe.md)
    lambda_max = 1.0
    rampup_fraction = 0.2
    balance_weight = 0.1
    expert_supervision_weight = 1.0
    consistency_detach_target = False

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.moe_architecture = self.semi_moe_architecture_for(self.configuration_manager)  # fail early

    # ----- network -----
    @classmethod
    def semi_moe_architecture_for(cls, configuration_manager) -> Dict:
        """The MoE network entry for one configuration of the plans, with this class's MoE settings."""
        return semi_moe_architecture(_plans_architecture(configuration_manager), cls.num_experts, cls.gating,
                                     cls.expert_scope)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True
                                   ) -> torch.nn.Module:
        """nnU-Net 2.8's hook (trainer and ``nnUNetv2_predict``): the plans' network as a Semi-MoE network."""
        arch = cls.semi_moe_architecture_for(configuration_manager)
        return get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                      num_input_channels, num_output_channels, allow_init=True,
                                      deep_supervision=enable_deep_supervision)

    def initialize(self):
        super().initialize()
        net = self._plain_network()
        if not isinstance(net, MoEUNet):
            raise RuntimeError(f"{self.__class__.__name__} needs a Semi-MoE network; build_network_architecture "
                               f"built {type(net).__name__}. Subclasses must build an MoEUNet.")
        self._log_setup(net)

    def _log_setup(self, net: MoEUNet) -> None:
        moe = self.moe_architecture  # its stock network: same encoder and kwargs, the plain U-Net decoder
        stock = stock_architecture(moe)
        stock_net = get_network_from_plans(stock["network_class_name"], stock["arch_kwargs"],
                                           stock["_kw_requires_import"], self.num_input_channels,
                                           self.label_manager.num_segmentation_heads, allow_init=False,
                                           deep_supervision=self.enable_deep_supervision)
        patch = list(self.configuration_manager.patch_size)
        ratio = float(net.compute_conv_feature_map_size(patch)) / float(stock_net.compute_conv_feature_map_size(patch))
        unlabeled = (self.unlabeled_batch_size or self.batch_size) / self.batch_size
        self.print_to_log_file(
            f"Semi-MoE: {net.num_experts} experts ({net.expert_scope} scope), {net.gating} gating; "
            f"{type(net).__name__} has {ratio:.2f}x the feature maps of the plans' stock network "
            f"({stock['network_class_name'].rsplit('.', 1)[-1]}), and a step runs {1 + unlabeled:g}x its batch "
            f"(labeled + unlabeled): about {ratio * (1 + unlabeled):.1f}x the activations of a stock training step. "
            f"Weights: expert supervision {self.expert_supervision_weight}, balance {self.balance_weight}, "
            f"consistency lambda_max {self.lambda_max} (ramp-up {self.rampup_fraction:.0%} of the iterations)",
            also_print_to_console=True)

    # ----- losses -----
    def extra_log_keys(self) -> List[str]:
        return (["moe_loss_sup"] + (["moe_loss_sup_experts"] if self.expert_supervision_weight > 0 else [])
                + ["moe_loss_balance", "moe_loss_consistency", "moe_gate_entropy", "moe_gate_entropy_per_input"]
                + [f"moe_gate_{k}" for k in range(self.num_experts)])

    def semi_supervised_losses(self, data: torch.Tensor, target: TensorOrList, unlabeled: torch.Tensor
                               ) -> Dict[str, torch.Tensor]:
        out = self.step_forward(data, unlabeled)  # outputs split into labeled / unlabeled (MoEStepOutput)
        ds = isinstance(out.mixture_labeled, list)
        logs: Dict[str, torch.Tensor] = {}
        sup = self.loss(out.mixture_labeled, target)
        logs["moe_loss_sup"] = sup
        total = sup
        if self.expert_supervision_weight > 0:
            expert_sup = torch.stack([self.loss(e, target) for e in out.experts_labeled]).mean()
            logs["moe_loss_sup_experts"] = expert_sup
            total = total + self.expert_supervision_weight * expert_sup
        balance = balance_loss(out.gates)
        logs["moe_loss_balance"] = balance
        total = total + self.balance_weight * balance
        consistency = expert_consistency_loss(
            out.experts_unlabeled, activation="softmax", detach_target=self.consistency_detach_target,
            scale_weights=deep_supervision_weights(self.loss, len(out.mixture_labeled)) if ds else None)
        logs["moe_loss_consistency"] = consistency
        total = total + self.unsupervised_weight() * consistency

        with torch.no_grad():
            full_res = out.gates if isinstance(out.gates, torch.Tensor) else out.gates[0]
            g_bar = mean_gate(full_res)
            logs["moe_gate_entropy"] = -(g_bar * g_bar.clamp_min(1e-8).log()).sum()
            logs["moe_gate_entropy_per_input"] = gate_entropy(full_res)
            for k in range(g_bar.shape[0]):
                logs[f"moe_gate_{k}"] = g_bar[k]
        return {"loss": total, **logs}


__all__ = ["SemiMoETrainer", "deep_supervision_weights"]
