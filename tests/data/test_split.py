"""nnunetv2-dca split: a fully labeled raw dataset -> a new semi-supervised one (the source is only read)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import numpy as np
import pytest

from movefaults import fail_moving_in
from nnunetv2_dca import __version__
from nnunetv2_dca.cli import main
from nnunetv2_dca.data import split as split_mod
from nnunetv2_dca.data.split import (PRESETS, choose_fraction, fraction_to_count, make_semi_supervised_split,
                                     match_preset_entries)

ENDING = ".nii.gz"


def _nifti(arr: np.ndarray, path: Path) -> None:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))


def tiny_dataset(raw: Path, dataset_id: int, identifiers: Iterable[str], name: str = "Tiny", channels: int = 1,
                 test: Iterable[str] = (), test_labels: bool = True) -> Path:
    """4x4x4 images (``channels`` of them per case) with a label in {0, 1}; optional imagesTs (+ labelsTs)."""
    ds = raw / f"Dataset{dataset_id:03d}_{name}"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (ds / sub).mkdir(parents=True)
    identifiers, test = list(identifiers), list(test)
    for k, ident in enumerate(identifiers + test):
        is_test = k >= len(identifiers)
        for ch in range(channels):
            _nifti(np.full((4, 4, 4), k * 10 + ch, np.int16), ds / ("imagesTs" if is_test else "imagesTr")
                   / f"{ident}_{ch:04d}{ENDING}")
        lab = np.zeros((4, 4, 4), np.uint8)
        lab[1:3, 1:3, 1:3] = 1
        if not is_test:
            _nifti(lab, ds / "labelsTr" / f"{ident}{ENDING}")
        elif test_labels:
            (ds / "labelsTs").mkdir(exist_ok=True)
            _nifti(lab, ds / "labelsTs" / f"{ident}{ENDING}")
    dataset_json = {"name": name, "channel_names": {str(c): f"ch{c}" for c in range(channels)},
                    "labels": {"background": 0, "organ": 1}, "numTraining": len(identifiers),
                    "file_ending": ENDING}
    (ds / "dataset.json").write_text(json.dumps(dataset_json))
    return ds


def snapshot(folder: Path) -> Dict[str, Tuple[int, int, str]]:
    """relative path -> (size, mtime_ns, sha256) of every file below ``folder``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def case_ids(folder: Path, channel_files: bool = True) -> List[str]:
    if not folder.is_dir():
        return []
    names = [f.name[:-len(ENDING)] for f in folder.iterdir() if f.name.endswith(ENDING)]
    return sorted({n[:-5] for n in names} if channel_files else set(names))


IMG40 = [f"img{i:04d}" for i in range(1, 41)]


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return tmp_path / "nnUNet_raw"


@pytest.fixture
def prep(tmp_path: Path) -> Path:
    return tmp_path / "nnUNet_preprocessed"


# ----------------------------------------------------------------------------------------------- fraction mode


def test_rounding_is_half_up_with_at_least_one_case():
    assert fraction_to_count(0.2, 40) == 8
    assert fraction_to_count(0.25, 10) == 3  # 2.5 -> 3 (Python's round() would give 2)
    assert fraction_to_count(0.1, 25) == 3  # 2.5000000000000004
    assert fraction_to_count(0.3, 5) == 2  # 1.4999999999999998 is meant as 1.5
    assert fraction_to_count(0.24, 10) == 2
    assert fraction_to_count(0.01, 10) == 1  # never zero labeled cases


def test_fraction_draw_depends_on_seed_not_on_listing_order():
    a = choose_fraction(IMG40, 0.2, seed=0)
    assert a == choose_fraction(list(reversed(IMG40)), 0.2, seed=0)
    assert len(a) == 8 and a == sorted(a) and set(a) <= set(IMG40)
    others = [choose_fraction(IMG40, 0.2, seed=s) for s in range(1, 6)]
    assert all(o != a for o in others)


def test_fraction_split_is_deterministic_and_separates_labels(raw, prep):
    src = tiny_dataset(raw, 1, IMG40, channels=2, test=["img0099"])
    before = snapshot(src)
    r1 = make_semi_supervised_split(str(raw), 1, 2, labeled_fraction=0.2, seed=3, preprocessed_dir=str(prep))
    r2 = make_semi_supervised_split(str(raw), 1, 3, labeled_fraction=0.2, seed=3, preprocessed_dir=str(prep))
    r3 = make_semi_supervised_split(str(raw), 1, 4, labeled_fraction=0.2, seed=4, preprocessed_dir=str(prep))
    assert snapshot(src) == before  # the source is only read
    out = Path(r1.path)
    assert out == raw / "Dataset002_Tiny_L20s3" and Path(r3.path).name == "Dataset004_Tiny_L20s4"
    labeled = r1.record["labeled"]
    assert len(labeled) == 8 and labeled == r2.record["labeled"] and labeled != r3.record["labeled"]
    unlabeled = sorted(set(IMG40) - set(labeled))
    assert r1.record["unlabeled"] == unlabeled and r1.record["test"] == ["img0099"]

    # labeled: both channels + label; unlabeled: both channels, and no label anywhere in the new dataset
    assert case_ids(out / "imagesTr") == labeled == case_ids(out / "labelsTr", channel_files=False)
    assert case_ids(out / "imagesTrUnlabeled") == unlabeled
    assert len(list((out / "imagesTr").iterdir())) == 16 and len(list((out / "imagesTrUnlabeled").iterdir())) == 64
    all_files = [p.name for p in out.rglob("*") if p.is_file()]
    assert not [u for u in unlabeled if f"{u}{ENDING}" in all_files]
    assert case_ids(out / "imagesTs") == ["img0099"] and case_ids(out / "labelsTs", channel_files=False) == ["img0099"]

    # files are hard links (same filesystem), never symlinks; content identical to the source
    f = out / "imagesTrUnlabeled" / f"{unlabeled[0]}_0001{ENDING}"
    assert not f.is_symlink() and os.path.samefile(f, src / "imagesTr" / f.name)
    assert r1.linked == 8 * 3 + 32 * 2 + 3 and r1.copied == 0  # labeled: 2 channels + label; test: same

    record = json.loads((out / "split.json").read_text())
    assert record == r1.record
    assert record["mode"] == "fraction" and record["seed"] == 3 and record["labeled_fraction"] == 0.2
    assert record["source_dataset"] == "Dataset001_Tiny" and record["version"] == __version__
    ds_json = json.loads((out / "dataset.json").read_text())
    assert ds_json["numTraining"] == 8 and ds_json["semi_supervised_split"] == "split.json"
    assert ds_json["numUnlabeled"] == 32 and ds_json["labels"] == {"background": 0, "organ": 1}
    assert not (prep / "Dataset002_Tiny_L20s3").exists()  # no validation cases: nnU-Net makes its own 5 folds


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.2])
def test_bad_fraction_is_refused(raw, fraction):
    tiny_dataset(raw, 1, IMG40[:5])
    with pytest.raises(ValueError, match="--labeled-fraction"):
        make_semi_supervised_split(str(raw), 1, 2, labeled_fraction=fraction)
    assert sorted(os.listdir(raw)) == ["Dataset001_Tiny"]


# ------------------------------------------------------------------------------------------ explicit case list


def test_labeled_cases_and_unknown_identifiers(raw):
    src = tiny_dataset(raw, 1, IMG40[:6])
    before = snapshot(src)
    with pytest.raises(ValueError, match="img0042, nope") as e:
        make_semi_supervised_split(str(raw), 1, 2, labeled_cases=["img0001", "img0042", "nope"])
    assert "img0001," not in str(e.value).split("not among")[0]
    r = make_semi_supervised_split(str(raw), 1, 2, labeled_cases=["img0005", "img0002", "img0005"])
    assert r.record["labeled"] == ["img0002", "img0005"] and r.record["mode"] == "cases"
    assert Path(r.path).name == "Dataset002_Tiny_L2c" and r.record["seed"] is None
    assert case_ids(Path(r.path) / "labelsTr", channel_files=False) == ["img0002", "img0005"]
    assert snapshot(src) == before


def test_all_cases_labeled_is_refused(raw):
    tiny_dataset(raw, 1, IMG40[:3])
    with pytest.raises(ValueError, match="fewer labeled"):
        make_semi_supervised_split(str(raw), 1, 2, labeled_cases=IMG40[:3])


def test_exactly_one_mode(raw):
    tiny_dataset(raw, 1, IMG40[:5])
    with pytest.raises(ValueError, match="exactly one"):
        make_semi_supervised_split(str(raw), 1, 2, labeled_fraction=0.2, preset="synapse-20")
    with pytest.raises(ValueError, match="exactly one"):
        make_semi_supervised_split(str(raw), 1, 2)


# ----------------------------------------------------------------------------------------------------- presets


def test_preset_entries_match_by_trailing_number():
    ids = ["BTCV_0002", "BTCV_0023", "case_10002", "img0003"]
    assert match_preset_entries(["0002", "0023"], ids, "synapse-20", "labeled", "X") == ["BTCV_0002", "BTCV_0023"]
    with pytest.raises(ValueError, match=r"'0034' matches no training case.*BTCV_0002"):
        match_preset_entries(["0034"], ids, "synapse-20", "labeled", "X")
    with pytest.raises(ValueError, match=r"'0003' matches several training cases \(case_0003, img0003\)"):
        match_preset_entries(["0003"], ids + ["case_0003"], "synapse-20", "labeled", "X")


def test_synapse_20_preset_on_img_identifiers(raw, prep):
    src = tiny_dataset(raw, 8, IMG40, name="Synapse", test=["img0061", "img0062"], test_labels=False)
    before = snapshot(src)
    r = make_semi_supervised_split(str(raw), 8, 108, preset="synapse-20", preprocessed_dir=str(prep))
    out = Path(r.path)
    assert out.name == "Dataset108_Synapse_synapse20"
    rec = json.loads((out / "split.json").read_text())
    assert rec["labeled"] == ["img0002", "img0023", "img0034", "img0039"]
    assert rec["validation"] == ["img0006", "img0025", "img0026", "img0040"]
    assert rec["test_from_training"] == ["img0004", "img0007", "img0010", "img0033", "img0035", "img0036"]
    assert rec["test"] == sorted(rec["test_from_training"] + ["img0061", "img0062"])
    assert len(rec["unlabeled"]) == 40 - 14 and not set(rec["unlabeled"]) & set(rec["labeled"] + rec["validation"])
    # labeled + validation are training cases with labels; protocol test cases go to imagesTs/labelsTs
    assert case_ids(out / "labelsTr", channel_files=False) == sorted(rec["labeled"] + rec["validation"])
    assert case_ids(out / "imagesTs") == rec["test"]
    assert case_ids(out / "labelsTs", channel_files=False) == rec["test_from_training"]
    assert case_ids(out / "imagesTrUnlabeled") == rec["unlabeled"]
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 8
    splits_file = prep / "Dataset108_Synapse_synapse20" / "splits_final.json"
    assert json.loads(splits_file.read_text()) == [{"train": rec["labeled"], "val": rec["validation"]}]
    assert rec["splits_final"] == str(splits_file)
    assert snapshot(src) == before

    # the 10% preset reuses validation/test; an identical existing split is fine, a different one is refused
    r10 = make_semi_supervised_split(str(raw), 8, 109, preset="synapse-10", preprocessed_dir=str(prep))
    assert r10.record["labeled"] == ["img0023", "img0028"] and len(r10.record["unlabeled"]) == 28
    (prep / "Dataset110_S").mkdir()
    (prep / "Dataset110_S" / "splits_final.json").write_text(json.dumps([{"train": ["x"], "val": ["y"]}]))
    with pytest.raises(FileExistsError, match="splits_final.json"):
        make_semi_supervised_split(str(raw), 8, 110, preset="synapse-10", name="S", preprocessed_dir=str(prep))
    assert not (raw / "Dataset110_S").exists()
    make_semi_supervised_split(str(raw), 8, 110, preset="synapse-10", name="S", preprocessed_dir=str(prep),
                               overwrite=True)
    assert json.loads((prep / "Dataset110_S" / "splits_final.json").read_text())[0]["train"] == ["img0023",
                                                                                                  "img0028"]


def test_preset_with_validation_needs_nnunet_preprocessed(raw):
    tiny_dataset(raw, 8, IMG40)
    with pytest.raises(ValueError, match="nnUNet_preprocessed"):
        make_semi_supervised_split(str(raw), 8, 9, preset="synapse-20", preprocessed_dir=None)
    assert sorted(os.listdir(raw)) == ["Dataset008_Tiny"]


def test_ambiguous_preset_entry_is_named(raw, prep):
    tiny_dataset(raw, 8, IMG40 + ["case_0023"])
    with pytest.raises(ValueError, match=r"'0023' matches several training cases \(case_0023, img0023\)"):
        make_semi_supervised_split(str(raw), 8, 9, preset="synapse-20", preprocessed_dir=str(prep))
    assert sorted(os.listdir(raw)) == ["Dataset008_Tiny"] and not prep.exists()


def test_amos_preset_uses_the_labeled_source_test_set(raw, prep):
    # the preset's labeled cases, DHC's 24 eval (validation) cases, two unlabeled ones
    ids = ["amos_0001", "amos_0017", "amos_0077", "amos_0358", "amos_0361", "amos_0400"]
    ids += list(PRESETS["amos-2"].validation)
    tiny_dataset(raw, 20, ids, name="AMOS", test=["amos_0008"], test_labels=False)
    # without labelsTs the official validation cases (the protocol's test set) are probably in imagesTr
    with pytest.raises(ValueError, match="labelsTs"):
        make_semi_supervised_split(str(raw), 20, 21, preset="amos-2", preprocessed_dir=str(prep))
    tiny_dataset(raw, 30, ids, name="AMOS", test=["amos_0008"], test_labels=True)
    r = make_semi_supervised_split(str(raw), 30, 31, preset="amos-2", preprocessed_dir=str(prep))
    assert r.record["labeled"] == ["amos_0017", "amos_0077", "amos_0358", "amos_0361"]
    assert r.record["unlabeled"] == ["amos_0001", "amos_0400"] and r.record["test"] == ["amos_0008"]
    # nnU-Net validates on DHC's eval cases (fold 0), not on a 5-fold split of the 4 labeled cases
    assert json.loads(Path(r.splits_file).read_text()) == [{"train": r.record["labeled"],
                                                            "val": sorted(PRESETS["amos-2"].validation)}]
    assert case_ids(Path(r.path) / "labelsTs", channel_files=False) == ["amos_0008"]
    assert PRESETS["amos-5"].labeled[0] == "amos_0078" and len(PRESETS["amos-5"].labeled) == 10


# ------------------------------------------------------------------------------------ overwrite and atomicity


def test_existing_target_and_overwrite(raw, prep):
    src = tiny_dataset(raw, 1, IMG40[:10])
    before = snapshot(src)
    make_semi_supervised_split(str(raw), 1, 2, labeled_fraction=0.3, seed=0)
    with pytest.raises(FileExistsError, match=r"dataset id 2 already exists.*--overwrite"):
        make_semi_supervised_split(str(raw), 1, 2, labeled_fraction=0.5, seed=0)
    with pytest.raises(ValueError, match="source"):
        make_semi_supervised_split(str(raw), 1, 1, labeled_fraction=0.5, overwrite=True)
    r = make_semi_supervised_split(str(raw), 1, 2, labeled_fraction=0.5, seed=0, overwrite=True)
    # the old Dataset002_Tiny_L30s0 is replaced by Dataset002_Tiny_L50s0: one dataset per id
    assert sorted(os.listdir(raw)) == ["Dataset001_Tiny", "Dataset002_Tiny_L50s0"]
    assert len(r.record["labeled"]) == 5
    assert snapshot(src) == before  # removing the old hard-linked copy does not touch the source


def test_overwrite_leaves_a_dataset_split_did_not_make(raw, prep):
    """--overwrite replaces only a dataset this command made (its split.json); the user's own dataset under the
    target id is refused by name and left as it is."""
    tiny_dataset(raw, 1, IMG40[:10])
    mine = tiny_dataset(raw, 2, IMG40[:4])
    before = snapshot(raw)
    with pytest.raises(FileExistsError, match=r"Dataset002_Tiny.*not a dataset `nnunetv2-dca split` made"):
        make_semi_supervised_split(str(raw), 1, 2, labeled_fraction=0.5, seed=0, overwrite=True)
    assert snapshot(raw) == before and os.path.isdir(mine)


def test_failure_while_writing_leaves_nothing_behind(raw, prep, monkeypatch):
    src = tiny_dataset(raw, 8, IMG40)
    before = snapshot(src)
    calls = {"n": 0}
    real = split_mod.link_or_copy

    def flaky(a: str, b: str) -> bool:
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError("disk full (simulated)")
        return real(a, b)

    monkeypatch.setattr(split_mod, "link_or_copy", flaky)  # the name split.py calls
    with pytest.raises(OSError, match="simulated"):
        make_semi_supervised_split(str(raw), 8, 9, preset="synapse-20", preprocessed_dir=str(prep))
    assert calls["n"] == 6
    assert sorted(os.listdir(raw)) == ["Dataset008_Tiny"]  # no target, no .partial temp folder
    assert not (prep / "Dataset009_Tiny_synapse20" / "splits_final.json").exists()
    assert snapshot(src) == before


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_overwrite_interrupted_while_moving_in_keeps_the_old_dataset(raw, prep, monkeypatch, error):
    """``--overwrite``: an error or Ctrl-C while the new dataset is moved into place leaves the old one (another name
    for the same id) intact and no temporary or moved-aside folder behind."""
    src = tiny_dataset(raw, 1, IMG40[:10])
    source_before = snapshot(src)
    old = make_semi_supervised_split(str(raw), 1, 2, labeled_fraction=0.3, seed=0).path
    before = snapshot(Path(old))
    fail_moving_in(monkeypatch, error)
    with pytest.raises(error, match="simulated"):
        make_semi_supervised_split(str(raw), 1, 2, labeled_fraction=0.5, seed=0, overwrite=True)
    assert sorted(os.listdir(raw)) == ["Dataset001_Tiny", "Dataset002_Tiny_L30s0"]
    assert snapshot(Path(old)) == before
    monkeypatch.undo()
    make_semi_supervised_split(str(raw), 1, 2, labeled_fraction=0.5, seed=0, overwrite=True)
    assert sorted(os.listdir(raw)) == ["Dataset001_Tiny", "Dataset002_Tiny_L50s0"]
    assert snapshot(src) == source_before


def test_unknown_source_dataset(raw):
    tiny_dataset(raw, 1, IMG40[:3])
    with pytest.raises(FileNotFoundError, match="id 7"):
        make_semi_supervised_split(str(raw), 7, 8, labeled_fraction=0.5)


def test_dataset_key_source_is_materialised_in_standard_folders(raw):
    """A source that lists its files in dataset.json ("dataset" key, arbitrary names) is read as nnU-Net reads it."""
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    ds = raw / "Dataset040_Listed"
    (ds / "scans").mkdir(parents=True)
    (ds / "segs").mkdir()
    entries = {}
    for i in range(4):
        _nifti(np.full((4, 4, 4), i, np.int16), ds / "scans" / f"scan{i}.nii.gz")
        _nifti(np.eye(4, dtype=np.uint8)[None].repeat(4, 0), ds / "segs" / f"seg{i}.nii.gz")
        entries[f"pat_{i}"] = {"images": [f"scans/scan{i}.nii.gz"], "label": f"segs/seg{i}.nii.gz"}
    (ds / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "x": 1}, "numTraining": 4,
        "file_ending": ENDING, "dataset": entries}))
    r = make_semi_supervised_split(str(raw), 40, 41, labeled_cases=["pat_1", "pat_3"])
    out = Path(r.path)
    assert sorted(os.listdir(out / "imagesTr")) == ["pat_1_0000.nii.gz", "pat_3_0000.nii.gz"]
    assert sorted(os.listdir(out / "labelsTr")) == ["pat_1.nii.gz", "pat_3.nii.gz"]
    assert sorted(os.listdir(out / "imagesTrUnlabeled")) == ["pat_0_0000.nii.gz", "pat_2_0000.nii.gz"]
    assert "dataset" not in json.loads((out / "dataset.json").read_text())
    assert json.loads((ds / "dataset.json").read_text())["dataset"] == entries  # source dataset.json unchanged
    # nnU-Net finds exactly the labeled cases in the standard folders of the new dataset
    cases = get_filenames_of_train_images_and_targets(str(out))
    assert sorted(cases) == ["pat_1", "pat_3"] and all(os.path.isfile(c["label"]) for c in cases.values())
    assert os.path.samefile(cases["pat_3"]["images"][0], ds / "scans" / "scan3.nii.gz")


# ------------------------------------------------------------------------------------------- nnU-Net and CLI


def test_phantom_split_passes_nnunet_integrity_check(raw):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    from nnunetv2_dca.data.phantom import write_phantom_dataset

    write_phantom_dataset(str(raw), 50, labeled=5, unlabeled=1, test=1, seed=2)
    r = make_semi_supervised_split(str(raw), 50, 51, labeled_fraction=0.4, seed=0)
    out = Path(r.path)
    assert len(r.record["labeled"]) == 2
    assert r.record["unlabeled_from_source"] == ["phantom_0005"] and len(r.record["unlabeled"]) == 4
    assert (out / "phantom.json").is_file()  # other top-level files travel along
    verify_dataset_integrity(str(out), num_processes=1)


def test_cli_split(tmp_path, monkeypatch, capsys):
    raw, prep = tmp_path / "raw", tmp_path / "pre"
    monkeypatch.setenv("nnUNet_raw", str(raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(prep))
    tiny_dataset(raw, 8, IMG40, name="Synapse")
    assert main(["split", "-d", "8", "--out-id", "80", "--preset", "synapse-20"]) == 0
    out = capsys.readouterr().out
    assert "Dataset080_Synapse_synapse20" in out and "fold 0" in out and "26 (imagesTrUnlabeled" in out
    assert (prep / "Dataset080_Synapse_synapse20" / "splits_final.json").is_file()

    assert main(["split", "-d", "8", "--out-id", "81", "--labeled-cases", "img0001, img0003",
                 "--name", "Mine"]) == 0
    assert json.loads((raw / "Dataset081_Mine" / "split.json").read_text())["labeled"] == ["img0001", "img0003"]
    capsys.readouterr()

    assert main(["split", "-d", "8", "--out-id", "81", "--labeled-fraction", "0.1"]) == 2
    assert "nnunetv2-dca split: error: dataset id 81 already exists" in capsys.readouterr().err
    assert main(["split", "-d", "8", "--out-id", "82", "--labeled-cases", "img0001,ghost"]) == 2
    assert "ghost" in capsys.readouterr().err
    assert main(["split", "-d", "8", "--out-id", "82", "--labeled-fraction", "2"]) == 2
    assert "--labeled-fraction" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse: the modes are mutually exclusive
        main(["split", "-d", "8", "--out-id", "82", "--labeled-fraction", "0.2", "--preset", "synapse-10"])
    assert e.value.code == 2
    assert not [d for d in os.listdir(raw) if d.startswith(".")]


# ------------------------------------------------------------------------------------------- unsafe case ids


def _source_with_crafted_id(raw: Path, where: str) -> str:
    """A source whose case id ``where`` (dataset.json key, imagesTs file name, command line) is a path; returns it."""
    if where == "dataset.json":
        ds = raw / "Dataset030_Listed"
        (ds / "scans").mkdir(parents=True)
        entries = {}
        for i, case in enumerate(["pat_0", "pat_1", "../../../victim"]):
            _nifti(np.full((4, 4, 4), i, np.int16), ds / "scans" / f"scan{i}.nii.gz")
            _nifti(np.ones((4, 4, 4), np.uint8), ds / "scans" / f"seg{i}.nii.gz")
            entries[case] = {"images": [f"scans/scan{i}.nii.gz"], "label": f"scans/seg{i}.nii.gz"}
        (ds / "dataset.json").write_text(json.dumps({
            "channel_names": {"0": "CT"}, "labels": {"background": 0, "x": 1}, "numTraining": 3,
            "file_ending": ENDING, "dataset": entries}))
        return "../../../victim"
    ds = tiny_dataset(raw, 30, IMG40[:4])
    if where == "imagesTs":  # a backslash is an ordinary character in a POSIX file name, a separator on Windows
        _nifti(np.zeros((4, 4, 4), np.int16), ds / "imagesTs" / f"..\\victim_0000{ENDING}")
        return "..\\victim"
    return "../../../victim"


@pytest.mark.parametrize("where", ["dataset.json", "imagesTs", "--labeled-cases"])
def test_case_id_that_is_a_path_is_refused_before_writing(tmp_path, monkeypatch, capsys, where):
    """Regression (issue 27): a case id like '../../../victim' wrote (hard-linked or copied over) files outside
    nnUNet_raw. Now the command stops before writing anything, with one line naming the id and where it came from."""
    raw = tmp_path / "raw"
    monkeypatch.setenv("nnUNet_raw", str(raw))
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    bad = _source_with_crafted_id(raw, where)
    (tmp_path / f"victim{ENDING}").write_text("not to be overwritten")
    before = snapshot(tmp_path)
    args = ["--labeled-cases", f"{IMG40[0]},{bad}"] if where == "--labeled-cases" else ["--labeled-fraction", "0.5"]
    assert main(["split", "-d", "30", "--out-id", "31", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert repr(bad) in err and where in err and "rename" in err, err
    assert snapshot(tmp_path) == before  # nothing written, inside nnUNet_raw or outside it
