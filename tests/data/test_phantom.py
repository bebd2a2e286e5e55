"""nnunetv2_dca.data.phantom: imbalance like real abdominal CT, determinism, sites, atomic nnU-Net-valid output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from movefaults import fail_moving_in
from nnunetv2_dca.data import phantom as ph

INV = {v: k for k, v in ph.SYNAPSE_LABELS.items()}


@pytest.fixture(scope="module")
def ct_counts() -> np.ndarray:
    counts = np.zeros(14)
    for i in range(6):
        _, lab, _ = ph.generate_ct_case(0, i, "small")
        counts += np.bincount(lab.ravel(), minlength=14)
    return counts


def test_ct_class_imbalance_matches_real_abdomen(ct_counts):
    fg = ct_counts[1:].sum()
    assert (ct_counts[1:] > 0).all(), "every organ appears"
    liver = ct_counts[ph.SYNAPSE_LABELS["liver"]]
    for adrenal in ("adrenal_gland_right", "adrenal_gland_left"):
        assert 100 <= liver / ct_counts[ph.SYNAPSE_LABELS[adrenal]] <= 250, adrenal
    for tail in ("adrenal_gland_right", "adrenal_gland_left", "esophagus"):
        assert ct_counts[ph.SYNAPSE_LABELS[tail]] / fg < 0.01, tail
    assert ct_counts[ph.SYNAPSE_LABELS["liver"]] == ct_counts[1:].max()


def test_ct_ranking_follows_the_real_ct(ct_counts):
    """Head and tail as in the real P1 scan of ../shared: liver largest, adrenals and esophagus the three smallest."""
    order = [INV[k] for k in np.argsort(-ct_counts[1:]) + 1]
    assert order[0] == "liver" and order[1] == "spleen"
    assert set(order[-3:]) == {"adrenal_gland_right", "adrenal_gland_left", "esophagus"}


def test_ct_intensities_are_ct_like():
    img, lab, spacing = ph.generate_ct_case(0, 0, "small")
    assert img.dtype == np.int16 and lab.dtype == np.uint8 and img.shape == lab.shape == (32, 64, 64)
    assert spacing == (5.0, 5.0, 5.0)
    assert img.min() < -900  # air outside the body
    assert 60 < np.median(img[lab == ph.SYNAPSE_LABELS["liver"]]) < 160  # enhanced liver parenchyma
    assert np.median(img[lab == ph.SYNAPSE_LABELS["aorta"]]) > np.median(img[lab == ph.SYNAPSE_LABELS["liver"]])
    assert img.max() > 300  # bone


def test_cases_are_deterministic_and_vary():
    a_img, a_lab, _ = ph.generate_ct_case(5, 2)
    b_img, b_lab, _ = ph.generate_ct_case(5, 2)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    c_img, c_lab, _ = ph.generate_ct_case(5, 3)
    d_img, d_lab, _ = ph.generate_ct_case(6, 2)
    assert (c_lab != a_lab).mean() > 0.01 and (d_lab != a_lab).mean() > 0.01


def test_sites_shift_appearance_not_anatomy():
    sites = ph.make_sites(3, seed=1)
    assert sites == ph.make_sites(3, seed=1) and sites[0] == ph.make_sites(1, seed=9)[0]
    img0, lab0, _ = ph.generate_ct_case(1, 4, site=sites[0])
    img2, lab2, _ = ph.generate_ct_case(1, 4, site=sites[2])
    np.testing.assert_array_equal(lab0, lab2)
    liver = lab0 == ph.SYNAPSE_LABELS["liver"]
    assert abs(float(img0[liver].mean()) - float(img2[liver].mean())) > 5 or \
        abs(float(img0[liver].std()) - float(img2[liver].std())) > 5


def test_gland_tiles():
    sites = ph.make_sites(2, seed=0)
    rgb0, lab0 = ph.generate_gland_case(0, 1, "small", sites[0])
    rgb1, lab1 = ph.generate_gland_case(0, 1, "small", sites[1])
    assert rgb0.shape == (128, 128, 3) and rgb0.dtype == np.uint8 and lab0.shape == (128, 128)
    np.testing.assert_array_equal(lab0, lab1)
    counts = np.bincount(lab0.ravel(), minlength=4)
    assert (counts > 0).all()
    assert counts[3] / counts[1:].sum() < 0.05  # lymphocytes: the tail class
    assert np.abs(rgb0.astype(float).mean((0, 1)) - rgb1.astype(float).mean((0, 1))).max() > 3  # stain shift
    # stroma is pink (R > G), lumen nearly white
    assert rgb0[lab0 == 0].mean(0)[0] > rgb0[lab0 == 0].mean(0)[1]
    assert rgb0[lab0 == 2].mean() > 200


def _verify(folder: str) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(folder, num_processes=1)


@pytest.mark.parametrize("dim", [3, 2])
def test_written_dataset_passes_nnunet_integrity_check(tmp_path, dim):
    path = ph.write_phantom_dataset(str(tmp_path), 7, labeled=3, unlabeled=2, test=1, seed=1, sites=2, dim=dim)
    assert os.path.basename(path) == ("Dataset007_AbdomenPhantom" if dim == 3 else "Dataset007_GlandPhantom")
    ending = ".nii.gz" if dim == 3 else ".png"
    listing = {d: sorted(os.listdir(os.path.join(path, d))) for d in
               ("imagesTr", "labelsTr", "imagesTrUnlabeled", "imagesTs", "labelsTs")}
    assert listing["imagesTr"] == [f"phantom_000{i}_0000{ending}" for i in range(3)]
    assert listing["labelsTr"] == [f"phantom_000{i}{ending}" for i in range(3)]
    assert listing["imagesTrUnlabeled"] == [f"phantom_000{i}_0000{ending}" for i in (3, 4)]
    assert listing["imagesTs"] == [f"phantom_0005_0000{ending}"] and listing["labelsTs"] == [f"phantom_0005{ending}"]
    ds = json.loads(Path(path, "dataset.json").read_text())
    assert ds["numTraining"] == 3 and ds["file_ending"] == ending
    assert ds["labels"] == (ph.SYNAPSE_LABELS if dim == 3 else ph.GLAND_LABELS)
    meta = json.loads(Path(path, "phantom.json").read_text())
    assert [c["site"] for c in meta["cases"].values()] == [0, 1, 0, 1, 0, 1]
    _verify(path)
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temporary folder left


def test_nifti_geometry_round_trips(tmp_path):
    import SimpleITK as sitk

    path = ph.write_phantom_dataset(str(tmp_path), 8, labeled=1, unlabeled=0, test=0)
    img = sitk.ReadImage(os.path.join(path, "imagesTr", "phantom_0000_0000.nii.gz"))
    lab = sitk.ReadImage(os.path.join(path, "labelsTr", "phantom_0000.nii.gz"))
    ref_img, ref_lab, spacing = ph.generate_ct_case(0, 0)
    assert img.GetSpacing() == spacing[::-1] == lab.GetSpacing()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), ref_img)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(lab), ref_lab)


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = ph.generate_ct_case

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(ph, "generate_ct_case", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        ph.write_phantom_dataset(str(tmp_path), 9, labeled=4, unlabeled=0, test=0)
    assert os.listdir(tmp_path) == []


def test_existing_id_is_refused_unless_overwrite(tmp_path):
    first = ph.write_phantom_dataset(str(tmp_path), 10, name="Other", labeled=1, unlabeled=0, test=0)
    with pytest.raises(FileExistsError, match="Dataset010_Other"):
        ph.write_phantom_dataset(str(tmp_path), 10, labeled=1, unlabeled=0, test=0)
    second = ph.write_phantom_dataset(str(tmp_path), 10, labeled=1, unlabeled=0, test=0, overwrite=True)
    assert not os.path.exists(first) and os.path.isdir(second)


@pytest.mark.parametrize("kwargs, message", [
    ({"labeled": 0}, "--labeled"), ({"unlabeled": -1}, "--unlabeled"), ({"size": "huge"}, "--size"),
    ({"sites": 0}, "--sites"), ({"dim": 4}, "--dim"), ({"name": "bad name"}, "dataset name"),
])
def test_bad_settings_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ph.write_phantom_dataset(str(tmp_path), 11, **kwargs)
    assert os.listdir(tmp_path) == []


def test_bad_dataset_id(tmp_path):
    with pytest.raises(ValueError, match="dataset id"):
        ph.write_phantom_dataset(str(tmp_path), 1000)


def _tree(folder: str) -> dict:
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = fh.read()
    return out


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
@pytest.mark.parametrize("old_name", ["Other", None])
def test_overwrite_interrupted_while_moving_in_keeps_the_old_dataset(tmp_path, monkeypatch, error, old_name):
    """``--overwrite``: an error or Ctrl-C while the new dataset is moved into place leaves the old one intact (same
    or another name for the id) and no temporary or moved-aside folder behind."""
    first = ph.write_phantom_dataset(str(tmp_path), 10, name=old_name, labeled=1, unlabeled=0, test=0)
    before = _tree(first)
    fail_moving_in(monkeypatch, error)
    with pytest.raises(error, match="simulated"):
        ph.write_phantom_dataset(str(tmp_path), 10, labeled=2, unlabeled=0, test=0, seed=1, overwrite=True)
    assert os.listdir(tmp_path) == [os.path.basename(first)]
    assert _tree(first) == before

    monkeypatch.undo()
    second = ph.write_phantom_dataset(str(tmp_path), 10, labeled=2, unlabeled=0, test=0, seed=1, overwrite=True)
    assert os.listdir(tmp_path) == [os.path.basename(second)]
    assert len(os.listdir(os.path.join(second, "imagesTr"))) == 2


@pytest.mark.parametrize("other", ["users_dataset", "split_of_a_phantom"])
def test_overwrite_replaces_only_a_phantom_it_wrote(tmp_path, other):
    """Regression (issue 27): --overwrite deleted whatever dataset held the id. Now only a phantom this writer made
    (phantom.json, no split.json) is replaced; anything else is refused untouched."""
    from treesnap import changed, snapshot

    ds = tmp_path / "Dataset010_Mine"
    (ds / "imagesTr").mkdir(parents=True)
    (ds / "imagesTr" / "case_0000.nii.gz").write_bytes(b"my image")
    if other == "split_of_a_phantom":  # `nnunetv2-dca split` carries phantom.json over
        (ds / "phantom.json").write_text(json.dumps({"generator": "nnunetv2-dca phantom"}))
        (ds / "split.json").write_text("{}")
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match="Dataset010_Mine.*not a phantom.*another -d"):
        ph.write_phantom_dataset(str(tmp_path), 10, labeled=1, unlabeled=0, test=0, overwrite=True)
    assert changed(before, snapshot(tmp_path)) == []
