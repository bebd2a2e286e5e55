"""Semi-MoE network: K expert decoders on nnU-Net's encoder, a gating network and the gated mixture of their logits.

Built by nnU-Net's ``get_network_from_plans`` from ``network_class_name`` + ``arch_kwargs`` exactly like DNA's
``PlainConvUNet`` / ``ResidualEncoderUNet`` (same keyword arguments) plus three MoE keys, and imports torch, DNA and
our :mod:`dca_unet` only (no nnunetv2), so the stock predictor can rebuild it from the plans alone. The losses that
go with it (balance, gate entropy, cross-expert consistency) are in :mod:`nnunetv2_dca.training.moe_losses`.

Choices where the paper (seed ``000``) is silent, all set through ``arch_kwargs``:

* **What an expert is** (``expert_scope``). ``"decoder"`` (default): the K experts are nnU-Net decoders of identical
  architecture (the planned ``n_conv_per_stage_decoder``, no dilation, ``num_classes`` outputs, all deep-supervision
  heads) with independent parameters, on *one* shared encoder, stored once. That costs K decoders instead of K whole
  networks, and the unlabeled images' consistency loss shapes the shared representation. ``"network"``: every
  expert has its own encoder as well (K complete U-Nets; ``network.encoder`` is then an :class:`ExpertEncoders`
  holding the K encoders) -- closer to the seed's "K parallel expert networks", about K times the encoder's compute
  and memory.
* **Gating** (``gating``). ``"image"`` (the seed's form ``g = softmax(G(x)) in R^K``): one weight vector per image,
  from the global-average-pooled bottleneck features through Linear -> ReLU -> Linear -> softmax (hidden width = the
  bottleneck width; with ``expert_scope="network"`` the K experts' pooled bottlenecks are concatenated). The same g
  mixes every deep-supervision scale. ``"voxel"``: at each output scale a 1x1 conv over the concatenated expert
  decoder features of that scale gives K logits per voxel, softmax over the experts. The gate's last layer starts at
  zero (:meth:`MoEUNet.initialize` restores that after nnU-Net's He init), so training starts from the uniform
  mixture (the mean of the experts) instead of a random, possibly collapsed, routing; gradients reach the gate's
  hidden layer from the second step on.
* **What is mixed.** ``y = sum_k g_k * z_k`` with z_k expert k's *logits*, at every deep-supervision scale; the
  result is again logits, so nnU-Net's loss, validation and ``nnUNetv2_predict`` (softmax for label training,
  sigmoid for region-based training, averaging logits over mirrors/folds) use it unchanged. For softmax outputs,
  softmax(sum_k g_k z_k) is proportional to prod_k p_k^{g_k}: a gated *geometric* mixture of the experts'
  distributions. The arithmetic mixture of probabilities, log(sum_k g_k softmax(z_k)), would also be a valid logit
  for softmax, but not for nnU-Net's sigmoid/region heads, and it would no longer be linear in the experts' outputs;
  logit mixing works for both and is what the seed's formula states when E_k outputs logits.
* **Outputs.** ``forward(x)`` returns the mixture in nnU-Net's format (tensor, or list highest resolution first with
  deep supervision). ``all_outputs(x)`` returns :class:`MoEOutput` (mixture, per-expert outputs in the
  same format, gates) from the same call, so DDP/torch.compile see every parameter used; ``forward(x,
  num_labeled=n)`` returns the same split into labeled and unlabeled samples (:class:`MoEStepOutput`, the
  trainer's step). Image gates are (B, K).
  Voxel gates are a list over the *output* scales, highest first: one entry per deep-supervision scale, or only the
  full-resolution map (list of one) without deep supervision (gates at scales nobody uses would be parameters
  without gradient under DDP).
"""

from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional, Sequence, Type, Union

import numpy as np
import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.dropout import _DropoutNd

from dynamic_network_architectures.architectures.abstract_arch import AbstractDynamicNetworkArchitectures
from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim
from dynamic_network_architectures.building_blocks.residual import BasicBlockD, BottleneckD
from dynamic_network_architectures.initialization.weight_init import InitWeights_He, init_last_bn_before_add_to_0

from nnunetv2_dca.network.dca_unet import take_rows
from nnunetv2_dca.network.decoders import Encoder, ExpertDecoder, IntOrSeq, skip_sizes
from nnunetv2_dca.network.encoders import plain_encoder_factory, residual_encoder_factory

GATINGS = ("image", "voxel")
EXPERT_SCOPES = ("decoder", "network")
Output = Union[torch.Tensor, List[torch.Tensor]]  # nnU-Net's format: tensor, or list highest resolution first


class MoEOutput(NamedTuple):
    """Everything a Semi-MoE training step needs, from one ``network.all_outputs(x)`` call.

    ``mixture`` and each entry of ``experts`` follow nnU-Net's deep-supervision convention (tensor, or list highest
    resolution first). ``gates``: (B, K) for image gating; for voxel gating a list of (B, K, *spatial), one per output
    scale, highest first (a list of one without deep supervision). Gates are softmax weights: >= 0, sum 1 over K.
    """
    mixture: Output
    experts: List[Output]
    gates: Union[torch.Tensor, List[torch.Tensor]]


class MoEStepOutput(NamedTuple):
    """What one training step needs, from ``network(x, num_labeled=n)`` (``x`` = labeled then unlabeled samples):
    the mixture and each expert on the labeled samples, each expert on the unlabeled ones, the gates of all samples
    (the balance loss uses every image). Every part runs on every sample with autograd: the step's consistency loss
    trains the experts on the unlabeled images, so there is nothing to skip (only the mixture of the unlabeled
    samples' logits, a few element-wise operations, goes unused)."""
    mixture_labeled: Output
    experts_labeled: List[Output]
    experts_unlabeled: List[Output]
    gates: Union[torch.Tensor, List[torch.Tensor]]


def validate_moe_settings(num_experts: int, gating: str, expert_scope: str,
                          error: Type[Exception] = ValueError) -> None:
    """The one check of Semi-MoE's settings (the network's, and the plans mapping's with its own error type)."""
    if isinstance(num_experts, bool) or not isinstance(num_experts, (int, np.integer)) or num_experts < 1:
        raise error(f"num_experts must be an integer >= 1, got {num_experts!r}")
    if gating not in GATINGS:
        raise error(f"gating must be one of {GATINGS}, got {gating!r}")
    if expert_scope not in EXPERT_SCOPES:
        raise error(f"expert_scope must be one of {EXPERT_SCOPES}, got {expert_scope!r}")


def mix_logits(expert_logits: Sequence[torch.Tensor], gates: torch.Tensor) -> torch.Tensor:
    """``sum_k gates[:, k] * expert_logits[k]`` for one scale. ``gates``: (B, K) per image, or (B, K, *spatial) per
    voxel with the logits' spatial size; logits (B, C, *spatial)."""
    if gates.shape[1] != len(expert_logits):
        raise ValueError(f"{len(expert_logits)} expert outputs but gates for {gates.shape[1]} experts")
    if gates.ndim == 2:
        gates = gates.reshape(*gates.shape, *([1] * (expert_logits[0].ndim - 2)))
    mixture = gates[:, :1] * expert_logits[0]
    for k in range(1, len(expert_logits)):
        mixture = mixture + gates[:, k:k + 1] * expert_logits[k]
    return mixture


def mix_expert_outputs(experts: Sequence[Output], gates: Union[torch.Tensor, Sequence[torch.Tensor]]) -> Output:
    """The mixture in nnU-Net's format from per-expert outputs in that format (e.g. :attr:`MoEOutput.experts`) and
    gates as :class:`MoEOutput` holds them (one (B, K) tensor for all scales, or one map per scale)."""
    per_scale = isinstance(experts[0], (list, tuple))
    if not per_scale:
        return mix_logits(experts, gates if isinstance(gates, torch.Tensor) else gates[0])
    n = len(experts[0])
    gate_list = [gates] * n if isinstance(gates, torch.Tensor) else list(gates)
    if len(gate_list) != n:
        raise ValueError(f"{len(gate_list)} gate maps for {n} deep-supervision scales")
    return [mix_logits([e[s] for e in experts], gate_list[s]) for s in range(n)]


class ImageGate(nn.Module):
    """G(x) per image: global average pooling of the bottleneck -> Linear -> ReLU -> Linear -> softmax over K."""

    def __init__(self, in_features: int, num_experts: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, num_experts))
        self.num_experts, self.hidden = num_experts, hidden
        self.reset_output_layer()

    def reset_output_layer(self) -> None:
        """Zero output layer: uniform gates at the start of training."""
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, bottlenecks: Sequence[torch.Tensor]) -> torch.Tensor:
        pooled = torch.cat([b.flatten(2).mean(2) for b in bottlenecks], 1)
        return torch.softmax(self.mlp(pooled), 1)


class VoxelGate(nn.Module):
    """Per-voxel gates: at each decoder stage a 1x1 conv over the concatenated expert features -> softmax over K."""

    def __init__(self, conv_op: Type[_ConvNd], stage_channels: Sequence[int], num_experts: int):
        super().__init__()
        self.convs = nn.ModuleList([conv_op(num_experts * c, num_experts, 1, 1, 0, bias=True)
                                    for c in stage_channels])
        self.num_experts = num_experts
        self.reset_output_layer()

    def reset_output_layer(self) -> None:
        """Zero 1x1 convs: uniform gates at the start of training."""
        for conv in self.convs:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, expert_features: Sequence[Sequence[torch.Tensor]], stages: Sequence[int]) -> List[torch.Tensor]:
        """``expert_features[k][s]``: expert k's output of decoder stage s (lowest resolution first); one gate map per
        requested stage, in the order requested."""
        return [torch.softmax(self.convs[s](torch.cat([f[s] for f in expert_features], 1)), 1) for s in stages]


class ExpertEncoders(nn.Module):
    """``expert_scope="network"``: one encoder per expert, identical architecture. Exposes the structural attributes
    of DNA's encoders (all equal), so code that reads ``network.encoder.conv_op`` etc. keeps working."""

    _STRUCTURE = ("conv_op", "output_channels", "strides", "kernel_sizes", "conv_bias", "norm_op", "norm_op_kwargs",
                  "dropout_op", "dropout_op_kwargs", "nonlin", "nonlin_kwargs", "return_skips")

    def __init__(self, encoders: Sequence[Encoder]):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        for name in self._STRUCTURE:
            setattr(self, name, getattr(encoders[0], name))

    def forward(self, x: torch.Tensor) -> List[List[torch.Tensor]]:
        return [e(x) for e in self.encoders]

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        return np.int64(sum(e.compute_conv_feature_map_size(input_size) for e in self.encoders))


class MoEDecoder(nn.Module):
    """The K expert decoders under one attribute: nnU-Net's ``set_deep_supervision_enabled`` sets
    ``network.decoder.deep_supervision``, which this property forwards to every expert."""

    def __init__(self, experts: Sequence[ExpertDecoder]):
        super().__init__()
        self.experts = nn.ModuleList(experts)

    @property
    def deep_supervision(self) -> bool:
        return self.experts[0].deep_supervision

    @deep_supervision.setter
    def deep_supervision(self, enabled: bool) -> None:
        for expert in self.experts:
            expert.deep_supervision = enabled


class MoEUNet(AbstractDynamicNetworkArchitectures):
    """Expert pool + gate + logit mixture. Subclasses pick DNA's encoder; ``make_encoder`` builds one encoder (called
    once for ``expert_scope="decoder"``, K times for ``"network"``)."""

    def __init__(self, make_encoder: Callable[[], Encoder], num_classes: int, n_conv_per_stage_decoder: IntOrSeq,
                 num_experts: int = 3, gating: str = "image", expert_scope: str = "decoder",
                 deep_supervision: bool = False, nonlin_first: bool = False):
        super().__init__()
        validate_moe_settings(num_experts, gating, expert_scope)
        self.num_experts, self.gating, self.expert_scope = int(num_experts), gating, expert_scope
        self.num_classes = num_classes
        if expert_scope == "decoder":
            self.encoder = make_encoder()
            encoders = [self.encoder] * self.num_experts  # shared, registered (and stored) once
            prefix = "encoder."
        else:
            encoders = [make_encoder() for _ in range(self.num_experts)]
            self.encoder = ExpertEncoders(encoders)
            prefix = "encoder.encoders.0."  # DNA's transfer keys: the first expert's encoder
        self.decoder = MoEDecoder([ExpertDecoder(e, num_classes, n_conv_per_stage_decoder, deep_supervision, 1,
                                                 nonlin_first) for e in encoders])
        bottleneck = encoders[0].output_channels[-1]
        if gating == "image":
            n_in = bottleneck * (1 if expert_scope == "decoder" else self.num_experts)
            self.gate = ImageGate(n_in, self.num_experts, bottleneck)
        else:
            self.gate = VoxelGate(encoders[0].conv_op, self.decoder.experts[0].stage_channels, self.num_experts)
        self._prefix = prefix

    def forward(self, x: torch.Tensor, num_labeled: Optional[int] = None) -> Union[Output, MoEStepOutput]:
        """Two modes. Without ``num_labeled``: the mixture in nnU-Net's format (validation, ``nnUNetv2_predict``).
        With ``num_labeled=n`` (``x`` = labeled then unlabeled samples): the training step's :class:`MoEStepOutput`,
        through ``forward`` so that DDP and torch.compile see every parameter. Everything at once: :meth:`all_outputs`."""
        if num_labeled is not None:
            out = self.all_outputs(x)
            labeled, unlabeled = slice(0, int(num_labeled)), slice(int(num_labeled), None)
            return MoEStepOutput(take_rows(out.mixture, labeled), [take_rows(e, labeled) for e in out.experts],
                                 [take_rows(e, unlabeled) for e in out.experts], out.gates)
        return self.all_outputs(x).mixture

    def all_outputs(self, x: torch.Tensor) -> MoEOutput:
        """The mixture, every expert's logits and the gates for every sample."""
        if self.expert_scope == "decoder":
            skips = self.encoder(x)
            per_expert_skips = [skips] * self.num_experts
            bottlenecks = [skips[-1]]
        else:
            per_expert_skips = self.encoder(x)
            bottlenecks = [s[-1] for s in per_expert_skips]
        heads, features = [], []
        for expert, skips in zip(self.decoder.experts, per_expert_skips):
            h, f = expert(skips)
            heads.append(h)
            features.append(f)
        if self.gating == "image":
            gates = self.gate(bottlenecks)
        else:
            n = len(features[0])
            stages = list(range(n - 1, -1, -1)) if self.decoder.deep_supervision else [n - 1]  # highest first
            gates = self.gate(features, stages)
        return MoEOutput(mix_expert_outputs(heads, gates), heads, gates)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Encoder(s) + every expert with its heads + gate + mixture maps; feeds nnU-Net's VRAM estimate."""
        assert len(input_size) == convert_conv_op_to_dim(self.encoder.conv_op), \
            "give the spatial size only: input_size=(x, y(, z))"
        total = np.int64(self.encoder.compute_conv_feature_map_size(input_size))
        for expert in self.decoder.experts:
            total += expert.stage_maps(input_size, self.encoder)
        sizes = skip_sizes(self.encoder, input_size)  # highest resolution first
        outputs = sizes if self.decoder.deep_supervision else sizes[:1]
        per_voxel = self.num_classes + (2 * self.num_experts if self.gating == "voxel" else 0)  # mixture (+ gate)
        for size in outputs:
            total += np.prod([per_voxel, *size], dtype=np.int64)
        if self.gating == "image":
            total += np.int64(self.gate.hidden + 2 * self.num_experts)
        return total

    def _set_transfer_keys(self, encoder_key: str, stem_key: str, in_proj: Sequence[str]) -> None:
        """DNA's pretraining/fine-tuning keys, relative to the (first) encoder."""
        self.key_to_encoder = self._prefix + encoder_key
        self.key_to_stem = self._prefix + stem_key
        self.keys_to_in_proj = tuple(self._prefix + k for k in in_proj)

    @staticmethod
    def _reset_gate(module: nn.Module) -> None:
        # nnU-Net applies ``initialize`` with ``network.apply``: children first, so the gate module is visited after
        # He init has rewritten its convs, and the zero output layer wins.
        if isinstance(module, (ImageGate, VoxelGate)):
            module.reset_output_layer()


class MoEPlainConvUNet(MoEUNet):
    """Semi-MoE on nnU-Net's default encoder; arch_kwargs = those of DNA's ``PlainConvUNet`` + the MoE keys."""

    def __init__(self, input_channels: int, n_stages: int, features_per_stage: IntOrSeq, conv_op: Type[_ConvNd],
                 kernel_sizes: IntOrSeq, strides: IntOrSeq, n_conv_per_stage: IntOrSeq, num_classes: int,
                 n_conv_per_stage_decoder: IntOrSeq, conv_bias: bool = False,
                 norm_op: Union[None, Type[nn.Module]] = None, norm_op_kwargs: dict = None,
                 dropout_op: Union[None, Type[_DropoutNd]] = None, dropout_op_kwargs: dict = None,
                 nonlin: Union[None, Type[nn.Module]] = None, nonlin_kwargs: dict = None,
                 deep_supervision: bool = False, nonlin_first: bool = False,
                 num_experts: int = 3, gating: str = "image", expert_scope: str = "decoder"):
        make_encoder = plain_encoder_factory(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes,
                                             strides, n_conv_per_stage, conv_bias, norm_op, norm_op_kwargs,
                                             dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs, nonlin_first)

        super().__init__(make_encoder, num_classes, n_conv_per_stage_decoder, num_experts, gating, expert_scope,
                         deep_supervision, nonlin_first)
        self._set_transfer_keys("stages", "stages.0", ("stages.0.0.convs.0.all_modules.0", "stages.0.0.convs.0.conv"))

    @staticmethod
    def initialize(module: nn.Module) -> None:
        InitWeights_He(1e-2)(module)
        MoEUNet._reset_gate(module)


class MoEResidualEncoderUNet(MoEUNet):
    """Semi-MoE on nnU-Net's ResEnc encoder; arch_kwargs = those of DNA's ``ResidualEncoderUNet`` + the MoE keys.
    Expert decoders are plain conv stages, as in ResidualEncoderUNet."""

    def __init__(self, input_channels: int, n_stages: int, features_per_stage: IntOrSeq, conv_op: Type[_ConvNd],
                 kernel_sizes: IntOrSeq, strides: IntOrSeq, n_blocks_per_stage: IntOrSeq, num_classes: int,
                 n_conv_per_stage_decoder: IntOrSeq, conv_bias: bool = False,
                 norm_op: Union[None, Type[nn.Module]] = None, norm_op_kwargs: dict = None,
                 dropout_op: Union[None, Type[_DropoutNd]] = None, dropout_op_kwargs: dict = None,
                 nonlin: Union[None, Type[nn.Module]] = None, nonlin_kwargs: dict = None,
                 deep_supervision: bool = False, block: Union[Type[BasicBlockD], Type[BottleneckD]] = BasicBlockD,
                 bottleneck_channels: IntOrSeq = None, stem_channels: int = None,
                 num_experts: int = 3, gating: str = "image", expert_scope: str = "decoder"):
        make_encoder = residual_encoder_factory(input_channels, n_stages, features_per_stage, conv_op, kernel_sizes,
                                                strides, n_blocks_per_stage, conv_bias, norm_op, norm_op_kwargs,
                                                dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs, block,
                                                bottleneck_channels, stem_channels)

        super().__init__(make_encoder, num_classes, n_conv_per_stage_decoder, num_experts, gating, expert_scope,
                         deep_supervision)
        self._set_transfer_keys("stages", "stem", ("stem.convs.0.conv", "stem.convs.0.all_modules.0"))

    @staticmethod
    def initialize(module: nn.Module) -> None:
        InitWeights_He(1e-2)(module)
        init_last_bn_before_add_to_0(module)
        MoEUNet._reset_gate(module)
