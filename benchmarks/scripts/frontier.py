"""The CPU frontier: how far nnU-Net's all-labels arm gets on the benchmark's phantom per minute of training.

Reads one finished training of the benchmark's budget trainer (its ``budget_timing.json``: seconds per iteration and
nnU-Net's per-epoch validation pseudo-Dice per class) and the class groups of a DCA plans file, and draws each group's
pseudo-Dice against training minutes, with the test-set Dice of the final model when its ``evaluation.json`` is given.
With fold 'all' the validation patches come from the training cases; for the all-labels arm on the phantom they track
the test set closely (compare the final points). Usage:

    python benchmarks/scripts/frontier.py MODEL_FOLD_FOLDER PLANS_JSON OUT_PREFIX [EVALUATION_JSON]

writes OUT_PREFIX.png and OUT_PREFIX.json.
"""

from __future__ import annotations

import json
import sys
from typing import Dict, List, Optional

from nnunetv2_dca.evaluation.metrics import nanmean


def frontier(timing: Dict, groups: Dict[str, List[int]]) -> Dict:
    per_epoch = timing["seconds_per_iteration_per_epoch"]
    iters = timing["budget"]["iterations"]
    minutes, t = [], 0.0
    for s in per_epoch:
        t += s * iters / 60
        minutes.append(t)
    rows = timing["validation_dice_per_class_per_epoch"]
    curves = {g: [nanmean([r[c - 1] for c in members]) for r in rows] for g, members in groups.items()}
    curves["mean"] = [nanmean(r) for r in rows]
    return {"minutes": minutes[:len(rows)], "iterations": [(e + 1) * iters for e in range(len(rows))],
            "pseudo_dice": curves}


def main(model: str, plans_file: str, out: str, evaluation: Optional[str] = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(f"{model}/budget_timing.json", encoding="utf-8") as f:
        timing = json.load(f)
    with open(plans_file, encoding="utf-8") as f:
        plans = json.load(f)
    conf = next(iter(plans["configurations"].values()))
    names = ("head", "medium", "tail")
    groups = {n: g for n, g in zip(names, conf["architecture"]["arch_kwargs"]["class_groups"])}
    res = frontier(timing, groups)
    test = None
    if evaluation:
        with open(evaluation, encoding="utf-8") as f:
            ev = json.load(f)
        test = {g: ev["group_mean"][g]["Dice"] for g in groups}
        test["mean"] = ev["foreground_mean"]["Dice"]
        res["test_dice_final"] = test
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colours = {"head": "#1f77b4", "medium": "#2ca02c", "tail": "#d62728", "mean": "k"}
    for g, ys in res["pseudo_dice"].items():
        ema, sm = None, []
        for v in ys:
            if v == v:  # an undefined epoch keeps the average where it was
                ema = v if ema is None else 0.8 * ema + 0.2 * v
            sm.append(ema)
        ax.plot(res["minutes"], sm, color=colours[g], label=f"{g} (validation pseudo-Dice, EMA)",
                linewidth=2 if g == "mean" else 1.2)
        if test:
            ax.scatter([res["minutes"][-1]], [test[g]], color=colours[g], marker="o", zorder=3)
    ax.axhline(0.7, color="k", linestyle=":", linewidth=0.8)
    ax.axhline(0.5, color="#d62728", linestyle=":", linewidth=0.8)
    ax.set_xlabel("training minutes on this machine (2 CPU cores)")
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title("all-labels nnU-Net on the benchmark phantom: the CPU frontier\n(dots: test-set Dice of the final "
                 "model; dotted: the instrument's targets, mean 70 / tail 50)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out + ".png", dpi=110)
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:5])
