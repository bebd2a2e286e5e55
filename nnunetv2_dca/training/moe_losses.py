"""Semi-MoE losses (pure torch): gate balance, gate entropy (logging) and cross-expert consistency.

They consume what :class:`nnunetv2_dca.network.moe_unet.MoEOutput` holds: gates as one (B, K) tensor (image gating)
or (B, K, *spatial) maps (voxel gating; a list of them, one per deep-supervision scale, is averaged over scales), and
expert logits in nnU-Net's format. Everything works for 2D and 3D and is computed in float32 (safe under autocast).
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

Gates = Union[torch.Tensor, Sequence[torch.Tensor]]
EPS = 1e-8  # clamp before log: a gate that is exactly 0 gives 0 * log(eps) = 0, with finite gradients


def _gate_list(gates: Gates) -> List[torch.Tensor]:
    gate_list = [gates] if isinstance(gates, torch.Tensor) else list(gates)
    if not gate_list or any(g.ndim < 2 for g in gate_list):
        raise ValueError("gates must be (B, K) or (B, K, *spatial) tensors (or a non-empty list of them)")
    return gate_list


def mean_gate(gates: torch.Tensor) -> torch.Tensor:
    """g_bar: the average gate per expert over the batch (and voxels for voxel gating), shape (K,)."""
    return gates.float().movedim(1, -1).reshape(-1, gates.shape[1]).mean(0)


def balance_loss(gates: Gates, eps: float = EPS) -> torch.Tensor:
    """Load balancing: ``sum_k g_bar_k log g_bar_k + log K`` = log K - H(g_bar) = KL(g_bar || uniform) >= 0.

    0 when the experts are used equally on average, log K when every input goes to one expert. Minimising it
    *maximises* the entropy of the batch-average gate, pushing average usage toward uniform; it does not force each
    image's gate to be uniform (per-image specialisation stays free, see :func:`gate_entropy`).

    Sign: the seed writes L_balance = -sum_k g_bar_k log g_bar_k, i.e. the entropy H(g_bar) itself. Minimising that
    would drive g_bar to a one-hot vector -- exactly the collapse onto one expert the term is meant to prevent -- so
    the loss here is the negative entropy (+ log K so that it is >= 0 and 0 at the optimum).

    A list of gate maps (voxel gating with deep supervision) gives the mean of the per-scale losses.
    """
    losses = []
    for g in _gate_list(gates):
        g_bar = mean_gate(g)
        losses.append((g_bar * g_bar.clamp_min(eps).log()).sum() + math.log(g.shape[1]))
    return torch.stack(losses).mean()


def gate_entropy(gates: Gates, eps: float = EPS) -> torch.Tensor:
    """Mean entropy of the individual gates (per image, or per voxel for voxel gating), in nats, for logging.

    Low values with a low :func:`balance_loss` mean specialisation (each input picks an expert, all experts used);
    log K means every input gets the uniform mixture. A list of maps gives the mean over scales.
    """
    values = []
    for g in _gate_list(gates):
        g = g.float()
        values.append(-(g * g.clamp_min(eps).log()).sum(1).mean())
    return torch.stack(values).mean()


def _consistency_one_scale(expert_logits: Sequence[torch.Tensor], activation: str, detach_target: bool
                           ) -> torch.Tensor:
    if activation == "softmax":
        probs = [torch.softmax(z.float(), 1) for z in expert_logits]
    elif activation == "sigmoid":
        probs = [torch.sigmoid(z.float()) for z in expert_logits]
    else:
        raise ValueError(f"activation must be 'softmax' or 'sigmoid', got {activation!r}")
    k = len(probs)
    if k < 2:
        return probs[0].sum() * 0.0  # nothing to agree with; stays in the graph
    total = torch.stack(probs, 0).sum(0)
    reference = total.detach() if detach_target else total
    losses = []
    for i, p in enumerate(probs):
        others = (reference - (p.detach() if detach_target else p)) / (k - 1)
        losses.append(F.mse_loss(p, others))
    return torch.stack(losses).mean()


def expert_consistency_loss(expert_logits: Sequence[Union[torch.Tensor, Sequence[torch.Tensor]]],
                            activation: str = "softmax", detach_target: bool = False,
                            scale_weights: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Cross-expert consistency on (unlabeled) images: the experts' predictions on the same input must agree.

    For each expert k: MSE between its probabilities p_k and the mean probabilities of the *other* experts,
    (sum_j p_j - p_k) / (K - 1), averaged over voxels and channels; the loss is the mean over k. It is 0 iff all
    experts predict the same probabilities, and for K = 2 it is the squared difference of the two. Probabilities
    (not logits) are compared, as in mean-teacher/co-training consistency: bounded, insensitive to the logits' scale.

    ``expert_logits``: one entry per expert, each a (B, C, *spatial) tensor or a list of them (nnU-Net's
    deep-supervision format, as in ``MoEOutput.experts``); with lists the per-scale losses are averaged with
    ``scale_weights`` (normalised; default equal). ``activation``: ``"softmax"`` (label training) or ``"sigmoid"``
    (nnU-Net region-based training). ``detach_target=False`` (default) lets every expert move toward the others
    (symmetric); ``True`` treats the others' mean as a fixed target. With fewer than two experts the loss is 0.
    """
    if len(expert_logits) == 0:
        raise ValueError("expert_consistency_loss needs at least one expert output")
    if isinstance(expert_logits[0], torch.Tensor):
        return _consistency_one_scale(expert_logits, activation, detach_target)
    n = len(expert_logits[0])
    if any(len(e) != n for e in expert_logits):
        raise ValueError("every expert needs the same number of deep-supervision outputs")
    weights = [1.0] * n if scale_weights is None else [float(w) for w in scale_weights]
    if len(weights) != n or sum(weights) <= 0 or min(weights) < 0:
        raise ValueError(f"scale_weights needs {n} non-negative entries with a positive sum, got {scale_weights}")
    total = sum(weights)
    loss = None
    for s, w in enumerate(weights):
        if w == 0:
            continue
        term = _consistency_one_scale([e[s] for e in expert_logits], activation, detach_target) * (w / total)
        loss = term if loss is None else loss + term
    return loss
