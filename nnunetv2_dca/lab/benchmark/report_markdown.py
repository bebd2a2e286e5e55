"""The benchmark's ``README.md``: one writer per section (verdict, Dice tables, pseudo-labels, domain shift, cost,
time breakdown, pictures, machine), joined in order by :func:`markdown_report`.

It reads only the finished report and summary of :mod:`nnunetv2_dca.lab.benchmark.report` (which computes the
numbers and calls this module), so a stored ``benchmark.json`` renders the same README again.
"""

from __future__ import annotations

import math
import os
from typing import List, Mapping, Sequence

from nnunetv2_dca.lab.benchmark.verdicts import instrument_line, no_harm_line


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


def points(delta: float) -> str:
    """A Dice difference in signed points; undefined (None or NaN) as n/a."""
    return "n/a" if delta is None or math.isnan(delta) else f"{delta * 100:+.1f}"


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
    sections = [_intro_lines(report, arms, seeds, cfg), _verdict_lines(report), _chart_lines(report),
                _group_table_lines(summary, arms, seeds), _class_table_lines(summary, arms),
                _pseudo_label_lines(report), _domain_shift_lines(report, arms, cfg), _class_groups_lines(report),
                _cost_lines(report, arms), time_breakdown_lines(report, arms), _picture_lines(report),
                _machine_lines(report)]
    return "\n".join(line for section in sections for line in section)


def _intro_lines(report: Mapping, arms: Sequence[str], seeds: Sequence[int], cfg) -> List[str]:
    """Title, dataset and budget, and the arms with their trainers."""
    dataset = report["dataset"]
    return [
        "# nnunetv2-dca benchmark", "",
        f"Dataset `{os.path.basename(dataset['folder'])}`"
        f"{'' if cfg.dataset is not None else ' (phantom, ' + cfg.phantom_variability + ')'}"
        f": {dataset['n_labeled']} labeled, "
        f"{dataset['n_unlabeled']} unlabeled training images, {dataset['n_test']} test cases. "
        f"Budget per arm: {cfg.epochs} epochs x {cfg.iterations} iterations, width "
        f"{cfg.width or 'as planned'} ({cfg.planner}, {cfg.configuration}), seeds {', '.join(map(str, seeds))}, "
        f"device {cfg.device}. Training time of the arms in this report {_training_minutes(report):.0f} min "
        f"(this invocation {report['wall_seconds'] / 60:.0f} min: a resumed run reuses stored arms).", "",
        "Arms: " + "; ".join(f"**{a}** = {report['arms'][a]['title']} (`-tr {report['arms'][a]['trainer']}`)"
                             for a in arms) + ". All trained with the stock `nnUNetv2_train ... -f all`, predicted "
        "with `nnUNetv2_predict`, evaluated on the held-out test set; the exact commands are in "
        "[commands.sh](commands.sh).", ""]


def _verdict_lines(report: Mapping) -> List[str]:
    """The instrument check, the tail-group result and each DCA arm's no-harm check, one paragraph each."""
    out: List[str] = []
    line = instrument_line(report.get("instrument") or {})
    if line:
        out += [line, ""]
    v = report.get("verdict") or {}
    if v.get("tail_group"):
        if v["dca_beats_baseline_on_tail"] is None:
            head = (f"**Result: the {v['tail_group']} group could not be scored** (no reference voxels of its "
                    f"classes in the test set; mean over classes {points(v['mean_delta'])}")
        else:
            verb = "beats" if v["dca_beats_baseline_on_tail"] else "does NOT beat"
            head = (f"**Result: DCA {verb} the labeled-only baseline on the {v['tail_group']} group** "
                    f"({points(v['tail_delta'])} Dice points; mean over classes {points(v['mean_delta'])}")
        out += [head + (f"; vs. offline pseudo-labels {points(v['mean_delta_to_pseudolabel'])}"
                        if "mean_delta_to_pseudolabel" in v else "") + ").", ""]
    for check in (report.get("no_harm") or {}).values():
        line = no_harm_line(check)
        if line:
            out += [line, ""]
    return out


def _chart_lines(report: Mapping) -> List[str]:
    out = ["![Dice per class](dice_per_class.png)", ""]
    if "learning_curves" in report["charts"]:
        out += ["Learning curves (has every arm converged?):", "",
                f"![learning curves]({report['charts']['learning_curves']})", ""]
    return out


def _arm_cell(summary: Mapping, arm: str, key: str) -> str:
    """An arm's Dice for one summary key; other arms than the baseline add their delta to it in parentheses."""
    cell = fmt(summary["arms"][arm]["dice"][key])
    if arm != "baseline":
        cell += f" ({fmt_delta(summary['arms'][arm]['delta_to_baseline'][key])})"
    return cell


def _group_table_lines(summary: Mapping, arms: Sequence[str], seeds: Sequence[int]) -> List[str]:
    group_keys = [f"group:{g}" for g in summary["groups"]] + ["mean"]
    headers = [g.split(":", 1)[1] for g in group_keys[:-1]] + ["mean over classes"]
    out = ["## Dice (%) per group" + (" (mean ± std over seeds)" if len(seeds) > 1 else ""), "",
           "| arm | seeds | " + " | ".join(headers) + " |", "|---|---|" + "---|" * len(headers)]
    for arm in arms:
        cells = [_arm_cell(summary, arm, k) for k in group_keys]
        out.append(f"| {arm} | {len(summary['arms'][arm].get('seeds', seeds))} | " + " | ".join(cells) + " |")
    out += ["",
            "In parentheses: difference to the baseline in Dice points (same seed, then averaged). Group and overall "
            "means are `nnunetv2-dca evaluate`'s: a case where a class is absent from both reference and prediction "
            "is left out of that class's mean (not counted as a perfect score)"
            + ("; not scored (no reference voxels in any test case, left out of the group means and the mean): "
               + ", ".join(f"{summary['labels'].get(c, c)} ({c})" for c in summary["not_scored"])
               if summary.get("not_scored") else "") + ".", ""]
    return out


def _class_table_lines(summary: Mapping, arms: Sequence[str]) -> List[str]:
    """Classes in group order (then any class of no group), each with its group and test cases that hold it."""
    order = [str(c) for members in summary["groups"].values() for c in members]
    order += [c for c in summary["classes"] if c not in order]
    group_of = {str(c): g for g, members in summary["groups"].items() for c in members}
    with_class = summary.get("cases_with_class", {})
    out = ["## Dice (%) per class", "",
           "| class | group | test cases with it | " + " | ".join(arms) + " |", "|---|---|---|" + "---|" * len(arms)]
    for c in order:
        first = f"| {summary['labels'].get(c, c)} ({c}) | {group_of.get(c, '')} | {with_class.get(c, '')} |"
        if c in summary.get("not_scored", []):
            out.append(first + " " + " | ".join("not scored" for _ in arms) + " |")
        else:
            out.append(first + " " + " | ".join(_arm_cell(summary, arm, f"class:{c}") for arm in arms) + " |")
    out.append("")
    return out


def _pseudo_label_lines(report: Mapping) -> List[str]:
    if not report.get("pseudo_labels"):
        return []
    return ["## Pseudo-labels on the unlabeled training images (Dice % against their true labels)", "",
            "The unlabeled images' true labels are known here (phantom / `--full-dataset`), so the pseudo-labels are "
            "scored directly on nnU-Net's preprocessed grid, pooled over all voxels "
            "(`nnunetv2_dca.lab.pseudo_labels`). Voxel share: % of all voxels labeled with the group's "
            "classes, in parentheses the truth; a group starved by the pseudo-labels shows as a share far below it.",
            "", pseudo_label_table(report["pseudo_labels"]), ""]


def _domain_shift_lines(report: Mapping, arms: Sequence[str], cfg) -> List[str]:
    if not report.get("domain_shift"):
        return []
    ds = report["domain_shift"]
    site_ids = list(ds[arms[0]])
    out = ["## Domain shift: Dice (%) per test site", "",
           f"{cfg.sites} scanner sites; every labeled case comes from site 0, unlabeled images from all sites.", "",
           "![Dice per site](dice_per_site.png)", "",
           "| arm | " + " | ".join(f"site {k} ({ds[arms[0]][k]['n_cases']} cases)" for k in site_ids) + " |",
           "|---|" + "---|" * len(site_ids)]
    for arm in arms:
        cells = [fmt(ds[arm][k]["dice"]) + ("" if arm == "baseline" else
                                            f" ({fmt_delta(ds[arm][k]['delta_to_baseline'])})")
                 for k in site_ids]
        out.append(f"| {arm} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def _class_groups_lines(report: Mapping) -> List[str]:
    if "class_groups" not in report["charts"]:
        return []
    return ["## Class groups (log-gap rule on the labeled voxel shares)", "", "![class groups](class_groups.png)", ""]


def _cost_lines(report: Mapping, arms: Sequence[str]) -> List[str]:
    """Measured time per iteration and per test case, parameters and FLOPs, each with its ratio to the baseline."""
    out = ["## Cost, measured in this run", "",
           "| arm | training min | s / training iteration | ratio | inference s / case | ratio | parameters | ratio | "
           "GFLOPs / patch (inference) | ratio | GFLOPs / training step per labeled patch | ratio |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for arm in arms:
        t, c = report["timing"][arm], report["network_cost"][arm]
        step = c.get("training_step_gflops")  # reports written before the step count have none
        step_cells = (f"{step:.2f} | {c['training_step_gflops_ratio_to_baseline']:.2f}" if step is not None
                      else "n/a | n/a")
        minutes = t.get("training_seconds") or {"n": 0}
        out.append(f"| {arm} | {fmt(minutes, 1 / 60, 1)} | {fmt(t['seconds_per_iteration'], 1, 2)} | "
                   f"{t['iteration_ratio_to_baseline']:.2f} | "
                   f"{fmt(t['inference_seconds_per_case'], 1, 2)} | {t['inference_ratio_to_baseline']:.2f} | "
                   f"{c['parameters']:,} | {c['parameters_ratio_to_baseline']:.2f} | {c['inference_gflops']:.2f} | "
                   f"{c['inference_gflops_ratio_to_baseline']:.2f} | {step_cells} |")
    out += ["",
            "Training minutes: the training iterations' wall time (validation excluded); baseline_wallclock trains the "
            "baseline for as many epochs as make DCA's measured time of the same seed. "
            "Seconds per iteration: median over epochs (first epoch left out), data loading included, validation "
            "excluded. Inference: nnU-Net's sliding-window prediction of one preprocessed test case (what "
            "`nnUNetv2_predict` runs per case; process start, preprocessing and export excluded), mean over cases. "
            "A semi-supervised step also runs an unlabeled batch as large as the labeled one, so its per-iteration "
            "cost covers twice the images of the baseline's step. FLOPs (nnunetv2_dca.network.cost): inference = one "
            "patch; training step = forward + backward per labeled patch with its unlabeled share, as the trainer "
            "runs it (the iteration-time ratio should follow this ratio).", ""]
    return out


# captions of the pictures section, in the order they are shown
PICTURE_CAPTIONS = {"gates": "DFAM gate weight of each expert on a test slice (nnunetv2-dca gates)",
                    "progress_dca": "DCA training log (losses, lambda, pseudo-label shares, gates)",
                    "progress_semimoe": "Semi-MoE training log"}


def _picture_lines(report: Mapping) -> List[str]:
    pictures = [k for k in PICTURE_CAPTIONS if k in report["charts"]]
    if not pictures:
        return []
    out = ["## Pictures", ""]
    for k in pictures:
        out += [f"{PICTURE_CAPTIONS[k]}:", "", f"![{k}]({report['charts'][k]})", ""]
        if k == "gates" and report.get("gates"):
            out += [gates_table(report["gates"]), ""]
    return out


def _machine_lines(report: Mapping) -> List[str]:
    return ["## Machine", "", ", ".join(f"{k}: {v}" for k, v in report["machine"].items()), "",
            "Files: `benchmark.json` (everything above plus per-seed evaluations and timings), `commands.sh`, "
            "`seed_<s>/predictions/<arm>/evaluation.{json,csv,md}`.", ""]
