"""The nnunetv2-dca console script (run as a user would, in a subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import fresh_env, run_cmd


def test_help_lists_subcommands(tmp_path):
    out = run_cmd(["nnunetv2-dca", "--help"], fresh_env(tmp_path)).stdout
    for sub in ("phantom", "demo"):
        assert sub in out


def test_phantom_command_writes_dataset(tmp_path):
    env = fresh_env(tmp_path)
    out = run_cmd(["nnunetv2-dca", "phantom", "-d", "12", "--labeled", "2", "--unlabeled", "1", "--test", "1",
                   "--sites", "2", "--seed", "4"], env).stdout
    ds = Path(env["nnUNet_raw"]) / "Dataset012_AbdomenPhantom"
    assert str(ds) in out
    meta = json.loads((ds / "phantom.json").read_text())
    assert meta["seed"] == 4 and len(meta["sites"]) == 2 and len(meta["cases"]) == 4


def test_bad_input_exits_2_and_names_the_setting(tmp_path):
    env = fresh_env(tmp_path)
    proc = run_cmd(["nnunetv2-dca", "phantom", "-d", "13", "--sites", "0"], env, check=False)
    assert proc.returncode == 2 and "--sites" in proc.stdout
    run_cmd(["nnunetv2-dca", "phantom", "-d", "13", "--labeled", "1", "--unlabeled", "0", "--test", "0"], env)
    proc = run_cmd(["nnunetv2-dca", "phantom", "-d", "13"], env, check=False)
    assert proc.returncode == 2 and "Dataset013_AbdomenPhantom" in proc.stdout and "--overwrite" in proc.stdout


def test_missing_nnunet_raw_is_explained(tmp_path):
    env = fresh_env(tmp_path)
    del env["nnUNet_raw"]
    proc = run_cmd(["nnunetv2-dca", "phantom", "-d", "14"], env, check=False)
    assert proc.returncode != 0 and "nnUNet_raw" in proc.stdout
