"""nnunetv2_dca.planning.grouping: the seed's log-gap rule, its edge cases, G groups, explicit groups."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SHARED
from nnunetv2_dca.planning.grouping import (GroupingError, explicit_grouping, group_names, log_gap_grouping)

EXAMPLES = SHARED / "data" / "totalsegmentator-examples"


def test_seed_rule_on_a_hand_made_example():
    # proportions 0.5, 0.3, 0.15, 0.04, 0.01: gaps log(5/3)=.51, log 2=.69, log(3.75)=1.32, log 4=1.39
    counts = {1: 500, 2: 300, 3: 150, 4: 40, 5: 10}
    g = log_gap_grouping(counts)
    # k_HM = argmax = last gap (4 -> 5): fallback takes the largest unused gap before it (3 -> 4)
    assert g.groups == [[1, 2, 3], [4], [5]]
    assert g.cliffs == [2, 3]
    assert g.gaps == pytest.approx([math.log(5 / 3), math.log(2), math.log(3.75), math.log(4)])
    assert g.proportions[1] == pytest.approx(0.5)


def test_seed_rule_k_mt_is_the_largest_gap_after_k_hm():
    counts = {1: 1000, 2: 100, 3: 80, 4: 60, 5: 10, 6: 9}
    assert log_gap_grouping(counts).groups == [[1], [2, 3, 4], [5, 6]]


def test_zero_voxel_class_goes_to_tail_with_a_named_warning():
    counts = {1: 1000, 2: 100, 3: 90, 4: 5, 5: 0}
    with pytest.warns(UserWarning, match=r"esophagus \(5\)"):
        g = log_gap_grouping(counts, class_names={5: "esophagus"})
    assert g.groups == [[1], [2, 3], [4, 5]]
    assert g.zero_voxel_classes == [5] and g.gaps[-1] is None
    assert all(x is None or math.isfinite(x) for x in g.gaps)


def test_zero_voxel_classes_form_the_tail_when_too_few_classes_have_voxels():
    with pytest.warns(UserWarning):
        g = log_gap_grouping({1: 50, 2: 10, 3: 0, 4: 0})
    assert g.groups == [[1], [2], [3, 4]]


def test_ties_are_deterministic():
    g1 = log_gap_grouping({3: 100, 1: 100, 2: 100, 4: 1})
    g2 = log_gap_grouping({4: 1, 2: 100, 1: 100, 3: 100})
    assert g1.groups == g2.groups
    assert g1.order == [1, 2, 3, 4]  # equal counts: class id ascending
    # all gaps equal -> first cliff at the first gap, then the first after it
    assert log_gap_grouping({1: 8, 2: 4, 3: 2, 4: 1}).groups == [[1], [2], [3, 4]]


def test_too_few_classes_is_explained():
    with pytest.raises(GroupingError, match="3 groups need at least 3 foreground classes.*"
                                          r"\{\"num_groups\": 2\}.*dca_groups.json"):
        log_gap_grouping({1: 10, 2: 5})
    assert log_gap_grouping({1: 10, 2: 5}, num_groups=2).groups == [[1], [2]]
    with pytest.raises(GroupingError, match="only 1 classes have labeled voxels"), pytest.warns(UserWarning):
        log_gap_grouping({1: 10, 2: 0, 3: 0})


@pytest.mark.parametrize("g, names", [(1, ["all"]), (2, ["head", "tail"]), (3, ["head", "medium", "tail"]),
                                      (4, ["head", "medium_1", "medium_2", "tail"])])
def test_group_names(g, names):
    assert group_names(g) == names


def test_more_groups_use_more_cliffs_under_the_same_rule():
    counts = {1: 10000, 2: 1000, 3: 900, 4: 100, 5: 90, 6: 9}
    assert log_gap_grouping(counts, 4).groups == [[1], [2, 3], [4, 5], [6]]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers(1, 40), st.integers(0, 10**9), min_size=1, max_size=20), st.integers(1, 5))
def test_properties_on_random_counts(counts, num_groups):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            g = log_gap_grouping(counts, num_groups)
        except GroupingError:
            positive = sum(v > 0 for v in counts.values())
            zero = len(counts) - positive
            assert len(counts) < num_groups or positive < num_groups - (1 if zero else 0)
            return
    flat = [c for grp in g.groups for c in grp]
    assert sorted(flat) == sorted(counts) and len(g.groups) == num_groups and all(g.groups)
    assert all(x is None or math.isfinite(x) for x in g.gaps)
    assert all(math.isfinite(p) for p in g.proportions.values())
    # groups are ordered: every class of a group has at least as many voxels as every class of a later group
    for a, b in zip(g.groups, g.groups[1:]):
        assert min(counts[c] for c in a) >= max(counts[c] for c in b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert g.groups == log_gap_grouping(dict(reversed(list(counts.items()))), num_groups).groups


def test_explicit_groups_are_validated():
    counts = {1: 10, 2: 5, 3: 1}
    assert explicit_grouping([[2], [1], [3]], counts).groups == [[2], [1], [3]]
    with pytest.raises(GroupingError, match="unknown class 7"):
        explicit_grouping([[1, 7], [2], [3]], counts)
    with pytest.raises(GroupingError, match="listed twice"):
        explicit_grouping([[1, 2], [2], [3]], counts)
    with pytest.raises(GroupingError, match=r"missing.*\b3\b"):
        explicit_grouping([[1], [2]], counts)
    with pytest.raises(GroupingError, match="empty"):
        explicit_grouping([[1, 2, 3], []], counts)


def _real_ct_counts() -> dict:
    import SimpleITK as sitk

    mapping = json.loads((EXAMPLES / "synapse13_map.json").read_text())["from_total_ct"]
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(EXAMPLES / "example_seg_fast_force_split.nii.gz")))
    lut = np.zeros(int(seg.max()) + 1, dtype=np.int64)
    for src, dst in mapping.items():
        if int(src) < lut.size:
            lut[int(src)] = dst
    counts = np.bincount(lut[seg].ravel(), minlength=14)
    return {k: int(counts[k]) for k in range(1, 14)}


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="../shared/data/totalsegmentator-examples not present")
def test_real_ct_gives_liver_head_and_adrenals_esophagus_tail():
    counts = _real_ct_counts()
    assert counts[6] == 41692 and counts[12] == 166 and counts[5] == 0  # the table in the examples' README
    with pytest.warns(UserWarning, match="esophagus"):
        g = log_gap_grouping(counts, class_names={5: "esophagus"})
    assert g.groups[0] == [6]
    assert sorted(g.groups[2]) == [5, 12, 13]
