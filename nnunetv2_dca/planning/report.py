"""Human- and machine-readable views of a class grouping: table, JSON, and a log-scale bar chart with the cliffs."""

from __future__ import annotations

from typing import Dict, Mapping

from nnunetv2_dca.atomic import save_figure_atomic
from nnunetv2_dca.planning.grouping import Grouping, group_names

_COLORS = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


def grouping_table(g: Grouping, names: Mapping[int, str]) -> str:
    """Classes by voxels (descending), with proportion, gap to the next class and group; then the groups."""
    labels = group_names(len(g.groups))
    rows = [f"{'id':>3}  {'class':28s} {'voxels':>12} {'proportion':>11} {'gap':>7}  group"]
    for pos, c in enumerate(g.order):
        gap = g.gaps[pos] if pos < len(g.gaps) else None
        gap_s = "" if gap is None else f"{gap:.3f}"
        cliff = " <- cliff" if pos in g.cliffs else ""
        rows.append(f"{c:>3}  {names.get(c, str(c)):28s} {g.voxel_counts[c]:>12} {g.proportions[c]:>11.5f} "
                    f"{gap_s:>7}  {labels[g.group_of(c)]}{cliff}")
    rows.append("")
    rows.append(f"groups ({g.source}):")
    for label, members in zip(labels, g.groups):
        rows.append(f"  {label:8s} " + ", ".join(f"{names.get(c, c)} ({c})" for c in members))
    if g.zero_voxel_classes:
        rows.append("  zero labeled voxels (put in the tail): "
                    + ", ".join(f"{names.get(c, c)} ({c})" for c in g.zero_voxel_classes))
    return "\n".join(rows)


def grouping_json(g: Grouping) -> Dict:
    return {"groups": [list(m) for m in g.groups], "group_names": group_names(len(g.groups)),
            "voxel_counts": {str(k): v for k, v in sorted(g.voxel_counts.items())}, "source": g.source}


def plot_grouping(g: Grouping, names: Mapping[int, str], path: str, title: str = "") -> str:
    """Bar chart of the sorted proportions (log scale), bars coloured by group, cliffs as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = group_names(len(g.groups))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(g.order) + 2), 4.5))
    positive = [c for c in g.order if g.voxel_counts[c] > 0]
    floor = min((g.proportions[c] for c in positive), default=1.0) / 10
    for x, c in enumerate(g.order):
        grp = g.group_of(c)
        zero = g.voxel_counts[c] == 0
        ax.bar(x, g.proportions[c] if not zero else floor, color=_COLORS[grp % len(_COLORS)],
               hatch="//" if zero else None, alpha=0.5 if zero else 1.0,
               label=labels[grp] if x == min(g.order.index(m) for m in g.groups[grp]) else None)
        if x < len(g.gaps) and g.gaps[x] is not None:
            # gap values in a strip just above the axes (x in data units, y in axes units)
            ax.text(x + 0.5, 1.01, f"{g.gaps[x]:.2f}", ha="center", va="bottom", fontsize=7, color="0.35",
                    transform=ax.get_xaxis_transform())
    for pos in g.cliffs:
        ax.axvline(pos + 0.5, color="k", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_xticks(range(len(g.order)))
    ax.set_xticklabels([names.get(c, str(c)) for c in g.order], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("share of labeled foreground voxels (log)")
    ax.set_title(title or f"class groups ({g.source}); dashed = cliffs, numbers on top = log gaps between neighbours",
                 fontsize=9, pad=16)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=110)
