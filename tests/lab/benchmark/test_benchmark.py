"""`nnunetv2-dca benchmark`: plans derivation, pseudo-label dataset, aggregation and verdict, budget trainers, and one
tiny end-to-end run through the stock commands that must produce a complete report."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN, fresh_env, run_cmd
from nnunetv2_dca.lab.benchmark.arms import PLANS_DCA, PLANS_STOCK
from nnunetv2_dca.lab.benchmark.report import (fmt, mean_std, pseudo_label_table, summarise_arms, summarise_pseudo_labels,
                                           summarise_sites, verdict)
from nnunetv2_dca.lab.benchmark.data import labeled_phantom_cases, make_pseudo_label_dataset, scale_width, write_bench_plans
from nnunetv2_dca.lab.benchmark.run import BenchmarkConfig
from nnunetv2_dca.network.architectures import DCA_ARCH_KEYS
from nnunetv2_dca.training import budget


# ----------------------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("kwargs, message", [
    ({"arms": ["dca"]}, "must include 'baseline'"),
    ({"arms": ["baseline", "mystery"]}, "unknown arm"),
    ({"epochs": 0}, "--epochs"),
    ({"width": 0}, "--width"),
    ({"seeds": [1, 1]}, "repeats"),
    ({"dataset": 5, "arms": ["baseline", "full"]}, "--full-dataset"),
    ({"sites": 0}, "--sites"),
    ({"dataset": 5, "sites": 2}, "phantom only"),
    ({"phantom_variability": "wild"}, "--phantom-variability 'wild'"),
    ({"dataset": 5, "phantom_variability": "varied"}, "generated phantom only"),
])
def test_config_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BenchmarkConfig(out="x", **kwargs).validate()


def test_labeled_phantom_cases_come_from_site_0():
    assert labeled_phantom_cases(20, 4, 1) == ["phantom_0000", "phantom_0001", "phantom_0002", "phantom_0003"]
    assert labeled_phantom_cases(20, 3, 3) == ["phantom_0000", "phantom_0003", "phantom_0006"]
    with pytest.raises(ValueError, match="--phantom-unlabeled"):
        labeled_phantom_cases(6, 3, 3)


def test_phantom_groups_file_names_every_organ_once_and_the_planner_takes_it(tmp_path: Path):
    from nnunetv2_dca.data.phantom import SYNAPSE_LABELS
    from nnunetv2_dca.lab.benchmark.data import write_phantom_groups
    from nnunetv2_dca.planning.grouping import explicit_grouping

    path = write_phantom_groups(str(tmp_path / "Dataset952_X"))
    groups = json.loads(Path(path).read_text())["groups"]
    ids = sorted(c for g in groups for c in g)
    assert ids == sorted(v for v in SYNAPSE_LABELS.values() if v) and len(groups) == 3
    assert groups[0] == [SYNAPSE_LABELS["liver"]]
    assert set(groups[2]) == {SYNAPSE_LABELS[n] for n in ("esophagus", "adrenal_gland_right", "adrenal_gland_left")}
    explicit_grouping(groups, {c: 1 for c in ids}, {c: str(c) for c in ids})  # valid for the planner


def test_scale_width_keeps_stage_ratios_and_cap():
    kw = {"features_per_stage": [32, 64, 128, 256, 320, 320]}
    scale_width(kw, 8)
    assert kw["features_per_stage"] == [8, 16, 32, 64, 80, 80]


def _dca_plans(folder: Path) -> None:
    arch = {"network_class_name": "nnunetv2_dca.network.dca_unet.DCAPlainConvUNet",
            "arch_kwargs": {"n_stages": 3, "features_per_stage": [8, 16, 32], "class_groups": [[1], [2]],
                            "expert_n_conv_per_stage": [[1, 1], [2, 2]], "expert_dilations": [[2, 2], [1, 1]],
                            "detach_expert_features": True, "detach_encoder_for_aggregation": False},
            "_kw_requires_import": ["conv_op"]}
    plans = {"dataset_name": "Dataset1_X", "plans_name": "nnUNetPlansDCA_CPU", "dca": {"class_groups": [[1], [2]]},
             "configurations": {"3d_fullres": {"data_identifier": "nnUNetPlansDCA_CPU_3d_fullres",
                                               "architecture": arch},
                                "2d": {"data_identifier": "nnUNetPlansDCA_CPU_2d", "architecture": arch}}}
    (folder / "nnUNetPlansDCA_CPU.json").write_text(json.dumps(plans))


def test_bench_plans_share_data_and_differ_only_in_network(tmp_path: Path):
    _dca_plans(tmp_path)
    files = write_bench_plans(str(tmp_path), "nnUNetPlansDCA_CPU", "3d_fullres", width=4)
    dca, stock = (json.loads(Path(files[n]).read_text()) for n in (PLANS_DCA, PLANS_STOCK))
    assert dca["plans_name"] == PLANS_DCA and stock["plans_name"] == PLANS_STOCK
    assert list(dca["configurations"]) == list(stock["configurations"]) == ["3d_fullres"]
    c_dca, c_stock = dca["configurations"]["3d_fullres"], stock["configurations"]["3d_fullres"]
    assert c_dca["data_identifier"] == c_stock["data_identifier"] == "nnUNetPlansDCA_CPU_3d_fullres"
    assert c_dca["architecture"]["network_class_name"].endswith("DCAPlainConvUNet")
    assert c_stock["architecture"]["network_class_name"] == \
        "dynamic_network_architectures.architectures.unet.PlainConvUNet"
    assert not set(DCA_ARCH_KEYS) & set(c_stock["architecture"]["arch_kwargs"])
    assert c_dca["architecture"]["arch_kwargs"]["features_per_stage"] == [4, 8, 16]
    assert c_stock["architecture"]["arch_kwargs"]["features_per_stage"] == [4, 8, 16]
    # the planned plans stay as they were
    assert json.loads((tmp_path / "nnUNetPlansDCA_CPU.json").read_text())["configurations"]["3d_fullres"][
        "architecture"]["arch_kwargs"]["features_per_stage"] == [8, 16, 32]


def test_bench_plans_refuse_stock_plans_and_unknown_configuration(tmp_path: Path):
    _dca_plans(tmp_path)
    with pytest.raises(ValueError, match="configuration '3d_lowres'"):
        write_bench_plans(str(tmp_path), "nnUNetPlansDCA_CPU", "3d_lowres", None)
    plans = json.loads((tmp_path / "nnUNetPlansDCA_CPU.json").read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["network_class_name"] = \
        "dynamic_network_architectures.architectures.unet.PlainConvUNet"
    (tmp_path / "nnUNetPlans.json").write_text(json.dumps(plans))
    with pytest.raises(ValueError, match="not a DCA plan"):
        write_bench_plans(str(tmp_path), "nnUNetPlans", "3d_fullres", None)


# ---------------------------------------------------------------------------------------- pseudo-label dataset
def test_pseudo_label_dataset_adds_unlabeled_images_with_predicted_labels(tmp_path: Path):
    semi = tmp_path / "raw" / "Dataset952_Semi"
    for sub in ("imagesTr", "labelsTr", "imagesTrUnlabeled", "imagesTs", "labelsTs"):
        (semi / sub).mkdir(parents=True)
    (semi / "imagesTr" / "a_0000.nii.gz").write_text("img a")
    (semi / "labelsTr" / "a.nii.gz").write_text("lab a")
    (semi / "imagesTrUnlabeled" / "u_0000.nii.gz").write_text("img u")
    (semi / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz", "numTraining": 1, "numUnlabeled": 1,
                                                   "labels": {"background": 0, "x": 1}}))
    preds = tmp_path / "pl"
    preds.mkdir()
    (preds / "u.nii.gz").write_text("predicted u")
    target = Path(make_pseudo_label_dataset(str(tmp_path / "raw"), str(semi), str(preds), 960))
    assert target.name == "Dataset960_SemiPL"
    assert sorted(os.listdir(target / "imagesTr")) == ["a_0000.nii.gz", "u_0000.nii.gz"]
    assert (target / "labelsTr" / "u.nii.gz").read_text() == "predicted u"
    assert (target / "labelsTr" / "a.nii.gz").read_text() == "lab a"
    dj = json.loads((target / "dataset.json").read_text())
    assert dj["numTraining"] == 2 and "numUnlabeled" not in dj
    provenance = json.loads((target / "pseudo_labels.json").read_text())["cases"]
    assert provenance == {"a": {"source": "reference label"}, "u": {"source": "pseudo-label", "model": "benchmark arm baseline"}}
    # the source dataset is untouched
    assert sorted(os.listdir(semi / "labelsTr")) == ["a.nii.gz"]
    # a missing pseudo-label is an error naming the image, and nothing half-written stays behind
    (semi / "imagesTrUnlabeled" / "v_0000.nii.gz").write_text("img v")
    with pytest.raises(ValueError, match="v_0000.nii.gz"):
        make_pseudo_label_dataset(str(tmp_path / "raw"), str(semi), str(preds), 961)
    assert not any(p.startswith("Dataset961") for p in os.listdir(tmp_path / "raw"))


# ------------------------------------------------------------------------------------------------ aggregation
def _result(dice_by_class, groups):
    mean = {c: {"Dice": d} for c, d in dice_by_class.items()}
    gm = {g: {"Dice": float(np.mean([dice_by_class[str(c)] for c in members])), "classes": members}
          for g, members in groups.items()}
    return {"mean": mean, "labels": {c: f"c{c}" for c in dice_by_class}, "group_mean": gm,
            "foreground_mean": {"Dice": float(np.mean(list(dice_by_class.values())))}}


def test_summary_means_stds_and_deltas_over_seeds():
    groups = {"head": [1], "tail": [2, 3]}
    results = {
        "baseline": {0: _result({"1": 0.9, "2": 0.2, "3": 0.4}, groups),
                     1: _result({"1": 0.8, "2": 0.4, "3": 0.2}, groups)},
        "dca": {0: _result({"1": 0.9, "2": 0.5, "3": 0.5}, groups),
                1: _result({"1": 0.7, "2": 0.5, "3": 0.3}, groups)},
    }
    s = summarise_arms(results, [0, 1])
    tail = s["arms"]["dca"]["dice"]["group:tail"]
    assert tail["mean"] == pytest.approx((0.5 + 0.4) / 2) and tail["n"] == 2
    assert tail["std"] == pytest.approx(np.std([0.5, 0.4], ddof=1))
    delta = s["arms"]["dca"]["delta_to_baseline"]["group:tail"]
    assert delta["mean"] == pytest.approx(((0.5 - 0.3) + (0.4 - 0.3)) / 2)
    assert s["arms"]["dca"]["delta_to_baseline"]["class:1"]["mean"] == pytest.approx(-0.05)
    v = verdict(s, [0, 1])
    assert v["tail_group"] == "tail" and v["dca_beats_baseline_on_tail"] is True
    assert v["tail_delta"] == pytest.approx(0.15)
    # a worse tail is reported as such
    results["dca"] = {k: _result({"1": 0.9, "2": 0.1, "3": 0.1}, groups) for k in (0, 1)}
    assert verdict(summarise_arms(results, [0, 1]), [0, 1])["dca_beats_baseline_on_tail"] is False


def test_site_summary_is_per_site_mean_over_classes_with_deltas():
    def r(d, n=2):
        return {"foreground_mean": {"Dice": d}, "n_cases": n}

    site_results = {"baseline": {0: {0: r(0.8), 1: r(0.4)}, 1: {0: r(0.6), 1: r(0.2)}},
                    "semimoe": {0: {0: r(0.8), 1: r(0.7)}, 1: {0: r(0.6), 1: r(0.5)}}}
    s = summarise_sites(site_results, [0, 1])
    assert list(s["baseline"]) == ["0", "1"]
    assert s["baseline"]["0"]["dice"]["mean"] == pytest.approx(0.7)
    assert s["semimoe"]["1"]["dice"]["mean"] == pytest.approx(0.6)
    assert s["semimoe"]["1"]["delta_to_baseline"]["mean"] == pytest.approx(0.3)
    assert s["semimoe"]["0"]["delta_to_baseline"]["mean"] == pytest.approx(0.0)


def test_pseudo_label_summary_rows_seeds_and_table():
    def src(head, tail, share_tail):
        return {"groups": {"head": head, "tail": tail}, "mean": (head + tail) / 2,
                "voxel_share": {"head": 0.1, "tail": share_tail}, "voxel_share_true": {"head": 0.1, "tail": 0.01}}

    quality = {"baseline": {0: {"sources": {"prediction": src(0.9, 0.0, 0.0)}},
                            1: {"sources": {"prediction": src(0.7, 0.2, 0.004)}}},
               "dca": {0: {"sources": {"pseudo_label": src(0.8, 0.4, 0.008), "aggregate": src(0.9, 0.1, 0.002)}},
                       1: {"error": "labels of the unlabeled images not found"}}}
    rows = summarise_pseudo_labels(quality, [0, 1])
    assert list(rows) == ["baseline:prediction", "dca:pseudo_label", "dca:aggregate"]
    assert rows["baseline:prediction"]["groups"]["head"]["mean"] == pytest.approx(0.8)
    assert rows["baseline:prediction"]["groups"]["tail"]["n"] == 2
    assert rows["dca:pseudo_label"]["groups"]["tail"] == {"mean": 0.4, "std": 0.0, "n": 1}  # seed 1 failed: left out
    table = pseudo_label_table(rows)
    assert "| dca: fused expert pseudo-label (D_A's target; the default's prediction) | 80.0 | 40.0 | 60.0 | " \
        "10.00 (10.00) | 0.80 (1.00) |" in table
    assert "| baseline prediction = the offline pseudo-labels | 80.0 ± 14.1 | 10.0 ± 14.1 |" in table
    assert summarise_pseudo_labels({"baseline": {}}, [0]) is None


def test_mean_std_formatting_ignores_nan():
    assert fmt(mean_std([0.5])) == "50.0"
    assert fmt(mean_std([0.5, 0.7])) == "60.0 ± 14.1"
    assert fmt(mean_std([float("nan")])) == "n/a"
    assert math.isclose(mean_std([0.2, float("nan"), 0.4])["mean"], 0.3)


# ------------------------------------------------------------------------------------------------ budget env
def test_budget_reads_environment_and_explains_missing(monkeypatch):
    for k in (budget.ENV_EPOCHS, budget.ENV_ITERATIONS, budget.ENV_VAL_ITERATIONS, budget.ENV_SEED):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(budget.BudgetError, match=budget.ENV_EPOCHS):
        budget.read_budget()
    monkeypatch.setenv(budget.ENV_EPOCHS, "3")
    monkeypatch.setenv(budget.ENV_ITERATIONS, "12")
    assert budget.read_budget() == {"epochs": 3, "iterations": 12, "val_iterations": 2, "seed": 0}
    monkeypatch.setenv(budget.ENV_ITERATIONS, "0")
    with pytest.raises(budget.BudgetError, match=">= 1"):
        budget.read_budget()
    monkeypatch.setenv(budget.ENV_ITERATIONS, "ten")
    with pytest.raises(budget.BudgetError, match="not an integer"):
        budget.read_budget()


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_tiny_benchmark_writes_complete_report(tmp_path: Path):
    out = tmp_path / "bench"
    env = fresh_env(tmp_path / "unused")
    arms = ["baseline", "dca", "semimoe", "pseudolabel", "dca_distill", "full", "baseline_wallclock"]
    bench = [str(BIN / "nnunetv2-dca"), "benchmark", "--out", str(out), "--epochs", "1", "--iterations", "2",
             "--phantom-labeled", "2", "--phantom-unlabeled", "2", "--phantom-test", "2", "--sites", "2"]
    proc = run_cmd(bench + ["--arms", ",".join(arms)], env, cwd=tmp_path, timeout=2400)
    assert "[1/" in proc.stdout and "report" in proc.stdout
    report = json.loads((out / "benchmark.json").read_text())
    assert set(report["dice"]) == set(arms)
    assert set(report["dataset"]["groups"]) == {"head", "medium", "tail"}
    for arm in report["dice"]:
        assert set(report["dice"][arm]["dice"]) >= {"class:1", "class:13", "group:tail", "mean"}
        t = report["timing_per_seed"][arm]["0"]
        assert t["seconds_per_iteration"] > 0 and t["inference_seconds_per_case"] >= 0
        assert (out / "seed_0" / "predictions" / arm / "evaluation.json").is_file()
    assert report["network_cost"]["dca"]["parameters_ratio_to_baseline"] > 1
    assert report["network_cost"]["full"]["parameters_ratio_to_baseline"] == 1
    assert report["network_cost"]["semimoe"]["parameters_ratio_to_baseline"] > 1
    # issue 15: the cost table carries the training step's FLOPs (DCA's lean step <= 5x a stock step for the first
    # build; the default recipe also runs D_A on the labeled samples: ~6x, docs/dca.md "The default recipe")
    assert 1 < report["network_cost"]["dca"]["training_step_gflops_ratio_to_baseline"] <= 6.5
    assert report["network_cost"]["semimoe"]["training_step_gflops_ratio_to_baseline"] > 1
    assert "GFLOPs / training step per labeled patch" in (out / "README.md").read_text()
    assert "nnUNetv2_train 952 2d all -tr nnUNetTrainerSemiMoE_budget -p nnUNetPlansBenchStock" in \
        (out / "commands.sh").read_text()
    assert "dca_beats_baseline_on_tail" in report["verdict"]
    # pseudo-labels of the unlabeled training images scored against their true labels (the phantom has them)
    assert set(report["pseudo_labels"]) == {"baseline:prediction", "dca:pseudo_label", "dca:aggregate"}
    for row in report["pseudo_labels"].values():
        assert set(row["groups"]) == {"head", "medium", "tail"}
        assert 0.0 <= row["mean"]["mean"] <= 1.0 and row["mean"]["n"] == 1
        assert row["voxel_share_true"]["tail"]["mean"] > 0  # adrenals/esophagus are in the unlabeled images
    pl_dca = report["pseudo_labels_per_seed"]["dca"]["0"]
    assert len(pl_dca["cases"]) == 2 and pl_dca["fusion"] == "product"
    # domain shift: labeled cases from site 0 only, test Dice per site
    split = json.loads((out / "nnUNet_raw" / "Dataset952_AbdomenPhantomSemi" / "split.json").read_text())
    assert set(split["labeled"]) == {"phantom_0000", "phantom_0002"}
    assert set(report["domain_shift"]["dca"]) == {"0", "1"}
    assert report["domain_shift"]["baseline"]["1"]["n_cases"] == 1
    assert (out / "seed_0" / "predictions" / "dca" / "site_1" / "evaluation.json").is_file()
    assert (out / "dice_per_site.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = (out / "README.md").read_text()
    assert "Domain shift" in readme
    assert "Pseudo-labels on the unlabeled training images" in readme and "fused expert pseudo-label" in readme
    for text in ("Dice (%) per group", "Dice (%) per class", "adrenal_gland_left", "s / training iteration",
                 "![Dice per class](dice_per_class.png)", "DCA", "cpu_count"):
        assert text in readme
    for png in ("dice_per_class.png", "class_groups.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    commands = (out / "commands.sh").read_text()
    assert "nnUNetv2_train 952 2d all -tr nnUNetTrainerDCA_budget -p nnUNetPlansBenchDCA" in commands
    assert "nnUNetv2_train 960 2d all -tr nnUNetTrainer_budget -p nnUNetPlansBenchStock" in commands
    assert "nnUNetv2_move_plans_between_datasets -s 952 -t 951" in commands
    # the pseudo-label dataset has the unlabeled images with the baseline's predictions as labels
    pl = out / "nnUNet_raw" / "Dataset960_AbdomenPhantomSemiPL"
    assert len(os.listdir(pl / "labelsTr")) == 4
    # issue 18: the distilled dataset (DCA's predictions) trains a stock network: inference cost 1x
    assert "nnunetv2-dca distill -m" in commands and "nnUNetv2_train 970 2d all -tr nnUNetTrainer_budget" in commands
    assert report["network_cost"]["dca_distill"]["parameters_ratio_to_baseline"] == 1
    distilled = json.loads((out / "nnUNet_raw" / "Dataset970_AbdomenPhantomSemiDistilled" / "pseudo_labels.json")
                           .read_text())["cases"]
    assert sum(c["source"] == "pseudo-label" for c in distilled.values()) == 2
    # equal wall-clock baseline: as many epochs as make DCA's measured time (DCA's step costs more: > 1 epoch)
    t = report["timing_per_seed"]
    assert t["baseline_wallclock"]["0"]["epochs"] == max(1, round(t["dca"]["0"]["seconds_per_iteration"]
                                                                  / t["baseline"]["0"]["seconds_per_iteration"]))
    # learning curves per arm (nnU-Net's per-epoch validation pseudo-Dice) and the instrument check
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(report["learning_curves"]["dca"]["all"]["dice"]) == 1
    assert report["instrument"]["checked"] and "Instrument:" in readme

    # resumable: the same call again retrains nothing; another seed in a separate call joins the report
    again = run_cmd(bench + ["--arms", ",".join(arms)], env, cwd=tmp_path, timeout=600)
    assert "nnUNetv2_train" not in again.stdout and "done in an earlier run" in again.stdout
    more = run_cmd(bench + ["--arms", "baseline,full", "--seeds", "1"], env, cwd=tmp_path, timeout=1200)
    assert more.stdout.count("$ nnUNet_def_n_proc=1") == 2  # two trainings: baseline and full of seed 1
    merged = json.loads((out / "benchmark.json").read_text())
    assert merged["seeds"] == [0, 1] and set(merged["dice"]) == set(arms)
    assert merged["dice"]["baseline"]["seeds"] == [0, 1] and merged["dice"]["dca"]["seeds"] == [0]
    assert merged["dice"]["full"]["dice"]["mean"]["n"] == 2
    # other data into the same folder is refused (results would be mixed), naming the setting and --fresh
    refused = run_cmd(bench[:-2] + ["--sites", "1"], env, cwd=tmp_path, check=False, timeout=300)
    assert refused.returncode == 2 and "sites: 2 -> 1" in refused.stdout and "--fresh" in refused.stdout


# ------------------------------------------------------------------------ report means with absent classes
def _np_dice(ref: np.ndarray, pred: np.ndarray, c: int) -> float:
    r, p = ref == c, pred == c
    return float("nan") if not (r.any() or p.any()) else 2.0 * (r & p).sum() / (r.sum() + p.sum())


def _mean_defined(values) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def test_report_means_leave_out_absent_and_not_scored_classes(tmp_path: Path):
    """Group / overall means and the verdict come from the default evaluation: a class absent from both sides of
    a case is left out of its class mean, a class no test reference holds (adrenal, 4) is out of every group and
    overall mean, and its false positives never count as 0 (nor its absence as 100)."""
    from evaluation.test_evaluate import ABSENT_LABELS, absent_cases, write_json, write_seg

    from nnunetv2_dca.evaluation.evaluate import evaluate_folders

    cases = absent_cases()
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    for name, (ref, _) in cases.items():
        write_seg(ref_dir / f"{name}.nii.gz", ref)
    dj = write_json(tmp_path / "dataset.json", {"labels": ABSENT_LABELS, "file_ending": ".nii.gz",
                                                "channel_names": {"0": "CT"}, "numTraining": 3})

    def predictions(arm: str, seed: int):
        out = {}
        for k, (name, (ref, pred)) in enumerate(cases.items()):
            if arm == "dca":  # better kidney, and an adrenal false positive in another case
                pred = np.where(ref == 3, 3, np.where(pred == 3, 0, pred)).astype(np.uint8)
                if seed == 1 and k == 0:
                    pred[0, 0, 0:4] = 4
            if seed == 1:
                pred = np.where(np.roll(pred == 1, 1, axis=2) & (pred == 0), 1, pred).astype(np.uint8)
            out[name] = pred
        return out

    groups_sets = {"tail_with_adrenal": [[1, 2], [3, 4]], "adrenal_alone": [[1, 2, 3], [4]]}
    for label, groups in groups_sets.items():
        plans = write_json(tmp_path / f"plans_{label}.json", {"configurations": {
            "3d_fullres": {"architecture": {"arch_kwargs": {"class_groups": groups}}}}})
        results, want = {}, {}
        for arm in ("baseline", "dca"):
            results[arm], want[arm] = {}, {}
            for seed in (0, 1):
                pred_dir = tmp_path / f"{label}_{arm}_{seed}"
                pred_dir.mkdir()
                preds = predictions(arm, seed)
                for name, pred in preds.items():
                    write_seg(pred_dir / f"{name}.nii.gz", pred)
                results[arm][seed] = evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(plans), write=False)
                class_mean = {c: _mean_defined([_np_dice(cases[n][0], preds[n], c) for n in cases])
                              for c in (1, 2, 3, 4)}
                scored = [1, 2, 3]  # adrenal is in no reference
                w = {f"class:{c}": class_mean[c] for c in scored}
                w.update({f"group:{g}": _mean_defined([class_mean[c] for c in members if c in scored])
                          for g, members in zip(("head", "tail"), groups)})
                w["mean"] = _mean_defined([class_mean[c] for c in scored])
                want[arm][seed] = w
        s = summarise_arms(results, [0, 1])
        assert s["not_scored"] == ["4"]
        for arm in ("baseline", "dca"):
            for key in want[arm][0]:
                per_seed = [want[arm][seed][key] for seed in (0, 1)]
                got = s["arms"][arm]["dice"][key]
                if all(math.isnan(v) for v in per_seed):
                    assert got["n"] == 0
                else:
                    assert got["mean"] == pytest.approx(np.mean(per_seed)) and got["n"] == 2
                    delta = [want[arm][seed][key] - want["baseline"][seed][key] for seed in (0, 1)]
                    assert s["arms"][arm]["delta_to_baseline"][key]["mean"] == pytest.approx(np.mean(delta))
            assert s["arms"][arm]["dice"]["class:4"]["n"] == 0  # listed, never a number
        v = verdict(s, [0, 1])
        assert v["mean_delta"] == pytest.approx(np.mean([want["dca"][k]["mean"] - want["baseline"][k]["mean"]
                                                         for k in (0, 1)]))
        if label == "tail_with_adrenal":
            tail = [want["dca"][k]["group:tail"] - want["baseline"][k]["group:tail"] for k in (0, 1)]
            assert v["tail_delta"] == pytest.approx(np.mean(tail))
            assert v["dca_beats_baseline_on_tail"] is bool(np.mean(tail) > 0) is True
        else:  # the tail group holds only the unscored adrenal: no claim either way
            assert v["dca_beats_baseline_on_tail"] is None and math.isnan(v["tail_delta"])


# ------------------------------------------------------------------------------------ curves and instrument check
def test_learning_curve_means_skip_undefined_epochs_and_seeds_of_other_length():
    from nnunetv2_dca.lab.benchmark.charts import curve_series

    nan = float("nan")
    curves = {0: {"validation_dice_per_class_per_epoch": [[0.2, 0.4], [nan, 0.6]], "iterations_per_epoch": 10},
              1: {"validation_dice_per_class_per_epoch": [[0.4, 0.0], [0.5, 0.5], [0.9, 0.7]],
                  "iterations_per_epoch": 10},
              2: None}
    s = curve_series(curves, [1, 2])
    assert s["iterations"] == [10, 20, 30]
    assert s["dice"] == pytest.approx([(0.3 + 0.2) / 2, (0.6 + 0.5) / 2, 0.8])
    assert curve_series({0: None}, [1]) == {"iterations": [], "dice": []}


def test_instrument_check_needs_a_converged_full_arm_and_room_on_the_tail():
    from nnunetv2_dca.lab.benchmark.report import instrument_check

    groups = {"head": [1], "tail": [2]}

    def arm(mean, tail):
        return {"dice": {"mean": {"mean": mean}, "group:tail": {"mean": tail}}}

    summary = {"groups": groups, "arms": {"baseline": arm(0.5, 0.2), "full": arm(0.75, 0.52)}}
    res = instrument_check(summary)
    assert res["full_converged"] and res["room_on_tail"] and res["tail_group"] == "tail"
    summary["arms"]["full"] = arm(0.75, 0.30)  # tail not learned by the upper bound
    assert not instrument_check(summary)["full_converged"]
    summary["arms"]["full"] = arm(0.80, 0.60)
    summary["arms"]["baseline"] = arm(0.7, 0.50)  # no room for unlabeled data to help
    assert instrument_check(summary)["full_converged"] and not instrument_check(summary)["room_on_tail"]
    assert instrument_check({"groups": groups, "arms": {"baseline": arm(0.5, 0.2)}})["checked"] is False
