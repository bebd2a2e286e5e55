"""`nnunetv2-dca cohort`: deformed copies of the real example CT keep its anatomy and imbalance, differ per case,
are reproducible, and a bad source is refused without leaving anything behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from nnunetv2_dca.data.cohort import CohortError, deform_case, load_source, write_cohort_dataset

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
