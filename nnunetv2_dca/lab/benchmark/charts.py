"""The benchmark's charts: Dice per class with the arms side by side, Dice per site (domain shift), learning
curves (validation pseudo-Dice per arm vs iteration: has every arm converged?)."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional

from nnunetv2_dca.atomic import save_figure_atomic
from nnunetv2_dca.evaluation.metrics import nanmean  # nnU-Net logs NaN for a class absent from an epoch's patches

_ARM_COLORS = {"baseline": "#7f7f7f", "dca": "#d62728", "dca_other": "#8c2d04", "dca_seed": "#fdae6b",
               "dca_other_supagg": "#e6550d", "dca_other_supagg_experts": "#a63603",
               "dca_supagg": "#ff9896", "semimoe": "#9467bd",
               "pseudolabel": "#1f77b4", "full": "#2ca02c", "baseline_wallclock": "#bcbd22",
               "dca_distill": "#e377c2"}


def plot_dice_per_class(summary: Mapping, path: str, title: str) -> str:
    """Grouped bars: classes (head -> tail, groups separated), one bar per arm, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = summary["groups"]
    ordered: List[str] = [str(c) for members in groups.values() for c in members] or summary["classes"]
    ordered += [c for c in summary["classes"] if c not in ordered]
    arms = list(summary["arms"])
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.75 * len(ordered) + 2.5), 4.8))
    for i, arm in enumerate(arms):
        stats = [summary["arms"][arm]["dice"][f"class:{c}"] for c in ordered]
        xs = [x + (i - (len(arms) - 1) / 2) * width for x in range(len(ordered))]
        ax.bar(xs, [s["mean"] for s in stats], width, yerr=[s["std"] if s["n"] > 1 else 0 for s in stats],
               color=_ARM_COLORS.get(arm, None), label=arm, capsize=2, error_kw={"linewidth": 0.8})
    pos = 0
    for g, members in groups.items():
        if pos:
            ax.axvline(pos - 0.5, color="k", linestyle="--", linewidth=0.8)
        ax.text(pos - 0.45, 1.02, g, fontsize=8, transform=ax.get_xaxis_transform())
        pos += len(members)
    ax.set_xticks(range(len(ordered)))
    ax.set_xticklabels([summary["labels"].get(c, c) for c in ordered], rotation=50, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Dice (test set, mean over cases)")
    ax.set_title(title, fontsize=9, pad=14)
    ax.legend(fontsize=8, ncol=min(len(arms), 3), loc="upper right")
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=110)


def plot_sites(sites: Mapping[str, Mapping[str, Mapping]], path: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(sites)
    site_ids = list(sites[arms[0]])
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(site_ids) + 2), 4.0))
    for i, arm in enumerate(arms):
        xs = [x + (i - (len(arms) - 1) / 2) * width for x in range(len(site_ids))]
        stats = [sites[arm][k]["dice"] for k in site_ids]
        ax.bar(xs, [st["mean"] for st in stats], width, yerr=[st["std"] if st["n"] > 1 else 0 for st in stats],
               color=_ARM_COLORS.get(arm), label=arm, capsize=2)
    ax.set_xticks(range(len(site_ids)))
    ax.set_xticklabels([f"site {k}" + (" (labeled)" if k == "0" else "") for k in site_ids])
    ax.set_ylim(0, 1)
    ax.set_ylabel("Dice, mean over classes")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=110)


def curve_series(curves: Mapping[int, Mapping], classes: List[int]) -> Dict[str, List[float]]:
    """Mean over seeds of the per-epoch pseudo-Dice averaged over ``classes`` (foreground label ids, 1-based), as
    iterations -> Dice; epochs a seed lacks are left out of that epoch's mean."""
    per_seed = []
    iters = None
    for c in curves.values():
        if not c or not c.get("validation_dice_per_class_per_epoch"):
            continue
        rows = c["validation_dice_per_class_per_epoch"]
        per_seed.append([nanmean([r[k - 1] for k in classes]) for r in rows])
        n = c.get("iterations_per_epoch", 1)
        if iters is None or len(rows) > len(iters):
            iters = [(e + 1) * n for e in range(len(rows))]
    if not per_seed:
        return {"iterations": [], "dice": []}
    dice = [nanmean([s[e] for s in per_seed if e < len(s)]) for e in range(len(iters))]
    return {"iterations": iters, "dice": dice}


def _thousands(value: float, _pos: int) -> str:
    return f"{value / 1000:g}k" if value else "0"


def plot_learning_curves(curves: Mapping[str, Mapping[int, Mapping]], groups: Mapping[str, List[int]], path: str,
                         title: str) -> Optional[str]:
    """One panel per class group and one for all classes: each arm's validation pseudo-Dice vs iteration (mean
    over seeds, smoothed like nnU-Net's EMA pseudo-Dice)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = [("all classes", sorted(c for m in groups.values() for c in m))] + list(groups.items())
    if not any(c for arm in curves.values() for c in arm.values() if c):
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), sharey=True)
    for ax, (name, classes) in zip(axes, panels):
        for arm, per_seed in curves.items():
            series = curve_series(per_seed, [int(c) for c in classes])
            if not series["dice"]:
                continue
            # nnU-Net's EMA (0.9) over its 1000 epochs; a short run gets a lighter one, or the curve lags by epochs
            beta = 0.9 if len(series["dice"]) >= 100 else 0.5
            ema, smoothed = None, []
            for v in series["dice"]:
                if v == v:  # an undefined epoch keeps the average where it was
                    ema = v if ema is None else beta * ema + (1 - beta) * v
                smoothed.append(ema)
            ax.plot(series["iterations"], series["dice"], color=_ARM_COLORS.get(arm), linewidth=0.6, alpha=0.35)
            ax.plot(series["iterations"], smoothed, color=_ARM_COLORS.get(arm), label=arm, linewidth=1.3)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training iteration")
        ax.xaxis.set_major_formatter(FuncFormatter(_thousands))  # "15k": full numbers run into each other
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation pseudo-Dice (thin: per epoch)")
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=110)
