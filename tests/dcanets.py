"""Tiny DCA network, a stand-in trainer with nnU-Net's loss, and a batch: what the DCA step tests share."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunetv2_dca.training.dca import DCATrainer, split_lookup, with_ignore_label

GROUPS = [[3], [1, 4], [2, 5]]


DCA_CLASS = "nnunetv2_dca.network.dca_unet.DCAPlainConvUNet"
REQUIRES_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]


def tiny_arch_kwargs(**extra):
    """The plans' arch_kwargs of a tiny 3d DCA network over GROUPS."""
    return {"n_stages": 3, "features_per_stage": [4, 8, 8], "conv_op": "torch.nn.modules.conv.Conv3d",
          "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "n_conv_per_stage": [1, 1, 1],
          "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
          "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
          "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
          "nonlin_kwargs": {"inplace": True}, "class_groups": GROUPS, **extra}


def _tiny_net(deep_supervision: bool, **extra):
    return get_network_from_plans(DCA_CLASS, tiny_arch_kwargs(**extra), REQUIRES_IMPORT, 1, 6,
                                  deep_supervision=deep_supervision)


def nnunet_loss(deep_supervision: bool, scale_weights=(2 / 3, 1 / 3)):
    """nnU-Net's Dice + CE (its deep-supervision wrapper with the given scale weights)."""
    loss = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    return DeepSupervisionWrapper(loss, list(scale_weights)) if deep_supervision else loss


def _fake_trainer(net, deep_supervision: bool, weight: float = 10.0, supervise_aggregation: bool = False,
                  groups=GROUPS, scale_weights=(2 / 3, 1 / 3), other_channel: bool = False,
                  confidence=None, teacher=None):
    """What DCATrainer.semi_supervised_losses reads of a trainer, with nnU-Net's loss."""
    num_labels = 1 + sum(len(g) for g in groups)
    names = ["head", "medium", "tail"] if len(groups) == 3 else [f"group{i}" for i in range(len(groups))]
    fake = SimpleNamespace(network=net, loss=nnunet_loss(deep_supervision, scale_weights), class_groups=groups,
                           group_names=names, _lut=split_lookup(groups, num_labels, other_channel=other_channel),
                           label_manager=SimpleNamespace(num_segmentation_heads=num_labels),
                           unsupervised_weight=lambda: weight, supervise_aggregation=supervise_aggregation,
                           aggregation_supervision_weight=1.0, fusion=DCATrainer.fusion,
                           gate_balance_weight=DCATrainer.gate_balance_weight, pseudo_label_confidence=confidence,
                           _teacher=teacher, _pseudo_ignore=num_labels)
    if confidence is not None:
        fake._pseudo_label_loss = with_ignore_label(fake.loss, num_labels)
    fake.step_forward = lambda data, unlabeled, **kw: DCATrainer.step_forward(fake, data, unlabeled, **kw)
    # off: the measurement's extra backward passes (first iteration of an epoch only) would enter the FLOP counts of
    # a step; tests that check it switch it on
    fake.log_encoder_grad_norms = False
    fake.network_encoder = lambda: net.encoder
    fake._encoder_grad_norm_logs = lambda terms, total: DCATrainer._encoder_grad_norm_logs(fake, terms, total)
    return fake


def _batch(deep_supervision: bool):
    torch.manual_seed(0)
    data, unlabeled = torch.randn(2, 1, 8, 16, 16), torch.randn(2, 1, 8, 16, 16)
    target = torch.randint(0, 6, (2, 1, 8, 16, 16)).float()
    targets = [target, target[:, :, ::2, ::2, ::2]] if deep_supervision else target
    return data, targets, unlabeled
