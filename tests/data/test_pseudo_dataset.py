"""The pseudo-label dataset writer shared by the benchmark's offline arm and `nnunetv2-dca distill`: contents,
provenance, ignore label, and the refusals (existing id, own source, bad name) that leave nothing behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nnunetv2_dca.data.pseudo_dataset import PseudoDatasetError, unlabeled_cases, write_pseudo_label_dataset


def _semi(raw: Path) -> Path:
    semi = raw / "Dataset952_Semi"
    for sub in ("imagesTr", "labelsTr", "imagesTrUnlabeled"):
        (semi / sub).mkdir(parents=True)
    (semi / "imagesTr" / "a_0000.nii.gz").write_text("img a")
    (semi / "labelsTr" / "a.nii.gz").write_text("lab a")
    for ch in ("0000", "0001"):  # two channels of one unlabeled case
        (semi / "imagesTrUnlabeled" / f"u_{ch}.nii.gz").write_text(f"img u {ch}")
    (semi / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz", "numTraining": 1, "numUnlabeled": 1,
                                                   "labels": {"background": 0, "x": 1, "y": 2},
                                                   "channel_names": {"0": "CT", "1": "CT2"}}))
    return semi


def _preds(tmp: Path) -> Path:
    preds = tmp / "pl"
    preds.mkdir()
    (preds / "u.nii.gz").write_text("predicted u")
    return preds


def test_unlabeled_cases_groups_channel_files(tmp_path: Path):
    semi = _semi(tmp_path / "raw")
    (semi / "imagesTrUnlabeled" / "notes.txt").write_text("ignored")
    assert unlabeled_cases(str(semi), ".nii.gz") == {"u": ["u_0000.nii.gz", "u_0001.nii.gz"]}


def test_dataset_holds_labeled_and_pseudo_labeled_cases_with_provenance_and_ignore_label(tmp_path: Path):
    raw = tmp_path / "raw"
    semi, preds = _semi(raw), _preds(tmp_path)
    target = Path(write_pseudo_label_dataset(str(raw), str(semi), str(preds), 970, "SemiDistilled",
                                             {"u": {"ignored_voxel_fraction": 0.25}}, "a test",
                                             ignore_label=True, common={"model": "m"}))
    assert target.name == "Dataset970_SemiDistilled"
    assert sorted(os.listdir(target / "imagesTr")) == ["a_0000.nii.gz", "u_0000.nii.gz", "u_0001.nii.gz"]
    assert (target / "labelsTr" / "u.nii.gz").read_text() == "predicted u"
    # images are hard links of the source's files (no copies of the CT volumes)
    assert os.path.samefile(target / "imagesTr" / "u_0001.nii.gz", semi / "imagesTrUnlabeled" / "u_0001.nii.gz")
    dj = json.loads((target / "dataset.json").read_text())
    assert dj["numTraining"] == 2 and "numUnlabeled" not in dj and dj["name"] == "SemiDistilled"
    assert dj["labels"]["ignore"] == 3  # nnU-Net's rule: the ignore label is the highest one
    prov = json.loads((target / "pseudo_labels.json").read_text())
    assert prov["cases"] == {"a": {"source": "reference label"},
                             "u": {"model": "m", "ignored_voxel_fraction": 0.25, "source": "pseudo-label"}}
    assert sorted(os.listdir(semi / "labelsTr")) == ["a.nii.gz"]  # source untouched


def test_existing_id_is_refused_then_replaced_safely_with_overwrite(tmp_path: Path):
    raw = tmp_path / "raw"
    semi, preds = _semi(raw), _preds(tmp_path)
    old = raw / "Dataset970_Old"
    old.mkdir()
    (old / "marker").write_text("old")
    (old / "pseudo_labels.json").write_text("{}")  # a pseudo-label dataset: the writer may replace it
    with pytest.raises(PseudoDatasetError, match="970 already exists.*--overwrite"):
        write_pseudo_label_dataset(str(raw), str(semi), str(preds), 970, "New", {}, "t")
    assert (old / "marker").read_text() == "old"
    assert not [d for d in os.listdir(raw) if d.startswith(".")]  # no temporary folder left behind
    # a failure while writing (a pseudo-label missing) keeps the old dataset and leaves nothing half-written
    (semi / "imagesTrUnlabeled" / "v_0000.nii.gz").write_text("img v")
    with pytest.raises(PseudoDatasetError, match="v_0000.nii.gz"):
        write_pseudo_label_dataset(str(raw), str(semi), str(preds), 970, "New", {}, "t", overwrite=True)
    assert (old / "marker").exists() and not [d for d in os.listdir(raw) if d.startswith(".")]
    (preds / "v.nii.gz").write_text("predicted v")
    target = write_pseudo_label_dataset(str(raw), str(semi), str(preds), 970, "New", {}, "t", overwrite=True)
    assert sorted(d for d in os.listdir(raw) if d.startswith("Dataset970")) == ["Dataset970_New"]
    assert Path(target, "labelsTr", "v.nii.gz").read_text() == "predicted v"


@pytest.mark.parametrize("dataset_id, name, message", [
    (952, "Semi", "is the source dataset itself"),
    (0, "X", "1..999"),
    (971, "bad name", "may only contain"),
])
def test_refusals_name_the_problem(tmp_path: Path, dataset_id, name, message):
    raw = tmp_path / "raw"
    semi, preds = _semi(raw), _preds(tmp_path)
    with pytest.raises(PseudoDatasetError, match=message):
        write_pseudo_label_dataset(str(raw), str(semi), str(preds), dataset_id, name, {}, "t", overwrite=True)
    assert (semi / "labelsTr" / "a.nii.gz").is_file()


def test_no_unlabeled_images_is_refused(tmp_path: Path):
    raw = tmp_path / "raw"
    semi, preds = _semi(raw), _preds(tmp_path)
    for f in os.listdir(semi / "imagesTrUnlabeled"):
        os.remove(semi / "imagesTrUnlabeled" / f)
    with pytest.raises(PseudoDatasetError, match="no unlabeled images"):
        write_pseudo_label_dataset(str(raw), str(semi), str(preds), 970, "X", {}, "t")


def test_overwrite_refuses_a_dataset_without_provenance(tmp_path: Path):
    """Regression (issue 27): overwrite replaced any dataset of the id, e.g. the user's own. Now only a pseudo-label
    dataset (pseudo_labels.json, as this writer makes) is replaced; anything else is refused untouched."""
    from treesnap import changed, snapshot

    raw = tmp_path / "raw"
    semi, preds = _semi(raw), _preds(tmp_path)
    mine = raw / "Dataset970_Mine"
    (mine / "labelsTr").mkdir(parents=True)
    (mine / "labelsTr" / "x.nii.gz").write_text("my label")
    before = snapshot(tmp_path)
    with pytest.raises(PseudoDatasetError, match="Dataset970_Mine.*pseudo_labels.json.*another id"):
        write_pseudo_label_dataset(str(raw), str(semi), str(preds), 970, "New", {}, "t", overwrite=True)
    assert changed(before, snapshot(tmp_path)) == []
