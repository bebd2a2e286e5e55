"""Semi-MoE network: shapes, gates, the mixture, gradients, nnU-Net contracts (build from plans, deep supervision
switch, strict state dict), expert scopes and the feature-map estimate."""

from __future__ import annotations

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
from nnunetv2_dca.network.moe_unet import (ExpertEncoders, ImageGate, MoEOutput, MoEPlainConvUNet,
                                           MoEResidualEncoderUNet, VoxelGate, mix_expert_outputs, mix_logits)

NUM_CLASSES = 3
CLASS = {"plain": "nnunetv2_dca.network.moe_unet.MoEPlainConvUNet",
         "resenc": "nnunetv2_dca.network.moe_unet.MoEResidualEncoderUNet"}


def arch(dim: int, encoder: str, **extra) -> Dict:
    """arch_kwargs as a plan stores them (strings for classes), tiny widths for CPU."""
    return tiny_arch_kwargs(dim, encoder, **extra)


def build(dim=3, encoder="plain", deep_supervision=True, in_ch=1, allow_init=True, **extra):
    return get_network_from_plans(CLASS[encoder], arch(dim, encoder, **extra), REQ_IMPORT, in_ch, NUM_CLASSES,
                                  allow_init=allow_init, deep_supervision=deep_supervision)


def patch(dim: int) -> List[int]:
    return [8, 16, 16] if dim == 3 else [16, 24]


def scales(dim: int) -> List[List[int]]:
    p = np.array(patch(dim))
    return [list(p), list(p // 2)]  # decoder outputs (strides 1, 2, 2): full and half resolution


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny CPU tensors: one intra-op thread is faster and does not stall when other processes load the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize_gate(net: nn.Module) -> None:
    """The gate starts uniform (zero output layer); give it random weights so the mixture tests are not trivial."""
    for m in net.gate.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)):
            nn.init.normal_(m.weight, std=0.5)
            nn.init.normal_(m.bias, std=0.5)


CASES = [(d, e, ds, g) for d in (2, 3) for e in ("plain", "resenc") for ds in (True, False)
         for g in ("image", "voxel")]


@pytest.mark.parametrize("dim,encoder,ds,gating", CASES)
def test_shapes_gates_mixture_and_gradients(dim, encoder, ds, gating):
    torch.manual_seed(0)
    net = build(dim, encoder, ds, in_ch=2, gating=gating)
    assert isinstance(net, MoEPlainConvUNet if encoder == "plain" else MoEResidualEncoderUNet)
    assert len(net.decoder.experts) == 3 and net.num_experts == 3
    randomize_gate(net)
    x = torch.randn(2, 2, *patch(dim))

    def check(out):
        if ds:
            assert isinstance(out, list) and len(out) == 2
            for o, s in zip(out, scales(dim)):
                assert tuple(o.shape) == (2, NUM_CLASSES, *s)
        else:
            assert isinstance(out, torch.Tensor) and tuple(out.shape) == (2, NUM_CLASSES, *patch(dim))

    out = net.all_outputs(x)
    assert isinstance(out, MoEOutput)
    check(out.mixture)
    assert len(out.experts) == 3
    for e in out.experts:
        check(e)

    # gates: softmax weights per image, or per voxel at every output scale (highest first)
    if gating == "image":
        gate_maps = [out.gates]
        assert tuple(out.gates.shape) == (2, 3)
    else:
        assert isinstance(out.gates, list) and len(out.gates) == (2 if ds else 1)
        for gmap, s in zip(out.gates, scales(dim)):
            assert tuple(gmap.shape) == (2, 3, *s)
        gate_maps = out.gates
    for gmap in gate_maps:
        torch.testing.assert_close(gmap.sum(1), torch.ones_like(gmap[:, 0]))
        assert gmap.min() >= 0
    # random gate, not uniform: the mixture check below then tells the experts apart
    assert float(gate_maps[0].detach().std(1).mean()) > 1e-3

    # the mixture is sum_k g_k * expert_k, computed by hand
    mixture = out.mixture if ds else [out.mixture]
    experts = [e if ds else [e] for e in out.experts]
    for s, m in enumerate(mixture):
        g = out.gates if gating == "image" else out.gates[s]
        w = g.reshape(2, 3, *([1] * dim)) if gating == "image" else g
        expected = sum(w[:, k:k + 1] * experts[k][s] for k in range(3))
        torch.testing.assert_close(m, expected)
    # the default forward returns exactly the mixture
    with torch.no_grad():
        plain = net(x)
    torch.testing.assert_close(plain[0] if ds else plain, mixture[0].detach())

    # a loss on the mixture reaches the gate, every expert and the encoder
    sum(o.square().mean() for o in mixture).backward()
    assert grad_sum(net.gate) > 0 and grad_sum(net.encoder) > 0
    assert all(grad_sum(e.stages) > 0 and grad_sum(e.transpconvs) > 0 for e in net.decoder.experts)
    assert all(grad_sum(e.seg_layers) > 0 for e in net.decoder.experts)


@pytest.mark.parametrize("gating", ["image", "voxel"])
def test_gates_start_uniform_after_nnunet_init(gating):
    """get_network_from_plans applies He init to every conv; the gate's zero output layer must survive it."""
    torch.manual_seed(0)
    net = build(3, "resenc", True, gating=gating)
    out = net.all_outputs(torch.randn(2, 1, *patch(3)))
    for g in ([out.gates] if gating == "image" else out.gates):
        torch.testing.assert_close(g, torch.full_like(g, 1 / 3))
    # uniform gates: the mixture is the experts' mean
    torch.testing.assert_close(out.mixture[0], sum(e[0] for e in out.experts) / 3)
    # the output layer learns from the first step
    sum(o.square().mean() for o in out.mixture).backward()
    last = net.gate.mlp[-1] if gating == "image" else net.gate.convs
    assert grad_sum(last) > 0


def test_every_parameter_gets_a_gradient_with_deep_supervision():
    """What DDP without find_unused_parameters needs: a loss on the mixture touches every parameter."""
    for gating in ("image", "voxel"):
        torch.manual_seed(0)
        net = build(2, "resenc", True, gating=gating)
        out = net.all_outputs(torch.randn(2, 1, *patch(2)))
        sum(o.square().mean() for o in out.mixture).backward()
        assert [n for n, p in net.named_parameters() if p.grad is None] == []


def test_mix_helpers_match_formats():
    torch.manual_seed(0)
    experts = [[torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 4)] for _ in range(2)]
    g = torch.softmax(torch.randn(2, 2), 1)
    mixed = mix_expert_outputs(experts, g)
    torch.testing.assert_close(mixed[1], g[:, 0, None, None, None] * experts[0][1] + g[:, 1, None, None, None]
                               * experts[1][1])
    maps = [torch.softmax(torch.randn(2, 2, 8, 8), 1), torch.softmax(torch.randn(2, 2, 4, 4), 1)]
    mixed = mix_expert_outputs(experts, maps)
    torch.testing.assert_close(mixed[0], maps[0][:, :1] * experts[0][0] + maps[0][:, 1:] * experts[1][0])
    torch.testing.assert_close(mix_expert_outputs([e[0] for e in experts], g), mix_logits([e[0] for e in experts], g))
    with pytest.raises(ValueError, match="gates for 3 experts"):
        mix_logits([e[0] for e in experts], torch.ones(2, 3) / 3)


def test_nnunet_deep_supervision_switch_reaches_every_expert():
    net = build(3, "plain", True, gating="voxel")
    fake_trainer = SimpleNamespace(is_ddp=False, network=net)
    nnUNetTrainer.set_deep_supervision_enabled(fake_trainer, False)
    assert all(not e.deep_supervision for e in net.decoder.experts) and not net.decoder.deep_supervision
    x = torch.randn(1, 1, *patch(3))
    out = net.all_outputs(x)
    assert isinstance(out.mixture, torch.Tensor) and all(isinstance(e, torch.Tensor) for e in out.experts)
    assert len(out.gates) == 1
    nnUNetTrainer.set_deep_supervision_enabled(fake_trainer, True)
    assert all(e.deep_supervision for e in net.decoder.experts)
    assert isinstance(net(x), list)


@pytest.mark.parametrize("encoder,gating", [("plain", "voxel"), ("resenc", "image")])
def test_state_dict_round_trip_and_encoder_stored_once(encoder, gating):
    torch.manual_seed(0)
    trained = build(3, encoder, deep_supervision=True, gating=gating)
    randomize_gate(trained)
    sd = trained.state_dict()
    assert not [k for k in sd if ".encoder." in k]  # the shared encoder only under 'encoder.'
    encoder_ptrs = {t.data_ptr() for k, t in sd.items() if k.startswith("encoder.")}
    assert not [k for k, t in sd.items() if not k.startswith("encoder.") and t.data_ptr() in encoder_ptrs]
    # the stock predictor builds without deep supervision and loads strictly
    fresh = build(3, encoder, deep_supervision=False, gating=gating)
    fresh.load_state_dict(sd, strict=True)
    x = torch.randn(1, 1, *patch(3))
    trained.eval(), fresh.eval()
    trained.decoder.deep_supervision = False
    with torch.no_grad():
        torch.testing.assert_close(trained(x), fresh(x))


def test_network_scope_gives_each_expert_its_own_encoder():
    torch.manual_seed(0)
    net = build(2, "plain", True, expert_scope="network", num_experts=2, gating="image")
    assert isinstance(net.encoder, ExpertEncoders) and len(net.encoder.encoders) == 2
    assert net.encoder.conv_op is nn.Conv2d
    shared = build(2, "plain", True, num_experts=2)
    n_enc = sum(p.numel() for p in shared.encoder.parameters())
    assert sum(p.numel() for p in net.encoder.parameters()) == 2 * n_enc
    assert net.gate.mlp[0].in_features == 2 * 16  # both experts' pooled bottlenecks
    randomize_gate(net)
    out = net.all_outputs(torch.randn(2, 1, *patch(2)))
    assert len(out.experts) == 2 and tuple(out.mixture[0].shape) == (2, NUM_CLASSES, *patch(2))
    out.experts[1][0].square().mean().backward()  # expert 1's loss reaches only expert 1's encoder
    assert grad_sum(net.encoder.encoders[1]) > 0 and grad_sum(net.encoder.encoders[0]) == 0
    assert grad_sum(net.decoder.experts[0]) == 0
    # DNA's transfer keys point at the first expert's encoder
    assert net.get_submodule(net.key_to_encoder) is net.encoder.encoders[0].stages
    for key in net.keys_to_in_proj:
        net.get_submodule(key)
    voxel = build(2, "resenc", False, expert_scope="network", gating="voxel")
    assert tuple(voxel(torch.randn(1, 1, *patch(2))).shape) == (1, NUM_CLASSES, *patch(2))


def test_configurable_expert_count_and_invalid_settings():
    net = build(2, "plain", True, num_experts=5, gating="voxel")
    assert len(net.decoder.experts) == 5
    out = net.all_outputs(torch.randn(1, 1, *patch(2)))
    assert out.gates[0].shape[1] == 5 and len(out.experts) == 5
    plain = build(2, "plain", True)
    assert plain.get_submodule(plain.key_to_stem) is plain.encoder.stages[0]
    for key in plain.keys_to_in_proj:
        assert isinstance(plain.get_submodule(key), nn.Conv2d)
    with pytest.raises(ValueError, match="gating"):
        build(2, "plain", gating="token")
    with pytest.raises(ValueError, match="expert_scope"):
        build(2, "plain", expert_scope="layer")
    with pytest.raises(ValueError, match="num_experts"):
        build(2, "plain", num_experts=0)
    assert isinstance(build(2, "plain", gating="image").gate, ImageGate)
    assert isinstance(build(2, "plain", gating="voxel").gate, VoxelGate)


@pytest.mark.parametrize("encoder,gating,scope", [("plain", "image", "decoder"), ("resenc", "voxel", "decoder"),
                                                  ("plain", "voxel", "network")])
def test_feature_map_estimate_counts_encoder_experts_and_gate(encoder, gating, scope):
    """DNA's convention (one map per conv output): encoder(s), every expert with its heads, the gate and mixture."""
    net = build(3, encoder, True, gating=gating, expert_scope=scope)
    estimate = int(net.compute_conv_feature_map_size(patch(3)))
    measured = conv_output_elements(net, torch.randn(1, 1, *patch(3)))
    assert measured <= estimate <= 1.3 * measured, (estimate, measured)
    more = build(3, encoder, True, gating=gating, expert_scope=scope, num_experts=4)
    assert more.compute_conv_feature_map_size(patch(3)) > estimate


@pytest.mark.slow  # starts a subprocess
def test_network_module_imports_no_nnunetv2():
    code = ("import sys, nnunetv2_dca.network.moe_unet; "
            "print(sorted(m for m in sys.modules if m == 'nnunetv2' or m.startswith('nnunetv2.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("ds", [True, False])
@pytest.mark.parametrize("gating", ["image", "voxel"])
def test_step_forward_splits_the_outputs_of_one_call(ds, gating):
    torch.manual_seed(0)
    net = build(2, "plain", ds, gating=gating)
    x = torch.randn(4, 1, *patch(2))
    full = net.all_outputs(x)
    step = net(x, num_labeled=3)
    as_list = (lambda o: o) if ds else (lambda o: [o])
    for a, b in zip(as_list(full.mixture), as_list(step.mixture_labeled)):
        torch.testing.assert_close(a[:3], b)
    for e_full, e_lab, e_unl in zip(full.experts, step.experts_labeled, step.experts_unlabeled):
        for a, b, c in zip(as_list(e_full), as_list(e_lab), as_list(e_unl)):
            torch.testing.assert_close(a[:3], b)
            torch.testing.assert_close(a[3:], c)
    gates_full = full.gates if isinstance(full.gates, list) else [full.gates]
    gates_step = step.gates if isinstance(step.gates, list) else [step.gates]
    for a, b in zip(gates_full, gates_step):  # the balance loss sees every image's gates
        torch.testing.assert_close(a, b)
        assert b.shape[0] == 4
