"""Issue 15: the minimal-compute DCA step (``network(x, num_labeled=n)``) gives the losses and gradients of the full
forward it replaces (every decoder on every sample, outputs sliced), while running less: experts without autograd
on the unlabeled part, D_A only there."""

from __future__ import annotations

from typing import Dict

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nnunetv2_dca.network.fusion import fuse_expert_logits
from nnunetv2_dca.training.dca import DCATrainer, split_target
from nnunetv2_dca.training.moe_losses import balance_loss

from dcanets import _batch, _fake_trainer, _tiny_net


def _reference_losses(fake, data, target, unlabeled) -> Dict[str, torch.Tensor]:
    """The step as it was before issue 15: one full forward of labeled + unlabeled through everything, sliced."""
    n = data.shape[0]
    out = fake.network.all_outputs(torch.cat((data, unlabeled)))
    ds = isinstance(out.aggregate, list)
    targets = target if isinstance(target, list) else [target]
    part = (lambda o, sl: [t[sl] for t in o]) if ds else (lambda o, sl: o[sl])
    as_target = (lambda ts: ts) if ds else (lambda ts: ts[0])
    logs = {}
    for g, (name, e) in enumerate(zip(fake.group_names, out.experts)):
        logs[f"dca_loss_sup_{name}"] = fake.loss(part(e, slice(0, n)), as_target(
            [split_target(t, fake._lut[g]) for t in targets]))
    with torch.no_grad():
        scales = len(out.aggregate) if ds else 1
        pseudo = [fuse_expert_logits([(e[s] if ds else e)[n:] for e in out.experts], fake.class_groups, fake.fusion)
                  .argmax(1, keepdim=True).float() for s in range(scales)]
    logs["dca_loss_unsup"] = fake.loss(part(out.aggregate, slice(n, None)), as_target(pseudo))
    # the gate balance is over the samples D_A runs on in the new step (documented change)
    gates = out.gates if fake.supervise_aggregation else [g[n:] for g in out.gates]
    logs["dca_loss_gate_balance"] = balance_loss(gates)
    total = sum(v for k, v in logs.items() if k.startswith("dca_loss_sup_")) + 10.0 * logs["dca_loss_unsup"] \
        + logs["dca_loss_gate_balance"]
    if fake.supervise_aggregation:
        logs["dca_loss_sup_aggregation"] = fake.loss(part(out.aggregate, slice(0, n)), target)
        total = total + logs["dca_loss_sup_aggregation"]
    return {"loss": total, **logs}


def _grads(net):
    return {k: (p.grad.clone() if p.grad is not None else None) for k, p in net.named_parameters()}


@pytest.mark.parametrize("deep_supervision", [True, False])
@pytest.mark.parametrize("variant", ["default", "supervise_aggregation", "detach_encoder", "experts_not_detached"])
def test_minimal_step_has_the_full_forwards_losses_and_gradients(deep_supervision, variant):
    extra = {"detach_encoder_for_aggregation": True} if variant == "detach_encoder" else \
        {"detach_expert_features": False} if variant == "experts_not_detached" else {}
    net = _tiny_net(deep_supervision, **extra)
    fake = _fake_trainer(net, deep_supervision, supervise_aggregation=variant == "supervise_aggregation")
    data, target, unlabeled = _batch(deep_supervision)
    new = DCATrainer.semi_supervised_losses(fake, data, target, unlabeled)
    new["loss"].backward()
    new_grads = _grads(net)
    net.zero_grad(set_to_none=True)
    old = _reference_losses(fake, data, target, unlabeled)
    old["loss"].backward()
    old_grads = _grads(net)
    for key, value in old.items():
        torch.testing.assert_close(new[key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert new_grads.keys() == old_grads.keys()
    for key in old_grads:
        a, b = new_grads[key], old_grads[key]
        if a is None or b is None:  # a head that no loss uses (no deep supervision): in neither step
            assert a is None and b is None, key
            continue
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=key)
    if variant == "experts_not_detached":  # D_A's loss reaches the experts through their unlabeled features
        net.zero_grad(set_to_none=True)
        DCATrainer.semi_supervised_losses(fake, data, target, unlabeled)["dca_loss_unsup"].backward()
        assert sum(float(p.grad.abs().sum()) for p in net.decoder.experts.parameters() if p.grad is not None) > 0


def _step_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()["loss"].backward()
    return counter.get_total_flops()


def test_minimal_step_skips_the_work_whose_result_was_thrown_away():
    net = _tiny_net(True)
    fake = _fake_trainer(net, True)
    data, target, unlabeled = _batch(True)
    new = _step_flops(lambda: DCATrainer.semi_supervised_losses(fake, data, target, unlabeled))
    old = _step_flops(lambda: _reference_losses(fake, data, target, unlabeled))
    assert new < 0.8 * old, (new, old)
    # experts on the unlabeled half run without autograd: nothing of theirs is kept for a backward pass
    out = net(torch.cat((data, unlabeled)), num_labeled=2)
    assert all(not t.requires_grad for e in out.experts_unlabeled for t in e)
    assert all(t.requires_grad for e in out.experts_labeled for t in e)
    assert out.aggregate[0].shape[0] == 2 and out.gates[0].shape[0] == 2  # D_A on the unlabeled samples only
