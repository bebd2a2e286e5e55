"""The DCA network's decoders, each deriving its stages from the shared encoder as DNA's ``UNetDecoder`` does:
an expert (background + its classes [+ "other organ"], asymmetric depth and dilation), D_A with DFAM after every
stage, and the container that nnU-Net's deep-supervision switch reaches. Torch and DNA only (the predictor rebuilds
the network from the plans alone); the choices behind them: :mod:`nnunetv2_dca.network.dca_unet`."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from dynamic_network_architectures.building_blocks.helper import get_matching_convtransp
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.residual_encoders import ResidualEncoder
from dynamic_network_architectures.building_blocks.simple_conv_blocks import StackedConvBlocks

from nnunetv2_dca.network.dfam import DFAM

Encoder = Union[PlainConvEncoder, ResidualEncoder]
IntOrSeq = Union[int, List[int], Tuple[int, ...]]


def per_stage(value: IntOrSeq, n: int, what: str) -> List[int]:
    values = [int(value)] * n if isinstance(value, (int, np.integer)) else [int(v) for v in value]
    if len(values) != n or min(values) < 1:
        raise ValueError(f"{what} needs {n} entries >= 1 (one per decoder stage), got {value}")
    return values


def _dilate(blocks: StackedConvBlocks, dilation: int) -> None:
    """DNA's conv blocks are built undilated; dilate each conv in place, keeping 'same' padding. Axes with kernel 1
    (anisotropic plans) stay undilated."""
    if dilation == 1:
        return
    for block in blocks.convs:
        conv = block.conv
        conv.dilation = tuple(dilation if k > 1 else 1 for k in conv.kernel_size)
        conv.padding = tuple(d * (k - 1) // 2 for d, k in zip(conv.dilation, conv.kernel_size))


def skip_sizes(encoder: Encoder, input_size: Sequence[int]) -> List[List[int]]:
    sizes, size = [], list(input_size)
    for stride in encoder.strides[:-1]:  # the bottleneck is not a decoder resolution
        size = [i // s for i, s in zip(size, stride)]
        sizes.append(size)
    return sizes


class _DecoderBase(nn.Module):
    """Upsampling path with nnU-Net's stage layout, derived from the encoder. Unlike DNA's ``UNetDecoder`` the
    encoder is *not* registered as a submodule (the shared encoder's weights are stored once), and each stage's
    features are returned for DFAM."""

    def __init__(self, encoder: Encoder, num_classes: int, n_conv_per_stage: IntOrSeq, deep_supervision: bool,
                 dilation: int = 1, nonlin_first: bool = False):
        super().__init__()
        self.deep_supervision = deep_supervision
        self.num_classes = num_classes
        self.conv_op = encoder.conv_op
        n_stages = len(encoder.output_channels) - 1
        self.n_conv_per_stage = per_stage(n_conv_per_stage, n_stages, "n_conv_per_stage")
        self.dilation = int(dilation)
        self.stage_channels = [encoder.output_channels[-(s + 2)] for s in range(n_stages)]  # lowest resolution first
        self.stage_kernels = [encoder.kernel_sizes[-(s + 2)] for s in range(n_stages)]
        transpconv_op = get_matching_convtransp(conv_op=encoder.conv_op)
        transpconvs, stages, seg_layers = [], [], []
        for s in range(n_stages):
            below, skip, stride = encoder.output_channels[-(s + 1)], self.stage_channels[s], encoder.strides[-(s + 1)]
            transpconvs.append(transpconv_op(below, skip, stride, stride, bias=encoder.conv_bias))
            stage = StackedConvBlocks(
                self.n_conv_per_stage[s], encoder.conv_op, 2 * skip, skip, self.stage_kernels[s], 1,
                encoder.conv_bias, encoder.norm_op, encoder.norm_op_kwargs, encoder.dropout_op,
                encoder.dropout_op_kwargs, encoder.nonlin, encoder.nonlin_kwargs, nonlin_first)
            _dilate(stage, self.dilation)
            stages.append(stage)
            # all heads are always built, so a checkpoint loads with deep supervision on or off
            seg_layers.append(encoder.conv_op(skip, num_classes, 1, 1, 0, bias=True))
        self.transpconvs = nn.ModuleList(transpconvs)
        self.stages = nn.ModuleList(stages)
        self.seg_layers = nn.ModuleList(seg_layers)

    def head_outputs(self, features: Sequence[torch.Tensor]) -> Union[torch.Tensor, List[torch.Tensor]]:
        """The segmentation heads on the stages' features, in nnU-Net's format (highest resolution first)."""
        if not self.deep_supervision:
            return self.seg_layers[-1](features[-1])
        return [self.seg_layers[s](f) for s, f in enumerate(features)][::-1]  # highest resolution first

    def stage_maps(self, input_size: Sequence[int], encoder: Encoder) -> np.int64:
        """Feature maps of the upsampling path (transpconv + stage convs + heads), DNA's counting convention."""
        total = np.int64(0)
        sizes = skip_sizes(encoder, input_size)[::-1]
        for s, size in enumerate(sizes):
            total += self.stages[s].compute_conv_feature_map_size(size)
            total += np.prod([self.stage_channels[s], *size], dtype=np.int64)
            if self.deep_supervision or s == len(sizes) - 1:
                total += np.prod([self.num_classes, *size], dtype=np.int64)
        return total


class ExpertDecoder(_DecoderBase):
    """One expert: background + its own classes (label-split) [+ "other organ"], asymmetric depth/dilation."""

    def forward(self, skips: Sequence[torch.Tensor], heads: bool = True
                ) -> Tuple[Optional[Union[torch.Tensor, List[torch.Tensor]]], List[torch.Tensor]]:
        x, features = skips[-1], []
        for s in range(len(self.stages)):
            x = self.stages[s](torch.cat((self.transpconvs[s](x), skips[-(s + 2)]), 1))
            features.append(x)
        return (self.head_outputs(features) if heads else None), features

    def stage_maps_kept(self, input_size: Sequence[int], encoder: Encoder) -> np.int64:
        """The stage outputs, one sample, where the expert runs without autograd: DFAM's align convs keep them for
        their backward. One kept tensor counts half a map in DNA's convention (a counted map stands for about two
        kept tensors, see DFAM)."""
        return np.int64(sum(np.prod([c, *size], dtype=np.int64)
                            for c, size in zip(self.stage_channels, skip_sizes(encoder, input_size)[::-1])) // 2)


class AggregationDecoder(_DecoderBase):
    """D_A: a standard nnU-Net decoder over all classes with DFAM after every stage."""

    def __init__(self, encoder: Encoder, num_classes: int, n_conv_per_stage: IntOrSeq, num_experts: int,
                 deep_supervision: bool, nonlin_first: bool = False):
        super().__init__(encoder, num_classes, n_conv_per_stage, deep_supervision, 1, nonlin_first)
        self.dfam = nn.ModuleList([DFAM(encoder.conv_op, c, num_experts, k, getattr(encoder, "norm_op", None),
                                        getattr(encoder, "norm_op_kwargs", None))
                                   for c, k in zip(self.stage_channels, self.stage_kernels)])

    def forward(self, skips: Sequence[torch.Tensor], expert_features: Sequence[Sequence[torch.Tensor]]
                ) -> Tuple[Union[torch.Tensor, List[torch.Tensor]], List[torch.Tensor]]:
        x, features, gates = skips[-1], [], []
        for s in range(len(self.stages)):
            x = self.stages[s](torch.cat((self.transpconvs[s](x), skips[-(s + 2)]), 1))
            x, a = self.dfam[s](x, [f[s] for f in expert_features])
            features.append(x)
            gates.append(a)
        return self.head_outputs(features), gates[::-1]


class DCADecoder(nn.Module):
    """All decoders under one attribute: nnU-Net's ``set_deep_supervision_enabled`` sets
    ``network.decoder.deep_supervision``, which this property forwards to every expert and to D_A."""

    def __init__(self, experts: Sequence[ExpertDecoder], aggregation: AggregationDecoder):
        super().__init__()
        self.experts = nn.ModuleList(experts)
        self.aggregation = aggregation

    @property
    def deep_supervision(self) -> bool:
        return self.aggregation.deep_supervision

    @deep_supervision.setter
    def deep_supervision(self, enabled: bool) -> None:
        for d in [*self.experts, self.aggregation]:
            d.deep_supervision = enabled
