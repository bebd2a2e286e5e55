"""DCA's training procedure (seed ``003``, "Loss & Training", Key Designs 2-4) on the semi-supervised base trainer.

One step: ``L_sup = sum_g L_seg(expert_g(x_l), split_g(y_l))`` (label-split, :func:`split_target`) + ``lambda(t) *
L_seg(D_A(x_u), fused pseudo-labels)`` (:func:`nnunetv2_dca.network.fusion.fuse_expert_logits`, at every
deep-supervision scale from the experts' own heads, no gradient; lambda = 10 with the base trainer's ramp-up over
20 % of the iterations) + ``gate_balance_weight * balance(DFAM gates of the samples D_A runs on)``; with
``supervise_aggregation`` also ``L_seg(D_A(x_l), y_l)``. ``L_seg`` is nnU-Net's own loss object. The network's
step forward (``num_labeled``) runs only what these losses use. The seed, our deviations and the measurements
behind them: docs/dca.md.

Logged per epoch (``progress_semi_supervised.png``): supervised loss per expert, unsupervised loss, lambda, share of
pseudo-label voxels per group (+ background), mean DFAM gate weight per expert at full resolution, seconds per
iteration.
"""

from __future__ import annotations

import copy
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunetv2_dca.network.architectures import SUPERVISE_AGGREGATION, is_dca
from nnunetv2_dca.network.dca_unet import DCAUNet, take_rows
from nnunetv2_dca.network.fusion import DEFAULT_FUSION, fuse_expert_logits
from nnunetv2_dca.planning.class_groups import plans_class_groups
from nnunetv2_dca.planning.labels import foreground_classes
from nnunetv2_dca.training.moe_losses import balance_loss
from nnunetv2_dca.training.semi_supervised import nnUNetTrainerSemiSupervised

TensorOrList = Union[torch.Tensor, List[torch.Tensor]]


def split_lookup(class_groups: Sequence[Sequence[int]], num_labels: int, ignore_label: Optional[int] = None,
                 other_channel: bool = False) -> torch.Tensor:
    """(G, num_labels) table: label value -> expert g's channel. Classes of other groups go to background (the
    seed's label-split) or, with ``other_channel``, to the expert's last channel, "an organ of another group". The
    ignore label keeps its value so nnU-Net's loss keeps ignoring it."""
    size = max(num_labels, (ignore_label or 0) + 1)
    lut = torch.zeros(len(class_groups), size, dtype=torch.long)
    for g, members in enumerate(class_groups):
        if other_channel:
            lut[g, 1:num_labels] = len(members) + 1
        for i, c in enumerate(members):
            lut[g, c] = i + 1
        if ignore_label is not None:
            lut[g, ignore_label] = ignore_label
    return lut


def split_target(target: torch.Tensor, lut_row: torch.Tensor) -> torch.Tensor:
    """Label-split of one target tensor (B, 1, ...) for one expert, dtype kept (nnU-Net's loss casts)."""
    return lut_row.to(target.device)[target.long().clamp_min(0)].to(target.dtype)


def encoder_grad_norms(terms: Mapping[str, torch.Tensor], params: Sequence[torch.nn.Parameter]
                       ) -> Dict[str, torch.Tensor]:
    """L2 norm of each (weighted) loss term's gradient over the shared encoder's parameters, without touching
    ``.grad`` (the step's own backward is unchanged). Shows which term trains the encoder: the measured cause of
    a slow expert is visible here, not guessed."""
    out = {}
    for name, term in terms.items():
        if not term.requires_grad:
            out[name] = torch.zeros((), device=term.device)
            continue
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        norms = [g.detach().float().norm() for g in grads if g is not None]
        out[name] = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros((), device=term.device)
    return out


def planned_groups(plans: Mapping, configuration: str, dataset_json: Mapping, trainer: str
                   ) -> Tuple[List[List[int]], List[str]]:
    """The configuration's class groups and their names, validated against dataset.json's classes (errors name the
    plans file)."""
    dataset = plans.get("dataset_name", "?")
    plans_file = os.path.join(os.environ.get("nnUNet_preprocessed", "$nnUNet_preprocessed"), dataset,
                              f"{plans.get('plans_name', '?')}.json")
    groups, names = plans_class_groups(plans, 1 + len(foreground_classes(dataset_json)), configuration, plans_file)
    if groups is None:
        raise RuntimeError(
            f"{trainer}: plans {plans_file} (configuration {configuration!r}) do not describe a DCA network (no "
            f"'class_groups' in arch_kwargs). Plan with: nnUNetv2_plan_and_preprocess -d {dataset} "
            f"-pl nnUNetPlannerDCA, then train with -p nnUNetPlansDCA")
    return groups, names


# the class attributes that make a DCA recipe (what a trainer variant changes); the benchmark keys stored results by
# them, so a result trained under another recipe of the same trainer name is never reused
RECIPE_ATTRIBUTES = ("expert_other_channel", "prediction_output", "supervise_aggregation",
                     "aggregation_supervision_weight", "fusion", "lambda_max", "rampup_fraction", "gate_balance_weight",
                     "single_group", "unlabeled_batch_size")


# recipe attributes added after results were stored (issue 25's screen), keyed only when they differ from their
# "off" value: a recipe that leaves them off keeps the key it was stored under
RECIPE_OPTIONS = {"pseudo_label_confidence": None, "equal_capacity_experts": False, "ema_teacher_momentum": None}


def recipe(trainer_class: type) -> Dict[str, object]:
    """The DCA recipe of a trainer class (:data:`RECIPE_ATTRIBUTES`, and :data:`RECIPE_OPTIONS` where on)."""
    out = {name: getattr(trainer_class, name) for name in RECIPE_ATTRIBUTES}
    out.update({name: getattr(trainer_class, name) for name, off in RECIPE_OPTIONS.items()
                if getattr(trainer_class, name) != off})
    return out


def with_ignore_label(loss: torch.nn.Module, ignore_label: int) -> torch.nn.Module:
    """A copy of nnU-Net's DC_and_CE loss object (deep-supervision wrapper kept) that ignores ``ignore_label`` in
    its target: the Dice and the cross-entropy skip those voxels, as nnU-Net does for a dataset's ignore label."""
    loss = copy.deepcopy(loss)
    inner = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
    inner.ignore_label = ignore_label
    inner.ce.ignore_index = ignore_label
    return loss


def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, momentum: float) -> None:
    """Mean-teacher update: teacher = momentum * teacher + (1 - momentum) * student, parameters and float buffers."""
    with torch.no_grad():
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.lerp_(s.detach(), 1.0 - momentum)
        for t, s in zip(teacher.buffers(), student.buffers()):
            if t.is_floating_point():
                t.lerp_(s.detach(), 1.0 - momentum)
            else:
                t.copy_(s)


class DCATrainer(nnUNetTrainerSemiSupervised):
    # The default recipe (issue 25, docs/dca.md "The default recipe"): the only screened variant with no harm against
    # nnU-Net on three seeds. The seed's literal recipe is nnUNetTrainerDCA_seed, the first build nnUNetTrainerDCA_asBuilt.
    # network (a class attribute: nnUNetv2_predict rebuilds the network through build_network_architecture on the
    # class). True: each expert also predicts "an organ of another group" instead of folding other groups' organs
    # into its background (docs/dca.md, "The other-organ channel"); False: the seed's label-split.
    expert_other_channel = True
    # what nnUNetv2_predict (and nnU-Net's validation) get: "aggregate" = D_A (the seed), "experts" = the experts'
    # fused scores with this class's fusion (D_A then only trains the shared encoder and learns what it can)
    prediction_output = "experts"
    lambda_max = 10.0
    rampup_fraction = 0.2
    # D_A also learns from the labeled images' ground truth (beyond the seed; the planner budgets its memory)
    supervise_aggregation = SUPERVISE_AGGREGATION
    aggregation_supervision_weight = 1.0
    # "product": product of the experts' probabilities (scale-free, unbiased); "log_softmax" / "logits": the seed's
    # mean-background concatenation on log-probabilities / raw logits, both measured to starve the pseudo-labels of
    # the rarer groups (see fuse_expert_logits)
    fusion = DEFAULT_FUSION
    # Beyond the paper: load balancing of the DFAM gates (Semi-MoE's balance loss, KL(mean gate || uniform) per
    # stage). Without it the benchmark saw the per-voxel softmax gates saturate onto one expert within a few hundred
    # iterations (others at ~1e-40, where the softmax passes no gradient back), so D_A used a single expert. It
    # constrains only the *average* use of each expert per stage; per-voxel routing stays free.
    gate_balance_weight = 1.0
    # once per epoch (first iteration), the gradient norm of each loss term at the shared encoder is logged
    # (dca_gradnorm_*): a few extra backward passes on 1 of nnU-Net's 250 iterations; off under DDP
    log_encoder_grad_norms = True
    # control (issue 25): one group holding every class, so one expert with nnU-Net's decoder (no dilation); with
    # lambda_max = 0 and prediction_output = "experts" the model is nnU-Net's U-Net with extra, unused parts
    single_group = False
    # candidates of issue 25's screen, off in the default (docs/dca.md, "Screened candidates"; keyed by
    # RECIPE_OPTIONS): pseudo-label voxels whose fused probability (softmax of the fused scores) is below this are
    # ignored by D_A's unlabeled loss (None: every voxel counts)
    pseudo_label_confidence: Optional[float] = None
    # every expert gets the planned decoder (depth and dilation), instead of the seed's asymmetric experts
    equal_capacity_experts = False
    # pseudo-labels from an exponential moving average of the network's encoder and experts (a mean teacher,
    # momentum e.g. 0.99) instead of the network itself (None). The teacher starts as a copy of the network when
    # training starts (also after a resume: it is not checkpointed)
    ema_teacher_momentum: Optional[float] = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        # validated before nnU-Net's __init__ creates the output folder, naming the file a user would edit
        self.class_groups, self.group_names = planned_groups(plans, configuration, dataset_json,
                                                             self.__class__.__name__)
        if self.single_group:
            self.class_groups, self.group_names = [sorted(c for g in self.class_groups for c in g)], ["all"]
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._lut = split_lookup(self.class_groups, self.label_manager.num_segmentation_heads,
                                 self.label_manager.ignore_label, self.expert_other_channel)
        # pseudo-labels never hold the dataset's ignore label, so it (or the first unused value) marks dropped voxels
        self._pseudo_ignore = (self.label_manager.ignore_label if self.label_manager.ignore_label is not None
                               else self.label_manager.num_segmentation_heads)
        self._teacher: Optional[torch.nn.Module] = None

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True
                                   ) -> torch.nn.Module:
        """nnU-Net's hook (trainer and ``nnUNetv2_predict``): the plans' DCA network with this class's expert
        output layout (``expert_other_channel``) and prediction output (``prediction_output``), so one set of DCA
        plans serves every DCA variant."""
        kwargs = dict(configuration_manager.network_arch_init_kwargs)
        if is_dca(configuration_manager.network_arch_class_name):
            kwargs = cls.recipe_arch_kwargs(kwargs)
        return get_network_from_plans(configuration_manager.network_arch_class_name, kwargs,
                                      configuration_manager.network_arch_init_kwargs_req_import, num_input_channels,
                                      num_output_channels, allow_init=True, deep_supervision=enable_deep_supervision)

    @classmethod
    def recipe_arch_kwargs(cls, arch_kwargs: Mapping) -> Dict:
        """The plans' DCA ``arch_kwargs`` with this class's recipe applied (what build_network_architecture builds;
        the benchmark's cost report builds the same)."""
        kwargs = dict(arch_kwargs)
        kwargs.update(expert_other_channel=cls.expert_other_channel, prediction_output=cls.prediction_output,
                      prediction_fusion=cls.fusion)
        if cls.single_group:
            kwargs["class_groups"] = [sorted(c for g in kwargs["class_groups"] for c in g)]
        if cls.single_group or cls.equal_capacity_experts:  # every expert the planned decoder, undilated
            n = len(kwargs["class_groups"])
            kwargs.update(expert_n_conv_per_stage=[kwargs["n_conv_per_stage_decoder"]] * n, expert_dilations=[1] * n)
        return kwargs

    def extra_log_keys(self) -> List[str]:
        names = self.group_names
        return ([f"dca_loss_sup_{n}" for n in names] + ["dca_loss_unsup"]
                + (["dca_loss_gate_balance"] if self.gate_balance_weight > 0 else [])
                + (["dca_loss_sup_aggregation"] if self.supervise_aggregation else [])
                + ["dca_share_background"] + [f"dca_share_{n}" for n in names] + [f"dca_gate_{n}" for n in names]
                + ([f"dca_gradnorm_{n}" for n in (*names, "unsup", "gate_balance", "sup_aggregation")]
                   if self.log_encoder_grad_norms else [])
                + (["dca_pseudo_kept"] if self.pseudo_label_confidence is not None else []))

    def initialize(self):
        super().initialize()
        if not isinstance(self._plain_network(), DCAUNet):
            raise RuntimeError(f"{self.__class__.__name__} needs the DCA network; the plans build "
                               f"{type(self._plain_network()).__name__}. Plan with -pl nnUNetPlannerDCA.")
        if self.pseudo_label_confidence is not None:
            self._pseudo_label_loss = with_ignore_label(self.loss, self._pseudo_ignore)

    def on_train_start(self):
        super().on_train_start()
        if self.ema_teacher_momentum is not None:
            self._teacher = copy.deepcopy(self._plain_network()).requires_grad_(False).eval()

    def train_step(self, batch: dict) -> dict:
        out = super().train_step(batch)
        if self._teacher is not None and not out["ssl_skipped_steps"]:
            ema_update(self._teacher, self._plain_network(), self.ema_teacher_momentum)
        return out

    def semi_supervised_losses(self, data: torch.Tensor, target: TensorOrList, unlabeled: torch.Tensor
                               ) -> Dict[str, torch.Tensor]:
        n = data.shape[0]
        # one call that runs only what these losses use (see DCAUNet "Training step")
        out = self.step_forward(data, unlabeled, aggregate_labeled=self.supervise_aggregation)
        ds = isinstance(out.aggregate, list)
        targets = target if isinstance(target, list) else [target]

        def as_target(ts: List[torch.Tensor]) -> TensorOrList:
            return ts if ds else ts[0]

        logs: Dict[str, torch.Tensor] = {}
        terms: Dict[str, torch.Tensor] = {}  # each weighted term of the total, for the encoder gradient norms
        sup = 0.0
        for g, (name, expert_out) in enumerate(zip(self.group_names, out.experts_labeled)):
            split = [split_target(t, self._lut[g]) for t in targets]
            loss_g = self.loss(expert_out, as_target(split))
            logs[f"dca_loss_sup_{name}"] = terms[name] = loss_g
            sup = sup + loss_g

        with torch.no_grad():
            scales = len(out.aggregate) if ds else 1
            source = (out.experts_unlabeled if self._teacher is None
                      else self._teacher.expert_logits(unlabeled))
            per_scale = [[(e[s] if ds else e) for e in source] for s in range(scales)]
            fused = [fuse_expert_logits(experts, self.class_groups, self.fusion) for experts in per_scale]
            pseudo = [f.argmax(1, keepdim=True).to(targets[0].dtype) for f in fused]
            if self.pseudo_label_confidence is not None:
                kept = [torch.softmax(f.float(), 1).amax(1, keepdim=True) >= self.pseudo_label_confidence
                        for f in fused]
                logs["dca_pseudo_kept"] = kept[0].float().mean()
                pseudo = [torch.where(k, p, torch.full_like(p, self._pseudo_ignore)) for k, p in zip(kept, pseudo)]
        # D_A ran on the unlabeled samples, preceded by the labeled ones with supervise_aggregation
        aggregate_unlabeled = (take_rows(out.aggregate, slice(n, None)) if self.supervise_aggregation
                               else out.aggregate)
        unsup_loss = self.loss if self.pseudo_label_confidence is None else self._pseudo_label_loss
        unsup = unsup_loss(aggregate_unlabeled, as_target(pseudo))
        terms["unsup"] = self.unsupervised_weight() * unsup
        total = sup + terms["unsup"]
        logs["dca_loss_unsup"] = unsup
        if self.gate_balance_weight > 0:
            # over the samples D_A saw: the unlabeled ones (+ the labeled ones with supervise_aggregation)
            gate_balance = balance_loss(out.gates)
            logs["dca_loss_gate_balance"] = gate_balance
            terms["gate_balance"] = self.gate_balance_weight * gate_balance
            total = total + terms["gate_balance"]
        if self.supervise_aggregation:
            agg = self.loss(take_rows(out.aggregate, slice(0, n)), target)
            logs["dca_loss_sup_aggregation"] = agg
            terms["sup_aggregation"] = self.aggregation_supervision_weight * agg
            total = total + terms["sup_aggregation"]
        logs.update(self._encoder_grad_norm_logs(terms, total))

        with torch.no_grad():
            heads = self.label_manager.num_segmentation_heads
            # shares among the pseudo-label voxels D_A learns from (dropped ones, with a confidence threshold, not)
            counts = torch.bincount(pseudo[0].long().flatten(), minlength=heads)[:heads]
            counts = counts.float() / counts.sum().clamp_min(1)
            logs["dca_share_background"] = counts[0]
            for name, members in zip(self.group_names, self.class_groups):
                logs[f"dca_share_{name}"] = counts[members].sum()
            gate = out.gates[0].float().mean(dim=[0] + list(range(2, out.gates[0].ndim)))
            for g, name in enumerate(self.group_names):
                logs[f"dca_gate_{name}"] = gate[g]
        return {"loss": total, **logs}

    def _encoder_grad_norm_logs(self, terms: Mapping[str, torch.Tensor], total: torch.Tensor
                                ) -> Dict[str, torch.Tensor]:
        """dca_gradnorm_<term> on the first iteration of an epoch, NaN otherwise (the epoch's nanmean keeps the
        measured value); nothing when switched off."""
        if not getattr(self, "log_encoder_grad_norms", False):
            return {}
        names = [*self.group_names, "unsup", "gate_balance", "sup_aggregation"]
        nan = torch.full((), float("nan"), device=total.device)
        measure = (getattr(self, "_iteration_in_epoch", 0) == 0 and torch.is_grad_enabled() and total.requires_grad
                   and not getattr(self, "is_ddp", False))
        norms = encoder_grad_norms(terms, list(self.network_encoder().parameters())) if measure else {}
        return {f"dca_gradnorm_{k}": norms.get(k, nan) for k in names}

    def network_encoder(self) -> torch.nn.Module:
        return self._plain_network().encoder
