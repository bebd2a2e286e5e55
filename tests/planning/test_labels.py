"""nnunetv2_dca.planning.labels: foreground classes (no ignore label, no regions) and labeled voxel counts."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from nnunetv2_dca.data import phantom as ph
from nnunetv2_dca.planning.labels import LabelDefinitionError, count_label_voxels, foreground_classes


def test_foreground_classes_skip_background_and_ignore():
    assert foreground_classes({"labels": {"background": 0, "b": 2, "a": 1, "ignore": 3}}) == {1: "a", 2: "b"}


def test_region_based_labels_are_refused_by_name():
    with pytest.raises(LabelDefinitionError, match="region-based.*not supported.*whole_tumor"):
        foreground_classes({"labels": {"background": 0, "whole_tumor": [1, 2, 3], "core": [2, 3]}})


@pytest.mark.parametrize("dim", [3, 2])
def test_counts_match_the_written_labels(tmp_path, dim):
    path = ph.write_phantom_dataset(str(tmp_path), 21, labeled=2, unlabeled=1, test=1, seed=2, dim=dim)
    with open(os.path.join(path, "dataset.json")) as f:
        ds = json.load(f)
    counts = count_label_voxels(path, ds)
    expected = np.zeros(14, dtype=np.int64)
    for i in range(2):  # only the labeled training cases (0, 1): never unlabeled or test cases
        lab = ph.generate_ct_case(2, i)[1] if dim == 3 else ph.generate_gland_case(2, i)[1]
        expected[: lab.max() + 1] += np.bincount(lab.ravel())
    assert counts == {k: int(expected[k]) for k in foreground_classes(ds)}


def test_missing_label_file_is_named(tmp_path):
    path = ph.write_phantom_dataset(str(tmp_path), 22, labeled=2, unlabeled=0, test=0)
    os.remove(os.path.join(path, "labelsTr", "phantom_0001.nii.gz"))
    with open(os.path.join(path, "dataset.json")) as f:
        ds = json.load(f)
    with pytest.raises(FileNotFoundError, match="phantom_0001"):
        count_label_voxels(path, ds)


def test_fingerprint_counts_are_used_and_a_stock_fingerprint_falls_back_to_the_labels(tmp_path):
    from nnunetv2_dca.planning.labels import load_class_voxel_counts

    path = ph.write_phantom_dataset(str(tmp_path / "raw"), 23, labeled=1, unlabeled=0, test=0)
    with open(os.path.join(path, "dataset.json")) as f:
        ds = json.load(f)
    fp = tmp_path / "dataset_fingerprint.json"
    fp.write_text(json.dumps({"spacings": [[5, 5, 5]]}))  # made by nnU-Net's stock extractor: no counts
    assert load_class_voxel_counts(path, ds, str(fp)) == count_label_voxels(path, ds)
    fp.write_text(json.dumps({"class_voxel_counts": {"1": 7, "2": 3}}))
    assert load_class_voxel_counts(path, ds, str(fp)) == {1: 7, 2: 3}
