"""Semi-MoE losses: balance loss values and sign, gate entropy, cross-expert consistency (2D/3D, deep supervision)."""

from __future__ import annotations

import math

import pytest
import torch

from nnunetv2_dca.training.moe_losses import balance_loss, expert_consistency_loss, gate_entropy, mean_gate


@pytest.mark.parametrize("k", [2, 3, 5])
def test_balance_loss_uniform_zero_collapsed_log_k(k):
    uniform = torch.full((4, k), 1 / k)
    assert abs(float(balance_loss(uniform))) < 1e-6
    collapsed = torch.zeros(4, k)
    collapsed[:, 1] = 1
    assert float(balance_loss(collapsed)) == pytest.approx(math.log(k), abs=1e-5)
    # one-hot per image but every expert used equally: balanced (specialisation is allowed)
    spread = torch.eye(k).repeat(2, 1)
    assert abs(float(balance_loss(spread))) < 1e-6
    assert float(gate_entropy(spread)) == pytest.approx(0, abs=1e-5)
    assert float(gate_entropy(uniform)) == pytest.approx(math.log(k), abs=1e-5)
    # anything else lies strictly between
    skewed = torch.softmax(torch.tensor([[2.0] + [0.0] * (k - 1)] * 4), 1)
    assert 0 < float(balance_loss(skewed)) < math.log(k)


def test_balance_loss_gradients_are_finite_for_exact_zeros():
    gates = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], requires_grad=True)
    balance_loss(gates).backward()
    assert torch.isfinite(gates.grad).all()


@pytest.mark.parametrize("spatial", [(), (6, 7), (3, 4, 5)])
def test_gradient_descent_on_balance_loss_moves_average_gate_toward_uniform(spatial):
    """The sign: one SGD step on the gate logits must *increase* the entropy of the batch-average gate (the seed's
    -sum g log g, minimised, would do the opposite and collapse the routing)."""
    torch.manual_seed(0)
    logits = torch.randn(4, 3, *spatial)
    logits[:, 0] += 2.0  # skewed toward expert 0
    logits.requires_grad_(True)

    def entropy_of_mean(lg):
        g_bar = mean_gate(torch.softmax(lg.detach(), 1))
        return float(-(g_bar * g_bar.log()).sum())

    before = entropy_of_mean(logits)
    balance_loss(torch.softmax(logits, 1)).backward()
    with torch.no_grad():
        stepped = logits - 1.0 * logits.grad
    assert entropy_of_mean(stepped) > before
    assert float(balance_loss(torch.softmax(stepped, 1))) < float(balance_loss(torch.softmax(logits.detach(), 1)))


def test_voxel_gates_average_over_batch_voxels_and_scales():
    k = 3
    full = torch.zeros(2, k, 4, 4)
    full[:, 0] = 1  # collapsed at full resolution
    half = torch.full((2, k, 2, 2), 1 / k)  # uniform at half resolution
    assert float(balance_loss([full, half])) == pytest.approx(math.log(k) / 2, abs=1e-5)
    # voxels pick different experts, but on average every expert equally -> balanced
    half_split = torch.zeros(1, 2, 4, 4)
    half_split[:, 0, :2] = 1
    half_split[:, 1, 2:] = 1
    assert abs(float(balance_loss(half_split))) < 1e-6
    assert float(gate_entropy([full, half])) == pytest.approx(math.log(k) / 2, abs=1e-5)
    with pytest.raises(ValueError):
        balance_loss(torch.ones(3))


@pytest.mark.parametrize("spatial", [(5, 6), (3, 4, 5)])
def test_consistency_zero_for_identical_experts_positive_otherwise(spatial):
    torch.manual_seed(0)
    z = torch.randn(2, 4, *spatial)
    assert float(expert_consistency_loss([z, z.clone(), z.clone()])) == pytest.approx(0, abs=1e-7)
    # a constant shift of the logits changes nothing under softmax
    assert float(expert_consistency_loss([z, z + 3.0])) == pytest.approx(0, abs=1e-7)
    others = [torch.randn(2, 4, *spatial) for _ in range(2)]
    assert float(expert_consistency_loss([z, *others])) > 0
    # K = 2: MSE between the two experts' probabilities
    p, q = torch.softmax(z, 1), torch.softmax(others[0], 1)
    assert float(expert_consistency_loss([z, others[0]])) == pytest.approx(float((p - q).square().mean()), rel=1e-5)
    # sigmoid (region-based training)
    assert float(expert_consistency_loss([z, z], activation="sigmoid")) == pytest.approx(0, abs=1e-7)
    assert float(expert_consistency_loss([z, others[0]], activation="sigmoid")) > 0
    with pytest.raises(ValueError, match="activation"):
        expert_consistency_loss([z, z], activation="relu")


def test_consistency_gradients_pull_experts_together():
    torch.manual_seed(0)
    logits = [torch.randn(2, 3, 4, 4, requires_grad=True) for _ in range(3)]
    expert_consistency_loss(logits).backward()
    assert all(float(z.grad.abs().sum()) > 0 for z in logits)
    with torch.no_grad():
        stepped = [z - 50.0 * z.grad for z in logits]
    assert float(expert_consistency_loss(stepped)) < float(expert_consistency_loss([z.detach() for z in logits]))
    # detached targets: each expert's gradient only through its own prediction
    fixed = [z.detach().clone().requires_grad_(True) for z in logits]
    expert_consistency_loss(fixed, detach_target=True).backward()
    assert all(float(z.grad.abs().sum()) > 0 for z in fixed)
    single = torch.randn(1, 2, 3, 3, requires_grad=True)
    loss = expert_consistency_loss([single])
    assert float(loss.detach()) == 0 and loss.requires_grad


def test_consistency_deep_supervision_lists():
    torch.manual_seed(0)
    a = [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 4)]
    b = [torch.randn(2, 3, 8, 8), a[1].clone()]  # agree at half resolution only
    full = float(expert_consistency_loss([a[0], b[0]]))
    assert float(expert_consistency_loss([a, b])) == pytest.approx(full / 2, rel=1e-5)
    assert float(expert_consistency_loss([a, b], scale_weights=[0, 1])) == pytest.approx(0, abs=1e-7)
    assert float(expert_consistency_loss([a, b], scale_weights=[3, 1])) == pytest.approx(0.75 * full, rel=1e-5)
    with pytest.raises(ValueError, match="scale_weights"):
        expert_consistency_loss([a, b], scale_weights=[1])


def test_losses_run_in_float32_under_half_inputs():
    g = torch.softmax(torch.randn(4, 3), 1).half()
    assert balance_loss(g).dtype == torch.float32 and gate_entropy(g).dtype == torch.float32
    z = torch.randn(2, 3, 4, 4).half()
    assert expert_consistency_loss([z, z + 1]).dtype == torch.float32
