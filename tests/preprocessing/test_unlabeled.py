"""DCAPreprocessor: imagesTrUnlabeled through nnU-Net's stock preprocessing commands.

One stock ``nnUNetv2_plan_and_preprocess`` per session (module fixture) plus one ``nnUNetv2_preprocess`` with a copy
of the stock plans that names ``DCAPreprocessor``; the bad-input tests run on copies of that folder tree, in-process.
Size: every case reuses that one expensive fixture, so they stay in one module.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import fresh_env, run_cmd

DS_ID = 992
DS = f"Dataset{DS_ID}_AbdomenPhantom"
PLANS = "nnUNetPlansDCAtest"
CFG = "3d_fullres"
LABELED = [f"phantom_{i:04d}" for i in range(4)]
UNLABELED = ["phantom_0004", "phantom_0005"]
RESAMPLED_SPACING_XYZ = (4.0, 4.5, 6.0)  # phantom_0005 gets another spacing than the plans' target (5 mm)


# ---------------------------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------------------------

def _write_like(src: Path, dst: Path, spacing_xyz: Tuple[float, float, float]) -> None:
    """Write the voxels of ``src`` to ``dst`` with another spacing."""
    img = sitk.ReadImage(str(src))
    out = sitk.GetImageFromArray(sitk.GetArrayFromImage(img))
    out.CopyInformation(img)
    out.SetSpacing(spacing_xyz)
    sitk.WriteImage(out, str(dst), useCompression=True)


@pytest.fixture(scope="module")
def raw_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nnU-Net base folder with only the raw phantom (4 labeled, 2 unlabeled; phantom_0005 at another spacing)."""
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    base = tmp_path_factory.mktemp("nnunet_raw_only")
    raw = Path(write_phantom_dataset(str(base / "nnUNet_raw"), DS_ID, labeled=4, unlabeled=2, test=0, seed=1))
    f = raw / "imagesTrUnlabeled" / "phantom_0005_0000.nii.gz"
    _write_like(f, f, spacing_xyz=RESAMPLED_SPACING_XYZ)
    return base


@pytest.fixture(scope="module")
def planned(raw_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, str]:
    """Stock planning + preprocessing, then nnUNetv2_preprocess with plans naming DCAPreprocessor."""
    base = tmp_path_factory.mktemp("nnunet_planned")
    shutil.copytree(raw_base / "nnUNet_raw", base / "nnUNet_raw")
    env = fresh_env(base)
    run_cmd(["nnUNetv2_plan_and_preprocess", "-d", str(DS_ID), "-c", CFG, "-np", "1", "-npfp", "1"], env)
    pre = base / "nnUNet_preprocessed" / DS
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["plans_name"] = PLANS
    for name, cfg in plans["configurations"].items():
        if "data_identifier" in cfg:
            cfg["data_identifier"] = f"{PLANS}_{name}"
        if "preprocessor_name" in cfg:
            cfg["preprocessor_name"] = "DCAPreprocessor"
    (pre / f"{PLANS}.json").write_text(json.dumps(plans, indent=2))
    proc = run_cmd(["nnUNetv2_preprocess", "-d", str(DS_ID), "-plans_name", PLANS, "-c", CFG, "-np", "1"], env)
    return base, proc.stdout


def _in_process_env(monkeypatch: pytest.MonkeyPatch, base: Path) -> None:
    # nnunetv2.paths reads the environment on every access; spawned workers inherit os.environ
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (base / key).mkdir(exist_ok=True)
        monkeypatch.setenv(key, str(base / key))


@pytest.fixture
def planned_copy(planned: Tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the planned tree (raw + plans + a good `_unlabeled` folder), nnU-Net paths pointing at it."""
    base = tmp_path / "nnunet"
    shutil.copytree(planned[0] / "nnUNet_raw", base / "nnUNet_raw")
    src, dst = planned[0] / "nnUNet_preprocessed" / DS, base / "nnUNet_preprocessed" / DS
    dst.mkdir(parents=True)
    for name in (f"{PLANS}.json", "dataset.json", "dataset_fingerprint.json"):
        shutil.copy(src / name, dst / name)
    shutil.copytree(src / f"{PLANS}_{CFG}_unlabeled", dst / f"{PLANS}_{CFG}_unlabeled")
    _in_process_env(monkeypatch, base)
    return base


def _tree_digest(folder: Path) -> Dict[str, str]:
    # every file, also in subfolders (the stamp lives in dca/)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(pre: Path) -> List[str]:
    return sorted(p.name for p in pre.iterdir() if any(m in p.name for m in (".tmp-", ".old-", ".partial-")))


# ---------------------------------------------------------------------------------------------------------------------
# 1. the stock command writes the unlabeled folder
# ---------------------------------------------------------------------------------------------------------------------

def _assert_props_equal(a: dict, b: dict, path: str = "") -> None:
    assert set(a) == set(b), f"{path}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, dict):
            _assert_props_equal(x, y, f"{path}.{k}")
        else:
            assert np.array_equal(np.asarray(x), np.asarray(y)), f"{path}.{k}: {x!r} != {y!r}"


@pytest.mark.slow
def test_stock_preprocess_writes_unlabeled_cases(planned: Tuple[Path, str], monkeypatch: pytest.MonkeyPatch):
    base, stdout = planned
    _in_process_env(monkeypatch, base)
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class, nnUNetDatasetBlosc2
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_dca.preprocessing.unlabeled import unlabeled_folder

    pre = base / "nnUNet_preprocessed" / DS
    raw = base / "nnUNet_raw" / DS
    labeled_dir, unlabeled_dir = pre / f"{PLANS}_{CFG}", pre / f"{PLANS}_{CFG}_unlabeled"
    assert Path(unlabeled_folder(str(pre), f"{PLANS}_{CFG}")) == unlabeled_dir
    assert labeled_dir.is_dir() and unlabeled_dir.is_dir()
    assert sorted(p.name for p in labeled_dir.glob("*.pkl")) == [f"{c}.pkl" for c in LABELED]
    from nnunetv2_dca.preprocessing.unlabeled import STAMP_DIR, unlabeled_stamp_problem
    assert sorted(p.name for p in unlabeled_dir.iterdir()) == sorted(
        [STAMP_DIR] + [f"{c}{suffix}" for c in UNLABELED for suffix in (".b2nd", "_seg.b2nd", ".pkl")])
    assert not _leftovers(pre)
    assert "2 unlabeled case(s)" in stdout and "Preprocessing unlabeled cases" in stdout

    plans_manager = PlansManager(str(pre / f"{PLANS}.json"))
    cm = plans_manager.get_configuration(CFG)
    # the stamp matches what a trainer recomputes from the same plans
    assert unlabeled_stamp_problem(str(unlabeled_dir), plans_manager, cm, UNLABELED) is None
    # what nnUNetv2_predict instantiates for these plans (its run_case is nnU-Net's, inherited unchanged)
    from nnunetv2_dca.preprocessing.unlabeled import DCAPreprocessor
    assert cm.preprocessor_class is DCAPreprocessor and "run_case" not in vars(DCAPreprocessor)
    dataset_json = json.loads((pre / "dataset.json").read_text())
    dataset_cls = infer_dataset_class(str(unlabeled_dir))
    assert dataset_cls is nnUNetDatasetBlosc2
    dataset = dataset_cls(str(unlabeled_dir))
    assert dataset.identifiers == UNLABELED
    for case in UNLABELED:
        expected_data, expected_seg, expected_props = DefaultPreprocessor(verbose=False).run_case(
            [str(raw / "imagesTrUnlabeled" / f"{case}_0000.nii.gz")], None, plans_manager, cm, dataset_json)
        data, seg, seg_prev, props = dataset.load_case(case)
        assert seg_prev is None
        assert data.shape == expected_data.shape and data.dtype == np.float32
        np.testing.assert_allclose(data[:], expected_data, rtol=0, atol=1e-6)
        assert seg.dtype == np.int16 and np.array_equal(seg[:], expected_seg)
        assert set(np.unique(seg[:])) <= {-1, 0}
        class_locations = props.pop("class_locations")
        assert set(class_locations) == set(range(1, 14)) and all(len(v) == 0 for v in class_locations.values())
        _assert_props_equal(props, expected_props, case)
    # phantom_0005 was resampled to the plans' spacing
    props = dataset.load_case("phantom_0005")[3]
    original_spacing = [props["spacing"][i] for i in plans_manager.transpose_forward]
    assert not np.allclose(original_spacing, cm.spacing)
    new_shape = compute_new_shape(props["shape_after_cropping_and_before_resampling"], original_spacing, cm.spacing)
    assert tuple(dataset.load_case("phantom_0005")[0].shape[1:]) == tuple(new_shape)
    assert tuple(new_shape) != tuple(props["shape_after_cropping_and_before_resampling"])

    # nnU-Net's own data loader: random crops without foreground (and with forced foreground it falls back to random)
    label_manager = plans_manager.get_label_manager(dataset_json)
    for oversample in (0.0, 1.0):
        loader = nnUNetDataLoader(dataset, 2, cm.patch_size, cm.patch_size, label_manager,
                                  oversample_foreground_percent=oversample)
        batch = loader.generate_train_batch()
        assert tuple(batch["data"].shape) == (2, 1, *cm.patch_size)
        assert set(np.unique(batch["target"].numpy())) <= {-1, 0}

    # labeled preprocessing is nnU-Net's, unchanged: same result as the stock plans for a case
    stock = nnUNetDatasetBlosc2(str(pre / f"nnUNetPlans_{CFG}"))
    ours = nnUNetDatasetBlosc2(str(labeled_dir))
    assert stock.identifiers == ours.identifiers == LABELED
    d1, s1, _, p1 = stock.load_case(LABELED[0])
    d2, s2, _, p2 = ours.load_case(LABELED[0])
    assert np.array_equal(d1[:], d2[:]) and np.array_equal(s1[:], s2[:])
    _assert_props_equal(p1, p2)


# ---------------------------------------------------------------------------------------------------------------------
# 2. bad inputs: error naming the offender, nothing half-written
# ---------------------------------------------------------------------------------------------------------------------

def _set_channels(raw: Path, n: int) -> None:
    dj = json.loads((raw / "dataset.json").read_text())
    dj["channel_names"] = {str(i): f"CT{i}" for i in range(n)}
    (raw / "dataset.json").write_text(json.dumps(dj, indent=2))


def _stray_text(raw: Path) -> List[str]:
    (raw / "imagesTrUnlabeled" / "notes.txt").write_text("hello")
    return ["notes.txt", "file_ending"]


def _wrong_ending(raw: Path) -> List[str]:
    (raw / "imagesTrUnlabeled" / "x_0000.nrrd").write_bytes(b"NRRD0004\n")
    return ["x_0000.nrrd"]


def _missing_channel(raw: Path) -> List[str]:
    # two channels declared; phantom_0004 gets its second channel, phantom_0005 does not
    _set_channels(raw, 2)
    d = raw / "imagesTrUnlabeled"
    shutil.copy(d / "phantom_0004_0000.nii.gz", d / "phantom_0004_0001.nii.gz")
    return ["phantom_0005", "phantom_0005_0001.nii.gz", "missing"]


def _extra_channel(raw: Path) -> List[str]:
    d = raw / "imagesTrUnlabeled"
    shutil.copy(d / "phantom_0004_0000.nii.gz", d / "phantom_0004_0003.nii.gz")
    return ["phantom_0004", "phantom_0004_0003.nii.gz", "unexpected"]


def _garbage(raw: Path) -> List[str]:
    (raw / "imagesTrUnlabeled" / "phantom_0004_0000.nii.gz").write_bytes(os.urandom(2000))
    return ["phantom_0004_0000.nii.gz", "cannot be read"]


def _corrupt(raw: Path) -> List[str]:
    # a valid gzip stream, but not a NIfTI file: only the image reader can tell
    (raw / "imagesTrUnlabeled" / "phantom_0004_0000.nii.gz").write_bytes(gzip.compress(os.urandom(2000)))
    return ["phantom_0004_0000.nii.gz", "cannot be read", "SimpleITKIO"]


def _truncated(raw: Path) -> List[str]:
    # the header is intact and SimpleITK reads this file without error (zero-filling the missing half)
    f = raw / "imagesTrUnlabeled" / "phantom_0005_0000.nii.gz"
    b = f.read_bytes()
    f.write_bytes(b[: len(b) // 2])
    return ["phantom_0005_0000.nii.gz", "cannot be read"]


def _short_voxel_data(raw: Path) -> List[str]:
    # a complete gzip stream whose voxel data is shorter than the header says: SimpleITK zero-fills it, too
    f = raw / "imagesTrUnlabeled" / "phantom_0004_0000.nii.gz"
    data = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(data[:-1000]))
    return ["phantom_0004_0000.nii.gz", "cannot be read", f"header says {len(data)} bytes",
            f"stream has {len(data) - 1000}"]


def _geometry_mismatch(raw: Path) -> List[str]:
    _set_channels(raw, 2)
    d = raw / "imagesTrUnlabeled"
    shutil.copy(d / "phantom_0005_0000.nii.gz", d / "phantom_0005_0001.nii.gz")
    _write_like(d / "phantom_0004_0000.nii.gz", d / "phantom_0004_0001.nii.gz", spacing_xyz=(5.0, 5.0, 2.5))
    return ["phantom_0004", "phantom_0004_0000.nii.gz", "phantom_0004_0001.nii.gz", "spacing"]


def _collision(raw: Path) -> List[str]:
    d = raw / "imagesTrUnlabeled"
    shutil.copy(d / "phantom_0004_0000.nii.gz", d / "phantom_0001_0000.nii.gz")
    return ["phantom_0001", "labeled"]


ESCAPING_ID = "../../../../escaped"  # from <data_identifier>_unlabeled.tmp-XXXX up to the test's tmp_path


def _path_as_case_id(raw: Path) -> List[str]:
    # a dataset.json case id that is a path: its preprocessed files would land outside nnUNet_preprocessed
    dj = json.loads((raw / "dataset.json").read_text())
    dj["unlabeled_images"] = {ESCAPING_ID: ["imagesTrUnlabeled/phantom_0004_0000.nii.gz"]}
    (raw / "dataset.json").write_text(json.dumps(dj, indent=2))
    return [repr(ESCAPING_ID), 'dataset.json "unlabeled_images"', "path separator"]


def _dots_in_file_name(raw: Path) -> List[str]:
    d = raw / "imagesTrUnlabeled"
    shutil.copy(d / "phantom_0004_0000.nii.gz", d / "a..b_0000.nii.gz")
    return ["'a..b'", str(d), "'..'"]


BREAKERS: Dict[str, Callable[[Path], List[str]]] = {
    "stray_text_file": _stray_text, "wrong_ending": _wrong_ending, "missing_channel": _missing_channel,
    "extra_channel": _extra_channel, "garbage": _garbage, "corrupt": _corrupt, "truncated_gzip": _truncated,
    "short_voxel_data": _short_voxel_data, "geometry_mismatch": _geometry_mismatch, "id_collision": _collision,
    "path_as_case_id": _path_as_case_id, "dots_in_file_name": _dots_in_file_name,
}


@pytest.mark.parametrize("breaker", list(BREAKERS))
def test_validation_names_the_offender(breaker: str, raw_base: Path, tmp_path: Path):
    from nnunetv2_dca.preprocessing.unlabeled import (UnlabeledImageError, find_unlabeled_images,
                                                      labeled_case_identifiers, validate_unlabeled_images)

    raw = tmp_path / DS
    shutil.copytree(raw_base / "nnUNet_raw" / DS, raw)
    dj = json.loads((raw / "dataset.json").read_text())
    cases = find_unlabeled_images(str(raw), dj)
    assert sorted(cases) == UNLABELED  # the intact copy passes
    validate_unlabeled_images(cases, dj, labeled_identifiers=labeled_case_identifiers(str(raw), dj))

    expected = BREAKERS[breaker](raw)
    dj = json.loads((raw / "dataset.json").read_text())
    with pytest.raises(UnlabeledImageError) as info:
        cases = find_unlabeled_images(str(raw), dj)
        validate_unlabeled_images(cases, dj, labeled_identifiers=labeled_case_identifiers(str(raw), dj))
    for word in expected:
        assert word in str(info.value), str(info.value)


def test_short_uncompressed_nii_is_refused(tmp_path: Path):
    """An uncompressed ``.nii`` dataset read with SimpleITKIO (plans/dataset.json may name it for ``.nii``): a file
    shorter than its header says is named with the byte counts; SimpleITK alone reads it, zero-filling the missing
    voxels. (nnU-Net's default for ``.nii``, NibabelIO, refuses such a file by itself.)"""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    from nnunetv2_dca.preprocessing.unlabeled import (UnlabeledImageError, find_unlabeled_images,
                                                      validate_unlabeled_images)

    raw = tmp_path / "Dataset001_Nii"
    (raw / "imagesTrUnlabeled").mkdir(parents=True)
    dj = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1}, "numTraining": 0, "file_ending": ".nii"}
    (raw / "dataset.json").write_text(json.dumps(dj))
    for case in ("u1", "u2"):
        sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 5, 6), np.float32)),
                        str(raw / "imagesTrUnlabeled" / f"{case}_0000.nii"))
    cases = find_unlabeled_images(str(raw), dj)
    validate_unlabeled_images(cases, dj, SimpleITKIO)
    short = raw / "imagesTrUnlabeled" / "u2_0000.nii"
    full = short.stat().st_size
    short.write_bytes(short.read_bytes()[:-8])
    SimpleITKIO().read_images([str(short)])  # no error from the reader itself
    with pytest.raises(UnlabeledImageError) as info:
        validate_unlabeled_images(find_unlabeled_images(str(raw), dj), dj, SimpleITKIO)
    msg = str(info.value)
    assert str(short) in msg and f"header says {full} bytes" in msg and f"file has {full - 8}" in msg, msg
    assert "u1_0000.nii" not in msg


def test_dataset_json_key_lists_images_elsewhere(raw_base: Path, tmp_path: Path):
    from nnunetv2_dca.preprocessing.unlabeled import (UnlabeledImageError, find_unlabeled_images,
                                                      validate_unlabeled_images)

    raw = tmp_path / DS
    shutil.copytree(raw_base / "nnUNet_raw" / DS, raw)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(raw / "imagesTrUnlabeled" / "phantom_0004_0000.nii.gz", elsewhere / "extra_a.nii.gz")
    (raw / "more").mkdir()
    shutil.copy(raw / "imagesTrUnlabeled" / "phantom_0004_0000.nii.gz", raw / "more" / "b_0000.nii.gz")
    dj = json.loads((raw / "dataset.json").read_text())
    dj["unlabeled_images"] = {"extra_a": [str(elsewhere / "extra_a.nii.gz")], "extra_b": ["more/b_0000.nii.gz"]}
    (raw / "imagesTrUnlabeled" / ".DS_Store").write_text("")  # hidden files are ignored
    cases = find_unlabeled_images(str(raw), dj)
    assert cases == {"extra_a": [str(elsewhere / "extra_a.nii.gz")], "extra_b": [str(raw / "more" / "b_0000.nii.gz")],
                     "phantom_0004": [str(raw / "imagesTrUnlabeled" / "phantom_0004_0000.nii.gz")],
                     "phantom_0005": [str(raw / "imagesTrUnlabeled" / "phantom_0005_0000.nii.gz")]}
    validate_unlabeled_images(cases, dj)

    dj["unlabeled_images"] = {"phantom_0004": ["more/b_0000.nii.gz"], "extra_c": ["more/missing_0000.nii.gz"],
                              "extra_d": ["more/b_0000.nii.gz", "more/b_0000.nii.gz"]}
    with pytest.raises(UnlabeledImageError) as info:
        find_unlabeled_images(str(raw), dj)
    msg = str(info.value)
    assert "'phantom_0004' is both in" in msg and "missing_0000.nii.gz" in msg and "'extra_d': 2 file(s)" in msg


@pytest.mark.slow
@pytest.mark.parametrize("breaker", ["stray_text_file", "missing_channel", "corrupt", "truncated_gzip",
                                     "geometry_mismatch", "id_collision"])
def test_run_fails_without_half_written_output(breaker: str, planned_copy: Path):
    from nnunetv2_dca.preprocessing.unlabeled import DCAPreprocessor, UnlabeledImageError

    pre = planned_copy / "nnUNet_preprocessed" / DS
    target = pre / f"{PLANS}_{CFG}_unlabeled"
    expected = BREAKERS[breaker](planned_copy / "nnUNet_raw" / DS)
    good = _tree_digest(target)

    # a previous good folder is left as it was
    with pytest.raises(UnlabeledImageError) as info:
        DCAPreprocessor(verbose=False).run(DS_ID, CFG, PLANS, 1)
    for word in expected:
        assert word in str(info.value), str(info.value)
    assert _tree_digest(target) == good
    assert not _leftovers(pre)

    # without a previous folder, none appears
    shutil.rmtree(target)
    with pytest.raises(UnlabeledImageError):
        DCAPreprocessor(verbose=False).run(DS_ID, CFG, PLANS, 1)
    assert not target.exists()
    assert not _leftovers(pre)


def test_case_id_that_is_a_path_cannot_write_outside_the_output_folder(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    """Regression (issue 27): ``preprocess_unlabeled`` joined the case id to its output folder, so
    '../../../../escaped' wrote the case's files outside it. It now refuses the id before creating anything."""
    from nnunetv2_dca.caseids import CaseIdError
    from nnunetv2_dca.preprocessing import unlabeled as mod

    def save(_pre, _case, out: str, *_rest) -> None:  # stands in for nnU-Net's save_case: writes <out>.b2nd
        Path(out + ".b2nd").write_text("case")

    monkeypatch.setattr(mod, "_preprocess_unlabeled_case", save)
    monkeypatch.setattr(mod, "unlabeled_stamp", lambda *_: {})
    image = tmp_path / "u_0000.nii.gz"
    image.write_text("image")
    target = tmp_path / "nnunet" / "nnUNet_preprocessed" / DS / f"{PLANS}_{CFG}_unlabeled"  # as planned_copy
    before = _tree_digest(tmp_path)
    with pytest.raises(CaseIdError) as info:
        mod.DCAPreprocessor(verbose=False).preprocess_unlabeled({ESCAPING_ID: [str(image)]}, str(target), None,
                                                                None, {}, 1)
    assert repr(ESCAPING_ID) in str(info.value) and "preprocess_unlabeled" in str(info.value)
    assert _tree_digest(tmp_path) == before and not (tmp_path / "nnunet").exists()


@pytest.mark.slow
def test_run_refuses_a_path_as_case_id_before_writing(planned_copy: Path, tmp_path: Path):
    """The same through ``DCAPreprocessor.run`` (what nnUNetv2_preprocess calls): the dataset.json id is refused by
    the validation, before the labeled step, and nothing below tmp_path changes."""
    from nnunetv2_dca.preprocessing.unlabeled import DCAPreprocessor, UnlabeledImageError

    expected = _path_as_case_id(planned_copy / "nnUNet_raw" / DS)
    before = _tree_digest(tmp_path)
    with pytest.raises(UnlabeledImageError) as info:
        DCAPreprocessor(verbose=False).run(DS_ID, CFG, PLANS, 1)
    for word in expected:
        assert word in str(info.value), str(info.value)
    assert _tree_digest(tmp_path) == before


@pytest.mark.slow
def test_failure_while_writing_leaves_previous_folder(planned_copy: Path, monkeypatch: pytest.MonkeyPatch):
    """A case that passes validation but fails while the unlabeled folder is being written (the first case is
    already in the temporary folder): error naming the case, temporary folder removed, old folder intact."""
    from nnunetv2_dca.preprocessing import unlabeled as mod

    pre = planned_copy / "nnUNet_preprocessed" / DS
    target = pre / f"{PLANS}_{CFG}_unlabeled"
    good = _tree_digest(target)
    written: List[str] = []
    real = mod.nnUNetDatasetBlosc2

    class FailSecond(real):
        @staticmethod
        def save_case(data, seg, properties, output_filename_truncated, **kwargs):
            if written:
                raise OSError("disk full (simulated)")
            real.save_case(data, seg, properties, output_filename_truncated, **kwargs)
            written.append(output_filename_truncated)
            assert Path(output_filename_truncated + ".b2nd").is_file()

    # only this process is patched: the labeled cases are saved by nnU-Net's spawned workers
    monkeypatch.setattr(mod, "nnUNetDatasetBlosc2", FailSecond)
    with pytest.raises(mod.UnlabeledImageError) as info:
        mod.DCAPreprocessor(verbose=False).run(DS_ID, CFG, PLANS, 1)
    assert "phantom_0005" in str(info.value) and "disk full" in str(info.value)
    assert len(written) == 1 and ".partial-" in written[0]
    assert _tree_digest(target) == good
    assert not _leftovers(pre)
    assert len(list((pre / f"{PLANS}_{CFG}").glob("*.pkl"))) == len(LABELED)  # labeled step ran normally


# ---------------------------------------------------------------------------------------------------------------------
# 3. no unlabeled images
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_missing_unlabeled_folder_is_a_note(planned_copy: Path, capsys: pytest.CaptureFixture):
    from nnunetv2_dca.preprocessing.unlabeled import DCAPreprocessor

    raw = planned_copy / "nnUNet_raw" / DS
    shutil.rmtree(raw / "imagesTrUnlabeled")
    pre = planned_copy / "nnUNet_preprocessed" / DS
    DCAPreprocessor(verbose=False).run(DS_ID, CFG, PLANS, 1)
    out = capsys.readouterr().out
    assert "no unlabeled images found" in out and str(raw / "imagesTrUnlabeled") in out
    assert sorted(p.name for p in (pre / f"{PLANS}_{CFG}").glob("*.pkl")) == [f"{c}.pkl" for c in LABELED]
    # the folder of the earlier run (made from images that are gone) is not kept for a trainer to pick up
    assert not (pre / f"{PLANS}_{CFG}_unlabeled").exists() and "stale" in out
    assert not _leftovers(pre)


def test_rgb_png_unlabeled_images_are_one_file_per_case_as_nnunet_stores_them(tmp_path):
    """nnU-Net's NaturalImage2DIO keeps RGB in <case>_0000.png (3 of the channel_names entries in one file); the
    channel count is checked on the content, so a grayscale PNG for an RGB dataset is refused by name."""
    import SimpleITK as sitk

    from nnunetv2_dca.data.phantom import write_phantom_dataset
    from nnunetv2_dca.preprocessing.unlabeled import (UnlabeledImageError, find_unlabeled_images,
                                                      validate_unlabeled_images)

    raw = write_phantom_dataset(str(tmp_path), 992, labeled=1, unlabeled=2, test=0, seed=1, dim=2)
    dj = json.loads(open(os.path.join(raw, "dataset.json")).read())
    cases = find_unlabeled_images(raw)
    assert sorted(cases) == ["phantom_0001", "phantom_0002"]
    assert all(len(files) == 1 and files[0].endswith("_0000.png") for files in cases.values())
    validate_unlabeled_images(cases, dj)  # 3 channels in one file: fine
    gray = os.path.join(raw, "imagesTrUnlabeled", "phantom_0002_0000.png")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((16, 16), np.uint8)), gray)
    with pytest.raises(UnlabeledImageError, match=r"phantom_0002.*hold 1 channel\(s\), dataset.json channel_names "
                                                  r"has 3"):
        validate_unlabeled_images(find_unlabeled_images(raw), dj)
    # a gap in the channel files is still reported by name
    os.rename(gray, gray.replace("_0000.png", "_0001.png"))
    with pytest.raises(UnlabeledImageError, match="phantom_0002_0000.png"):
        find_unlabeled_images(raw)
