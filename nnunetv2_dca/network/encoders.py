"""DNA's encoders built from the keyword arguments of DNA's ``PlainConvUNet`` / ``ResidualEncoderUNet`` (what nnU-Net's
plans store), in one place for the DCA and the Semi-MoE networks. Each returns a factory: DCA builds one shared
encoder, Semi-MoE one per expert with ``expert_scope="network"``."""

from __future__ import annotations

from typing import Callable, List, Tuple, Type, Union

from torch import nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.dropout import _DropoutNd

from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.residual import BasicBlockD, BottleneckD
from dynamic_network_architectures.building_blocks.residual_encoders import ResidualEncoder

IntOrSeq = Union[int, List[int], Tuple[int, ...]]


def plain_encoder_factory(input_channels: int, n_stages: int, features_per_stage: IntOrSeq, conv_op: Type[_ConvNd],
                          kernel_sizes: IntOrSeq, strides: IntOrSeq, n_conv_per_stage: IntOrSeq,
                          conv_bias: bool = False, norm_op: Union[None, Type[nn.Module]] = None,
                          norm_op_kwargs: dict = None, dropout_op: Union[None, Type[_DropoutNd]] = None,
                          dropout_op_kwargs: dict = None, nonlin: Union[None, Type[nn.Module]] = None,
                          nonlin_kwargs: dict = None, nonlin_first: bool = False) -> Callable[[], PlainConvEncoder]:
    if isinstance(n_conv_per_stage, int):
        n_conv_per_stage = [n_conv_per_stage] * n_stages
    return lambda: PlainConvEncoder(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                                    n_conv_per_stage, conv_bias, norm_op, norm_op_kwargs, dropout_op,
                                    dropout_op_kwargs, nonlin, nonlin_kwargs, return_skips=True,
                                    nonlin_first=nonlin_first)


def residual_encoder_factory(input_channels: int, n_stages: int, features_per_stage: IntOrSeq,
                             conv_op: Type[_ConvNd], kernel_sizes: IntOrSeq, strides: IntOrSeq,
                             n_blocks_per_stage: IntOrSeq, conv_bias: bool = False,
                             norm_op: Union[None, Type[nn.Module]] = None, norm_op_kwargs: dict = None,
                             dropout_op: Union[None, Type[_DropoutNd]] = None, dropout_op_kwargs: dict = None,
                             nonlin: Union[None, Type[nn.Module]] = None, nonlin_kwargs: dict = None,
                             block: Union[Type[BasicBlockD], Type[BottleneckD]] = BasicBlockD,
                             bottleneck_channels: IntOrSeq = None, stem_channels: int = None
                             ) -> Callable[[], ResidualEncoder]:
    if isinstance(n_blocks_per_stage, int):
        n_blocks_per_stage = [n_blocks_per_stage] * n_stages
    return lambda: ResidualEncoder(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes, strides,
                                   n_blocks_per_stage, conv_bias, norm_op, norm_op_kwargs, dropout_op,
                                   dropout_op_kwargs, nonlin, nonlin_kwargs, block, bottleneck_channels,
                                   return_skips=True, disable_default_stem=False, stem_channels=stem_channels)
