"""`nnunetv2-dca cohort`: deformed copies of the real example CT keep its anatomy and imbalance, differ per case,
are reproducible, and a bad source is refused without leaving anything behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from nnunetv2_dca.data.cohort import CohortError, deform_case, load_source, read_source, write_cohort_dataset
from nnunetv2_dca.data.phantom import SYNAPSE_LABELS as L

EXAMPLES = SHARED / "data" / "totalsegmentator-examples"
needs_examples = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="../shared/data/totalsegmentator-examples absent")


def test_missing_source_files_are_named(tmp_path: Path):
    with pytest.raises(CohortError, match="example_ct.nii.gz not found"):
        write_cohort_dataset(str(tmp_path / "raw"), 941, str(tmp_path), train=1, test=0)
    assert not (tmp_path / "raw").exists() or not os.listdir(tmp_path / "raw")


@needs_examples
def test_deformed_cases_keep_anatomy_and_differ(tmp_path: Path):
    image, labels, sp = load_source(str(EXAMPLES))
    assert sp == (3.0, 3.0, 3.0) and labels.max() == 13 and not (labels == 5).any()  # no esophagus in P1
    a_img, a_lab, _ = deform_case(image, labels, sp, 0, 1)
    b_img, b_lab, _ = deform_case(image, labels, sp, 0, 2)
    again, _, _ = deform_case(image, labels, sp, 0, 1)
    assert np.array_equal(a_img, again)  # (seed, index) decides a case
    assert not np.array_equal(a_lab, b_lab)
    for c in (6, 12, 13):  # liver and adrenals survive the warp with similar volume (scale within +-8 % per axis)
        ratio = (a_lab == c).sum() / (labels == c).sum()
        assert 0.6 < ratio < 1.5, (c, ratio)
    # the liver is still brighter than fat and the labels move with the image
    assert a_img[a_lab == 6].mean() > a_img[(a_lab == 0) & (a_img > -500)].mean() - 200


@needs_examples
def test_cohort_dataset_is_a_complete_raw_dataset(tmp_path: Path):
    raw = tmp_path / "raw"
    target = Path(write_cohort_dataset(str(raw), 941, str(EXAMPLES), train=2, test=1, spacing=4.5))
    assert sorted(os.listdir(target / "imagesTr")) == ["cohort_0000_0000.nii.gz", "cohort_0001_0000.nii.gz"]
    assert os.listdir(target / "labelsTs") == ["cohort_0002.nii.gz"]
    dj = json.loads((target / "dataset.json").read_text())
    assert dj["numTraining"] == 2 and dj["labels"]["adrenal_gland_left"] == 13
    meta = json.loads((target / "cohort.json").read_text())
    assert meta["spacing"] == [4.5, 4.5, 4.5] and meta["cases"]["cohort_0002"]["split"] == "imagesTs"
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_cohort_dataset(str(raw), 941, str(EXAMPLES), train=1, test=0)
    assert [d for d in os.listdir(raw) if d.startswith(".")] == []


def test_overwrite_leaves_a_dataset_cohort_did_not_make(tmp_path: Path):
    """--overwrite replaces only a cohort (its cohort.json): another dataset under the id is refused by name,
    before the source is even read, and left as it is."""
    mine = tmp_path / "raw" / "Dataset941_Mine"
    (mine / "imagesTr").mkdir(parents=True)
    (mine / "dataset.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"Dataset941_Mine, not a cohort"):
        write_cohort_dataset(str(tmp_path / "raw"), 941, str(tmp_path / "no_source"), overwrite=True)
    assert sorted(p.name for p in (tmp_path / "raw").rglob("*")) == ["Dataset941_Mine", "dataset.json", "imagesTr"]


def _small_source(folder: Path) -> Path:
    """A stand-in for the TotalSegmentator example: a 24^3 noisy CT (noise: the gzip stream stays long), its labels
    (TotalSegmentator class 5 = liver) and the class map."""
    import SimpleITK as sitk

    folder.mkdir()
    rng = np.random.default_rng(0)
    ct = rng.integers(-1000, 1000, (24, 24, 24)).astype(np.int16)
    seg = np.zeros(ct.shape, np.uint8)
    seg[6:18, 6:18, 6:18] = 5
    for arr, name in ((ct, "example_ct.nii.gz"), (seg, "example_seg_fast_force_split.nii.gz")):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((3.0, 3.0, 3.0))
        sitk.WriteImage(img, str(folder / name))
    (folder / "synapse13_map.json").write_text(json.dumps({"from_total_ct": {"5": 6}}))
    return folder


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_truncated_source_ct_is_refused_by_name(tmp_path: Path, capsys):
    """Regression (issue 27): a source CT cut to 60 % of its bytes read as a mostly-zero volume and a cohort was built
    from it. Now the command refuses it in one line naming the file, and writes nothing."""
    from nnunetv2_dca.cli import main

    source = _small_source(tmp_path / "source")
    ct = source / "example_ct.nii.gz"
    ct.write_bytes(ct.read_bytes()[: ct.stat().st_size * 6 // 10])
    before = _files(tmp_path)
    assert main(["cohort", "-d", "941", "--raw", str(tmp_path / "raw"), "--source", str(source), "--train", "1",
                 "--test", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert str(ct) in err and "cut off" in err, err
    assert _files(tmp_path) == before  # no dataset, no temporary folder, source untouched


def test_intact_small_source_builds_a_cohort(tmp_path: Path):
    """The stand-in source of the regression test is usable when intact (so the refusal is about truncation)."""
    source = _small_source(tmp_path / "source")
    target = Path(write_cohort_dataset(str(tmp_path / "raw"), 941, str(source), train=1, test=0))
    assert os.listdir(target / "imagesTr") == ["cohort_0000_0000.nii.gz"]


@needs_examples
def test_classic_cohort_is_the_one_of_the_earlier_results():
    """Case (seed 0, index 1) keeps the bytes it had before ``--variability`` existed (digests taken from that
    code): classic skips the varied draws."""
    import hashlib

    image, labels, sp = load_source(str(EXAMPLES))
    img, lab, _ = deform_case(image, labels, sp, 0, 1)
    assert hashlib.sha256(img.tobytes()).hexdigest()[:16] == "d18a7e0af7225f78"
    assert hashlib.sha256(lab.tobytes()).hexdigest()[:16] == "547b53ea898c969c"


@needs_examples
def test_varied_cohort_varies_contrast_shape_and_presence():
    image, labels, enhancement, sp = read_source(str(EXAMPLES))
    cases = {v: [deform_case(image, labels, sp, 0, i, v, enhancement) for i in range(10)]
             for v in ("classic", "varied")}
    again, _, _ = deform_case(image, labels, sp, 0, 3, "varied", enhancement)
    assert np.array_equal(again, cases["varied"][3][0])

    def kidney_minus_liver(img, lab):
        return img[lab == L["kidney_right"]].mean() - img[lab == L["liver"]].mean()

    contrast = {v: np.std([kidney_minus_liver(img, lab) for img, lab, _ in cs]) for v, cs in cases.items()}
    assert contrast["varied"] > 10 * contrast["classic"]  # the phase changes organ-to-organ contrast
    liver = {v: np.array([(lab == L["liver"]).sum() for _, lab, _ in cs]) for v, cs in cases.items()}
    assert liver["varied"].std() / liver["varied"].mean() > 1.5 * liver["classic"].std() / liver["classic"].mean()
    absent = [info["gallbladder"] is False for _, _, info in cases["varied"]]
    assert any(absent)
    for (_, lab, info) in cases["varied"]:
        assert ((lab == L["gallbladder"]).sum() == 0) == (info["gallbladder"] is False)


@needs_examples
def test_unlabeled_vessels_enhance_with_the_labeled_ones():
    """The iliac arteries (TotalSegmentator 65/66, no Synapse label) get the aorta's enhancement: a contrast case
    has no intensity edge where the aorta label ends."""
    image, labels, enhancement, sp = read_source(str(EXAMPLES))
    aorta = labels == L["aorta"]
    iliac = (enhancement[0] == enhancement[0][aorta].max()) & ~aorta
    assert iliac.sum() > 100  # the iliac arteries' voxels, outside every Synapse label
    assert (labels[iliac] == 0).all()
    assert (enhancement[:, labels == L["liver"]] > 0).all()  # labeled organs enhance too
    with pytest.raises(ValueError, match="enhancement map"):
        deform_case(image, labels, sp, 0, 1, "varied")


def test_unknown_cohort_variability_is_refused_by_name(tmp_path: Path):
    with pytest.raises(CohortError, match="--variability 'wild'"):
        write_cohort_dataset(str(tmp_path / "raw"), 941, str(tmp_path / "nowhere"), variability="wild")
