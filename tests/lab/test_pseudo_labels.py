"""Pseudo-label scoring: confusion counts and Dice by hand, group means and voxel shares, which network output each
source is (fused experts vs. D_A vs. a stock network), clear errors. The trained-model path runs in the tiny
end-to-end benchmark (tests/lab/benchmark/test_benchmark.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from netspec import REQ_IMPORT, tiny_arch_kwargs
from nnunetv2_dca import inference  # pseudo-label scoring loads its model and cases with these helpers
from nnunetv2_dca.lab import pseudo_labels as P
from nnunetv2_dca.network.fusion import fuse_expert_logits

GROUPS = [[1], [2, 3], [4]]
NAMES = ["head", "medium", "tail"]


def test_confusion_counts_and_dice_by_hand():
    ref = np.array([[0, 1, 1, 2], [2, 2, 0, 3]])
    pred = np.array([[0, 1, 2, 2], [2, 0, 0, 1]])
    c = P.confusion_counts(pred, ref, 5)
    # class 1: tp 1 (0,1), fp 1 (1,3), fn 1 (0,2); class 2: tp 2, fp 1 (0,2), fn 1 (1,1); class 3: fn 1; class 4: none
    assert c[1].tolist() == [1, 1, 1]
    assert c[2].tolist() == [2, 1, 1]
    assert c[3].tolist() == [0, 0, 1]
    assert c[4].tolist() == [0, 0, 0]
    dice = P.dice_from_counts(c)
    assert dice[1] == pytest.approx(2 / 4) and dice[2] == pytest.approx(4 / 6)
    assert dice[3] == 0.0 and dice[4] is None  # missed entirely vs. in neither
    # voxels outside ``valid`` (the ignore label) count for nothing
    valid = ref != 3
    assert P.confusion_counts(pred, ref, 5, valid)[3].tolist() == [0, 0, 0]
    assert P.confusion_counts(pred, ref, 5, valid)[1].tolist() == [1, 0, 1]


def test_summary_group_means_skip_undefined_classes_and_shares_sum_like_the_labels():
    ref = np.array([0, 0, 0, 0, 1, 1, 2, 3, 4, 4])
    pred = np.array([0, 0, 0, 0, 1, 0, 2, 0, 0, 0])  # tail (4) never predicted: share 0 of a true 0.2
    s = P.summarise_counts(P.confusion_counts(pred, ref, 5), GROUPS, NAMES)
    assert s["dice"] == {"1": pytest.approx(2 / 3), "2": 1.0, "3": 0.0, "4": 0.0}
    assert s["groups"] == {"head": pytest.approx(2 / 3), "medium": 0.5, "tail": 0.0}
    assert s["mean"] == pytest.approx((2 / 3 + 1 + 0 + 0) / 4)
    assert s["voxel_share"] == {"head": 0.1, "medium": 0.1, "tail": 0.0}
    assert s["voxel_share_true"] == {"head": 0.2, "medium": 0.2, "tail": 0.2}
    # a class in neither prediction nor reference is left out of its group's mean, not counted as 0 or 1
    s = P.summarise_counts(P.confusion_counts(np.array([0, 1, 2]), np.array([0, 1, 2]), 5), GROUPS, NAMES)
    assert s["dice"]["3"] is None and s["groups"]["medium"] == 1.0 and s["groups"]["tail"] is None
    assert s["mean"] == 1.0


def _fake_predictor(net, patch):
    return SimpleNamespace(
        network=net, dataset_json={"file_ending": ".nii.gz", "channel_names": {"0": "CT"}},
        label_manager=SimpleNamespace(foreground_labels=[1, 2, 3, 4], has_ignore_label=False, ignore_label=None),
        configuration_manager=SimpleNamespace(patch_size=patch), tile_step_size=0.5, use_gaussian=True)


def _folders(tmp_path: Path, cases):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for c in cases:
        (images / f"{c}_0000.nii.gz").write_bytes(b"")
        (labels / f"{c}.nii.gz").write_bytes(b"")
    return str(images), str(labels)


@pytest.mark.parametrize("deep_supervision", [False, True])
def test_dca_sources_are_the_fused_experts_and_d_a(tmp_path, monkeypatch, deep_supervision):
    torch.manual_seed(0)
    kw = tiny_arch_kwargs(2, "plain", class_groups=GROUPS)
    net = get_network_from_plans("nnunetv2_dca.network.dca_unet.DCAPlainConvUNet", kw, REQ_IMPORT, 1, 5,
                                 allow_init=True, deep_supervision=deep_supervision)
    data = np.random.default_rng(0).normal(size=(1, 2, 16, 16)).astype(np.float32)  # 2 slices, one tile each
    reference = np.random.default_rng(1).integers(0, 5, size=(2, 16, 16))
    monkeypatch.setattr(inference, "load_model", lambda *a, **k: _fake_predictor(net, [16, 16]))
    monkeypatch.setattr(inference, "preprocess_case", lambda predictor, files, ref: (data, reference, {}))
    images, labels = _folders(tmp_path, ["a"])
    for fusion in ("product", "log_softmax"):
        result = P.pseudo_label_quality("model", images, labels, fusion=fusion)
        assert result["cases"] == ["a"] and result["fusion"] == fusion and result["class_groups"] == GROUPS
        net.eval()
        with torch.no_grad():
            out = net.all_outputs(torch.from_numpy(data).permute(1, 0, 2, 3))
        first = (lambda t: t[0] if isinstance(t, list) else t)
        fused = fuse_expert_logits([first(e) for e in out.experts], GROUPS, fusion).argmax(1).numpy()
        aggregate = first(out.aggregate).argmax(1).numpy()
        for source, pred in (("pseudo_label", fused), ("aggregate", aggregate)):
            expected = P.summarise_counts(P.confusion_counts(pred, reference, 5), GROUPS, NAMES)
            assert result["sources"][source] == expected
    assert not np.array_equal(fused, aggregate)  # the two sources really are different outputs


def test_stock_network_needs_groups_and_gives_its_prediction(tmp_path, monkeypatch):
    torch.manual_seed(0)
    kw = tiny_arch_kwargs(2, "plain")
    plain = get_network_from_plans("dynamic_network_architectures.architectures.unet.PlainConvUNet", kw, REQ_IMPORT,
                                   1, 5, allow_init=True, deep_supervision=False)
    data = np.random.default_rng(0).normal(size=(1, 1, 16, 16)).astype(np.float32)
    reference = np.random.default_rng(1).integers(0, 5, size=(1, 16, 16))
    monkeypatch.setattr(inference, "load_model", lambda *a, **k: _fake_predictor(plain, [16, 16]))
    monkeypatch.setattr(inference, "preprocess_case", lambda predictor, files, ref: (data, reference, {}))
    images, labels = _folders(tmp_path, ["a"])
    with pytest.raises(P.PseudoLabelError, match="not a DCA model, so the class groups must be given"):
        P.pseudo_label_quality("model", images, labels)
    result = P.pseudo_label_quality("model", images, labels, class_groups=GROUPS)
    assert list(result["sources"]) == ["prediction"] and result["fusion"] is None
    plain.eval()
    with torch.no_grad():
        pred = plain(torch.from_numpy(data).permute(1, 0, 2, 3)).argmax(1).numpy()
    assert result["sources"]["prediction"] == P.summarise_counts(P.confusion_counts(pred, reference, 5), GROUPS,
                                                                 NAMES)
    bad = np.full_like(reference, 7)
    monkeypatch.setattr(inference, "preprocess_case", lambda predictor, files, ref: (data, bad, {}))
    with pytest.raises(P.PseudoLabelError, match=r"a\.nii\.gz holds label 7, the model knows 0\.\.4"):
        P.pseudo_label_quality("model", images, labels, class_groups=GROUPS)


def test_case_selection_errors_name_the_folders(tmp_path):
    images, labels = _folders(tmp_path, ["a", "b"])
    assert P._cases(images, labels, ".nii.gz") == ["a", "b"]
    with pytest.raises(P.PseudoLabelError, match=r"case\(s\) c need <case>_0000.nii.gz in .*images"):
        P._cases(images, labels, ".nii.gz", ["a", "c"])
    with pytest.raises(P.PseudoLabelError, match="no case has both an image in .*images and a label in"):
        P._cases(images, labels, ".png")
    with pytest.raises(P.PseudoLabelError, match="folder not found: .*nowhere"):
        P._cases(str(tmp_path / "nowhere"), labels, ".nii.gz")


def test_explicit_case_that_is_a_path_is_refused(tmp_path):
    from nnunetv2_dca.caseids import CaseIdError

    images, labels = _folders(tmp_path, ["a"])
    with pytest.raises(CaseIdError, match=r"'\.\./labels/a' in the cases to score contains a path separator"):
        P._cases(images, labels, ".nii.gz", ["a", "../labels/a"])


def test_experts_are_fused_by_their_own_groups_and_summarised_by_the_given_ones(tmp_path, monkeypatch):
    """A one-group control (one expert over every class) scored by the run's three planned groups: the fusion uses
    the network's own group, the summary the given ones."""
    torch.manual_seed(0)
    kw = tiny_arch_kwargs(2, "plain", class_groups=[[1, 2, 3, 4]], expert_n_conv_per_stage=[2],
                          expert_dilations=[1])
    net = get_network_from_plans("nnunetv2_dca.network.dca_unet.DCAPlainConvUNet", kw, REQ_IMPORT, 1, 5,
                                 allow_init=True, deep_supervision=False)
    data = np.random.default_rng(0).normal(size=(1, 1, 16, 16)).astype(np.float32)
    reference = np.random.default_rng(1).integers(0, 5, size=(1, 16, 16))
    monkeypatch.setattr(inference, "load_model", lambda *a, **k: _fake_predictor(net, [16, 16]))
    monkeypatch.setattr(inference, "preprocess_case", lambda predictor, files, ref: (data, reference, {}))
    images, labels = _folders(tmp_path, ["a"])
    result = P.pseudo_label_quality("model", images, labels, class_groups=GROUPS)
    net.eval()
    with torch.no_grad():
        expert = net.all_outputs(torch.from_numpy(data).permute(1, 0, 2, 3)).experts[0]
    fused = fuse_expert_logits([expert], [[1, 2, 3, 4]], "product").argmax(1).numpy()
    assert result["class_groups"] == GROUPS and set(result["sources"]["pseudo_label"]["groups"]) == set(NAMES)
    assert result["sources"]["pseudo_label"] == P.summarise_counts(P.confusion_counts(fused, reference, 5), GROUPS,
                                                                   NAMES)
