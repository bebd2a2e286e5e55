"""Helpers shared by the network tests: tiny arch_kwargs in plans form, gradient sums, measured conv outputs."""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

REQ_IMPORT = ("conv_op", "norm_op", "dropout_op", "nonlin")


def tiny_arch_kwargs(dim: int, encoder: str, anisotropic: bool = False, **extra) -> Dict:
    """arch_kwargs as a plan stores them (strings for classes), 3 stages with tiny widths for CPU; ``encoder`` is
    'plain' (PlainConvUNet keys) or 'resenc' (ResidualEncoderUNet keys); ``extra`` adds or overrides keys."""
    n = 3
    if dim == 3 and anisotropic:
        kernels = [[1, 3, 3], [3, 3, 3], [3, 3, 3]]
        strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2]]
    else:
        kernels, strides = [[3] * dim] * n, [[1] * dim, [2] * dim, [2] * dim]
    kw = {
        "n_stages": n, "features_per_stage": [4, 8, 16], "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
        "kernel_sizes": kernels, "strides": strides,
        "n_conv_per_stage_decoder": [2, 2] if encoder == "plain" else [1, 1],
        "conv_bias": True, "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
        "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
    }
    if encoder == "plain":
        kw["n_conv_per_stage"] = [2, 2, 2]
    else:
        kw["n_blocks_per_stage"] = [1, 2, 2]
    kw.update(extra)
    return kw


def grad_sum(module: nn.Module) -> float:
    """Sum of |grad| over a module's parameters (0 when none received a gradient)."""
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def conv_output_elements(net: nn.Module, x: torch.Tensor) -> int:
    """Elements of every 3D (transposed) conv output in one ``net.all_outputs(x)`` call, batch 1: what DNA's
    ``compute_conv_feature_map_size`` convention counts."""
    total = 0

    def hook(_m, _i, o):
        nonlocal total
        total += o[0].numel()

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    with torch.no_grad():
        net.all_outputs(x)
    for h in handles:
        h.remove()
    return total
