"""Semi-MoE's training procedure (seed ``000``: expert pool, gate, balance loss, cross-expert consistency on unlabeled
images) on the semi-supervised base trainer, with the network of :mod:`nnunetv2_dca.network.moe_unet`.

Network from the plans
----------------------
Any nnU-Net plan works: stock plans (``nnUNetPlans``, the ResEnc presets) and DCA plans (``nnUNetPlansDCA``,
``nnUNetPlansDCA_CPU``, ...). :meth:`SemiMoETrainer.build_network_architecture` (a classmethod with nnU-Net 2.8's
signature, so the *stock* ``nnUNetv2_predict -tr <trainer>`` rebuilds the same network from the plans and the
trainer class alone) maps the plan's ``architecture`` through :func:`nnunetv2_dca.network.architectures.semi_moe_architecture`: DNA's
``PlainConvUNet`` -> ``MoEPlainConvUNet``, ``ResidualEncoderUNet`` -> ``MoEResidualEncoderUNet``, a DCA network ->
the stock network of the same plans first (:func:`nnunetv2_dca.network.architectures.stock_architecture`), all other
arch_kwargs unchanged, plus ``num_experts``, ``gating`` and ``expert_scope`` from the trainer class. The plans file
itself is not changed. Trainer variants therefore set these three as *class* attributes (the predictor never
instantiates the trainer).

One training step
-----------------
One forward of the labeled and the unlabeled batch, concatenated, through ``self.network(x, return_all=True)``
(mixture, per-expert outputs and gates from one call, so DDP/torch.compile see every parameter used), then::

    total = L_seg(mix(x_l), y_l)                                  supervised, on the mixture (the seed's y_hat)
          + expert_supervision_weight * mean_k L_seg(E_k(x_l), y_l)    per-expert supervision (beyond the seed)
          + balance_weight * L_balance(gates of x_l and x_u)
          + lambda(t) * L_cons(E_1(x_u), ..., E_K(x_u))

* ``L_seg`` is nnU-Net's own loss object (Dice + CE, its deep-supervision weights, ignore label).
* ``L_balance`` = :func:`~nnunetv2_dca.training.moe_losses.balance_loss` = ``sum_k g_bar_k log g_bar_k + log K``
  = KL(g_bar || uniform) over the whole batch (labeled + unlabeled; per voxel and averaged over the output scales
  with voxel gating). The seed writes ``-sum g_bar log g_bar``; minimising that (the entropy of the mean gate)
  would *cause* the collapse onto one expert it is meant to prevent, so the sign is flipped (see moe_losses).
* ``L_cons`` = :func:`~nnunetv2_dca.training.moe_losses.expert_consistency_loss` on the unlabeled part only (the
  seed: "for unlabeled data"): MSE between each expert's softmax probabilities and the mean of the others',
  symmetric (no stop-gradient; ``consistency_detach_target``), at every deep-supervision scale with the *same*
  scale weights as nnU-Net's supervised loss (its lowest-resolution output therefore gets weight 0, as there).
* ``lambda(t)`` = the base trainer's sigmoid ramp-up over the first 20 % of the iterations.

Defaults (the seed gives no numbers; the benchmark should tune them, all are class attributes)
------------------------------------------------------------------------------------------------
* ``num_experts = 3``, ``gating = "image"`` (the seed's ``g = softmax(G(x)) in R^K``), ``expert_scope = "decoder"``
  (K decoders on one shared encoder; see the network module). ``nnUNetTrainerSemiMoE_voxelGate``: per-voxel gates.
* ``expert_supervision_weight = 1.0`` (mean over the experts). The seed supervises the mixture only. With logit
  mixing an expert receives ``g_k * dL/dy`` from that loss: an expert whose gate is ~0 on an image learns nothing
  from it, and the mixture does not anchor the individual experts at all (``z_1 = y + d, z_2 = y - d`` is as good
  as ``z_1 = z_2 = y``) -- yet the consistency loss treats each expert as a predictor and the gate may route an
  unseen site's image to any of them. With the mean over K experts and weight 1, every expert gets at least 1/K of
  the gradient a fully-routed expert gets from the mixture, so every expert stays a competent segmenter (as the
  per-decoder supervision of multi-decoder consistency methods, MC-Net/MC-Net+), while the gate-weighted mixture
  term still rewards specialisation. Set 0 for the seed's objective as written.
* ``balance_weight = 0.1``. The loss is in nats, between 0 (balanced) and log K (1.10 for K = 3, full collapse),
  next to a Dice + CE of about 1; it is quadratic near the optimum (a KL), so it only pushes when usage is clearly
  skewed. It is computed on the few images of one batch (2 + 2 by default): a large weight would force every batch
  -- also one whose images all come from one site -- to use all experts, i.e. fight the per-image specialisation
  the gate is for. 0.1 makes a full collapse cost ~0.11 (about a tenth of the supervised loss).
* ``lambda_max = 1.0``, ramp-up over 20 % of the iterations (Laine & Aila). The consistency term is a mean squared
  difference of probabilities averaged over voxels *and* channels: per voxel its gradient is 2/C (C classes) times a
  probability difference, against ~1 times a probability error for CE. lambda = 1 keeps it below the supervised
  signal for any C >= 2 while clearly stronger than the 0.1 used with MSE consistency in UA-MT/MC-Net (whose
  supervised loss is half of nnU-Net's Dice + CE).
* ``unlabeled_batch_size = None``: as many unlabeled as labeled images per step (the base trainer's default).

Memory: one step runs (1 + unlabeled/labeled) x batch images through the encoder and K decoders. nnU-Net sizes
patch and batch of *stock* plans for its stock network: a default 3d_fullres plan's MoE network (K = 3, decoder
scope) has ~2.3x its feature maps (3.1x with ``expert_scope="network"``), i.e. ~4.7x the activations of a stock step
with the unlabeled batch. DCA plans are sized for a DCA step (DCA network ~3.9x stock, x 2 for the unlabeled batch),
so Semi-MoE fits in them. ``initialize`` logs the factor for the actual plan.

Logged per epoch (``progress_semi_supervised.png``): ``moe_loss_sup`` (mixture), ``moe_loss_sup_experts`` (mean per
expert, if its weight > 0), ``moe_loss_balance``, ``moe_loss_consistency``, ``moe_gate_entropy`` (entropy of the mean
gate; log K = all experts used equally; = log K - balance loss for image gating), ``moe_gate_entropy_per_input``
(mean entropy of the individual gates: low = each image/voxel picks an expert, i.e. specialisation),
``moe_gate_<k>`` (mean gate of expert k, k = 0..K-1), plus the base trainer's lambda and seconds per iteration. Gate
statistics are over the whole batch, at full resolution for voxel gating.

Unlabeled images come from ``<data_identifier>_unlabeled`` (``DCAPreprocessor``). Stock plans get it with
``nnUNetv2_plan_and_preprocess -d D -c CFG -preprocessor_name DCAPreprocessor``; DCA planners set it themselves.
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
    # losses (see the module docstring for the reasons)
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
        n = data.shape[0]
        out = self.network(torch.cat((data, unlabeled)), return_all=True)
        ds = isinstance(out.mixture, list)

        def part(o: TensorOrList, sl: slice) -> TensorOrList:
            return [t[sl] for t in o] if ds else o[sl]

        labeled, unlabeled_part = slice(0, n), slice(n, None)
        logs: Dict[str, torch.Tensor] = {}
        sup = self.loss(part(out.mixture, labeled), target)
        logs["moe_loss_sup"] = sup
        total = sup
        if self.expert_supervision_weight > 0:
            expert_sup = torch.stack([self.loss(part(e, labeled), target) for e in out.experts]).mean()
            logs["moe_loss_sup_experts"] = expert_sup
            total = total + self.expert_supervision_weight * expert_sup
        balance = balance_loss(out.gates)
        logs["moe_loss_balance"] = balance
        total = total + self.balance_weight * balance
        consistency = expert_consistency_loss(
            [part(e, unlabeled_part) for e in out.experts], activation="softmax",
            detach_target=self.consistency_detach_target,
            scale_weights=deep_supervision_weights(self.loss, len(out.mixture)) if ds else None)
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
