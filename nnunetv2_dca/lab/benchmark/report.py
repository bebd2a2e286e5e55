"""The benchmark's report: ``benchmark.json``, ``README.md`` (tables), ``dice_per_class.png`` and the class-groups
chart, all from the measured results of one :class:`nnunetv2_dca.lab.benchmark.run.Benchmark` run.

Aggregation: per arm and seed, a class's Dice is the mean over the test cases that score it (``evaluate_folders``'
default protocol: a case where the class is absent from reference and prediction is left out); a group's Dice is
evaluate's mean over its scored classes (a class no test reference holds is "not scored": out of the group and
overall means, shown as such in the per-class table); with several seeds the report gives mean +- standard
deviation (sample, n-1) over seeds of those per-seed values. Deltas are arm minus baseline of the same seed, then
averaged over seeds.

This module computes the numbers (seeds, groups, sites, pseudo-labels, timing, cost) and writes them; the README's
sections are written by ``report_markdown.py`` and the charts drawn by ``charts.py``. The formatting names
(``fmt``, ``markdown_report``, the tables) stay importable from here.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from nnunetv2_dca.atomic import write_json_atomic, write_text_atomic
from nnunetv2_dca.lab.benchmark.arms import ARM_TITLES, ARM_TRAINERS, DCA_ARMS, PLANS_DCA
from nnunetv2_dca.lab.benchmark.charts import curve_series, plot_dice_per_class, plot_learning_curves, plot_sites
from nnunetv2_dca.lab.benchmark.report_markdown import (fmt, fmt_delta, gates_table, markdown_report,  # noqa: F401
                                                        pseudo_label_table, time_breakdown_lines)
from nnunetv2_dca.lab.benchmark.verdicts import (instrument_check, instrument_line, no_harm_check,  # noqa: F401
                                             no_harm_line, verdict)
from nnunetv2_dca.evaluation.evaluate import json_ready
from nnunetv2_dca.planning.class_groups import plans_class_groups

def mean_std(values: Sequence[float]) -> Dict[str, float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


def summarise_arms(results: Mapping[str, Mapping[int, Mapping]], seeds: Sequence[int]) -> Dict:
    """Per arm: class / group / mean Dice (mean, std over seeds) and deltas to the baseline."""
    arms = list(results)
    first = results["baseline"][seeds[0]]
    classes = list(first["mean"])  # str ids, dataset.json order
    groups = first.get("group_mean") or {}

    def per_seed(arm: str, seed: int) -> Dict[str, float]:
        r = results[arm][seed]
        # a class the test references never hold is not scored (its Dice only counts false positives): NaN, which
        # mean_std leaves out; group and overall means are evaluate's, already without such classes
        d = {f"class:{c}": _dice(r["mean"][c]) if r["mean"][c].get("scored", True) else math.nan for c in classes}
        d.update({f"group:{g}": _dice(v) for g, v in (r.get("group_mean") or {}).items()})
        d["mean"] = _dice(r["foreground_mean"])
        return d

    out = {}
    for arm in arms:
        # an arm may hold fewer seeds than the baseline (added later with --arms): its means and deltas use its own
        own = [s for s in seeds if s in results[arm]]
        values = {s: per_seed(arm, s) for s in own}
        base = {s: per_seed("baseline", s) for s in own}
        keys = list(values[own[0]])
        out[arm] = {
            "seeds": own,
            "dice": {k: mean_std([values[s][k] for s in own]) for k in keys},
            "delta_to_baseline": {k: mean_std([values[s][k] - base[s][k] for s in own]) for k in keys},
            "delta_per_seed": {str(s): {k: values[s][k] - base[s][k] for k in keys if not k.startswith("class:")}
                               for s in own},
        }
    # the test references decide it, so it is the same for every arm and seed
    not_scored = [str(c) for c in first.get("classes_not_scored") or []]
    # test cases whose reference holds the class (same for every arm): how many cases a class mean stands on
    with_class = {c: f"{first['mean'][c]['n_reference']}/{first['mean'][c]['n_cases']}" for c in classes
                  if "n_reference" in first["mean"][c]}
    return {"classes": classes, "labels": first["labels"], "groups": {g: v["classes"] for g, v in groups.items()},
            "not_scored": not_scored, "cases_with_class": with_class, "arms": out}


def _dice(entry: Mapping) -> float:
    """An evaluation entry's Dice; undefined (None in a JSON-loaded result, NaN in a fresh one) as NaN."""
    v = entry.get("Dice")
    return math.nan if v is None else float(v)


# rows of the pseudo-label table: (arm, source in pseudo_label_quality's result, caption)
PSEUDO_LABEL_ROWS = (("baseline", "prediction", "baseline prediction = the offline pseudo-labels"),
                     ("dca", "pseudo_label", "dca: fused expert pseudo-label (D_A's target; the default's prediction)"),
                     ("dca", "aggregate", "dca: D_A output"),
                     ("dca_supagg", "pseudo_label", "dca_supagg: fused expert pseudo-label"),
                     ("dca_supagg", "aggregate", "dca_supagg: D_A output (its prediction)"))


def summarise_pseudo_labels(quality: Mapping[str, Mapping[int, Mapping]], seeds: Sequence[int]) -> Optional[Dict]:
    """Per table row: group / mean Dice and voxel shares (mean, std over the seeds that were measured)."""
    rows: Dict[str, Dict] = {}
    for arm, source, caption in PSEUDO_LABEL_ROWS:
        per_seed = [quality[arm][s]["sources"][source] for s in seeds
                    if s in quality.get(arm, {}) and source in quality[arm][s].get("sources", {})]
        if not per_seed:
            continue
        groups = list(per_seed[0]["groups"])
        rows[f"{arm}:{source}"] = {
            "caption": caption,
            "groups": {g: mean_std([r["groups"][g] for r in per_seed]) for g in groups},
            "mean": mean_std([r["mean"] for r in per_seed]),
            "voxel_share": {g: mean_std([r["voxel_share"][g] for r in per_seed]) for g in groups},
            "voxel_share_true": {g: mean_std([r["voxel_share_true"][g] for r in per_seed]) for g in groups},
        }
    return rows or None


def summarise_sites(site_results: Mapping[str, Mapping[int, Mapping[int, Mapping]]], seeds: Sequence[int]
                    ) -> Dict[str, Dict[str, Dict]]:
    """Per arm and test site: mean Dice over classes (mean, std over seeds) and delta to the baseline."""
    out: Dict[str, Dict[str, Dict]] = {}
    sites = sorted(site_results["baseline"][seeds[0]])
    for arm, per_seed in site_results.items():
        out[arm] = {}
        own = [s for s in seeds if s in per_seed]
        if not own:
            continue
        for site in sites:
            vals = [per_seed[s][site]["foreground_mean"]["Dice"] for s in own]
            base = [site_results["baseline"][s][site]["foreground_mean"]["Dice"] for s in own]
            out[arm][str(site)] = {"dice": mean_std(vals), "delta_to_baseline": mean_std(
                [v - b for v, b in zip(vals, base)]), "n_cases": per_seed[own[0]][site]["n_cases"]}
    return out


def machine_info(device: str) -> Dict[str, object]:
    import torch
    from importlib.metadata import version

    info: Dict[str, object] = {
        "platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "nnunetv2": version("nnunetv2"),
        "nnunetv2_dca": version("nnunetv2-dca"), "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


@dataclass
class BenchmarkResults:
    """What the report reads of a finished run; the runner fills it in and the report never sees the runner."""
    cfg: Any                                   # the run's BenchmarkConfig (seeds, budget, device, switches)
    out: str                                   # the run's output folder
    arms: List[str]
    semi: str                                  # the semi-supervised raw dataset (labelsTr, imagesTrUnlabeled, Ts)
    dataset_json: Mapping
    file_ending: str
    plans_files: Mapping[str, str]             # plans name -> plans file
    results: Mapping[str, Mapping[int, Mapping]]       # arm -> seed -> evaluation
    timings: Mapping[str, Mapping[int, Mapping]]       # arm -> seed -> seconds, model folder
    network_costs: Mapping[str, Dict[str, float]]      # arm -> nnunetv2_dca.network.cost.network_cost
    commands_log: str                          # commands.sh, where the gates command is recorded
    site_results: Mapping = field(default_factory=dict)
    pseudo_quality: Mapping = field(default_factory=dict)
    seeds: Optional[List[int]] = None          # every seed in the report (this run's and stored ones); default cfg's
    curves: Mapping = field(default_factory=dict)      # arm -> seed -> learning curve (budget.learning_curve)


def build_report(bench: BenchmarkResults, wall_seconds: float) -> Dict:
    """Aggregate a finished run, draw its charts and write its ``benchmark.json`` and ``README.md``."""
    cfg = bench.cfg
    seeds = list(bench.seeds if bench.seeds is not None else cfg.seeds)
    out = bench.out
    summary = summarise_arms(bench.results, seeds)
    with open(bench.plans_files[PLANS_DCA], encoding="utf-8") as f:
        plans = json.load(f)
    charts = _charts(bench, summary, plans, seeds)
    domain_shift = None
    if cfg.sites > 1:
        domain_shift = summarise_sites(bench.site_results, seeds)
        charts["dice_per_site"] = plot_sites(domain_shift, os.path.join(out, "dice_per_site.png"),
                                             "domain shift: labeled cases from site 0 only; test Dice per site")
    gates = None
    dca_models = [s for s in sorted(bench.timings.get("dca", {}))
                  if os.path.isdir(bench.timings["dca"][s]["model_folder"])]  # gone in a fresh clone of a stored run
    if cfg.gates_picture and dca_models:
        gates = _gates_picture(bench, dca_models[0])
        if gates:
            charts["gates"] = gates["png"]

    report = {
        "config": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}, "seeds": seeds},
        "arms": {arm: {"title": ARM_TITLES[arm], "trainer": ARM_TRAINERS[arm]} for arm in bench.arms},
        "dataset": _dataset_entry(bench, summary, plans),
        "seeds": seeds,
        "dice": summary["arms"],
        "per_seed_evaluation": {arm: {str(s): {k: v for k, v in r.items() if k != "metric_per_case"}
                                      for s, r in bench.results[arm].items()} for arm in bench.arms},
        "timing": timing_summary(bench),
        "timing_per_seed": {arm: {str(s): t for s, t in bench.timings[arm].items()} for arm in bench.arms},
        "network_cost": cost_summary(bench),
        "machine": machine_info(cfg.device),
        "wall_seconds": wall_seconds,
        "commands": os.path.join(out, "commands.sh"),
        "charts": {k: os.path.basename(v) for k, v in charts.items()},
        "gates": gates["numbers"] if gates else None,
        "domain_shift": domain_shift,
        "pseudo_labels": summarise_pseudo_labels(bench.pseudo_quality, seeds),
        "pseudo_labels_per_seed": {arm: {str(s): q for s, q in v.items()} for arm, v in bench.pseudo_quality.items()},
    }
    report["learning_curves"] = {arm: {"all": curve_series(bench.curves.get(arm, {}), [int(c) for c in
                                                                                  summary["classes"]])}
                                 for arm in bench.arms}
    report["instrument"] = instrument_check(summary)
    report["verdict"] = verdict(summary, seeds)
    report["no_harm"] = {arm: no_harm_check(summary, arm) for arm in summary["arms"] if arm in DCA_ARMS}
    write_json_atomic(json_ready(report), os.path.join(out, "benchmark.json"))
    write_text_atomic(os.path.join(out, "README.md"), markdown_report(report, summary, cfg))
    return report


def timing_summary(bench: BenchmarkResults) -> Dict[str, Dict]:
    """Per arm: seconds per iteration / per test case / of training (mean, std over seeds), the time breakdown and
    the iteration and inference time as ratios to the baseline's."""
    timing = {arm: {k: mean_std([t[k] for t in bench.timings[arm].values() if t.get(k) is not None])
                    for k in ("seconds_per_iteration", "inference_seconds_per_case", "training_seconds",
                              "train_wall_seconds")}
              for arm in bench.arms}
    for arm in bench.arms:
        timing[arm]["time_breakdown_seconds"] = mean_breakdown(bench.timings[arm].values())
    base_t = timing["baseline"]
    for arm in bench.arms:
        timing[arm]["iteration_ratio_to_baseline"] = _ratio(timing[arm]["seconds_per_iteration"]["mean"],
                                                            base_t["seconds_per_iteration"]["mean"])
        timing[arm]["inference_ratio_to_baseline"] = _ratio(timing[arm]["inference_seconds_per_case"]["mean"],
                                                            base_t["inference_seconds_per_case"]["mean"])
    return timing


def cost_summary(bench: BenchmarkResults) -> Dict[str, Dict[str, float]]:
    """Each arm's network cost with its parameters and FLOPs as ratios to the baseline's."""
    costs = {arm: dict(c) for arm, c in bench.network_costs.items()}
    for arm in bench.arms:
        for k in ("parameters", "inference_gflops", "training_forward_gflops", "training_step_gflops"):
            costs[arm][f"{k}_ratio_to_baseline"] = _ratio(costs[arm][k], costs["baseline"][k])
    return costs


def _dataset_entry(bench: BenchmarkResults, summary: Mapping, plans: Mapping) -> Dict[str, Any]:
    return {"folder": bench.semi, "labels": summary["labels"], "groups": summary["groups"],
            "class_voxel_counts": plans.get("dca", {}).get("class_voxel_counts"),
            "n_labeled": len(os.listdir(os.path.join(bench.semi, "labelsTr"))),
            "n_unlabeled": len(os.listdir(os.path.join(bench.semi, "imagesTrUnlabeled"))),
            "n_test": len(os.listdir(os.path.join(bench.semi, "labelsTs")))}


def _charts(bench: BenchmarkResults, summary: Mapping, plans: Mapping, seeds: Sequence[int]) -> Dict[str, str]:
    """Dice per class, class groups, learning curves and the trainers' progress pictures: name -> file."""
    out = bench.out
    charts = {"dice_per_class": plot_dice_per_class(
        summary, os.path.join(out, "dice_per_class.png"),
        f"test-set Dice per class, {len(seeds)} seed(s), {bench.cfg.epochs} epochs x {bench.cfg.iterations} "
        f"iterations")}
    # the planner's log-gap chart, redrawn from the plans (the grouping the DCA arm was trained with)
    groups_png = _class_groups_chart(bench, plans, os.path.join(out, "class_groups.png"))
    if groups_png:
        charts["class_groups"] = groups_png
    curves_png = plot_learning_curves(
        {arm: bench.curves.get(arm, {}) for arm in bench.arms}, summary["groups"],
        os.path.join(out, "learning_curves.png"),
        "validation pseudo-Dice during training (nnU-Net's per-epoch validation patches; fold 'all' = training cases)")
    if curves_png:
        charts["learning_curves"] = curves_png
    for arm in ("dca", "semimoe"):
        if arm in bench.arms:
            s0 = min(bench.timings[arm])
            src = os.path.join(bench.timings[arm][s0]["model_folder"], "progress_semi_supervised.png")
            if os.path.isfile(src):
                dst = os.path.join(out, f"progress_{arm}_seed{s0}.png")
                shutil.copy2(src, dst)
                charts[f"progress_{arm}"] = dst
    return charts


def _class_groups_chart(bench: BenchmarkResults, plans: Mapping, path: str) -> Optional[str]:
    from nnunetv2_dca.planning.grouping import explicit_grouping
    from nnunetv2_dca.planning.report import plot_grouping

    dca_block = plans.get("dca", {})
    counts = {int(k): int(v) for k, v in (dca_block.get("class_voxel_counts") or {}).items()}
    groups = plans_class_groups(plans, 1 + len(counts), bench.cfg.configuration)[0] if counts else None
    if not counts or not groups:
        return None
    names = {int(v): k for k, v in bench.dataset_json["labels"].items() if isinstance(v, int)}
    grouping = explicit_grouping(groups, counts, names)
    grouping_source = dca_block.get("grouping_source", "plans")
    return plot_grouping(grouping, names, path, title=f"labeled voxel share per class, groups from {grouping_source} "
                                                      f"(dashed = group borders)")


def _gates_picture(bench: BenchmarkResults, seed: int) -> Optional[Dict]:
    """DFAM gates of the DCA model on the first test case (what ``nnunetv2-dca gates`` draws), with its numbers."""
    import shlex

    from nnunetv2_dca.evaluation.gates import run_gates

    from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder

    ending = bench.file_ending
    cases = get_identifiers_from_splitted_dataset_folder(os.path.join(bench.semi, "imagesTs"), ending)
    if len(cases) == 0:
        return None
    image = os.path.join(bench.semi, "imagesTs", f"{cases[0]}_0000{ending}")
    reference = os.path.join(bench.semi, "labelsTs", f"{cases[0]}{ending}")
    model = os.path.dirname(bench.timings["dca"][seed]["model_folder"])
    png = os.path.join(bench.out, f"gates_dca_seed{seed}.png")
    cmd = ["nnunetv2-dca", "gates", "-m", model, "-f", "all", "-i", image, "-o", png, "-device", bench.cfg.device]
    if os.path.isfile(reference):
        cmd[cmd.index("-o"):cmd.index("-o")] = ["-ref", reference]
    with open(bench.commands_log, "a", encoding="utf-8") as f:
        f.write(shlex.join(cmd) + "\n")
    result = run_gates([image], png, model_folder=model, fold="all",
                       reference_file=reference if os.path.isfile(reference) else None, device=bench.cfg.device)
    return {"png": png, "numbers": {k: result[k] for k in ("case", "slice", "experts", "class_groups", "prediction",
                                                           "reference") if k in result}}


def mean_breakdown(timings) -> Dict[str, float]:
    """Mean over seeds of each phase of budget.PHASES (runs trained before the breakdown existed have none)."""
    runs = [t["time_breakdown_seconds"] for t in timings if t.get("time_breakdown_seconds")]
    return {k: statistics.mean(r.get(k, 0.0) for r in runs) for k in runs[0]} if runs else {}
