"""DCA network: nnU-Net's encoder, G asymmetric expert decoders and the DFAM aggregation decoder.

Built by nnU-Net's ``get_network_from_plans`` from ``network_class_name`` + ``arch_kwargs`` like the networks of
``dynamic_network_architectures`` (DNA): the encoder is DNA's ``PlainConvEncoder`` / ``ResidualEncoder`` exactly as
the plans describe it, every decoder derives its stages from that encoder, and this module imports torch and DNA
only (no nnunetv2), so the stock predictor can rebuild it from the plans alone.

Choices where the paper (seed ``003``, Key Designs 2 and 4) is silent, all overridable through ``arch_kwargs``:

* **Expert depth and dilation.** The paper's V-Net decoders have conv counts head {2,2,1,1}, medium {3,3,2,1},
  tail {4,4,3,2}: stage by stage that is medium - 1 (at least 1), medium, medium + 1. nnU-Net has a variable number
  of decoder stages with a planned ``n_conv_per_stage_decoder``, so the same rule is applied to the plan: head =
  planned - 1 (min 1) with dilation 2, middle groups = planned, tail = planned + 1 (:func:`default_expert_settings`).
  Dilation applies to every conv of the head expert along axes whose kernel is > 1 (anisotropic kernels such as
  (1, 3, 3) stay undilated along the 1-axis).
* **Where DFAM sits.** After each stage's convolutions of the aggregation decoder D_A: ``F_up`` is D_A's own stage
  output at that resolution, the experts' features are their stage outputs at the same resolution; ``F_DFAM`` feeds
  both D_A's deep-supervision head at that scale and the next upsampling. The gate's 3x3 conv uses the planned kernel
  size of the stage (anisotropic plans stay anisotropic), its hidden width is the stage width.
* **Gradients.** ``detach_expert_features=True`` (seed: stop-gradient "to prevent backward contamination of expert
  specialization"): D_A's loss never reaches the expert decoders. D_A's loss does reach the shared encoder through
  D_A's own skip path (that is how the unlabeled images shape the shared representation); set
  ``detach_encoder_for_aggregation=True`` to cut that too.
* **Outputs.** ``forward(x)`` returns D_A's logits (``prediction_output="experts"``: the experts' fused scores,
  D_A not run) in nnU-Net's format (a tensor, or the list highest resolution
  first when deep supervision is on): that is what nnU-Net's validation and ``nnUNetv2_predict`` consume. Expert
  segmentation heads are only evaluated by ``all_outputs(x)``, which returns :class:`DCAOutput` with
  the experts' logits (per scale), D_A's logits and the gate maps for every sample. Expert ``g`` predicts
  ``1 + len(class_groups[g])`` channels: background, then its classes in the order of ``class_groups[g]``; with
  ``expert_other_channel=True`` one more, last: "an organ of another group" (docs/dca.md, "The other-organ
  channel": the seed's label-split folds other groups' organs into background, which was measured to stop the
  medium expert from telling its own classes apart).
* **Training step.** ``forward(x, num_labeled=n)`` (``x`` = labeled then unlabeled samples) returns
  :class:`DCAStepOutput` and runs only what the step's losses use: the encoder on all samples, the experts with
  autograd on the labeled part and *without* autograd on the unlabeled part (their outputs there only feed the
  pseudo-labels and, detached, DFAM), D_A on the unlabeled part (plus the labeled part with
  ``aggregate_labeled=True``). Same losses and gradients as slicing the ``all_outputs``, at 63 % of the FLOPs
  (full-width 3d plans, docs/training.md); one call, so DDP and torch.compile see every parameter used.

Size: the network as DNA structures its own (encoder use, decoders derived from it, feature-map counts next to
the layers they count); the decoders, DFAM, the fusion, the encoders and the plans mapping have modules of their
own.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Type, Union

import numbers
import numpy as np
import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.dropout import _DropoutNd

from dynamic_network_architectures.architectures.abstract_arch import AbstractDynamicNetworkArchitectures
from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim
from dynamic_network_architectures.building_blocks.residual import BasicBlockD, BottleneckD
from dynamic_network_architectures.initialization.weight_init import InitWeights_He, init_last_bn_before_add_to_0

from nnunetv2_dca.network.decoders import (AggregationDecoder, DCADecoder, Encoder, ExpertDecoder, IntOrSeq,
                                           per_stage, skip_sizes)
from nnunetv2_dca.network.fusion import DEFAULT_FUSION, fuse_expert_logits
from nnunetv2_dca.network.encoders import plain_encoder_factory, residual_encoder_factory

# what forward(x) returns: D_A's logits (the seed) or the experts' fused scores (D_A is then a training aid only)
PREDICTION_OUTPUTS = ("aggregate", "experts")


class DCAOutput(NamedTuple):
    """Everything a training step needs, from one ``network.all_outputs(x)`` call.

    Each entry follows nnU-Net's deep-supervision convention: a tensor without deep supervision, else a list with the
    highest resolution first. ``gates`` always holds one map per decoder stage (B, G, *spatial), highest first.
    """
    aggregate: Union[torch.Tensor, List[torch.Tensor]]
    experts: List[Union[torch.Tensor, List[torch.Tensor]]]
    gates: List[torch.Tensor]


def take_rows(output: Union[torch.Tensor, List[torch.Tensor]], rows: slice
              ) -> Union[torch.Tensor, List[torch.Tensor]]:
    """Samples ``rows`` of an output in nnU-Net's format (a tensor, or the deep-supervision list)."""
    return [t[rows] for t in output] if isinstance(output, list) else output[rows]


class DCAStepOutput(NamedTuple):
    """What one training step needs, from ``network(x, num_labeled=n)`` (same conventions as :class:`DCAOutput`).

    ``experts_labeled``: each expert's logits on the labeled samples (autograd on: label-split supervision).
    ``experts_unlabeled``: each expert's logits on the unlabeled samples, computed without autograd (pseudo-labels).
    ``aggregate`` / ``gates``: D_A's logits and DFAM's gates on the unlabeled samples, preceded by the labeled ones
    when the step asked for ``aggregate_labeled``.
    """
    experts_labeled: List[Union[torch.Tensor, List[torch.Tensor]]]
    experts_unlabeled: List[Union[torch.Tensor, List[torch.Tensor]]]
    aggregate: Union[torch.Tensor, List[torch.Tensor]]
    gates: List[torch.Tensor]


def default_expert_settings(n_conv_per_stage_decoder: IntOrSeq, num_stages_decoder: int, num_groups: int
                            ) -> Tuple[List[List[int]], List[int]]:
    """Per-expert conv counts and dilations from the planned decoder (head first, tail last).

    The paper's V-Net rule, stage by stage: head = planned - 1 (at least 1) with dilation 2, tail = planned + 1,
    groups in between = planned. One group gets the planned decoder; two groups get head and tail.
    """
    if num_groups < 1:
        raise ValueError(f"num_groups must be >= 1, got {num_groups}")
    planned = per_stage(n_conv_per_stage_decoder, num_stages_decoder, "n_conv_per_stage_decoder")
    if num_groups == 1:
        return [list(planned)], [1]
    convs = [[max(1, n - 1) for n in planned]]
    convs += [list(planned) for _ in range(num_groups - 2)]
    convs += [[n + 1 for n in planned]]
    return convs, [2] + [1] * (num_groups - 1)


def validate_class_groups(class_groups: Optional[Sequence[Sequence[int]]], num_classes: int) -> List[List[int]]:
    """Every foreground class 1..num_classes-1 in exactly one non-empty group (background 0 belongs to all)."""
    if class_groups is None:
        raise ValueError("the DCA network needs 'class_groups' in the plans' arch_kwargs (plan with "
                         "-pl nnUNetPlannerDCA, or add them by hand: head group first)")
    if not isinstance(class_groups, (list, tuple)) or not class_groups or any(
            not isinstance(g, (list, tuple)) or len(g) == 0 for g in class_groups):
        raise ValueError(f"class_groups must be a list of non-empty groups of class ids, got {class_groups!r}")
    # 6.5 or "6" must not silently become class 6
    bad = [c for g in class_groups for c in g if isinstance(c, bool) or not isinstance(c, numbers.Integral)]
    if bad:
        raise ValueError(f"class_groups {class_groups!r} hold non-integer class ids {bad}")
    groups = [[int(c) for c in g] for g in class_groups]
    flat = [c for g in groups for c in g]
    expected = set(range(1, num_classes))
    dup = sorted({c for c in flat if flat.count(c) > 1})
    unknown = sorted(set(flat) - expected)
    missing = sorted(expected - set(flat))
    if dup or unknown or missing:
        raise ValueError(f"class_groups {groups} must hold every foreground class 1..{num_classes - 1} exactly once "
                         f"(num_classes={num_classes} incl. background): duplicated {dup}, unknown {unknown}, "
                         f"missing {missing}")
    return groups


class DCAUNet(AbstractDynamicNetworkArchitectures):
    """Shared encoder + G expert decoders + DFAM aggregation decoder. Subclasses pick DNA's encoder."""

    def __init__(self, encoder: Encoder, num_classes: int, n_conv_per_stage_decoder: IntOrSeq,
                 class_groups: Optional[Sequence[Sequence[int]]], expert_n_conv_per_stage: Optional[Sequence] = None,
                 expert_dilations: Optional[Sequence[int]] = None, deep_supervision: bool = False,
                 detach_expert_features: bool = True, detach_encoder_for_aggregation: bool = False,
                 nonlin_first: bool = False, expert_other_channel: bool = False,
                 prediction_output: str = "aggregate", prediction_fusion: str = DEFAULT_FUSION):
        super().__init__()
        if prediction_output not in PREDICTION_OUTPUTS:
            raise ValueError(f"prediction_output must be one of {PREDICTION_OUTPUTS}, got {prediction_output!r}")
        self.prediction_output = prediction_output
        self.prediction_fusion = prediction_fusion
        self.encoder = encoder
        self.num_classes = num_classes
        self.class_groups = validate_class_groups(class_groups, num_classes)
        n_dec = len(encoder.output_channels) - 1
        default_convs, default_dil = default_expert_settings(n_conv_per_stage_decoder, n_dec, len(self.class_groups))
        convs = default_convs if expert_n_conv_per_stage is None else list(expert_n_conv_per_stage)
        dilations = default_dil if expert_dilations is None else [int(d) for d in expert_dilations]
        if len(convs) != len(self.class_groups) or len(dilations) != len(self.class_groups):
            raise ValueError(f"expert_n_conv_per_stage ({len(convs)} entries) and expert_dilations "
                             f"({len(dilations)}) need one entry per class group ({len(self.class_groups)})")
        if min(dilations) < 1:
            raise ValueError(f"expert_dilations must be >= 1, got {dilations}")
        self.expert_other_channel = bool(expert_other_channel)
        extra = 1 if self.expert_other_channel else 0
        experts = [ExpertDecoder(encoder, 1 + len(g) + extra, c, deep_supervision, d, nonlin_first)
                   for g, c, d in zip(self.class_groups, convs, dilations)]
        aggregation = AggregationDecoder(encoder, num_classes, n_conv_per_stage_decoder, len(experts),
                                         deep_supervision, nonlin_first)
        self.decoder = DCADecoder(experts, aggregation)
        self.detach_expert_features = detach_expert_features
        self.detach_encoder_for_aggregation = detach_encoder_for_aggregation

    def forward(self, x: torch.Tensor, num_labeled: Optional[int] = None, aggregate_labeled: bool = False
                ) -> Union[torch.Tensor, List[torch.Tensor], DCAStepOutput]:
        """Two modes. Without ``num_labeled`` (nnU-Net's validation, ``nnUNetv2_predict``): the prediction in
        nnU-Net's format, D_A's logits or, with ``prediction_output="experts"``, the experts' fused scores. With
        ``num_labeled=n`` (``x`` = labeled then unlabeled samples): the training step's :class:`DCAStepOutput`; it
        goes through ``forward`` so that DDP and torch.compile see every parameter the step uses. Every output at
        once, for analysis: :meth:`all_outputs`."""
        if num_labeled is not None:
            return self._training_step(x, int(num_labeled), aggregate_labeled)
        if self.prediction_output == "experts":
            return self._fused_experts(x)
        return self._whole_network(x, expert_heads=False).aggregate

    def all_outputs(self, x: torch.Tensor) -> DCAOutput:
        """D_A's logits, every expert's logits and DFAM's gates for every sample (the gates picture, pseudo-label
        scoring, the cost report, tests)."""
        return self._whole_network(x, expert_heads=True)

    def _whole_network(self, x: torch.Tensor, expert_heads: bool) -> DCAOutput:
        skips = self.encoder(x)
        heads, expert_features = [], []
        for expert in self.decoder.experts:
            h, features = expert(skips, heads=expert_heads)  # D_A needs only the experts' features
            heads.append(h)
            expert_features.append([f.detach() for f in features] if self.detach_expert_features else features)
        agg_skips = [s.detach() for s in skips] if self.detach_encoder_for_aggregation else skips
        aggregate, gates = self.decoder.aggregation(agg_skips, expert_features)
        return DCAOutput(aggregate, heads, gates)

    def expert_logits(self, x: torch.Tensor) -> List[Union[torch.Tensor, List[torch.Tensor]]]:
        """Each expert's logits (nnU-Net's format: a tensor, or the deep-supervision list), D_A not run."""
        skips = self.encoder(x)
        return [expert(skips)[0] for expert in self.decoder.experts]

    def _fused_experts(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor]]:
        """The experts' fused scores (``fuse_expert_logits``) in nnU-Net's output format, D_A not run: the model's
        output with ``prediction_output="experts"``."""
        heads = self.expert_logits(x)
        if not isinstance(heads[0], list):
            return fuse_expert_logits(heads, self.class_groups, self.prediction_fusion)
        return [fuse_expert_logits([h[s] for h in heads], self.class_groups, self.prediction_fusion)
                for s in range(len(heads[0]))]

    def _training_step(self, x: torch.Tensor, n: int, aggregate_labeled: bool) -> DCAStepOutput:
        """See the module docstring ("Training step"). The experts' autograd on the unlabeled part is skipped only
        where nothing needs it: with ``detach_expert_features=False`` D_A's loss trains them through their features
        there, so those features keep autograd (their heads still run without)."""
        skips = self.encoder(x)
        labeled, unlabeled = [s[:n] for s in skips], [s[n:] for s in skips]
        heads_l, heads_u, feats_l, feats_u = [], [], [], []
        for expert in self.decoder.experts:
            h, f = expert(labeled)
            heads_l.append(h)
            feats_l.append(f)
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_expert_features):
                _, f = expert(unlabeled, heads=False)
            with torch.no_grad():
                heads_u.append(expert.head_outputs(f))
            feats_u.append(f)
        if self.detach_expert_features:
            feats_l = [[f.detach() for f in fs] for fs in feats_l]
        if aggregate_labeled:
            agg_skips = skips
            agg_feats = [[torch.cat((a, b)) for a, b in zip(fl, fu)] for fl, fu in zip(feats_l, feats_u)]
        else:
            agg_skips, agg_feats = unlabeled, feats_u
        if self.detach_encoder_for_aggregation:
            agg_skips = [s.detach() for s in agg_skips]
        aggregate, gates = self.decoder.aggregation(agg_skips, agg_feats)
        return DCAStepOutput(heads_l, heads_u, aggregate, gates)

    def compute_training_step_feature_map_size(self, input_size: Sequence[int], unlabeled_per_labeled: float = 1.0,
                                               aggregate_labeled: bool = False) -> float:
        """Feature maps autograd keeps for one labeled sample's training step (``forward(x, num_labeled=n)``) with
        its share of unlabeled samples, DNA's counting convention: the encoder on every sample, the experts (with
        heads) on the labeled one, D_A + DFAM on the unlabeled ones (and the labeled one with
        ``aggregate_labeled``), and the experts' stage outputs on the unlabeled ones (inputs of DFAM's align convs;
        the experts' other maps there are computed without autograd and freed at once)."""
        u = float(unlabeled_per_labeled)
        encoder = float(self.encoder.compute_conv_feature_map_size(input_size))
        experts = float(sum(e.stage_maps(input_size, self.encoder) for e in self.decoder.experts))
        expert_outputs = float(sum(e.stage_maps_kept(input_size, self.encoder) for e in self.decoder.experts))
        aggregation = float(self.decoder.aggregation.stage_maps(input_size, self.encoder))
        aggregation += float(sum(dfam.compute_conv_feature_map_size(size) for dfam, size in
                                 zip(self.decoder.aggregation.dfam, skip_sizes(self.encoder, input_size)[::-1])))
        if not self.detach_expert_features:  # the experts then keep autograd on the unlabeled samples too
            expert_outputs = experts
        agg_samples = u + (1.0 if aggregate_labeled else 0.0)
        return encoder * (1.0 + u) + experts + expert_outputs * u + aggregation * agg_samples

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Encoder + every expert (with heads) + D_A + DFAM for one sample through the whole network (the
        ``all_outputs`` pass). The planner budgets :meth:`compute_training_step_feature_map_size` instead."""
        assert len(input_size) == convert_conv_op_to_dim(self.encoder.conv_op), \
            "give the spatial size only: input_size=(x, y(, z))"
        total = self.encoder.compute_conv_feature_map_size(input_size)
        for decoder in [*self.decoder.experts, self.decoder.aggregation]:
            total += decoder.stage_maps(input_size, self.encoder)
        for dfam, size in zip(self.decoder.aggregation.dfam, skip_sizes(self.encoder, input_size)[::-1]):
            total += dfam.compute_conv_feature_map_size(size)
        return total


class DCAPlainConvUNet(DCAUNet):
    """DCA on nnU-Net's default encoder; arch_kwargs = those of DNA's ``PlainConvUNet`` + the DCA keys."""

    def __init__(self, input_channels: int, n_stages: int, features_per_stage: IntOrSeq, conv_op: Type[_ConvNd],
                 kernel_sizes: IntOrSeq, strides: IntOrSeq, n_conv_per_stage: IntOrSeq, num_classes: int,
                 n_conv_per_stage_decoder: IntOrSeq, conv_bias: bool = False,
                 norm_op: Union[None, Type[nn.Module]] = None, norm_op_kwargs: dict = None,
                 dropout_op: Union[None, Type[_DropoutNd]] = None, dropout_op_kwargs: dict = None,
                 nonlin: Union[None, Type[nn.Module]] = None, nonlin_kwargs: dict = None,
                 deep_supervision: bool = False, nonlin_first: bool = False,
                 class_groups: Optional[Sequence[Sequence[int]]] = None,
                 expert_n_conv_per_stage: Optional[Sequence] = None, expert_dilations: Optional[Sequence[int]] = None,
                 detach_expert_features: bool = True, detach_encoder_for_aggregation: bool = False,
                 expert_other_channel: bool = False, prediction_output: str = "aggregate",
                 prediction_fusion: str = DEFAULT_FUSION):
        encoder = plain_encoder_factory(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                                        n_conv_per_stage, conv_bias, norm_op, norm_op_kwargs, dropout_op,
                                        dropout_op_kwargs, nonlin, nonlin_kwargs, nonlin_first)()
        super().__init__(encoder, num_classes, n_conv_per_stage_decoder, class_groups, expert_n_conv_per_stage,
                         expert_dilations, deep_supervision, detach_expert_features, detach_encoder_for_aggregation,
                         nonlin_first, expert_other_channel, prediction_output, prediction_fusion)
        # keys DNA's pretraining/fine-tuning utilities look for
        self.key_to_encoder = "encoder.stages"
        self.key_to_stem = "encoder.stages.0"
        self.keys_to_in_proj = ("encoder.stages.0.0.convs.0.all_modules.0", "encoder.stages.0.0.convs.0.conv")

    @staticmethod
    def initialize(module: nn.Module) -> None:
        InitWeights_He(1e-2)(module)


class DCAResidualEncoderUNet(DCAUNet):
    """DCA on nnU-Net's ResEnc encoder (nnU-Net's recommended presets); arch_kwargs = those of DNA's
    ``ResidualEncoderUNet`` + the DCA keys. Decoders are plain conv stages, as in ResidualEncoderUNet."""

    def __init__(self, input_channels: int, n_stages: int, features_per_stage: IntOrSeq, conv_op: Type[_ConvNd],
                 kernel_sizes: IntOrSeq, strides: IntOrSeq, n_blocks_per_stage: IntOrSeq, num_classes: int,
                 n_conv_per_stage_decoder: IntOrSeq, conv_bias: bool = False,
                 norm_op: Union[None, Type[nn.Module]] = None, norm_op_kwargs: dict = None,
                 dropout_op: Union[None, Type[_DropoutNd]] = None, dropout_op_kwargs: dict = None,
                 nonlin: Union[None, Type[nn.Module]] = None, nonlin_kwargs: dict = None,
                 deep_supervision: bool = False, block: Union[Type[BasicBlockD], Type[BottleneckD]] = BasicBlockD,
                 bottleneck_channels: IntOrSeq = None, stem_channels: int = None,
                 class_groups: Optional[Sequence[Sequence[int]]] = None,
                 expert_n_conv_per_stage: Optional[Sequence] = None, expert_dilations: Optional[Sequence[int]] = None,
                 detach_expert_features: bool = True, detach_encoder_for_aggregation: bool = False,
                 expert_other_channel: bool = False, prediction_output: str = "aggregate",
                 prediction_fusion: str = DEFAULT_FUSION):
        encoder = residual_encoder_factory(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes,
                                           strides, n_blocks_per_stage, conv_bias, norm_op, norm_op_kwargs,
                                           dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs, block,
                                           bottleneck_channels, stem_channels)()
        super().__init__(encoder, num_classes, n_conv_per_stage_decoder, class_groups, expert_n_conv_per_stage,
                         expert_dilations, deep_supervision, detach_expert_features, detach_encoder_for_aggregation,
                         expert_other_channel=expert_other_channel, prediction_output=prediction_output,
                         prediction_fusion=prediction_fusion)
        self.key_to_encoder = "encoder.stages"
        self.key_to_stem = "encoder.stem"
        self.keys_to_in_proj = ("encoder.stem.convs.0.conv", "encoder.stem.convs.0.all_modules.0")

    @staticmethod
    def initialize(module: nn.Module) -> None:
        InitWeights_He(1e-2)(module)
        init_last_bn_before_add_to_0(module)
