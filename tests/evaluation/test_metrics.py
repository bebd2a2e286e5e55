"""Metrics with known answers: exact Dice of shifted cubes, surface distances against an independent brute force
(KD-tree on surface voxel coordinates x spacing), spacing handling, empty rules, protocol-B resize and penalties,
ignore label, class/group means."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from nnunetv2_dca.evaluation.metrics import (PROTOCOL_B_SHAPE, assd_hd95, class_counts, directed_asd,
                                             evaluate_case_mm, evaluate_case_protocol_b, nearest_indices,
                                             resize_nearest, summarise, surface_distances)


# ------------------------------------------------------------------------------------------- independent reference
def brute_surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask with at least one face neighbour outside it (outside the image counts as outside)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = tuple(slice(1, -1) for _ in range(mask.ndim))
    surf = np.zeros_like(mask)
    for ax in range(mask.ndim):
        for step in (-1, 1):
            surf |= mask & ~np.roll(padded, step, axis=ax)[inner]
    return surf


def brute_distances(a: np.ndarray, b: np.ndarray, spacing) -> tuple:
    pa = np.argwhere(brute_surface(a)) * np.asarray(spacing, dtype=float)
    pb = np.argwhere(brute_surface(b)) * np.asarray(spacing, dtype=float)
    d_ab, _ = cKDTree(pb).query(pa)
    d_ba, _ = cKDTree(pa).query(pb)
    return d_ab, d_ba


def ball(shape, center, radius, spacing=(1, 1, 1)) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, center, spacing))
    return d2 <= radius ** 2


def cube(shape, start, size) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(s, s + size) for s in start)] = True
    return m


# ----------------------------------------------------------------------------------------------------------- Dice
@pytest.mark.parametrize("k", [0, 1, 2, 5, 6, 8])
def test_dice_of_cubes_offset_by_k_voxels_is_exact(k):
    s = 6
    ref = cube((20, 20, 20), (3, 3, 3), s).astype(np.uint8) * 2
    pred = cube((20, 20, 20), (3, 3, 3 + k), s).astype(np.uint8) * 2
    m = evaluate_case_mm(ref, pred, [2])[2]
    overlap = s * s * max(s - k, 0)
    assert m["TP"] == overlap and m["n_ref"] == m["n_pred"] == s ** 3
    assert m["Dice"] == pytest.approx(2 * overlap / (2 * s ** 3), abs=1e-15)  # = (s - k) / s
    assert m["FP"] == m["FN"] == s ** 3 - overlap


def test_counts_for_several_classes_from_one_bincount():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 5, size=(9, 11, 7))
    pred = rng.integers(0, 5, size=(9, 11, 7))
    counts = class_counts(ref, pred, [1, 2, 4])
    for c in (1, 2, 4):
        assert counts[c]["TP"] == int(((ref == c) & (pred == c)).sum())
        assert counts[c]["n_ref"] == int((ref == c).sum())
        assert counts[c]["n_pred"] == int((pred == c).sum())


# ---------------------------------------------------------------------------------------------- surface distances
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.8, 0.8), (0.5, 2.0, 1.25)])
def test_asd_hd95_of_sphere_vs_shifted_sphere_match_brute_force(spacing):
    shape = (22, 26, 24)
    ref = ball(shape, (11, 12, 12), 7.0)
    pred = ball(shape, (12, 14, 11), 6.0)
    d_pr, d_rp = brute_distances(pred, ref, spacing)
    pooled = np.concatenate([d_pr, d_rp])
    assd, hd95 = assd_hd95(pred, ref, spacing)
    assert assd == pytest.approx(pooled.mean(), rel=1e-12)
    assert hd95 == pytest.approx(np.percentile(pooled, 95), rel=1e-12)
    assert directed_asd(pred, ref, spacing) == pytest.approx(d_pr.mean(), rel=1e-12)
    assert directed_asd(ref, pred, spacing) == pytest.approx(d_rp.mean(), rel=1e-12)
    assert assd > 0 and hd95 > assd


def test_asd_is_the_pooled_mean_not_the_mean_of_the_two_directed_means():
    shape = (20, 20, 20)
    ref = cube(shape, (2, 2, 2), 12)  # large surface
    pred = cube(shape, (6, 6, 6), 3)  # small surface, deep inside
    d_pr, d_rp = brute_distances(pred, ref, (1, 1, 1))
    assd, _ = assd_hd95(pred, ref)
    assert assd == pytest.approx(np.concatenate([d_pr, d_rp]).mean())
    assert abs(assd - (d_pr.mean() + d_rp.mean()) / 2) > 0.1  # the two definitions really differ here


def test_known_distance_between_two_points_with_anisotropic_spacing():
    a = np.zeros((5, 9), dtype=bool)
    b = np.zeros((5, 9), dtype=bool)
    a[1, 2] = True
    b[4, 6] = True
    d = math.hypot(3 * 2.0, 4 * 0.5)
    assd, hd95 = assd_hd95(a, b, (2.0, 0.5))
    assert assd == pytest.approx(d) and hd95 == pytest.approx(d)
    assert assd_hd95(a, b)[0] == pytest.approx(5.0)  # no spacing: voxels


def test_isotropic_spacing_scales_distances_and_anisotropy_matters():
    shape = (16, 16, 16)
    ref = cube(shape, (4, 4, 4), 6)
    pred = cube(shape, (5, 4, 4), 6)  # shifted along axis 0 by one voxel
    base = assd_hd95(pred, ref)
    doubled = assd_hd95(pred, ref, (2.0, 2.0, 2.0))
    assert doubled == pytest.approx((2 * base[0], 2 * base[1]))
    along_shift = assd_hd95(pred, ref, (3.0, 1.0, 1.0))  # spacing on the shifted axis
    across_shift = assd_hd95(pred, ref, (1.0, 3.0, 1.0))
    assert along_shift[1] == pytest.approx(3.0) and across_shift[1] == pytest.approx(1.0)
    assert along_shift[0] > across_shift[0]


def test_bounding_box_crop_is_exact_including_masks_touching_the_image_border():
    rng = np.random.default_rng(3)
    a = ball((12, 14, 10), (2, 7, 5), 4.5)  # touches the image border on axis 0
    b = ball((12, 14, 10), (6, 6, 4), 3.5)
    big_a = np.zeros((30, 30, 30), dtype=bool)
    big_b = np.zeros_like(big_a)
    big_a[5:17, 8:22, 3:13] = a
    big_b[5:17, 8:22, 3:13] = b
    sp = tuple(rng.uniform(0.5, 2.0, size=3))
    for small, big in zip(surface_distances(a, b, sp), surface_distances(big_a, big_b, sp)):
        assert np.allclose(np.sort(small), np.sort(big))
    brute = brute_distances(a, b, sp)
    assert np.allclose(np.sort(surface_distances(a, b, sp)[0]), np.sort(brute[0]))


def test_singleton_axis_of_a_2d_image_is_dropped():
    a = np.zeros((1, 12, 12), dtype=bool)
    b = np.zeros_like(a)
    a[0, 2:6, 2:6] = True
    b[0, 3:8, 2:6] = True
    got = assd_hd95(a, b, (999.0, 0.5, 0.5))
    want = assd_hd95(a[0], b[0], (0.5, 0.5))
    assert got == pytest.approx(want) and got[1] < 5  # nnU-Net's dummy spacing 999 never enters


# -------------------------------------------------------------------------------------------- empty rules (mm mode)
def test_empty_rules_default_mode():
    ref = np.zeros((8, 8, 8), dtype=np.uint8)
    pred = np.zeros_like(ref)
    ref[1:4, 1:4, 1:4] = 1  # class 1 only in the reference
    pred[5:7, 5:7, 5:7] = 2  # class 2 only in the prediction; class 3 nowhere
    m = evaluate_case_mm(ref, pred, [1, 2, 3], spacing=(1, 1, 1))
    assert m[1]["Dice"] == 0 and math.isnan(m[1]["ASD"]) and math.isnan(m[1]["HD95"])
    assert m[1]["empty"] == "prediction"
    assert m[2]["Dice"] == 0 and math.isnan(m[2]["ASD"]) and m[2]["empty"] == "reference"
    assert m[3]["empty"] == "both"  # absent from both: undefined, as in nnU-Net (not a perfect score)
    assert math.isnan(m[3]["Dice"]) and math.isnan(m[3]["ASD"]) and math.isnan(m[3]["HD95"])


def test_undefined_distances_are_counted_and_left_out_of_the_means():
    present = {"Dice": 0.5, "ASD": 2.0, "HD95": 4.0, "empty": "none"}
    missing = {"Dice": 0.0, "ASD": math.nan, "HD95": math.nan, "empty": "prediction"}
    both = {"Dice": math.nan, "ASD": math.nan, "HD95": math.nan, "empty": "both"}
    per_case = [{1: present, 2: missing}, {1: missing, 2: both}]
    s = summarise(per_case, [1, 2], ["Dice", "ASD", "HD95"])
    assert s["mean"][1] == {"Dice": 0.25, "ASD": 2.0, "HD95": 4.0, "n": 2, "n_undefined": 1, "n_reference": 2,
                            "n_cases": 2, "scored": True}
    # class 2: missed in case 0 (Dice 0, distances undefined), absent from both in case 1 (not scored there)
    assert s["mean"][2]["Dice"] == 0.0 and math.isnan(s["mean"][2]["ASD"])
    assert (s["mean"][2]["n"], s["mean"][2]["n_undefined"], s["mean"][2]["n_reference"]) == (1, 1, 1)
    assert s["foreground_mean"]["Dice"] == pytest.approx(0.125)
    assert s["foreground_mean"]["ASD"] == pytest.approx(2.0) and s["foreground_mean"]["n_undefined"] == 2
    assert s["case_mean"][0]["Dice"] == 0.25 and s["case_mean"][0]["ASD"] == 2.0
    assert s["case_mean"][1]["Dice"] == 0.0  # the absent class 2 does not lift case 1's mean


def test_a_class_absent_from_every_reference_is_not_scored_and_stays_out_of_group_and_overall_means():
    ref0 = np.zeros((10, 10, 10), dtype=np.uint8)
    ref0[1:5, 1:5, 1:5] = 1  # 64 voxels
    ref0[6:9, 6:9, 6:9] = 2  # 27 voxels
    pred0 = np.zeros_like(ref0)
    pred0[1:5, 1:5, 1:3] = 1  # 32 voxels, all inside class 1
    pred0[6:9, 6:9, 6:9] = 2
    pred0[0, 8:10, 0] = 3  # class 3: a false positive; no reference has it
    ref1 = np.zeros_like(ref0)
    ref1[2:4, 2:4, 2:4] = 1  # class 2 absent from case 1 on both sides
    pred1 = ref1.copy()
    per_case = [evaluate_case_mm(r, p, [1, 2, 3], (1, 1, 1)) for r, p in ((ref0, pred0), (ref1, pred1))]
    assert math.isnan(per_case[1][2]["Dice"]) and per_case[0][3]["Dice"] == 0.0 and math.isnan(per_case[1][3]["Dice"])
    s = summarise(per_case, [1, 2, 3], ["Dice", "ASD", "HD95"], groups=[[1], [2, 3]], group_names=["head", "tail"])
    dice1 = (2 * 32 / (64 + 32) + 1.0) / 2
    assert s["mean"][1]["Dice"] == pytest.approx(dice1) and s["mean"][1]["n"] == 2
    assert s["mean"][2]["Dice"] == 1.0 and s["mean"][2]["n"] == 1  # not lifted or lowered by the absent case
    assert s["mean"][3]["Dice"] == 0.0 and s["mean"][3]["n"] == 1
    assert (s["mean"][3]["scored"], s["mean"][3]["n_reference"]) == (False, 0)
    assert s["group_mean"]["tail"]["Dice"] == 1.0 and s["group_mean"]["tail"]["classes_scored"] == [2]
    assert s["foreground_mean"]["Dice"] == pytest.approx((dice1 + 1.0) / 2)
    assert s["case_mean"][1]["Dice"] == 1.0  # case 1: class 1 only (class 2 undefined, class 3 not scored)
    # protocol B's convention scores every class
    b = summarise(per_case, [1, 2, 3], ["Dice"], groups=[[1], [2, 3]], group_names=["head", "tail"],
                  score_all_classes=True)
    assert b["group_mean"]["tail"]["Dice"] == pytest.approx(0.5)


def test_group_means_are_means_of_the_class_means():
    per_case = [{c: {"Dice": d, "ASD": a, "empty": "none"} for c, d, a in [(1, 0.9, 1.0), (2, 0.5, 3.0),
                                                                          (3, 0.1, 9.0)]}]
    s = summarise(per_case, [1, 2, 3], ["Dice", "ASD"], groups=[[1], [2, 3]], group_names=["head", "tail"])
    assert s["group_mean"]["head"]["Dice"] == pytest.approx(0.9)
    assert s["group_mean"]["tail"]["Dice"] == pytest.approx(0.3)
    assert s["group_mean"]["tail"]["ASD"] == pytest.approx(6.0)
    assert s["group_mean"]["tail"]["classes"] == [2, 3]


# ---------------------------------------------------------------------------------------------------- ignore label
def test_ignore_label_voxels_are_excluded_from_dice_and_distances():
    ref = np.zeros((12, 12, 12), dtype=np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    ref[8:11, 8:11, 8:11] = 9  # ignore
    pred = (ref == 1).astype(np.uint8)
    pred[8:11, 8:11, 8:11] = 1  # predicted class 1 where the reference says "ignore"
    m = evaluate_case_mm(ref, pred, [1], spacing=(1, 1, 1), ignore_label=9)[1]
    assert (m["Dice"], m["ASD"], m["HD95"], m["FP"]) == (1.0, 0.0, 0.0, 0)
    unignored = evaluate_case_mm(ref, pred, [1], spacing=(1, 1, 1))[1]
    assert unignored["FP"] == 27 and unignored["Dice"] < 1 and unignored["HD95"] > 0
    b = evaluate_case_protocol_b(ref, pred, [1], ignore_label=9)[1]
    assert b["Dice"] == 1.0 and b["ASD"] == 0.0


# ------------------------------------------------------------------------------------------------------ protocol B
def test_protocol_b_shape_is_z_y_x_80_160_160():
    assert PROTOCOL_B_SHAPE == (80, 160, 160)
    seg = np.random.default_rng(0).integers(0, 3, size=(37, 203, 190))
    out = resize_nearest(seg)
    assert out.shape == (80, 160, 160)
    assert set(np.unique(out)) <= {0, 1, 2}


def test_nearest_index_mapping_equals_pytorch_nearest_on_float32():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    for n_in in [37, 84, 150, 168, 336, 512, 80, 160, 40]:
        for n_out in (80, 160):
            x = torch.arange(n_in, dtype=torch.float32).view(1, 1, n_in)
            want = F.interpolate(x, size=n_out, mode="nearest").view(-1).numpy().astype(int)
            assert np.array_equal(nearest_indices(n_in, n_out), want), (n_in, n_out)
    vol = np.random.default_rng(2).integers(0, 14, size=(45, 96, 101)).astype(np.float32)
    want = F.interpolate(torch.from_numpy(vol)[None, None], size=PROTOCOL_B_SHAPE, mode="nearest")[0, 0].numpy()
    assert np.array_equal(resize_nearest(vol), want)


def test_protocol_b_rules_penalty_128_and_directed_asd_in_voxels():
    shape = PROTOCOL_B_SHAPE  # identity resize: the numbers below are on these very voxels
    ref = np.zeros(shape, dtype=np.uint8)
    pred = np.zeros(shape, dtype=np.uint8)
    ref[20:50, 40:100, 40:100] = 1
    pred[30:40, 60:70, 60:70] = 1  # small, inside the reference
    ref[60:70, 10:20, 10:20] = 2  # class 2 only in the reference
    pred[60:70, 130:140, 130:140] = 3  # class 3 only in the prediction; class 4 nowhere
    m = evaluate_case_protocol_b(ref, pred, [1, 2, 3, 4])
    d_pr, d_rp = brute_distances(pred == 1, ref == 1, (1, 1, 1))
    assert m[1]["ASD"] == pytest.approx(d_pr.mean())  # prediction -> reference only
    assert abs(d_pr.mean() - d_rp.mean()) > 1
    assert m[1]["Dice"] == pytest.approx(2 * 1000 / (30 * 60 * 60 + 1000))
    assert (m[2]["Dice"], m[2]["ASD"]) == (0.0, 128.0)
    assert (m[3]["Dice"], m[3]["ASD"]) == (0.0, 128.0)
    assert (m[4]["Dice"], m[4]["ASD"]) == (1.0, 0.0)


def test_protocol_b_resizes_each_side_so_shapes_may_differ_and_spacing_plays_no_part():
    ref = np.zeros((40, 80, 80), dtype=np.uint8)
    ref[10:30, 20:60, 20:60] = 1
    pred = resize_nearest(ref, PROTOCOL_B_SHAPE)  # already at the protocol's shape
    m = evaluate_case_protocol_b(ref, pred, [1])[1]
    assert (m["Dice"], m["ASD"]) == (1.0, 0.0)
    assert m["n_ref"] == 20 * 2 * 40 * 2 * 40 * 2


def test_protocol_b_refuses_2d():
    with pytest.raises(ValueError, match="3D"):
        evaluate_case_protocol_b(np.zeros((1, 30, 30), int), np.zeros((1, 30, 30), int), [1])


def test_protocol_b_mean_equals_mean_over_cases_of_the_mean_over_classes():
    rng = np.random.default_rng(5)
    per_case = []
    for _ in range(3):
        ref = np.zeros(PROTOCOL_B_SHAPE, dtype=np.uint8)
        pred = np.zeros_like(ref)
        for c in (1, 2, 3):
            if rng.random() < 0.8:
                z, y, x = rng.integers(5, 60), rng.integers(5, 130), rng.integers(5, 130)
                ref[z:z + 10, y:y + 20, x:x + 20] = c
            if rng.random() < 0.8:
                z, y, x = rng.integers(5, 60), rng.integers(5, 130), rng.integers(5, 130)
                pred[z:z + 10, y:y + 20, x:x + 20] = c
        per_case.append(evaluate_case_protocol_b(ref, pred, [1, 2, 3]))
    s = summarise(per_case, [1, 2, 3], ["Dice", "ASD"], score_all_classes=True)
    for metric in ("Dice", "ASD"):
        want = np.mean([np.mean([pc[c][metric] for c in (1, 2, 3)]) for pc in per_case])
        assert s["foreground_mean"][metric] == pytest.approx(want)
