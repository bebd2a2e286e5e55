"""nnunetv2_dca.planning.class_groups: one accessor for a plans' class groups, validated before training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from netspec import REQ_IMPORT, tiny_arch_kwargs
from nnunetv2_dca.planning.class_groups import ClassGroupsError, plans_class_groups, validate_groups


def _plans(groups_per_config: dict) -> dict:
    configs = {}
    for name, groups in groups_per_config.items():
        kw = tiny_arch_kwargs(2, "plain") if groups is None else tiny_arch_kwargs(2, "plain", class_groups=groups)
        configs[name] = {"architecture": {"network_class_name": "nnunetv2_dca.network.dca_unet.DCAPlainConvUNet",
                                          "arch_kwargs": kw, "_kw_requires_import": list(REQ_IMPORT)}}
    return {"plans_name": "nnUNetPlansDCA", "dataset_name": "Dataset999_X", "configurations": configs}


@pytest.mark.parametrize("groups, match", [
    ([[1], [2], [3, 99]], r"unknown \[99\]"),
    ([[1], [2], [3.5]], r"non-integer class ids \[3\.5\]"),
    ([[1], [2], ["3"]], r"non-integer class ids \['3'\]"),
    ([[1], [2], [True, 3]], r"non-integer class ids \[True\]"),
    ([[1, 2], [2], [3]], r"duplicated \[2\]"),
    ([[1], [3]], r"missing \[2\]"),
    ([[1], [], [2, 3]], "non-empty"),
    ("1,2,3", "list of non-empty groups"),
])
def test_invalid_groups_are_refused_naming_the_file(groups, match):
    with pytest.raises(ClassGroupsError, match=match) as e:
        validate_groups(groups, 4, "/p/plans.json, configuration '2d'")
    assert str(e.value).startswith("/p/plans.json, configuration '2d'")


def test_valid_groups_keep_expert_order():
    assert validate_groups([[3], [1, 2]], 4, "x") == [[3], [1, 2]]
    assert validate_groups([(2,), (np.int64(1), 3)], 4, "x") == [[2], [1, 3]]  # numpy ints are ints


def test_groups_come_from_arch_kwargs_not_the_provenance_copy():
    plans = _plans({"2d": [[1, 2], [3]], "3d_fullres": [[1, 2], [3]]})
    plans["dca"] = {"planned_class_groups": [[1], [2], [3]], "class_groups": [[1], [2], [3]]}  # stale copies
    assert plans_class_groups(plans, 4) == ([[1, 2], [3]], ["head", "tail"])
    assert plans_class_groups(plans, 4, "2d") == ([[1, 2], [3]], ["head", "tail"])


def test_configurations_that_disagree_need_a_name_and_inheritance_is_followed():
    plans = _plans({"2d": [[1], [2], [3]], "3d_fullres": [[1, 2], [3]]})
    plans["configurations"]["3d_lowres_like"] = {"inherits_from": "3d_fullres"}
    with pytest.raises(ClassGroupsError, match="different class_groups.*name the configuration"):
        plans_class_groups(plans, 4, plans_file="p.json")
    assert plans_class_groups(plans, 4, "3d_lowres_like")[0] == [[1, 2], [3]]
    with pytest.raises(ClassGroupsError, match="no configuration '3d_cascade'"):
        plans_class_groups(plans, 4, "3d_cascade")


def test_stock_plans_have_no_groups():
    assert plans_class_groups(_plans({"2d": None}), 4) == (None, None)


def _write_seg(path: Path, arr: np.ndarray) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(arr.astype(np.uint8)), str(path))


def test_evaluate_reports_hand_edited_groups(tmp_path):
    # README: users may edit arch_kwargs.class_groups; evaluate must report the groups the network was built with
    from nnunetv2_dca.evaluation.evaluate import evaluate_folders

    ref = np.zeros((4, 8, 8), np.uint8)
    ref[0, :2, :2], ref[1, :2, :2], ref[2, :2, :2] = 1, 2, 3
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred").mkdir()
    _write_seg(tmp_path / "ref" / "c.nii.gz", ref)
    _write_seg(tmp_path / "pred" / "c.nii.gz", ref)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "a": 1, "b": 2, "c": 3},
                                                       "file_ending": ".nii.gz", "channel_names": {"0": "CT"}}))
    plans = _plans({"3d_fullres": [[1, 2], [3]]})
    plans["dca"] = {"planned_class_groups": [[1], [2], [3]]}
    (tmp_path / "plans.json").write_text(json.dumps(plans))
    result = evaluate_folders(str(tmp_path / "ref"), str(tmp_path / "pred"), str(tmp_path / "dataset.json"),
                              str(tmp_path / "plans.json"), write=False)
    assert result["groups"] == {"head": [1, 2], "tail": [3]}


@pytest.fixture()
def trainer_paths(tmp_path, monkeypatch):
    # nnU-Net 2.8 reads its folders from the environment when they are used
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "preprocessed"))
    return tmp_path


def _trainer_plans(groups) -> dict:
    plans = _plans({"2d": groups})
    plans.update({"continue_training": False, "original_median_spacing_after_transp": [1, 1],
                  "original_median_shape_after_transp": [32, 32], "image_reader_writer": "SimpleITKIO",
                  "transpose_forward": [0, 1], "transpose_backward": [0, 1],
                  "foreground_intensity_properties_per_channel": {}})
    plans["configurations"]["2d"].update({
        "data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2, "patch_size": [32, 32],
        "median_image_size_in_voxels": [32, 32], "spacing": [1, 1], "normalization_schemes": ["ZScoreNormalization"],
        "use_mask_for_norm": [False], "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_probabilities":
            "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": {}, "resampling_fn_seg_kwargs": {},
        "resampling_fn_probabilities_kwargs": {}, "batch_dice": True})
    return plans


DATASET_JSON = {"labels": {"background": 0, "a": 1, "b": 2, "c": 3}, "channel_names": {"0": "CT"},
                "numTraining": 2, "file_ending": ".nii.gz"}


@pytest.mark.parametrize("groups, match", [([[1], [2], [3, 99]], r"unknown \[99\]"),
                                           ([[1], [2], [3.5]], r"non-integer class ids \[3\.5\]")])
def test_trainer_refuses_hand_edited_groups_before_writing_anything(trainer_paths, groups, match):
    from nnunetv2_dca.trainers.dca import nnUNetTrainerDCA

    with pytest.raises(ClassGroupsError, match=match) as e:
        nnUNetTrainerDCA(_trainer_plans(groups), "2d", 0, DATASET_JSON, device=torch.device("cpu"))
    assert str(trainer_paths / "preprocessed" / "Dataset999_X" / "nnUNetPlansDCA.json") in str(e.value)
    assert "configuration '2d'" in str(e.value)
    assert not (trainer_paths / "results").exists()  # no output folder of a run that cannot start


def test_trainer_takes_valid_hand_edited_groups(trainer_paths):
    from nnunetv2_dca.trainers.dca import nnUNetTrainerDCA

    from nnunetv2_dca.trainers.dca import nnUNetTrainerDCA_asBuilt

    t = nnUNetTrainerDCA(_trainer_plans([[3], [1, 2]]), "2d", 0, DATASET_JSON, device=torch.device("cpu"))
    assert t.class_groups == [[3], [1, 2]] and t.group_names == ["head", "tail"]
    # the default's other-organ channel (last channel of each expert) takes the other group's classes
    assert t._lut.tolist() == [[0, 2, 2, 1], [0, 1, 2, 3]]
    t = nnUNetTrainerDCA_asBuilt(_trainer_plans([[3], [1, 2]]), "2d", 0, DATASET_JSON, device=torch.device("cpu"))
    assert t._lut.tolist() == [[0, 0, 0, 1], [0, 1, 2, 0]]  # the seed's label-split: other groups are background
