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
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]", "nnUNetv2_train 902 3d_fullres 0 -tr nnUNetTrainer_smoke"):
        assert step in proc.stdout
    summary = json.loads((out / "predictions_test" / "summary.json").read_text())
    assert len(summary["metric_per_case"]) == 3
    assert set(summary["mean"]) == {str(i) for i in range(1, 14)}
    assert "liver" in proc.stdout and "mean" in proc.stdout
    commands = (out / "commands.sh").read_text()
    assert "nnUNetv2_plan_and_preprocess -d 902" in commands and "nnUNetv2_predict" in commands
