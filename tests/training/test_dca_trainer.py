"""nnUNetTrainerDCA through the stock commands: train, crash mid-warm-up, resume with --c (same lambda curve, extra
log continued), --val, stock nnUNetv2_predict on the checkpoint; clear errors without unlabeled data or DCA plans."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from conftest import BIN, REPO, fresh_env, run_cmd
from nnunetv2_dca.training.semi_supervised import sigmoid_rampup

pytestmark = pytest.mark.slow
DS, NAME = 996, "Dataset996_AbdomenPhantom"
PLANS = "nnUNetPlansDCA_CPU"
TRAINER = "DCAResumeTestTrainer"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    base = tmp_path_factory.mktemp("dcatrain")
    plugin = base / "plugin"
    plugin.mkdir()
    shutil.copy(REPO / "tests" / "plugin" / "dca_training_testplugin.py", plugin)
    info = plugin / "dca_training_testplugin-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dca-training-testplugin\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(f"[nnunetv2_dca.classes]\n{TRAINER} = dca_training_testplugin:{TRAINER}\n")
    write_phantom_dataset(str(base / "nnUNet_raw"), DS, labeled=5, unlabeled=2, test=1, seed=7)
    run_cmd([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(DS), "-pl", "nnUNetPlannerDCA_CPU", "-c",
             "3d_fullres", "-np", "1", "-npfp", "1"], fresh_env(base))
    env = fresh_env(base, pythonpath=str(plugin), training=True)
    train = [str(BIN / "nnUNetv2_train"), str(DS), "3d_fullres", "0", "-tr", TRAINER, "-p", PLANS, "-device", "cpu"]
    crashed = run_cmd(train, {**env, "DCA_TEST_CRASH_AFTER_EPOCH": "1"}, check=False)
    out = base / "nnUNet_results" / NAME / f"{TRAINER}__{PLANS}__3d_fullres" / "fold_0"
    latest = torch.load(out / "checkpoint_latest.pth", map_location="cpu", weights_only=False)
    resumed = run_cmd(train + ["--c"], env)
    return base, env, out, crashed, latest, resumed, train


def test_crash_and_resume_continue_the_same_schedule(trained):
    base, env, out, crashed, latest, resumed, _ = trained
    assert crashed.returncode != 0 and "simulated crash after epoch 1" in crashed.stdout
    assert latest["current_epoch"] == 2
    final = torch.load(out / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    log = final["logging"]
    # lambda at the end of epoch e: 10 * rampup((e + 1) * 2 iterations, 20 % of 3 * 2 iterations)
    expected = [10 * sigmoid_rampup((e + 1) * 2, 0.2 * 6) for e in range(3)]
    assert log["ssl_lambda"] == pytest.approx(expected)
    assert log["ssl_lambda"][:2] == pytest.approx(latest["logging"]["ssl_lambda"])  # restored, not recomputed
    for key in ("dca_loss_sup_head", "dca_loss_sup_tail", "dca_loss_unsup", "dca_share_tail", "dca_gate_tail",
                "ssl_seconds_per_iteration"):
        assert len(log[key]) == 3 and all(math.isfinite(v) for v in log[key]), key
    assert len(log["train_losses"]) == 3
    assert (out / "progress_semi_supervised.png").stat().st_size > 10_000
    assert (out / "validation" / "summary.json").is_file()  # final validation ran (on the model's prediction)


def test_checkpoint_predicts_with_the_stock_command_and_val_reruns(trained):
    base, env, out, *_, train = trained
    pred = base / "pred"
    run_cmd([str(BIN / "nnUNetv2_predict"), "-i", str(base / "nnUNet_raw" / NAME / "imagesTs"), "-o", str(pred),
             "-d", str(DS), "-c", "3d_fullres", "-f", "0", "-tr", TRAINER, "-p", PLANS, "-chk", "checkpoint_final.pth",
             "-device", "cpu", "-npp", "0", "-nps", "0", "--disable_tta"], env)
    assert len(list(pred.glob("*.nii.gz"))) == 1
    (out / "validation" / "summary.json").unlink()
    run_cmd(train + ["--val"], env)
    summary = json.loads((out / "validation" / "summary.json").read_text())
    assert len(summary["mean"]) == 13


def test_missing_unlabeled_images_and_stock_plans_give_clear_errors(trained):
    base, env, *_ = trained
    prep = base / "nnUNet_preprocessed" / NAME
    folder = prep / f"{PLANS}_3d_fullres_unlabeled"
    hidden = prep / "hidden_unlabeled"
    folder.rename(hidden)
    try:
        proc = run_cmd([str(BIN / "nnUNetv2_train"), str(DS), "3d_fullres", "1", "-tr", "nnUNetTrainerDCA_smoke",
                        "-p", PLANS, "-device", "cpu"], env, check=False)
    finally:
        hidden.rename(folder)
    assert proc.returncode != 0
    assert "needs unlabeled images" in proc.stdout and "imagesTrUnlabeled" in proc.stdout
    run_cmd([str(BIN / "nnUNetv2_plan_experiment"), "-d", str(DS), "-pl", "ExperimentPlanner"], fresh_env(base))
    proc = run_cmd([str(BIN / "nnUNetv2_train"), str(DS), "3d_fullres", "0", "-tr", "nnUNetTrainerDCA_smoke",
                    "-device", "cpu"], env, check=False)
    assert proc.returncode != 0 and "do not describe a DCA network" in proc.stdout
    assert "-pl nnUNetPlannerDCA" in proc.stdout
