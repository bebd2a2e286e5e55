"""DCA network: shapes, gates, gradient isolation, nnU-Net contracts (build from plans, deep supervision switch,
strict state dict), expert settings and the feature-map estimate."""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace
from typing import Dict, List

import numpy as np
import pytest
import torch
from torch import nn

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from netspec import REQ_IMPORT, conv_output_elements, grad_sum, tiny_arch_kwargs
from nnunetv2_dca.network.dca_unet import (DCAOutput, DCAPlainConvUNet, DCAResidualEncoderUNet,
                                           default_expert_settings, validate_class_groups)
from nnunetv2_dca.network.dfam import DFAM
from nnunetv2_dca.network.fusion import fuse_expert_logits

NUM_CLASSES = 8  # background + 7 foreground classes
GROUPS = {3: [[3], [1, 4, 6], [2, 5, 7]], 4: [[3], [1, 4], [6], [2, 5, 7]]}


def arch(dim: int, encoder: str, groups: List[List[int]], anisotropic: bool = False, **extra) -> Dict:
    """arch_kwargs as a plan stores them (strings for classes), tiny widths for CPU."""
    return tiny_arch_kwargs(dim, encoder, anisotropic, **{"class_groups": groups, **extra})  # extra may override


CLASS = {"plain": "nnunetv2_dca.network.dca_unet.DCAPlainConvUNet",
         "resenc": "nnunetv2_dca.network.dca_unet.DCAResidualEncoderUNet"}


def build(dim=3, encoder="plain", num_groups=3, deep_supervision=True, anisotropic=False, in_ch=1, **extra):
    return get_network_from_plans(CLASS[encoder], arch(dim, encoder, GROUPS[num_groups], anisotropic, **extra),
                                  REQ_IMPORT, in_ch, NUM_CLASSES, allow_init=True, deep_supervision=deep_supervision)


def patch(dim: int) -> List[int]:
    return [8, 16, 16] if dim == 3 else [16, 24]


CASES = [(d, e, g, ds, a) for d in (2, 3) for e in ("plain", "resenc") for g in (3, 4) for ds in (True, False)
         for a in ((False, True) if d == 3 else (False,))]


@pytest.mark.parametrize("dim,encoder,num_groups,ds,aniso", CASES)
def test_output_shapes_channels_and_gates(dim, encoder, num_groups, ds, aniso):
    torch.manual_seed(0)
    net = build(dim, encoder, num_groups, ds, aniso, in_ch=2)
    assert isinstance(net, DCAPlainConvUNet if encoder == "plain" else DCAResidualEncoderUNet)
    x = torch.randn(2, 2, *patch(dim))
    strides = np.array(arch(dim, encoder, GROUPS[num_groups], aniso)["strides"])
    scales = [np.array(patch(dim)) // np.prod(strides[:i + 1], 0) for i in range(len(strides) - 1)]

    def check(out, channels):
        if ds:
            assert isinstance(out, list) and len(out) == len(scales)
            for o, s in zip(out, scales):
                assert tuple(o.shape) == (2, channels, *s)
        else:
            assert isinstance(out, torch.Tensor) and tuple(out.shape) == (2, channels, *patch(dim))

    check(net(x), NUM_CLASSES)
    allout = net.all_outputs(x)
    assert isinstance(allout, DCAOutput)
    check(allout.aggregate, NUM_CLASSES)
    assert len(allout.experts) == num_groups
    for e, grp in zip(allout.experts, GROUPS[num_groups]):
        check(e, 1 + len(grp))  # label-split: background + own classes
    assert len(allout.gates) == len(scales)
    for gmap, s in zip(allout.gates, scales):
        assert tuple(gmap.shape) == (2, num_groups, *s)
        torch.testing.assert_close(gmap.sum(1), torch.ones_like(gmap[:, 0]))
        assert gmap.min() >= 0
    # the default forward is exactly D_A's output of the full call
    torch.testing.assert_close(net(x)[0] if ds else net(x), allout.aggregate[0] if ds else allout.aggregate)


@pytest.mark.parametrize("encoder", ["plain", "resenc"])
def test_expert_loss_reaches_only_its_expert(encoder):
    torch.manual_seed(0)
    net = build(3, encoder, 3, True)
    out = net.all_outputs(torch.randn(1, 1, *patch(3)))
    sum(o.square().mean() for o in out.experts[2]).backward()
    experts = net.decoder.experts
    assert grad_sum(experts[2]) > 0 and grad_sum(net.encoder) > 0
    assert grad_sum(experts[0]) == 0 and grad_sum(experts[1]) == 0 and grad_sum(net.decoder.aggregation) == 0


@pytest.mark.parametrize("detach", [True, False])
def test_stop_gradient_switch_for_aggregation_loss(detach):
    torch.manual_seed(0)
    net = build(3, "plain", 3, True, detach_expert_features=detach)
    out = net.all_outputs(torch.randn(1, 1, *patch(3)))
    sum(o.square().mean() for o in out.aggregate).backward()
    assert grad_sum(net.decoder.aggregation) > 0
    assert grad_sum(net.encoder) > 0  # D_A's own skips reach the shared encoder by default
    expert_grad = sum(grad_sum(e.stages) + grad_sum(e.transpconvs) for e in net.decoder.experts)
    assert (expert_grad == 0) if detach else (expert_grad > 0)
    # the experts' heads are never on D_A's path
    assert all(grad_sum(e.seg_layers) == 0 for e in net.decoder.experts)


def test_aggregation_can_be_cut_from_encoder():
    torch.manual_seed(0)
    net = build(3, "plain", 3, True, detach_encoder_for_aggregation=True)
    out = net.all_outputs(torch.randn(1, 1, *patch(3)))
    sum(o.square().mean() for o in out.aggregate).backward()
    assert grad_sum(net.decoder.aggregation) > 0 and grad_sum(net.encoder) == 0


def test_every_parameter_gets_a_gradient_from_a_training_step():
    """What DDP without find_unused_parameters needs: expert losses + D_A loss touch every parameter."""
    torch.manual_seed(0)
    net = build(3, "resenc", 3, True)
    out = net.all_outputs(torch.randn(2, 1, *patch(3)))
    loss = sum(o.square().mean() for e in out.experts for o in e) + sum(o.square().mean() for o in out.aggregate)
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert missing == []


def test_nnunet_deep_supervision_switch_reaches_every_decoder():
    net = build(3, "plain", 3, True)
    fake_trainer = SimpleNamespace(is_ddp=False, network=net)
    nnUNetTrainer.set_deep_supervision_enabled(fake_trainer, False)
    assert all(not d.deep_supervision for d in [*net.decoder.experts, net.decoder.aggregation])
    x = torch.randn(1, 1, *patch(3))
    out = net.all_outputs(x)
    assert isinstance(out.aggregate, torch.Tensor) and all(isinstance(e, torch.Tensor) for e in out.experts)
    nnUNetTrainer.set_deep_supervision_enabled(fake_trainer, True)
    assert isinstance(net(x), list)


@pytest.mark.parametrize("encoder", ["plain", "resenc"])
def test_state_dict_round_trip_and_encoder_stored_once(encoder):
    torch.manual_seed(0)
    trained = build(3, encoder, 3, deep_supervision=True)
    sd = trained.state_dict()
    # the shared encoder is stored once: only under 'encoder.' (DNA's UNetDecoder would add 'decoder.encoder.')
    assert not [k for k in sd if ".encoder." in k]
    encoder_ptrs = {t.data_ptr() for k, t in sd.items() if k.startswith("encoder.")}
    assert not [k for k, t in sd.items() if not k.startswith("encoder.") and t.data_ptr() in encoder_ptrs]
    # the stock predictor builds without deep supervision and loads strictly
    fresh = build(3, encoder, 3, deep_supervision=False)
    fresh.load_state_dict(sd, strict=True)
    x = torch.randn(1, 1, *patch(3))
    trained.eval(), fresh.eval()
    trained.decoder.deep_supervision = False
    with torch.no_grad():
        torch.testing.assert_close(trained(x), fresh(x))


def test_groups_must_match_the_plan():
    with pytest.raises(ValueError, match="class_groups"):
        build(3, "plain", 3, class_groups=None)
    with pytest.raises(ValueError, match=r"missing \[7\]"):
        validate_class_groups([[3], [1, 4, 6], [2, 5]], NUM_CLASSES)
    with pytest.raises(ValueError, match=r"duplicated \[5\]"):
        validate_class_groups([[3, 5], [1, 4, 6], [2, 5, 7]], NUM_CLASSES)
    with pytest.raises(ValueError, match=r"unknown \[9\]"):
        validate_class_groups([[3, 9], [1, 4, 6], [2, 5, 7]], NUM_CLASSES)
    with pytest.raises(ValueError, match="one entry per class group"):
        build(3, "plain", 3, expert_dilations=[2, 1])


def test_expert_settings_follow_the_papers_vnet_rule():
    convs, dil = default_expert_settings([3, 3, 2, 1], 4, 3)
    assert convs == [[2, 2, 1, 1], [3, 3, 2, 1], [4, 4, 3, 2]] and dil == [2, 1, 1]  # seed's V-Net counts
    convs, dil = default_expert_settings(1, 3, 4)  # ResEnc plans: 1 conv per decoder stage
    assert convs == [[1, 1, 1], [1, 1, 1], [1, 1, 1], [2, 2, 2]] and dil == [2, 1, 1, 1]
    assert default_expert_settings(2, 2, 1) == ([[2, 2]], [1])
    with pytest.raises(ValueError, match="n_conv_per_stage_decoder"):
        default_expert_settings([2, 2], 3, 3)


def test_asymmetric_experts_as_planned_and_overridable():
    net = build(3, "plain", 3, anisotropic=True)
    head, medium, tail = net.decoder.experts
    assert [len(s.convs) for s in head.stages] == [1, 1]
    assert [len(s.convs) for s in medium.stages] == [2, 2]
    assert [len(s.convs) for s in tail.stages] == [3, 3]
    # highest decoder stage has kernel (1, 3, 3): dilation only where the kernel is > 1, 'same' padding
    conv = head.stages[-1].convs[0].conv
    assert conv.dilation == (1, 2, 2) and conv.padding == (0, 2, 2)
    assert all(b.conv.dilation == (1, 1, 1) for s in tail.stages for b in s.convs)
    custom = build(3, "plain", 3, expert_n_conv_per_stage=[[1, 2], [2, 2], [4, 1]], expert_dilations=[3, 1, 2])
    assert [len(s.convs) for s in custom.decoder.experts[2].stages] == [4, 1]
    assert custom.decoder.experts[0].stages[0].convs[0].conv.dilation == (3, 3, 3)


def test_fused_logits_take_each_class_from_its_owner():
    groups = [[3], [1, 4, 6], [2, 5, 7]]
    torch.manual_seed(0)
    experts = [torch.randn(2, 1 + len(g), 4, 5) for g in groups]
    fused = fuse_expert_logits(experts, groups, "logits")
    assert fused.shape == (2, NUM_CLASSES, 4, 5)
    torch.testing.assert_close(fused[:, 0], (experts[0][:, 0] + experts[1][:, 0] + experts[2][:, 0]) / 3)
    for e, g in zip(experts, groups):
        for i, c in enumerate(g):
            torch.testing.assert_close(fused[:, c], e[:, 1 + i])


def test_dfam_weights_mix_expert_features():
    torch.manual_seed(0)
    dfam = DFAM(nn.Conv2d, 4, 3, [3, 3])
    f_up = torch.randn(1, 4, 6, 6)
    feats = [torch.randn(1, 4, 6, 6) for _ in range(3)]
    out, w = dfam(f_up, feats)
    aligned = [a(f) for a, f in zip(dfam.align, feats)]
    torch.testing.assert_close(out, f_up + sum(w[:, g:g + 1] * aligned[g] for g in range(3)))
    torch.testing.assert_close(w.sum(1), torch.ones(1, 6, 6))


@pytest.mark.parametrize("encoder", ["plain", "resenc"])
def test_feature_map_estimate_counts_all_decoders(encoder):
    """compute_conv_feature_map_size follows DNA's convention (one map per conv output) over the encoder, every
    expert with its heads, D_A and DFAM; it must match the conv outputs of an actual training forward."""
    net = build(3, encoder, 3, True)
    estimate = int(net.compute_conv_feature_map_size(patch(3)))
    measured = conv_output_elements(net, torch.randn(1, 1, *patch(3)))
    # every conv output is counted; the rest is DFAM's element-wise maps (softmax, weighted sum)
    assert measured <= estimate <= 1.2 * measured, (estimate, measured)
    more = build(3, encoder, 4, True)
    assert more.compute_conv_feature_map_size(patch(3)) > estimate


@pytest.mark.slow  # starts a subprocess
def test_network_module_imports_no_nnunetv2():
    code = ("import sys, nnunetv2_dca.network.dca_unet; "
            "print(sorted(m for m in sys.modules if m == 'nnunetv2' or m.startswith('nnunetv2.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_dfam_gate_is_normalised_and_its_logits_bounded():
    """Against the measured gate collapse: even a gate whose last layer is scaled up 1000x keeps every expert's
    weight >= exp(-2 * bound) / G, and the hidden layer carries the encoder's norm op."""
    from nnunetv2_dca.network.dfam import DFAM_LOGIT_BOUND

    torch.manual_seed(0)
    dfam = DFAM(nn.Conv2d, 4, 3, [3, 3], nn.InstanceNorm2d, {"affine": True})
    assert any(isinstance(m, nn.InstanceNorm2d) for m in dfam.gate)
    with torch.no_grad():
        dfam.gate[-1].weight.mul_(1000.0)
    _, weights = dfam(torch.randn(2, 4, 6, 6), [torch.randn(2, 4, 6, 6) * 50 for _ in range(3)])
    assert float(weights.min()) >= math.exp(-2 * DFAM_LOGIT_BOUND) / 3 * 0.99
    torch.testing.assert_close(weights.sum(1), torch.ones(2, 6, 6))
    _, raw = DFAM(nn.Conv2d, 4, 3, [3, 3], logit_bound=None)(torch.randn(2, 4, 6, 6), [torch.randn(2, 4, 6, 6)] * 3)
    torch.testing.assert_close(raw.sum(1), torch.ones(2, 6, 6))
