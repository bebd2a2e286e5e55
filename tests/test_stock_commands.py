"""The central requirement of the foundation: nnU-Net's unmodified console scripts find classes registered through
nnunetv2-dca's mechanism, including inside the worker processes they spawn. Uses the test-only plug-in classes
(tests/plugin) until the real DCA planner/trainer exist; every command is the real console script in a subprocess
with a fresh environment (only nnU-Net's three folders set, plus PYTHONPATH for the plug-in module)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import fresh_env, run_cmd

pytestmark = pytest.mark.slow
DS = "991"
PLANS = "nnUNetPlansDiscoveryTest"


def _markers(folder: Path, what: str) -> set:
    return {int(p.suffix[1:]) for p in folder.glob(f"{what}.*")}


def test_stock_commands_find_registered_classes(phantom_raw: Path, discovery_plugin: Path, tmp_path: Path):
    markers = tmp_path / "markers"
    markers.mkdir()
    env = fresh_env(phantom_raw, pythonpath=str(discovery_plugin))
    env["DCA_DISCOVERY_TEST_MARKERS"] = str(markers)
    train_env = dict(fresh_env(phantom_raw, pythonpath=str(discovery_plugin), training=True),
                     DCA_DISCOVERY_TEST_MARKERS=str(markers))

    # planning: fingerprint extractor (-fpe), planner (-pl), preprocessor + normaliser named in the plans
    run_cmd(["nnUNetv2_plan_and_preprocess", "-d", DS, "-pl", "DiscoveryTestPlanner",
             "-fpe", "DiscoveryTestFingerprintExtractor", "-c", "3d_fullres", "-np", "1", "-npfp", "1",
             "--verify_dataset_integrity"], env)
    pre = Path(env["nnUNet_preprocessed"]) / "Dataset991_AbdomenPhantom"
    plans = json.loads((pre / f"{PLANS}.json").read_text())
    cfg = plans["configurations"]["3d_fullres"]
    assert plans["configurations"]["3d_fullres"]["preprocessor_name"] == "DiscoveryTestPreprocessor"
    assert cfg["normalization_schemes"] == ["DiscoveryTestNormalization"]
    assert (pre / cfg["data_identifier"]).is_dir()
    for what in ("fingerprint", "planner", "preprocessor", "normalization"):
        assert _markers(markers, what), f"{what} class was not used"

    # the same classes through the split commands
    for f in markers.iterdir():
        f.unlink()
    run_cmd(["nnUNetv2_plan_experiment", "-d", DS, "-pl", "DiscoveryTestPlanner"], env)
    run_cmd(["nnUNetv2_preprocess", "-d", DS, "-plans_name", PLANS, "-c", "3d_fullres", "-np", "1"], env)
    assert _markers(markers, "planner")
    # the normaliser is looked up by name inside nnU-Net's spawned preprocessing pool, not in the main process
    main_pids, norm_pids = _markers(markers, "preprocess_main"), _markers(markers, "normalization")
    assert len(main_pids) == 1 and norm_pids and norm_pids.isdisjoint(main_pids | {os.getpid()})

    # training, prediction, model selection
    run_cmd(["nnUNetv2_train", DS, "3d_fullres", "0", "-tr", "DiscoveryTestTrainer", "-p", PLANS,
             "-device", "cpu"], train_env)
    fold = Path(env["nnUNet_results"]) / "Dataset991_AbdomenPhantom" / f"DiscoveryTestTrainer__{PLANS}__3d_fullres"
    assert (fold / "fold_0" / "checkpoint_final.pth").is_file()
    assert (fold / "fold_0" / "validation" / "summary.json").is_file()

    raw = Path(env["nnUNet_raw"]) / "Dataset991_AbdomenPhantom"
    out = tmp_path / "pred"
    run_cmd(["nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(out), "-d", DS, "-c", "3d_fullres",
             "-f", "0", "-tr", "DiscoveryTestTrainer", "-p", PLANS, "-device", "cpu", "-npp", "0", "-nps", "0"],
            train_env)
    assert sorted(p.name for p in out.glob("*.nii.gz")) == sorted(p.name for p in (raw / "labelsTs").iterdir())

    run_cmd(["nnUNetv2_find_best_configuration", DS, "-c", "3d_fullres", "-tr", "DiscoveryTestTrainer",
             "-p", PLANS, "-f", "0", "-np", "1"], train_env)
    inference = json.loads((Path(env["nnUNet_results"]) / "Dataset991_AbdomenPhantom" /
                            "inference_information.json").read_text())
    assert inference["best_model_or_ensemble"]["selected_model_or_models"][0]["trainer"] == "DiscoveryTestTrainer"
