"""Issue 15, item 5: the DCA step under autocast (CPU bf16 / fp16 here; the GPU check runs fp16 + GradScaler):
DFAM mixes in the features' low precision (no fp32 feature maps), fusion and losses stay finite, gradients too."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dcanets import _batch, _fake_trainer, _tiny_net
from nnunetv2_dca.network.dfam import DFAM
from nnunetv2_dca.training.dca import DCATrainer


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_dfam_mixes_in_the_autocast_dtype(dtype):
    dfam = DFAM(nn.Conv3d, 4, 3, [3, 3, 3], nn.InstanceNorm3d, {"affine": True})
    x = [torch.randn(1, 4, 4, 6, 6) for _ in range(4)]
    with torch.autocast("cpu", dtype=dtype):
        f_up = nn.Conv3d(4, 4, 1)(x[0])  # as D_A's stage output: low precision under autocast
        out, weights = dfam(f_up, x[1:])
    assert f_up.dtype == dtype and out.dtype == dtype  # not promoted to fp32 by the gate weights
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights.sum(1), torch.ones(1, 4, 6, 6))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("deep_supervision", [True, False])
def test_dca_step_is_finite_under_autocast(dtype, deep_supervision):
    net = _tiny_net(deep_supervision)
    fake = _fake_trainer(net, deep_supervision)
    data, target, unlabeled = _batch(deep_supervision)
    with torch.autocast("cpu", dtype=dtype):
        out = DCATrainer.semi_supervised_losses(fake, data, target, unlabeled)
        step = net(torch.cat((data, unlabeled)), num_labeled=data.shape[0])
    assert all(torch.isfinite(v).all() for v in out.values()), {k: float(v) for k, v in out.items()}
    aggregate = step.aggregate[0] if deep_supervision else step.aggregate
    assert aggregate.dtype == dtype
    shares = sum(float(out[f"dca_share_{n}"]) for n in ("background", "head", "medium", "tail"))
    assert shares == pytest.approx(1.0, abs=1e-4)  # the fused pseudo-labels were computed (in fp32)
    out["loss"].backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
