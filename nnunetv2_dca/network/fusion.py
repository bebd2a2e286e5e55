"""Fused pseudo-labels from label-split experts (seed ``003``, Key Design 3): class c from the expert that owns it,
background from all experts. Three forms, the default chosen by measurement (see :func:`fuse_expert_logits`);
experts with or without the "other organ" channel."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

FUSIONS = ("product", "log_softmax", "logits")
# the one home of the default (the network's prediction_fusion, DCATrainer.fusion): measured, see fuse_expert_logits
DEFAULT_FUSION = "product"


def fuse_expert_logits(expert_logits: Sequence[torch.Tensor], class_groups: Sequence[Sequence[int]],
                       fusion: str = DEFAULT_FUSION) -> torch.Tensor:
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

    Experts with the "other organ" channel (last channel, see ``DCAUNet``) are read from their shapes: for
    ``"product"`` an expert's "none of mine" is then p(bg) + p(other), so class c of group g = log p_g(c) +
    sum_{h != g} log(p_h(bg) + p_h(other)); the fused background stays sum_g log p_g(bg) (no expert sees an organ
    there). The two seed forms ignore the extra channel.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    other = has_other_channel(expert_logits, class_groups)
    if fusion != "logits":
        expert_logits = [torch.log_softmax(e.float(), 1) for e in expert_logits]
    backgrounds = torch.stack([e[:, :1] for e in expert_logits], 0)  # (G, B, 1, ...)
    if fusion == "product":
        total = backgrounds.sum(0)
        # "none of mine" of each expert: its background, plus its other-organ channel when it has one
        nones = [torch.logsumexp(torch.cat([e[:, :1], e[:, -1:]], 1), 1, keepdim=True) if other else e[:, :1]
                 for e in expert_logits]
        none_total = torch.stack(nones, 0).sum(0)
        # each class: its owner's log p(c) plus every other expert's log p(none of mine)
        expert_logits = [torch.cat([e[:, :1], e[:, 1:1 + len(g)] + (none_total - n)], 1)
                         for e, n, g in zip(expert_logits, nones, class_groups)]
        background = total
    else:
        background = backgrounds.mean(0)
    foreground = torch.cat([e[:, 1:1 + len(g)] for e, g in zip(expert_logits, class_groups)], 1)  # class_groups order
    order = [c for g in class_groups for c in g]
    inverse = torch.as_tensor(np.argsort(order), device=foreground.device)  # class id - 1 -> position in `order`
    return torch.cat([background, foreground.index_select(1, inverse)], 1)


def has_other_channel(expert_logits: Sequence[torch.Tensor], class_groups: Sequence[Sequence[int]]) -> bool:
    """Whether the experts carry the "other organ" channel (1 + |S_g| + 1 channels) or not (1 + |S_g|), read from
    their shapes; anything else (or a mix) is an error that names the expert."""
    if len(expert_logits) != len(class_groups):
        raise ValueError(f"{len(expert_logits)} expert outputs for {len(class_groups)} class groups")
    kinds = set()
    for g, (e, members) in enumerate(zip(expert_logits, class_groups)):
        extra = e.shape[1] - 1 - len(members)
        if extra not in (0, 1):
            raise ValueError(f"expert {g} has {e.shape[1]} channels; its group {list(members)} needs "
                             f"{1 + len(members)} (background + classes) or {2 + len(members)} (+ other organ)")
        kinds.add(extra)
    if len(kinds) > 1:
        raise ValueError("some experts carry the other-organ channel and some do not")
    return kinds == {1}
