"""`nnunetv2-dca distill`: model-folder parsing, the confidence filter, the refusals, and one end-to-end run through
the stock commands on a tiny phantom (DCA model -> distilled dataset -> stock planning -> stock training)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN, fresh_env, run_cmd
from nnunetv2_dca.distill import DistillConfig, DistillError, confidence_filter, distill, parse_model_folder


def test_parse_model_folder_reads_nnunet_naming(tmp_path: Path):
    folder = tmp_path / "Dataset952_Semi" / "nnUNetTrainerDCA__nnUNetPlansDCA__2d"
    parts = parse_model_folder(str(folder))
    assert (parts["dataset_id"], parts["trainer"], parts["plans"], parts["configuration"]) == \
        ("952", "nnUNetTrainerDCA", "nnUNetPlansDCA", "2d")
    with pytest.raises(DistillError, match="not an nnU-Net model folder"):
        parse_model_folder(str(tmp_path / "Dataset952_Semi" / "some_folder"))


def test_confidence_filter_ignores_low_confidence_voxels_only():
    seg = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    probs = np.array([[[0.9, 0.2], [0.1, 0.3]], [[0.05, 0.7], [0.1, 0.4]], [[0.05, 0.1], [0.8, 0.3]]])
    out, frac = confidence_filter(seg, probs, 0.75, ignore_value=3)
    assert out.tolist() == [[0, 3], [2, 3]] and frac == 0.5 and out.dtype == seg.dtype
    with pytest.raises(DistillError, match="do not match"):
        confidence_filter(seg, probs[:, :1], 0.75, 3)


def _raw_with(tmp_path: Path, unlabeled: int) -> Path:
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    raw = tmp_path / "raw"
    write_phantom_dataset(str(raw), 901, labeled=2, unlabeled=unlabeled, test=0)
    model = tmp_path / "results" / "Dataset901_AbdomenPhantom" / "nnUNetTrainerDCA__nnUNetPlansDCA__2d"
    model.mkdir(parents=True)
    return model


@pytest.mark.parametrize("change, message", [
    ({"threshold": 1.5}, "--threshold"),
    ({"plans_name": None, "planner": "MyPlanner"}, "plans identifier"),
    ({"out_id": 901}, "model's own dataset"),
    ({"out_id": 903}, "already exists.*--overwrite"),
])
def test_refusals_before_any_prediction(tmp_path: Path, monkeypatch, change, message):
    model = _raw_with(tmp_path, unlabeled=1)
    (tmp_path / "raw" / "Dataset903_Taken").mkdir()
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    cfg = DistillConfig(model_folder=str(model), out_id=902)
    for k, v in change.items():
        setattr(cfg, k, v)
    with pytest.raises(DistillError, match=message):
        distill(cfg)
    assert sorted(os.listdir(tmp_path / "raw")) == ["Dataset901_AbdomenPhantom", "Dataset903_Taken"]


def test_no_unlabeled_images_and_no_raw_folder_are_refused(tmp_path: Path, monkeypatch):
    model = _raw_with(tmp_path, unlabeled=0)
    monkeypatch.delenv("nnUNet_raw", raising=False)
    with pytest.raises(DistillError, match="nnUNet_raw is not set"):
        distill(DistillConfig(model_folder=str(model), out_id=902))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    with pytest.raises(DistillError, match="no unlabeled images"):
        distill(DistillConfig(model_folder=str(model), out_id=902))


@pytest.mark.slow
def test_distill_end_to_end_through_stock_commands(tmp_path: Path):
    base = tmp_path / "nnunet"
    env = fresh_env(base, training=True)
    cli = str(BIN / "nnunetv2-dca")
    run_cmd([cli, "phantom", "-d", "901", "--labeled", "3", "--unlabeled", "2", "--test", "1"], env)
    run_cmd([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", "901", "-pl", "nnUNetPlannerDCA_CPU", "-c", "2d",
             "-np", "1", "-npfp", "1"], fresh_env(base))
    budget = {"nnUNetDCA_budget_epochs": "1", "nnUNetDCA_budget_iterations": "2",
              "nnUNetDCA_budget_val_iterations": "1"}
    for trainer in ("nnUNetTrainerDCA_budget", "nnUNetTrainer_budget"):
        plans = "nnUNetPlansDCA_CPU"
        if trainer == "nnUNetTrainer_budget":  # a stock network on the same data: the teacher that is refused
            from nnunetv2_dca.lab.benchmark.data import write_bench_plans

            write_bench_plans(str(base / "nnUNet_preprocessed" / "Dataset901_AbdomenPhantom"), plans, "2d", None)
            plans = "nnUNetPlansBenchStock"
        run_cmd([str(BIN / "nnUNetv2_train"), "901", "2d", "all", "-tr", trainer, "-p", plans, "-device", "cpu"],
                {**env, **budget})
    results = base / "nnUNet_results" / "Dataset901_AbdomenPhantom"
    stock = run_cmd([cli, "distill", "-m", str(results / "nnUNetTrainer_budget__nnUNetPlansBenchStock__2d"), "-f",
                     "all", "--out-id", "902"], env, check=False)
    assert stock.returncode == 2 and "needs a DCA model" in stock.stdout
    assert not (base / "nnUNet_raw" / "Dataset902_AbdomenPhantomDistilled").exists()

    model = str(results / "nnUNetTrainerDCA_budget__nnUNetPlansDCA_CPU__2d")
    proc = run_cmd([cli, "distill", "-m", model, "-f", "all", "--out-id", "902", "--threshold", "0.5"], env)
    assert "nnUNetv2_train 902 2d all -tr nnUNetTrainer -p nnUNetPlans" in proc.stdout
    ds = base / "nnUNet_raw" / "Dataset902_AbdomenPhantomDistilled"
    assert sorted(os.listdir(ds / "labelsTr")) == [f"phantom_000{i}.nii.gz" for i in range(5)]
    dj = json.loads((ds / "dataset.json").read_text())
    assert dj["labels"]["ignore"] == 14 and dj["numTraining"] == 5
    cases = json.loads((ds / "pseudo_labels.json").read_text())["cases"]
    assert cases["phantom_0003"]["source"] == "pseudo-label" and cases["phantom_0003"]["model"] == model
    assert 0.0 <= cases["phantom_0004"]["ignored_voxel_fraction"] <= 1.0
    assert cases["phantom_0000"] == {"source": "reference label"}
    import SimpleITK as sitk

    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(ds / "labelsTr" / "phantom_0003.nii.gz")))
    assert set(np.unique(seg)) <= set(range(15))
    assert (base / "nnUNet_preprocessed" / ds.name / "nnUNetPlans.json").is_file()  # stock planner ran
    # the existing id is refused; --overwrite replaces it (and the stale preprocessed folder) safely
    again = run_cmd([cli, "distill", "-m", model, "-f", "all", "--out-id", "902", "--no-plan"], env, check=False)
    assert again.returncode == 2 and "already exists" in again.stdout
    run_cmd([cli, "distill", "-m", model, "-f", "all", "--out-id", "902", "--no-plan", "--overwrite"], env)
    assert "ignore" not in json.loads((ds / "dataset.json").read_text())["labels"]
    assert not (base / "nnUNet_preprocessed" / ds.name).exists()
    # and the stock commands train the plain nnU-Net student on it
    run_cmd([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", "902", "-c", "2d", "-np", "1", "-npfp", "1"],
            fresh_env(base))
    run_cmd([str(BIN / "nnUNetv2_train"), "902", "2d", "all", "-tr", "nnUNetTrainer_budget", "-p", "nnUNetPlans",
             "-device", "cpu"], {**env, **budget})
    assert (base / "nnUNet_results" / ds.name / "nnUNetTrainer_budget__nnUNetPlans__2d" / "fold_all" /
            "checkpoint_final.pth").is_file()


# ------------------------------------------------------------------ regression (issue 27): only its own target
class FakePredictor:
    """Stands in for the DCA model: 'predicts' every unlabeled image by copying it as its label (no torch)."""

    def predict_from_files(self, source: str, out: str, **kwargs) -> None:
        import shutil

        for fname in os.listdir(source):
            shutil.copy(os.path.join(source, fname), os.path.join(out, fname.replace("_0000.nii.gz", ".nii.gz")))


@pytest.fixture
def nnunet_folders(tmp_path: Path, monkeypatch) -> Path:
    """raw (phantom 901 + an unrelated dataset 903), preprocessed and results folders, and a fake DCA model."""
    model = _raw_with(tmp_path, unlabeled=1)
    for base in ("raw", "pre", "results"):
        other = tmp_path / base / "Dataset903_Other"
        other.mkdir(parents=True, exist_ok=True)
        (other / "data.json").write_text("{}")
    for key, base in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "pre"), ("nnUNet_results", "results")):
        monkeypatch.setenv(key, str(tmp_path / base))
    import nnunetv2_dca.inference as inference

    monkeypatch.setattr(inference, "load_model", lambda *args, **kwargs: FakePredictor())
    return model


def _dataset(folder: Path, provenance: bool = False) -> None:
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text("{}")
    if provenance:
        (folder / "pseudo_labels.json").write_text("{}")


@pytest.mark.parametrize("taken_in", ["raw", "pre", "results"])
def test_taken_id_is_refused_without_overwrite_and_nothing_is_touched(tmp_path: Path, nnunet_folders, capsys,
                                                                       taken_in):
    """The id taken only in nnUNet_preprocessed: distill wrote the dataset and deleted that other dataset's
    preprocessed data. Now any folder of the id in raw, preprocessed or results stops it before any prediction."""
    from nnunetv2_dca.cli import main
    from treesnap import changed, snapshot

    _dataset(tmp_path / taken_in / "Dataset902_Mine")
    before = snapshot(tmp_path)
    assert main(["distill", "-m", str(nnunet_folders), "--out-id", "902", "--no-plan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Dataset902_Mine" in err and "--out-id" in err, err
    assert changed(before, snapshot(tmp_path)) == []


@pytest.mark.parametrize("layout", ["raw_not_distilled", "pre_other_name", "pre_without_raw"])
def test_overwrite_refuses_a_dataset_distill_did_not_write(tmp_path: Path, nnunet_folders, layout):
    from treesnap import changed, snapshot

    if layout == "raw_not_distilled":  # the user's own dataset under the id: no pseudo_labels.json
        _dataset(tmp_path / "raw" / "Dataset902_Mine")
        _dataset(tmp_path / "pre" / "Dataset902_Mine")
    elif layout == "pre_other_name":  # a distilled raw dataset, but the id's preprocessed folder is another one's
        _dataset(tmp_path / "raw" / "Dataset902_AbdomenPhantomDistilled", provenance=True)
        _dataset(tmp_path / "pre" / "Dataset902_Mine")
    else:
        _dataset(tmp_path / "pre" / "Dataset902_AbdomenPhantomDistilled")
    before = snapshot(tmp_path)
    with pytest.raises(DistillError, match="Dataset902_.*another --out-id"):
        distill(DistillConfig(model_folder=str(nnunet_folders), out_id=902, overwrite=True, plan=False))
    assert changed(before, snapshot(tmp_path)) == []


def test_overwrite_replaces_only_its_own_dataset_and_its_stale_preprocessed_data(tmp_path: Path, nnunet_folders):
    from treesnap import changed, snapshot

    cfg = DistillConfig(model_folder=str(nnunet_folders), out_id=902, plan=False)
    target = distill(cfg)["dataset"]
    _dataset(tmp_path / "pre" / "Dataset902_AbdomenPhantomDistilled")  # planned since: stale once replaced
    _dataset(tmp_path / "results" / "Dataset902_AbdomenPhantomDistilled")  # a trained student: kept
    before = snapshot(tmp_path)
    cfg.overwrite = True
    assert distill(cfg)["dataset"] == target
    assert changed(before, snapshot(tmp_path),
                   allowed=["raw/Dataset902_AbdomenPhantomDistilled", "pre/Dataset902_AbdomenPhantomDistilled"]) == []
    assert not (tmp_path / "pre" / "Dataset902_AbdomenPhantomDistilled").exists()
    assert (Path(target) / "pseudo_labels.json").is_file()
    assert (tmp_path / "results" / "Dataset902_AbdomenPhantomDistilled" / "dataset.json").is_file()
