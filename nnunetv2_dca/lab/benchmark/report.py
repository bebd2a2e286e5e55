"""The benchmark's report: ``benchmark.json``, ``README.md`` (tables), ``dice_per_class.png`` and the class-groups
chart, all from the measured results of one :class:`nnunetv2_dca.lab.benchmark.run.Benchmark` run.

Aggregation: per arm and seed, a class's Dice is the mean over the test cases that score it (``evaluate_folders``'
default protocol: a case where the class is absent from reference and prediction is left out); a group's Dice is
evaluate's mean over its scored classes (a class no test reference holds is "not scored": out of the group and
overall means, shown as such in the per-class table); with several seeds the report gives mean +- standard
deviation (sample, n-1) over seeds of those per-seed values. Deltas are arm minus baseline of the same seed, then
averaged over seeds.

Size: the report's aggregation (seeds, groups, sites, pseudo-labels), its JSON and its Markdown are one format;
splitting them would put the table layout and the numbers it shows in different files (charts are in ``charts.py``).
"""

from __future__ import annotations

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
from nnunetv2_dca.lab.benchmark.verdicts import (instrument_check, instrument_line, no_harm_check,  # noqa: F401
                                             no_harm_line, verdict)
from nnunetv2_dca.evaluation.evaluate import json_ready
from nnunetv2_dca.planning.class_groups import plans_class_groups

def mean_std(values: Sequence[float]) -> Dict[str, float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


def fmt(stat: Mapping[str, float], scale: float = 100.0, digits: int = 1) -> str:
    if stat["n"] == 0:
        return "n/a"
    if stat["n"] == 1:
        return f"{stat['mean'] * scale:.{digits}f}"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def fmt_delta(stat: Mapping[str, float]) -> str:
    if stat["n"] == 0:
        return "n/a"
    return f"{stat['mean'] * 100:+.1f}"


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


def pseudo_label_table(rows: Mapping[str, Mapping]) -> str:
    groups = list(next(iter(rows.values()))["groups"])
    out = ["| source | " + " | ".join(groups) + " | mean over classes | " +
           " | ".join(f"{g} voxels % (true)" for g in groups) + " |",
           "|---|" + "---|" * (2 * len(groups) + 1)]
    for row in rows.values():
        shares = [f"{fmt(row['voxel_share'][g], digits=2)} ({fmt(row['voxel_share_true'][g], digits=2)})"
                  for g in groups]
        out.append(f"| {row['caption']} | " + " | ".join(fmt(row["groups"][g]) for g in groups)
                   + f" | {fmt(row['mean'])} | " + " | ".join(shares) + " |")
    return "\n".join(out)


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
    cfg = bench.cfg
    seeds = list(bench.seeds if bench.seeds is not None else cfg.seeds)
    out = bench.out
    summary = summarise_arms(bench.results, seeds)
    costs = {arm: dict(c) for arm, c in bench.network_costs.items()}
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
        for k in ("parameters", "inference_gflops", "training_forward_gflops", "training_step_gflops"):
            costs[arm][f"{k}_ratio_to_baseline"] = _ratio(costs[arm][k], costs["baseline"][k])

    with open(bench.plans_files[PLANS_DCA], encoding="utf-8") as f:
        import json

        plans = json.load(f)
    dca_block = plans.get("dca", {})
    # the planner's log-gap chart, redrawn from the plans (the grouping the DCA arm was trained with)
    charts = {"dice_per_class": plot_dice_per_class(
        summary, os.path.join(out, "dice_per_class.png"),
        f"test-set Dice per class, {len(seeds)} seed(s), {cfg.epochs} epochs x {cfg.iterations} iterations")}
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
        "dataset": {"folder": bench.semi, "labels": summary["labels"], "groups": summary["groups"],
                    "class_voxel_counts": dca_block.get("class_voxel_counts"),
                    "n_labeled": len(os.listdir(os.path.join(bench.semi, "labelsTr"))),
                    "n_unlabeled": len(os.listdir(os.path.join(bench.semi, "imagesTrUnlabeled"))),
                    "n_test": len(os.listdir(os.path.join(bench.semi, "labelsTs")))},
        "seeds": seeds,
        "dice": summary["arms"],
        "per_seed_evaluation": {arm: {str(s): {k: v for k, v in r.items() if k != "metric_per_case"}
                                      for s, r in bench.results[arm].items()} for arm in bench.arms},
        "timing": timing,
        "timing_per_seed": {arm: {str(s): t for s, t in bench.timings[arm].items()} for arm in bench.arms},
        "network_cost": costs,
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


def _points(delta: float) -> str:
    return "n/a" if delta is None or math.isnan(delta) else f"{delta * 100:+.1f}"


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

    ending = bench.file_ending
    images = sorted(f for f in os.listdir(os.path.join(bench.semi, "imagesTs")) if f.endswith("_0000" + ending))
    if not images:
        return None
    image = os.path.join(bench.semi, "imagesTs", images[0])
    reference = os.path.join(bench.semi, "labelsTs", images[0][:-len("_0000" + ending)] + ending)
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


def gates_table(numbers: Mapping) -> str:
    """Mean DFAM gate of each expert inside each region of the reference (else prediction) of the gates case."""
    source = "reference" if numbers.get("reference") else "prediction"
    stats = numbers[source]
    experts = numbers["experts"]
    rows = [f"Mean gate weight per expert inside each {source} region of {numbers['case']} (whole case; equal "
            f"weight = {1 / len(experts):.2f}):", "",
            "| region | voxels | " + " | ".join(experts) + " |", "|---|---|" + "---|" * len(experts)]
    for region, entry in stats.items():
        cells = ["n/a" if entry["mean_gate"][e] is None else f"{entry['mean_gate'][e]:.2f}" for e in experts]
        rows.append(f"| {region} | {entry['voxels']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def mean_breakdown(timings) -> Dict[str, float]:
    """Mean over seeds of each phase of budget.PHASES (runs trained before the breakdown existed have none)."""
    runs = [t["time_breakdown_seconds"] for t in timings if t.get("time_breakdown_seconds")]
    return {k: statistics.mean(r.get(k, 0.0) for r in runs) for k in runs[0]} if runs else {}


def time_breakdown_lines(report: Mapping, arms: Sequence[str]) -> List[str]:
    """Where each arm's nnUNetv2_train process spends its minutes (mean over seeds), and the sum over arms."""
    rows = [(arm, report["timing"][arm]) for arm in arms if report["timing"][arm].get("time_breakdown_seconds")]
    if not rows:
        return []
    phases = list(rows[0][1]["time_breakdown_seconds"])
    out = ["## Where the training time goes (minutes, mean over seeds)", "",
           "| arm | process wall | " + " | ".join(p.replace("_", " ") for p in phases) + " |",
           "|---|---|" + "---|" * len(phases)]
    for arm, t in rows:
        wall = (t.get("train_wall_seconds") or {}).get("mean")
        wall_cell = "n/a" if wall is None or math.isnan(wall) else f"{wall / 60:.1f}"
        out.append(f"| {arm} | {wall_cell} | " + " | ".join(f"{t['time_breakdown_seconds'].get(p, 0.0) / 60:.1f}"
                                                            for p in phases) + " |")
    walls = [(t.get("train_wall_seconds") or {}).get("mean") for _, t in rows]
    total = sum(w for w in walls if w is not None and not math.isnan(w)) / 60
    out += ["", f"Sum of the process wall times over these arms: {total:.1f} min per seed. Data wait = waiting for "
            "the labeled (and unlabeled) batches: loading and augmentation; step = forward, backward and optimiser; "
            "process wall also holds Python start-up, imports and nnU-Net's set-up (nnunetv2_dca/training/budget.py).",
            ""]
    return out


def _training_minutes(report: Mapping) -> float:
    return sum(t.get("training_seconds") or 0.0 for per_seed in report["timing_per_seed"].values()
               for t in per_seed.values()) / 60


def markdown_report(report: Mapping, summary: Mapping, cfg) -> str:
    """The README of a run from its report and summary; ``cfg`` = the run's BenchmarkConfig (or its stored copy)."""
    arms = list(summary["arms"])
    seeds = report["seeds"]
    lines: List[str] = []
    add = lines.append
    add("# nnunetv2-dca benchmark")
    add("")
    add(f"Dataset `{os.path.basename(report['dataset']['folder'])}`: {report['dataset']['n_labeled']} labeled, "
        f"{report['dataset']['n_unlabeled']} unlabeled training images, {report['dataset']['n_test']} test cases. "
        f"Budget per arm: {cfg.epochs} epochs x {cfg.iterations} iterations, width "
        f"{cfg.width or 'as planned'} ({cfg.planner}, {cfg.configuration}), seeds {', '.join(map(str, seeds))}, "
        f"device {cfg.device}. Training time of the arms in this report {_training_minutes(report):.0f} min "
        f"(this invocation {report['wall_seconds'] / 60:.0f} min: a resumed run reuses stored arms).")
    add("")
    add("Arms: " + "; ".join(f"**{a}** = {report['arms'][a]['title']} (`-tr {report['arms'][a]['trainer']}`)"
                            for a in arms) + ". All trained with the stock `nnUNetv2_train ... -f all`, predicted "
        "with `nnUNetv2_predict`, evaluated on the held-out test set; the exact commands are in "
        "[commands.sh](commands.sh).")
    add("")
    line = instrument_line(report.get("instrument") or {})
    if line:
        add(line)
        add("")
    v = report.get("verdict") or {}
    if v.get("tail_group"):
        if v["dca_beats_baseline_on_tail"] is None:
            head = (f"**Result: the {v['tail_group']} group could not be scored** (no reference voxels of its "
                    f"classes in the test set; mean over classes {_points(v['mean_delta'])}")
        else:
            verb = "beats" if v["dca_beats_baseline_on_tail"] else "does NOT beat"
            head = (f"**Result: DCA {verb} the labeled-only baseline on the {v['tail_group']} group** "
                    f"({_points(v['tail_delta'])} Dice points; mean over classes {_points(v['mean_delta'])}")
        add(head + (f"; vs. offline pseudo-labels {_points(v['mean_delta_to_pseudolabel'])}"
                    if "mean_delta_to_pseudolabel" in v else "") + ").")
        add("")
    for check in (report.get("no_harm") or {}).values():
        line = no_harm_line(check)
        if line:
            add(line)
            add("")
    add("![Dice per class](dice_per_class.png)")
    add("")
    if "learning_curves" in report["charts"]:
        add("Learning curves (has every arm converged?):")
        add("")
        add(f"![learning curves]({report['charts']['learning_curves']})")
        add("")
    add("## Dice (%) per group" + (" (mean ± std over seeds)" if len(seeds) > 1 else ""))
    add("")
    group_keys = [f"group:{g}" for g in summary["groups"]] + ["mean"]
    headers = [g.split(":", 1)[1] for g in group_keys[:-1]] + ["mean over classes"]
    add("| arm | seeds | " + " | ".join(headers) + " |")
    add("|---|---|" + "---|" * len(headers))
    for arm in arms:
        cells = []
        for k in group_keys:
            cell = fmt(summary["arms"][arm]["dice"][k])
            if arm != "baseline":
                cell += f" ({fmt_delta(summary['arms'][arm]['delta_to_baseline'][k])})"
            cells.append(cell)
        add(f"| {arm} | {len(summary['arms'][arm].get('seeds', seeds))} | " + " | ".join(cells) + " |")
    add("")
    add("In parentheses: difference to the baseline in Dice points (same seed, then averaged). Group and overall "
        "means are `nnunetv2-dca evaluate`'s: a case where a class is absent from both reference and prediction is "
        "left out of that class's mean (not counted as a perfect score)"
        + ("; not scored (no reference voxels in any test case, left out of the group means and the mean): "
           + ", ".join(f"{summary['labels'].get(c, c)} ({c})" for c in summary["not_scored"])
           if summary.get("not_scored") else "") + ".")
    add("")
    add("## Dice (%) per class")
    add("")
    order = [str(c) for members in summary["groups"].values() for c in members]
    order += [c for c in summary["classes"] if c not in order]
    group_of = {str(c): g for g, members in summary["groups"].items() for c in members}
    with_class = summary.get("cases_with_class", {})
    add("| class | group | test cases with it | " + " | ".join(arms) + " |")
    add("|---|---|---|" + "---|" * len(arms))
    for c in order:
        first = f"| {summary['labels'].get(c, c)} ({c}) | {group_of.get(c, '')} | {with_class.get(c, '')} |"
        if c in summary.get("not_scored", []):
            add(first + " " + " | ".join("not scored" for _ in arms) + " |")
            continue
        cells = []
        for arm in arms:
            cell = fmt(summary["arms"][arm]["dice"][f"class:{c}"])
            if arm != "baseline":
                cell += f" ({fmt_delta(summary['arms'][arm]['delta_to_baseline'][f'class:{c}'])})"
            cells.append(cell)
        add(first + " " + " | ".join(cells) + " |")
    add("")
    if report.get("pseudo_labels"):
        add("## Pseudo-labels on the unlabeled training images (Dice % against their true labels)")
        add("")
        add("The unlabeled images' true labels are known here (phantom / `--full-dataset`), so the pseudo-labels are "
            "scored directly on nnU-Net's preprocessed grid, pooled over all voxels "
            "(`nnunetv2_dca.lab.pseudo_labels`). Voxel share: % of all voxels labeled with the group's "
            "classes, in parentheses the truth; a group starved by the pseudo-labels shows as a share far below it.")
        add("")
        add(pseudo_label_table(report["pseudo_labels"]))
        add("")
    if report.get("domain_shift"):
        ds = report["domain_shift"]
        site_ids = list(ds[arms[0]])
        add("## Domain shift: Dice (%) per test site")
        add("")
        add(f"{cfg.sites} scanner sites; every labeled case comes from site 0, unlabeled images from all sites.")
        add("")
        add("![Dice per site](dice_per_site.png)")
        add("")
        add("| arm | " + " | ".join(f"site {k} ({ds[arms[0]][k]['n_cases']} cases)" for k in site_ids) + " |")
        add("|---|" + "---|" * len(site_ids))
        for arm in arms:
            cells = [fmt(ds[arm][k]["dice"]) + ("" if arm == "baseline" else
                                                f" ({fmt_delta(ds[arm][k]['delta_to_baseline'])})")
                     for k in site_ids]
            add(f"| {arm} | " + " | ".join(cells) + " |")
        add("")
    if "class_groups" in report["charts"]:
        add("## Class groups (log-gap rule on the labeled voxel shares)")
        add("")
        add("![class groups](class_groups.png)")
        add("")
    add("## Cost, measured in this run")
    add("")
    add("| arm | training min | s / training iteration | ratio | inference s / case | ratio | parameters | ratio | "
        "GFLOPs / patch (inference) | ratio | GFLOPs / training step per labeled patch | ratio |")
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for arm in arms:
        t, c = report["timing"][arm], report["network_cost"][arm]
        step = c.get("training_step_gflops")  # reports written before the step count have none
        step_cells = (f"{step:.2f} | {c['training_step_gflops_ratio_to_baseline']:.2f}" if step is not None
                      else "n/a | n/a")
        minutes = t.get("training_seconds") or {"n": 0}
        add(f"| {arm} | {fmt(minutes, 1 / 60, 1)} | {fmt(t['seconds_per_iteration'], 1, 2)} | "
            f"{t['iteration_ratio_to_baseline']:.2f} | "
            f"{fmt(t['inference_seconds_per_case'], 1, 2)} | {t['inference_ratio_to_baseline']:.2f} | "
            f"{c['parameters']:,} | {c['parameters_ratio_to_baseline']:.2f} | {c['inference_gflops']:.2f} | "
            f"{c['inference_gflops_ratio_to_baseline']:.2f} | {step_cells} |")
    add("")
    add("Training minutes: the training iterations' wall time (validation excluded); baseline_wallclock trains the "
        "baseline for as many epochs as make DCA's measured time of the same seed. "
        "Seconds per iteration: median over epochs (first epoch left out), data loading included, validation "
        "excluded. Inference: nnU-Net's sliding-window prediction of one preprocessed test case (what "
        "`nnUNetv2_predict` runs per case; process start, preprocessing and export excluded), mean over cases. "
        "A semi-supervised step also runs an unlabeled batch as large as the labeled one, so its per-iteration "
        "cost covers twice the images of the baseline's step. FLOPs (nnunetv2_dca.network.cost): inference = one "
        "patch; training step = forward + backward per labeled patch with its unlabeled share, as the trainer "
        "runs it (the iteration-time ratio should follow this ratio).")
    add("")
    lines.extend(time_breakdown_lines(report, arms))
    pictures = [k for k in ("gates", "progress_dca", "progress_semimoe") if k in report["charts"]]
    if pictures:
        add("## Pictures")
        add("")
        captions = {"gates": "DFAM gate weight of each expert on a test slice (nnunetv2-dca gates)",
                    "progress_dca": "DCA training log (losses, lambda, pseudo-label shares, gates)",
                    "progress_semimoe": "Semi-MoE training log"}
        for k in pictures:
            add(f"{captions[k]}:")
            add("")
            add(f"![{k}]({report['charts'][k]})")
            add("")
            if k == "gates" and report.get("gates"):
                add(gates_table(report["gates"]))
                add("")
    add("## Machine")
    add("")
    add(", ".join(f"{k}: {v}" for k, v in report["machine"].items()))
    add("")
    add("Files: `benchmark.json` (everything above plus per-seed evaluations and timings), `commands.sh`, "
        "`seed_<s>/predictions/<arm>/evaluation.{json,csv,md}`.")
    add("")
    return "\n".join(lines)
