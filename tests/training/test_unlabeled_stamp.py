"""The unlabeled folder's stamp: ``DCAPreprocessor`` writes the plans' preprocessing settings into it, the
semi-supervised trainer recomputes them from its own plans and refuses a folder made with other settings (re-planned
to another spacing, the unlabeled step failed and left the old folder) or without a stamp, naming the folder, what
differs and the command that rebuilds it."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_dca.preprocessing import unlabeled as mod
from nnunetv2_dca.training import semi_supervised as ss

DATASET = "Dataset042_Stamp"
PLANS = "nnUNetPlansStamp"
CFG = "3d_fullres"
CASES = ["u_0001", "u_0002"]


def _plans(spacing=(5.0, 5.0, 5.0)) -> dict:
    """The parts of a plans file the preprocessing (and nnU-Net's plans classes) read."""
    return {
        "dataset_name": DATASET, "plans_name": PLANS, "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2], "image_reader_writer": "SimpleITKIO",
        "foreground_intensity_properties_per_channel": {"0": {"mean": 80.5, "std": 40.25, "percentile_00_5": -90.0,
                                                              "percentile_99_5": 250.0}},
        "configurations": {CFG: {
            "data_identifier": f"{PLANS}_{CFG}", "preprocessor_name": "DCAPreprocessor", "batch_size": 2,
            "patch_size": [32, 64, 64], "spacing": list(spacing), "normalization_schemes": ["CTNormalization"],
            "use_mask_for_norm": [False], "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "architecture": {"network_class_name": "x", "arch_kwargs": {}, "_kw_requires_import": []}}},
    }


def _managers(plans: dict):
    pm = PlansManager(copy.deepcopy(plans))
    return pm, pm.get_configuration(CFG)


def _fake_case(folder: Path, case: str) -> None:
    for suffix in (".b2nd", "_seg.b2nd", ".pkl"):
        (folder / f"{case}{suffix}").write_bytes(b"")


def _preprocess(folder: Path, plans: dict, monkeypatch: pytest.MonkeyPatch, fail_on: str = "") -> None:
    """``DCAPreprocessor.preprocess_unlabeled`` with the per-case work replaced by empty files (optionally failing
    on one case, as an interrupted or failing unlabeled step would)."""

    def fake_case(preprocessor, case, out, files, *args):
        if case == fail_on:
            raise mod.UnlabeledImageError(f"unlabeled case {case!r} could not be preprocessed (simulated)")
        _fake_case(Path(out).parent, case)

    monkeypatch.setattr(mod, "_preprocess_unlabeled_case", fake_case)
    pm, cm = _managers(plans)
    mod.DCAPreprocessor(verbose=False).preprocess_unlabeled({c: [f"/raw/{c}_0000.nii.gz"] for c in CASES},
                                                            str(folder), pm, cm, {}, 1)


def _bare_trainer(folder: Path, plans: dict) -> ss.nnUNetTrainerSemiSupervised:
    """A base trainer without nnU-Net's __init__: only what opening the unlabeled folder touches."""
    t = ss.nnUNetTrainerSemiSupervised.__new__(ss.nnUNetTrainerSemiSupervised)
    t.plans_manager, t.configuration_manager = _managers(plans)
    t.configuration_name, t.unlabeled_dataset_folder, t.dataset_json = CFG, str(folder), {"file_ending": ".nii.gz"}
    t.is_ddp, t.is_cascaded = False, False

    class NotOpened(nnUNetDatasetBlosc2):
        def __init__(self, *args, **kwargs):
            raise AssertionError(f"the trainer opened the unlabeled folder {folder} for training")

    t.dataset_class = NotOpened
    return t


# ----------------------------------------------------------------------------------------------- the stamp itself

def test_stamp_holds_what_preprocessing_depends_on():
    pm, cm = _managers(_plans())
    stamp = mod.unlabeled_stamp(pm, cm, reversed(CASES))
    assert stamp["case_ids"] == CASES and stamp["data_identifier"] == f"{PLANS}_{CFG}"
    assert stamp["settings"]["spacing"] == [5.0, 5.0, 5.0]
    assert set(stamp["settings"]) == {
        "spacing", "transpose_forward", "normalization_schemes", "use_mask_for_norm", "resampling_fn_data",
        "resampling_fn_data_kwargs", "resampling_fn_seg", "resampling_fn_seg_kwargs",
        "foreground_intensity_properties_per_channel", "image_reader_writer"}
    assert json.loads(json.dumps(stamp)) == stamp  # survives the round trip through the file
    # patch size / batch size / network do not change a preprocessed case: not in the stamp
    other = _plans()
    other["configurations"][CFG].update(patch_size=[16, 32, 32], batch_size=4)
    assert mod.stamp_differences(stamp, mod.unlabeled_stamp(*_managers(other), CASES)) == []


@pytest.mark.parametrize("change, word", [
    (lambda p: p["configurations"][CFG].update(spacing=[2.5, 2.5, 2.5]), "spacing"),
    (lambda p: p.update(transpose_forward=[2, 0, 1]), "transpose_forward"),
    (lambda p: p["configurations"][CFG].update(normalization_schemes=["ZScoreNormalization"]),
     "normalization_schemes"),
    (lambda p: p["configurations"][CFG].update(use_mask_for_norm=[True]), "use_mask_for_norm"),
    (lambda p: p["configurations"][CFG]["resampling_fn_data_kwargs"].update(order=1), "resampling_fn_data_kwargs"),
    (lambda p: p["foreground_intensity_properties_per_channel"]["0"].update(mean=81.0),
     "foreground_intensity_properties_per_channel"),
    (lambda p: p.update(image_reader_writer="NibabelIO"), "image_reader_writer"),
])
def test_stamp_comparison_names_what_differs(change, word):
    old = mod.unlabeled_stamp(*_managers(_plans()), CASES)
    plans = _plans()
    change(plans)
    differences = mod.stamp_differences(old, mod.unlabeled_stamp(*_managers(plans), CASES))
    assert len(differences) == 1 and differences[0].startswith(word + ":"), differences


def test_stamp_comparison_names_missing_and_extra_cases():
    pm, cm = _managers(_plans())
    differences = mod.stamp_differences(mod.unlabeled_stamp(pm, cm, CASES), mod.unlabeled_stamp(pm, cm, ["u_0001",
                                                                                                         "u_0003"]))
    assert differences == ["cases preprocessed but missing from the folder: u_0002",
                           "cases in the folder that were not preprocessed with it: u_0003"]


# ------------------------------------------------------------------------- preprocessor writes, trainer checks

def test_preprocessor_writes_the_stamp_with_the_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / f"{PLANS}_{CFG}_unlabeled"
    _preprocess(folder, _plans(), monkeypatch)
    assert sorted(os.listdir(folder)) == sorted([mod.STAMP_DIR] + [f"{c}{s}" for c in CASES
                                                                    for s in (".b2nd", "_seg.b2nd", ".pkl")])
    stamp = json.loads((folder / mod.STAMP_FILE).read_text())
    assert stamp == mod.unlabeled_stamp(*_managers(_plans()), CASES)
    pm, cm = _managers(_plans())
    assert mod.unlabeled_stamp_problem(str(folder), pm, cm, CASES) is None
    _bare_trainer(folder, _plans()).check_unlabeled_folder()  # same plans: accepted
    # the stamp must not stop nnU-Net from recognising the case folder (it refuses mixed file endings)
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    assert sorted(infer_dataset_class(str(folder))(str(folder)).identifiers) == sorted(CASES)


def test_folder_of_the_old_spacing_is_refused_after_a_failed_replan(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    """Preprocessed at 5 mm; re-planned to 2.5 mm, the unlabeled step fails and leaves the 5 mm folder: the trainer
    for the 2.5 mm plans refuses it (before opening it for training) and says how to rebuild it."""
    folder = tmp_path / f"{PLANS}_{CFG}_unlabeled"
    _preprocess(folder, _plans(spacing=(5.0, 5.0, 5.0)), monkeypatch)
    replanned = _plans(spacing=(2.5, 2.5, 2.5))
    with pytest.raises(mod.UnlabeledImageError, match="simulated"):
        _preprocess(folder, replanned, monkeypatch, fail_on=CASES[1])
    assert not [p for p in os.listdir(tmp_path) if p != folder.name]  # no temporary folder left

    trainer = _bare_trainer(folder, replanned)
    with pytest.raises(ss.UnlabeledDataError) as info:
        trainer.get_unlabeled_dataloader(0)
    msg = " ".join(str(info.value).split())
    assert str(folder) in msg and "spacing: folder [5.0, 5.0, 5.0], plans now [2.5, 2.5, 2.5]" in msg, msg
    assert f"nnUNetv2_preprocess -d {DATASET} -plans_name {PLANS} -c {CFG}" in msg, msg

    assert json.loads((folder / mod.STAMP_FILE).read_text())["settings"]["spacing"] == [5.0, 5.0, 5.0]  # old kept
    pm, cm = _managers(replanned)
    problem = mod.unlabeled_stamp_problem(str(folder), pm, cm, CASES)
    assert problem is not None and "spacing" in problem and "resampling" not in problem, problem


def test_folder_without_stamp_is_refused_with_the_rebuild_command(tmp_path: Path):
    folder = tmp_path / f"{PLANS}_{CFG}_unlabeled"
    folder.mkdir()
    for case in CASES:
        _fake_case(folder, case)
    trainer = _bare_trainer(folder, _plans())
    with pytest.raises(ss.UnlabeledDataError) as info:
        trainer.get_unlabeled_dataloader(0)
    msg = " ".join(str(info.value).split())
    assert str(folder) in msg and mod.STAMP_FILE in msg and "older nnunetv2-dca" in msg, msg
    assert f"nnUNetv2_preprocess -d {DATASET} -plans_name {PLANS} -c {CFG}" in msg, msg


def test_cases_changed_after_preprocessing_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / f"{PLANS}_{CFG}_unlabeled"
    _preprocess(folder, _plans(), monkeypatch)
    _fake_case(folder, "u_0009")  # copied in by hand: not preprocessed with these settings as far as anyone knows
    with pytest.raises(ss.UnlabeledDataError, match="not preprocessed with it: u_0009"):
        _bare_trainer(folder, _plans()).check_unlabeled_folder()
    (folder / mod.STAMP_FILE).write_text("{not json")
    with pytest.raises(ss.UnlabeledDataError, match="cannot be read"):
        _bare_trainer(folder, _plans()).check_unlabeled_folder()
