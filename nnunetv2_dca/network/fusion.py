"""Fused pseudo-labels from label-split experts (seed ``003``, Key Design 3): class c from the expert that owns it,
background from all experts. Three forms, the default chosen by measurement (see :func:`fuse_expert_logits`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

FUSIONS = ("product", "log_softmax", "logits")


def fuse_expert_logits(expert_logits: Sequence[torch.Tensor], class_groups: Sequence[Sequence[int]],
                       fusion: str = "product") -> torch.Tensor:
    """Fused pseudo-label scores from the label-split experts (seed Key Design 3: class c from the expert that owns
    c, background from all experts). Inputs (B, 1 + |S_g|, ...) per expert; output (B, num_classes, ...) whose
    argmax is the pseudo-label.

    * ``"logits"``: the seed's literal form, raw logits concatenated, background = mean of the experts' background
      logits. A softmax's logits are only defined up to an additive constant per expert, so raw logits of different
      experts are not comparable: label-split experts of rare groups (targets ~99 % background) learn far larger
      background logits than the head expert and outvote it everywhere (measured: every fused pseudo-label was
      background while the head expert segmented the liver).
    * ``"log_softmax"``: the same formula on each expert's log-probabilities (scale-free). Still biased to
      background: at a voxel of class c the *other* experts rightly say "background" (c is not theirs), and their
      confident log p(bg) ~ 0 enters the mean, so c needs p_owner(c) > p_owner(bg)^(1/G) (measured: medium and tail
      classes never appeared in the pseudo-labels).
    * ``"product"`` (default): product of experts in log space. background = sum_g log p_g(bg) (every expert agrees
      that no class of its own is present); class c of group g = log p_g(c) + sum_{h != g} log p_h(bg) (its owner
      says c, every other expert says "none of mine"). The comparison of c with background then reduces to the
      owner's own odds log p_g(c) - log p_g(bg): class c wins where its owner prefers it to background, and
      between groups the more confident owner wins. Scale-free like log_softmax, without the bias.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    if fusion != "logits":
        expert_logits = [torch.log_softmax(e.float(), 1) for e in expert_logits]
    backgrounds = torch.stack([e[:, :1] for e in expert_logits], 0)  # (G, B, 1, ...)
    if fusion == "product":
        total = backgrounds.sum(0)
        # each class: its owner's log p(c) plus every other expert's log p(bg)
        expert_logits = [torch.cat([e[:, :1], e[:, 1:] + (total - e[:, :1])], 1) for e in expert_logits]
        background = total
    else:
        background = backgrounds.mean(0)
    foreground = torch.cat([e[:, 1:] for e in expert_logits], 1)  # channels in class_groups order
    order = [c for g in class_groups for c in g]
    inverse = torch.as_tensor(np.argsort(order), device=foreground.device)  # class id - 1 -> position in `order`
    return torch.cat([background, foreground.index_select(1, inverse)], 1)
