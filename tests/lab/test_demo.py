"""The README's main job (`nnunetv2-dca demo`) end to end through the stock nnU-Net commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import os

from conftest import BIN, fresh_env, run_cmd

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end(tmp_path: Path):
    out = tmp_path / "demo"
    env = fresh_env(tmp_path / "unused")
    # as after `make demo` in a shell where the virtual environment is not activated: its bin/ is not on PATH
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p and os.path.abspath(p) != str(BIN))
    proc = run_cmd([str(BIN / "nnunetv2-dca"), "demo", "--out", str(out), "-d", "902"], env, cwd=tmp_path,
                   timeout=1500)
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]",
                 "nnUNetv2_train 902 2d 0 -tr nnUNetTrainerDCA_demo -p nnUNetPlansDCA_CPU"):
        assert step in proc.stdout
    evaluation = json.loads((out / "predictions_test" / "evaluation.json").read_text())
    assert len(evaluation["metric_per_case"]) == 3
    assert set(evaluation["mean"]) == {str(i) for i in range(1, 14)}
    assert set(evaluation["group_mean"]) == {"head", "medium", "tail"}
    assert "liver" in proc.stdout and "**tail**" in proc.stdout
    # issue 14 E: the demo's model visibly segments (the head group = the liver), and shows it in a picture
    assert evaluation["group_mean"]["head"]["Dice"] >= 0.8, evaluation["group_mean"]
    assert (out / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "overlay.png" in proc.stdout
    results = out / "nnUNet_results" / "Dataset902_AbdomenPhantom" / "nnUNetTrainerDCA_demo__nnUNetPlansDCA_CPU__2d"
    assert (results / "fold_0" / "progress_semi_supervised.png").is_file()
    commands = (out / "commands.sh").read_text()
    assert "nnUNetv2_plan_and_preprocess -d 902 -pl nnUNetPlannerDCA_CPU" in commands and "nnUNetv2_predict" in commands
