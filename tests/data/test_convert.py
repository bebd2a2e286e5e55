"""nnunetv2-dca convert btcv|amos on tiny copies of the two download layouts (same names, 8x8x8 volumes), and the
published split files they use."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from nnunetv2_dca.cli import main
from nnunetv2_dca.data.convert import convert_download, resolve_split
from nnunetv2_dca.data.convert_sources import ConvertError
from nnunetv2_dca.data.published_splits import find_split, get_split, published_splits, split_names
from nnunetv2_dca.data.split import PRESETS

BTCV_TRAIN = [f"{i:04d}" for i in list(range(1, 11)) + list(range(21, 41))]  # the 30 RawData/Training cases
BTCV_TEST = [f"{i:04d}" for i in range(61, 81)]  # RawData/Testing: 20 scans without labels
AMOS_ORGANS = ["spleen", "right kidney", "left kidney", "gall bladder", "esophagus", "liver", "stomach", "arota",
               "postcava", "pancreas", "right adrenal gland", "left adrenal gland", "duodenum", "bladder",
               "prostate/uterus"]


def _nii(path: Path, arr: np.ndarray, spacing: float = 1.5) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, np.diag([spacing, spacing, 2.0, 1.0])), str(path))


def _pair(img: Path, lab: Path, seed: int, max_label: int) -> None:
    rng = np.random.default_rng(seed)
    _nii(img, rng.integers(-100, 200, (8, 8, 8)).astype(np.int16))
    _nii(lab, rng.integers(0, max_label + 1, (8, 8, 8)).astype(np.uint8))


@pytest.fixture(scope="module")
def btcv(tmp_path_factory) -> Path:
    """The Synapse RawData layout: Training/img + label (30), Testing/img (20)."""
    root = tmp_path_factory.mktemp("btcv_download")
    for k, n in enumerate(BTCV_TRAIN):
        _pair(root / "RawData/Training/img" / f"img{n}.nii.gz", root / "RawData/Training/label" / f"label{n}.nii.gz",
              k, 13)
    for k, n in enumerate(BTCV_TEST):
        _nii(root / "RawData/Testing/img" / f"img{n}.nii.gz", np.full((8, 8, 8), k, np.int16))
    return root


@pytest.fixture(scope="module")
def amos(tmp_path_factory) -> Path:
    """The AMOS 2022 layout with the ids of DHC's lists: imagesTr/labelsTr (train + eval), imagesVa/labelsVa (test),
    a few imagesTs, dataset.json."""
    root = tmp_path_factory.mktemp("amos_download")
    split = get_split("dhc-amos-5")
    for k, case in enumerate(split.train + split.validation):
        _pair(root / "imagesTr" / f"{case}.nii.gz", root / "labelsTr" / f"{case}.nii.gz", k, 15)
    for k, case in enumerate(split.test):
        _pair(root / "imagesVa" / f"{case}.nii.gz", root / "labelsVa" / f"{case}.nii.gz", 1000 + k, 15)
    for case in ("amos_0002", "amos_0003", "amos_0501"):
        _nii(root / "imagesTs" / f"{case}.nii.gz", np.zeros((8, 8, 8), np.int16))
    labels = {"0": "background", **{str(i + 1): name for i, name in enumerate(AMOS_ORGANS)}}
    (root / "dataset.json").write_text(json.dumps({"name": "AMOS", "labels": labels}))
    return root


@pytest.fixture
def folders(tmp_path: Path) -> Dict[str, Path]:
    return {"raw": tmp_path / "nnUNet_raw", "prep": tmp_path / "nnUNet_preprocessed"}


def _ids(folder: Path, channel: bool = True) -> List[str]:
    if not folder.is_dir():
        return []
    return sorted(f.name[:-len("_0000.nii.gz")] if channel else f.name[:-len(".nii.gz")] for f in folder.iterdir())


def _json(path: Path):
    return json.loads(path.read_text())


def _convert(kind: str, src: Path, f: Dict[str, Path], dataset_id: int = 220, **kw):
    return convert_download(kind, str(src), str(f["raw"]), dataset_id, preprocessed=str(f["prep"]), log=lambda *_: 0,
                            workers=2, **kw)


# ------------------------------------------------------------------------------------------- published splits


def test_published_split_files_hold_their_sources_and_invariants():
    splits = published_splits()  # loading checks: disjoint lists, labeled + unlabeled = train, file name = name
    assert {"dhc-synapse-20", "dhc-amos-5", "genericssl-synapse-20", "skcdf-synapse-20",
            "transunet-synapse"} <= set(splits)
    for s in splits.values():
        assert s.source["repository"].startswith("https://github.com/") and len(s.source["commit"]) == 40
        assert set(s.source["paths"]) >= {"train", "test"}
    dhc = get_split("synapse-20")  # the old preset name is an alias of the one file
    assert dhc.name == "dhc-synapse-20" and dhc.labeled == ("0002", "0023", "0034", "0039")
    assert dhc.validation == ("0006", "0025", "0026", "0040")
    assert dhc.test == ("0004", "0007", "0010", "0033", "0035", "0036") and len(dhc.unlabeled) == 16
    assert get_split("amos-5").labeled[0] == "amos_0078" and len(get_split("amos-5").test) == 120
    ts = get_split("transunet-synapse")
    assert len(ts.train) == 18 and len(ts.test) == 12 and not ts.semi_supervised
    assert set(ts.train + ts.test) == set(BTCV_TRAIN)
    # split --preset reads the same lists (one home): AMOS presets now validate on DHC's eval cases
    assert PRESETS["synapse-20"].labeled == dhc.labeled
    assert PRESETS["amos-5"].validation == get_split("amos-5").validation
    assert "transunet-synapse" not in PRESETS and "dhc-amos-5" in split_names("amos")


def test_resolve_split_defaults_and_refusals():
    assert resolve_split("btcv", None, None).name == "dhc-synapse-20"  # the DCA seed's table
    assert resolve_split("amos", None, None).name == "dhc-amos-5"
    assert resolve_split("btcv", "skcdf", 10).name == "skcdf-synapse-10"
    assert resolve_split("btcv", "none", None) is None
    with pytest.raises(ConvertError, match="published: 10 %, 20 %, 40 %"):
        resolve_split("btcv", "dhc", 15)
    with pytest.raises(ConvertError, match="--split none"):
        resolve_split("btcv", "none", 20)
    with pytest.raises(ValueError, match="AMOS split"):
        resolve_split("btcv", "amos-5", None)
    with pytest.raises(ConvertError, match="not 10 %"):
        resolve_split("btcv", "dhc-synapse-20", 10)
    with pytest.raises(ValueError, match="publishes no 20 % labeled AMOS"):
        find_split("amos", "dhc", 20)  # DHC's labeled_20p list overlaps its eval list: not shipped


# --------------------------------------------------------------------------------------------------------- BTCV


def test_btcv_default_split_base_and_twin(btcv, folders):
    r = _convert("btcv", btcv, folders)
    base, twin = Path(r.base), Path(r.twin)
    assert base.name == "Dataset220_BTCV" and twin.name == "Dataset221_BTCV_dhcsynapse20"
    dhc = get_split("dhc-synapse-20")
    img = lambda entries: sorted(f"img{e}" for e in entries)  # noqa: E731
    assert _ids(base / "imagesTr") == _ids(base / "labelsTr", False) == img(dhc.train + dhc.validation)
    assert _ids(base / "imagesTs") == _ids(base / "labelsTs", False) == img(dhc.test)
    ds = _json(base / "dataset.json")
    assert ds["labels"]["adrenal_gland_left"] == 13 and len(ds["labels"]) == 14 and ds["numTraining"] == 24
    assert ds["channel_names"] == {"0": "CT"}
    # the download's files, hard-linked byte for byte
    src = btcv / "RawData/Training/img/img0002.nii.gz"
    assert os.path.samefile(src, base / "imagesTr/img0002_0000.nii.gz")
    label = btcv / "RawData/Training/label/label0002.nii.gz"
    assert (base / "labelsTr/img0002.nii.gz").read_bytes() == label.read_bytes()
    rec = _json(base / "convert.json")
    assert rec["split"]["source"]["commit"].startswith("3a09c34") and rec["semi_supervised_dataset"] == twin.name
    assert set(rec["left_out"]) == {f"img{n}" for n in BTCV_TEST}
    assert _json(folders["prep"] / base.name / "splits_final.json") == [{"train": img(dhc.train),
                                                                          "val": img(dhc.validation)}]
    # the twin: split's writer, published labeled / validation / unlabeled / test
    assert _ids(twin / "labelsTr", False) == img(dhc.labeled + dhc.validation)
    assert _ids(twin / "imagesTrUnlabeled") == img(dhc.unlabeled)
    assert _ids(twin / "labelsTs", False) == img(dhc.test)
    assert _json(twin / "split.json")["preset"] == "dhc-synapse-20" and (twin / "convert.json").is_file()
    assert _json(folders["prep"] / twin.name / "splits_final.json") == [{"train": img(dhc.labeled),
                                                                          "val": img(dhc.validation)}]
    assert "nnUNetv2_train 221 3d_fullres 0 -tr nnUNetTrainerDCA" in r.summary()
    assert sorted(os.listdir(folders["raw"])) == [base.name, twin.name]  # no hidden leftovers


def test_btcv_other_splits_and_unlabeled_testing(btcv, folders):
    r = _convert("btcv", btcv, folders, split="skcdf", labeled_percent=10, unlabeled_testing=True)
    twin = Path(r.twin)
    assert twin.name == "Dataset221_BTCV_skcdfsynapse10"
    assert _ids(Path(r.base) / "imagesTrUnlabeled") == [f"img{n}" for n in BTCV_TEST]
    assert len(_ids(twin / "imagesTrUnlabeled")) == 18 + 20 and len(_ids(twin / "labelsTr", False)) == 2 + 4
    # fully supervised 18/12: no twin, no splits_final (nnU-Net's 5 folds of the 18)
    r = _convert("btcv", btcv, folders, dataset_id=230, split="transunet-synapse")
    assert r.twin is None and len(_ids(Path(r.base) / "labelsTr", False)) == 18
    assert len(_ids(Path(r.base) / "labelsTs", False)) == 12 and not (folders["prep"] / "Dataset230_BTCV").exists()
    assert "-tr nnUNetTrainer" in r.summary()
    r = _convert("btcv", btcv, folders, dataset_id=240, split="none")
    assert len(_ids(Path(r.base) / "imagesTr")) == 30 and not (Path(r.base) / "imagesTs").exists()


# --------------------------------------------------------------------------------------------------------- AMOS


def test_amos_ct_only_by_default_and_mri_on_request(amos, folders):
    r = _convert("amos", amos, folders, dataset_id=300)
    split = get_split("dhc-amos-5")
    ct = lambda cases: sorted(c for c in cases if int(c[5:]) <= 500)  # noqa: E731
    base, twin = Path(r.base), Path(r.twin)
    assert base.name == "Dataset300_AMOS" and twin.name == "Dataset301_AMOS_dhcamos5"
    assert _ids(base / "labelsTr", False) == ct(split.train + split.validation)
    assert _ids(base / "labelsTs", False) == ct(split.test)  # the official validation set
    assert _ids(twin / "labelsTr", False) == ct(split.labeled + split.validation)  # 7 of the 10 labeled are CT
    assert _ids(twin / "imagesTrUnlabeled") == ct(split.unlabeled)
    ds = _json(base / "dataset.json")
    assert ds["labels"]["prostate/uterus"] == 15 and ds["channel_names"] == {"0": "CT"}
    assert ds["overwrite_image_reader_writer"] == "NibabelIOWithReorient"
    assert any("restricted to CT" in n and "amos_0514" in n for n in r.plan.notes)
    assert _json(base / "convert.json")["left_out"]["amos_0514"].startswith("MRI scan")

    r = _convert("amos", amos, folders, dataset_id=310, mri=True, unlabeled_testing=True)
    twin = Path(r.twin)
    assert _ids(twin / "labelsTr", False) == sorted(split.labeled + split.validation) and not r.plan.notes
    assert len(_ids(twin / "imagesTrUnlabeled")) == 206 + 3
    assert _json(Path(r.base) / "dataset.json")["channel_names"] == {"0": "either_CT_or_MR"}


# ---------------------------------------------------------------------------------------------------- bad input


def _broken_copy(btcv: Path, tmp_path: Path, how: str) -> Path:
    src = tmp_path / "download"
    shutil.copytree(btcv, src)
    train = src / "RawData/Training"
    if how == "label value":
        _nii(train / "label/label0005.nii.gz", np.full((8, 8, 8), 14, np.uint8))
    elif how == "missing label":
        (train / "label/label0007.nii.gz").unlink()
    elif how == "shape":
        _nii(train / "label/label0021.nii.gz", np.zeros((8, 8, 7), np.uint8))
    elif how == "spacing":
        _nii(train / "label/label0022.nii.gz", np.zeros((8, 8, 8), np.uint8), spacing=0.8)
    elif how == "truncated":
        data = (train / "img/img0023.nii.gz").read_bytes()
        (train / "img/img0023.nii.gz").write_bytes(data[: len(data) // 2])
    elif how == "truncated inside":  # complete gzip stream, fewer voxel bytes than the header says
        path = train / "img/img0024.nii.gz"
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[:-100]))
    return src


@pytest.mark.parametrize("how, file, words", [
    ("label value", "label0005.nii.gz", "label value 14 outside 0..13"),
    ("missing label", "img0007.nii.gz", "no label for this image"),
    ("shape", "label0021.nii.gz", "shape (8, 8, 7) differs"),
    ("spacing", "label0022.nii.gz", "geometry differs from its image"),
    ("truncated", "img0023.nii.gz", "gzip stream is cut off"),
    ("truncated inside", "img0024.nii.gz", "truncated NIfTI-1 file"),
])
def test_bad_download_fails_in_one_line_naming_the_file(btcv, folders, tmp_path, capsys, how, file, words):
    src = _broken_copy(btcv, tmp_path, how)
    code = main(["convert", "btcv", str(src), "-d", "220", "--raw", str(folders["raw"]),
                 "--preprocessed", str(folders["prep"])])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("nnunetv2-dca convert: error: ") and file in err and words in err
    assert not folders["raw"].exists() or os.listdir(folders["raw"]) == []  # nothing written, no hidden leftovers
    assert not folders["prep"].exists()


def test_missing_split_case_and_wrong_layout_are_named(btcv, folders, tmp_path):
    src = tmp_path / "download"
    shutil.copytree(btcv, src)
    for sub in ("img/img0039", "label/label0039"):
        (src / f"RawData/Training/{sub}.nii.gz").unlink()
    with pytest.raises(ConvertError, match=r"img0039\.nii\.gz: missing \(dhc-synapse-20 lists 0039 among its train"):
        _convert("btcv", src, folders)
    with pytest.raises(ConvertError, match="not the BTCV/Synapse download"):
        _convert("btcv", tmp_path, folders)


# ------------------------------------------------------------------------------------------------- overwrite


def test_existing_ids_refused_and_overwrite_replaces_only_converted_datasets(btcv, folders):
    first = _convert("btcv", btcv, folders)
    with pytest.raises(FileExistsError, match="dataset id 220 already exists.*--overwrite"):
        _convert("btcv", btcv, folders)
    r = _convert("btcv", btcv, folders, unlabeled_testing=True, overwrite=True)
    assert r.base == first.base and len(_ids(Path(r.twin) / "imagesTrUnlabeled")) == 16 + 20
    assert sorted(os.listdir(folders["raw"])) == ["Dataset220_BTCV", "Dataset221_BTCV_dhcsynapse20"]
    # another split renames the twin: its old preprocessed folder would give id 221 two names, which nnU-Net refuses
    with pytest.raises(FileExistsError, match="nnUNet_preprocessed already holds .*Dataset221_BTCV_dhcsynapse20"):
        _convert("btcv", btcv, folders, split="genericssl", overwrite=True)
    shutil.rmtree(folders["prep"] / "Dataset221_BTCV_dhcsynapse20")
    r = _convert("btcv", btcv, folders, split="genericssl", overwrite=True)
    assert sorted(os.listdir(folders["raw"])) == ["Dataset220_BTCV", "Dataset221_BTCV_genericsslsynapse20"]
    # the user's own dataset under the twin's id: refused by name before anything is written, left untouched
    mine = folders["raw"] / "Dataset251_Mine"
    (mine / "imagesTr").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="Dataset251_Mine, not a dataset `nnunetv2-dca convert` made"):
        _convert("btcv", btcv, folders, dataset_id=250, overwrite=True)
    assert not (folders["raw"] / "Dataset250_BTCV").exists() and sorted(os.listdir(mine)) == ["imagesTr"]


def test_failed_twin_takes_back_the_new_base(btcv, folders, monkeypatch):
    from nnunetv2_dca.data import split as split_mod

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(split_mod, "make_semi_supervised_split", broken)
    with pytest.raises(OSError, match="simulated"):
        _convert("btcv", btcv, folders)
    assert os.listdir(folders["raw"]) == [] and not (folders["prep"] / "Dataset220_BTCV").exists()


@pytest.mark.slow
def test_console_script_bad_label_no_traceback(btcv, folders, tmp_path):
    """The installed `nnunetv2-dca convert` (a fresh process): exit 2, one line, no traceback."""
    import subprocess
    import sys

    src = _broken_copy(btcv, tmp_path, "label value")
    exe = Path(sys.executable).parent / "nnunetv2-dca"
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(nnUNet_raw=str(folders["raw"]), nnUNet_preprocessed=str(folders["prep"]))
    proc = subprocess.run([str(exe), "convert", "btcv", str(src), "-d", "220"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [l for l in proc.stderr.strip().splitlines() if "label0005" in l]
