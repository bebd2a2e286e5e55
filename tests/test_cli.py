"""The nnunetv2-dca console script (run as a user would, in a subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import fresh_env, run_cmd
from nnunetv2_dca.cli import main


@pytest.mark.slow  # starts a subprocess
def test_help_lists_subcommands(tmp_path):
    out = run_cmd(["nnunetv2-dca", "--help"], fresh_env(tmp_path)).stdout
    for sub in ("phantom", "demo"):
        assert sub in out


@pytest.mark.slow  # starts a subprocess
def test_phantom_command_writes_dataset(tmp_path):
    env = fresh_env(tmp_path)
    out = run_cmd(["nnunetv2-dca", "phantom", "-d", "12", "--labeled", "2", "--unlabeled", "1", "--test", "1",
                   "--sites", "2", "--seed", "4"], env).stdout
    ds = Path(env["nnUNet_raw"]) / "Dataset012_AbdomenPhantom"
    assert str(ds) in out
    meta = json.loads((ds / "phantom.json").read_text())
    assert meta["seed"] == 4 and len(meta["sites"]) == 2 and len(meta["cases"]) == 4


@pytest.mark.slow  # starts a subprocess
def test_bad_input_exits_2_and_names_the_setting(tmp_path):
    env = fresh_env(tmp_path)
    proc = run_cmd(["nnunetv2-dca", "phantom", "-d", "13", "--sites", "0"], env, check=False)
    assert proc.returncode == 2 and "--sites" in proc.stdout
    run_cmd(["nnunetv2-dca", "phantom", "-d", "13", "--labeled", "1", "--unlabeled", "0", "--test", "0"], env)
    proc = run_cmd(["nnunetv2-dca", "phantom", "-d", "13"], env, check=False)
    assert proc.returncode == 2 and "Dataset013_AbdomenPhantom" in proc.stdout and "--overwrite" in proc.stdout


@pytest.mark.slow  # starts a subprocess
def test_missing_nnunet_raw_is_explained(tmp_path):
    env = fresh_env(tmp_path)
    del env["nnUNet_raw"]
    proc = run_cmd(["nnunetv2-dca", "phantom", "-d", "14"], env, check=False)
    assert proc.returncode != 0 and "nnUNet_raw" in proc.stdout


@pytest.mark.slow  # starts a subprocess
def test_groups_command_on_the_phantom(tmp_path):
    env = fresh_env(tmp_path)
    run_cmd(["nnunetv2-dca", "phantom", "-d", "15", "--labeled", "4", "--unlabeled", "0", "--test", "0"], env)
    out = run_cmd(["nnunetv2-dca", "groups", "-d", "15", "--json"], env).stdout
    result = json.loads(out)
    assert result["groups"][0] == [6]  # liver
    assert sorted(result["groups"][-1]) == [5, 12, 13]  # esophagus and adrenals, as on the real CT
    assert set(result["voxel_counts"]) == {str(i) for i in range(1, 14)}
    chart = Path(env["nnUNet_preprocessed"]) / "Dataset015_AbdomenPhantom" / "nnUNetPlansDCA_class_groups.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = run_cmd(["nnunetv2-dca", "groups", "-d", "15"], env).stdout
    assert "liver" in table and "head" in table and "tail" in table and "cliff" in table


@pytest.mark.slow  # starts a subprocess
def test_groups_command_prefers_fingerprint_counts_and_validates_explicit_groups(tmp_path):
    env = fresh_env(tmp_path)
    run_cmd(["nnunetv2-dca", "phantom", "-d", "16", "--labeled", "1", "--unlabeled", "0", "--test", "0"], env)
    pre = Path(env["nnUNet_preprocessed"]) / "Dataset016_AbdomenPhantom"
    pre.mkdir(parents=True)
    counts = {str(i): 10 for i in range(1, 14)}
    counts.update({"1": 100000, "2": 1000})
    (pre / "dataset_fingerprint.json").write_text(json.dumps({"class_voxel_counts": counts}))
    result = json.loads(run_cmd(["nnunetv2-dca", "groups", "-d", "16", "--json"], env).stdout)
    assert result["groups"][0] == [1] and result["groups"][1] == [2]
    groups = "6;" + ",".join(str(i) for i in range(1, 6)) + ";" + ",".join(str(i) for i in range(7, 13))
    proc = run_cmd(["nnunetv2-dca", "groups", "-d", "16", "--groups", groups], env, check=False)
    assert proc.returncode == 2 and "adrenal_gland_left (13)" in proc.stdout
    ok = run_cmd(["nnunetv2-dca", "groups", "-d", "16", "--json", "--groups", groups + ",13"], env).stdout
    assert json.loads(ok)["source"] == "explicit"


@pytest.mark.slow  # starts a subprocess
def test_groups_command_unknown_dataset(tmp_path):
    proc = run_cmd(["nnunetv2-dca", "groups", "-d", "417"], fresh_env(tmp_path), check=False)
    assert proc.returncode == 2 and "417" in proc.stdout


@pytest.mark.parametrize("argv, expected", [
    ([], (20, 250, 4, ["baseline", "dca", "full"])),
    (["--preset", "converged"], (60, 250, 4, ["baseline", "dca", "full"])),
    (["--preset", "converged", "--epochs", "7", "--arms", "baseline,full"], (7, 250, 4, ["baseline", "full"])),
    (["--iterations", "10", "--val-iterations", "2"], (20, 10, 2, ["baseline", "dca", "full"])),
])
def test_benchmark_preset_sets_the_budget_and_flags_win(monkeypatch, argv, expected):
    import nnunetv2_dca.lab.benchmark.run as run

    seen = []
    monkeypatch.setattr(run, "run_benchmark", seen.append)
    assert main(["benchmark", "--out", "unused", *argv]) == 0
    cfg = seen[0]
    assert (cfg.epochs, cfg.iterations, cfg.val_iterations, list(cfg.arms)) == expected


@pytest.mark.parametrize("argv, variability", [
    ([], "classic"),
    (["--preset", "converged"], "thick_tail"),  # the converged instrument's phantom (docs/benchmark.md)
    (["--preset", "converged", "--phantom-variability", "classic"], "classic"),  # the flag wins
    (["--preset", "converged", "-d", "7"], "classic"),  # a user's dataset is not a phantom
])
def test_benchmark_preset_picks_the_phantom(monkeypatch, argv, variability):
    import nnunetv2_dca.lab.benchmark.run as run

    seen = []
    monkeypatch.setattr(run, "run_benchmark", seen.append)
    assert main(["benchmark", "--out", "unused", *argv]) == 0
    assert seen[0].phantom_variability == variability
