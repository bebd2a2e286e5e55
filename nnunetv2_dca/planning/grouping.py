"""Log-gap grouping of foreground classes (DCA's "Divide" step, seed 003 Key Design 1), generalised to G groups.

Rule (seed): P_k = V_k / V_fg over the labeled training cases; sort descending, P_(1) >= ... >= P_(n);
G_j = log P_(j) - log P_(j+1); the head/medium cliff is k_HM = argmax_j G_j, the medium/tail cliff is
k_MT = argmax_{j > k_HM} G_j. With G groups the same rule is applied G-1 times: each next cliff is the largest gap
after the previous one.

Edge cases (each documented here and tested in tests/planning/test_grouping.py; no inf or NaN is ever computed):
- class with zero labeled voxels: log 0 is undefined, so it takes no part in the gaps; it is appended to the tail
  (the last group) with a warning naming it. If that still leaves fewer than G groups, the zero-voxel classes form
  the tail on their own.
- no gap after the previous cliff (it is the last gap, e.g. k_HM = n-1): fallback, the next cliff is the largest
  *unused* gap before it. Cliffs are then sorted, so groups stay ordered head -> tail. Deterministic.
- ties: classes with equal counts are ordered by class id (ascending); equal gaps resolve to the first (highest
  ranked) one, as numpy's argmax does.
- fewer foreground classes than groups: GroupingError explaining that every expert needs at least one class and
  how to proceed (fewer groups or explicit groups in dca_groups.json, which the planners read).
- the ignore label and region-based label definitions are the planner's business: it passes only real classes
  and refuses regions (see nnunetv2_dca.planning.labels).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

GROUP_NAMES_3 = ("head", "medium", "tail")
# user's groups for the DCA planners: nnUNet_preprocessed/DatasetXXX/dca_groups.json, {"groups": ...} or {"num_groups": G}
GROUPS_FILE = "dca_groups.json"


class GroupingError(ValueError):
    """The classes cannot be grouped as asked (too few classes, invalid explicit groups)."""


# head / medium / tail, the seed's grouping; the planner, `nnunetv2-dca groups` and this module's default read it here
DEFAULT_NUM_GROUPS = 3


def group_names(num_groups: int) -> List[str]:
    """head/medium/tail for 3 groups; head, medium_1.., tail otherwise (head/tail for 2)."""
    if num_groups == 1:
        return ["all"]
    if num_groups == 3:
        return list(GROUP_NAMES_3)
    if num_groups == 2:
        return ["head", "tail"]
    return ["head"] + [f"medium_{i}" for i in range(1, num_groups - 1)] + ["tail"]


@dataclass
class Grouping:
    """Result of the log-gap analysis. ``groups`` are lists of class ids, head first."""

    groups: List[List[int]]
    voxel_counts: Dict[int, int]
    order: List[int]  # all classes, sorted by voxels descending (ties: id ascending), zero-voxel classes last
    proportions: Dict[int, float]  # P_k = V_k / V_fg
    gaps: List[Optional[float]]  # gaps[j] between order[j] and order[j+1]; None where a zero-voxel class is involved
    cliffs: List[int]  # positions j in ``order`` after which a new group starts
    zero_voxel_classes: List[int] = field(default_factory=list)
    source: str = "log-gap"  # or "explicit"

    def group_of(self, class_id: int) -> int:
        for g, members in enumerate(self.groups):
            if class_id in members:
                return g
        raise KeyError(class_id)


def log_gap_grouping(voxel_counts: Mapping[int, int], num_groups: int = DEFAULT_NUM_GROUPS,
                     class_names: Optional[Mapping[int, str]] = None) -> Grouping:
    """Split the foreground classes in ``voxel_counts`` (id -> labeled voxels; no background, no ignore label)."""
    names = dict(class_names or {})
    counts = {int(k): int(v) for k, v in voxel_counts.items()}
    if num_groups < 1:
        raise GroupingError(f"the number of groups must be >= 1, got {num_groups}")
    negative = [k for k, v in counts.items() if v < 0]
    if negative:
        raise GroupingError(f"negative voxel counts for classes {negative}")
    if len(counts) < num_groups:
        raise GroupingError(
            f"{num_groups} groups need at least {num_groups} foreground classes (each expert decoder owns at least "
            f"one class), but the dataset has {len(counts)}: {_fmt(sorted(counts), names)}. Use fewer groups: "
            f"write {{\"num_groups\": {max(1, len(counts))}}} (or explicit {{\"groups\": [[...], ...]}}, head first) "
            f"into $nnUNet_preprocessed/DatasetXXX_Name/{GROUPS_FILE} before nnUNetv2_plan_and_preprocess, e.g. with "
            f"'nnunetv2-dca groups -d XXX --num-groups {max(1, len(counts))} --save'.")

    positive, zero, proportions, gaps_pos = _ranking(counts)
    if zero:
        warnings.warn(f"classes with zero labeled voxels go to the tail group: {_fmt(zero, names)}", stacklevel=2)
    # zero-voxel classes join the tail; if the positive classes are too few, they are the tail on their own
    groups_from_gaps = num_groups - 1 if zero and len(positive) < num_groups else num_groups
    n_cliffs = min(groups_from_gaps - 1, len(gaps_pos))
    cliffs = _choose_cliffs(gaps_pos, n_cliffs)
    bounds = [0] + [c + 1 for c in cliffs] + [len(positive)]
    groups = [positive[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
    if zero:
        if len(groups) < num_groups:
            groups.append(zero)
        else:
            groups[-1] = groups[-1] + zero
    if len(groups) < num_groups:
        raise GroupingError(
            f"only {len(positive)} classes have labeled voxels ({_fmt(positive, names)}); with the zero-voxel "
            f"classes ({_fmt(zero, names)}) that makes {len(groups)} groups, not {num_groups}. Label more cases, "
            f"use fewer groups (--num-groups) or give the groups explicitly.")
    order = positive + zero
    gaps: List[Optional[float]] = list(gaps_pos) + [None] * (len(order) - 1 - len(gaps_pos))
    return Grouping(groups=groups, voxel_counts=counts, order=order, proportions=proportions, gaps=gaps,
                    cliffs=cliffs, zero_voxel_classes=zero)


def _ranking(counts: Mapping[int, int]):
    """(positive classes sorted by voxels desc / id asc, zero-voxel classes, proportions, log gaps)."""
    positive = sorted((k for k in counts if counts[k] > 0), key=lambda k: (-counts[k], k))
    zero = sorted(k for k in counts if counts[k] == 0)
    total = sum(counts[k] for k in positive)
    proportions = {k: (counts[k] / total if total else 0.0) for k in counts}
    # log P_a - log P_b = log V_a - log V_b: exact and finite because V > 0 here
    gaps = [math.log(counts[a]) - math.log(counts[b]) for a, b in zip(positive, positive[1:])]
    return positive, zero, proportions, gaps


def _choose_cliffs(gaps: Sequence[float], n: int) -> List[int]:
    """Seed rule generalised: each next cliff = the largest unused gap after the rightmost cliff so far; if none is
    left after it, the largest unused gap anywhere (fallback). Gaps equal up to rounding (1e-9) count as ties and
    the first one wins, so log(8/4) and log(2/1) are treated alike."""
    cliffs: List[int] = []
    for _ in range(n):
        start = max(cliffs) + 1 if cliffs else 0
        candidates = [j for j in range(start, len(gaps)) if j not in cliffs]
        if not candidates:
            candidates = [j for j in range(len(gaps)) if j not in cliffs]
        top = max(gaps[j] for j in candidates)
        cliffs.append(next(j for j in candidates if gaps[j] >= top - 1e-9))
    return sorted(cliffs)


def explicit_grouping(groups: Sequence[Sequence[int]], voxel_counts: Mapping[int, int],
                      class_names: Optional[Mapping[int, str]] = None) -> Grouping:
    """A user-given grouping (head first), validated: every foreground class exactly once, no unknown class."""
    names = dict(class_names or {})
    known = set(int(k) for k in voxel_counts)
    seen: Dict[int, int] = {}
    for g, members in enumerate(groups):
        if not members:
            raise GroupingError(f"group {g} is empty: every expert needs at least one class")
        for c in members:
            c = int(c)
            if c not in known:
                raise GroupingError(f"unknown class {c} in group {g}; foreground classes are {_fmt(sorted(known), names)}")
            if c in seen:
                raise GroupingError(f"class {_fmt([c], names)} is listed twice (groups {seen[c]} and {g})")
            seen[c] = g
    missing = sorted(known - set(seen))
    if missing:
        raise GroupingError(f"classes missing from the explicit groups: {_fmt(missing, names)}")
    counts = {int(k): int(v) for k, v in voxel_counts.items()}
    positive, zero, proportions, gaps = _ranking(counts)
    order = positive + zero
    return Grouping(groups=[[int(c) for c in m] for m in groups], voxel_counts=counts, order=order,
                    proportions=proportions, gaps=list(gaps) + [None] * (len(order) - 1 - len(gaps)), cliffs=[],
                    zero_voxel_classes=zero, source="explicit")


def _fmt(ids: Sequence[int], names: Mapping[int, str]) -> str:
    return ", ".join(f"{names[i]} ({i})" if i in names else str(i) for i in ids) or "none"
