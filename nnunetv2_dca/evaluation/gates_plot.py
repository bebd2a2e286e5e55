"""The gates picture of ``nnunetv2-dca gates`` (one row: image, one gate panel per expert, prediction, reference)
and the label colours it shares with the demo's overlay."""

from __future__ import annotations

import math
from typing import List, Mapping, Optional

import numpy as np

from nnunetv2_dca.atomic import save_figure_atomic

GATE_STAGE = "full-resolution DFAM stage (gates[0])"


def fmt_gate(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def window_ct(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1, 99]) if img.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = float(img.min()), float(img.max()) if img.size else 1.0
    return np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def class_colour(c: int):
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return cmap(((c - 1) * 2 % 20 + (c - 1) // 10 % 2) / 20.0)  # distinct neighbours: 0, 2, 4, ... then 1, 3, ...


def label_rgba(labels: np.ndarray, alpha: float = 0.85) -> np.ndarray:
    rgba = np.zeros((*labels.shape, 4), dtype=np.float32)
    for c in np.unique(labels):
        if c > 0:
            rgba[labels == c] = (*class_colour(int(c))[:3], alpha)
    return rgba


def summary_lines(result: Mapping) -> List[str]:
    """The numbers in the title: mean gate per expert in the predicted tail region and in predicted background."""
    names = result["experts"]
    pred = result["prediction"]
    tail = names[-1]
    lines = []
    for region in ([tail] if len(names) > 1 else []) + ["background"]:
        entry = pred[region]
        gates = ", ".join(f"{e} {fmt_gate(entry['mean_gate'][e])}" for e in names)
        label = f"predicted {tail} voxels" if region == tail else "predicted background"
        lines.append(f"mean gate in {label} (n={entry['voxels']}): {gates}")
    return lines


def plot_gates(path: str, image: np.ndarray, gates: np.ndarray, prediction: np.ndarray,
               reference: Optional[np.ndarray], result: Mapping, class_names: Mapping[int, str],
               aspect: float = 1.0, rgb: bool = False) -> str:
    """One row: image, one gate panel per expert (shared 0..1 scale, colourbar), prediction, reference.
    2D arrays of the chosen slice (``image``: H x W, or H x W x 3 with ``rgb``; ``gates``: G x H x W)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names, groups = result["experts"], result["class_groups"]
    g_count = len(names)
    n_after = 1 + (reference is not None)
    ratios = [1.0] * (1 + g_count) + [0.07, 0.32] + [1.0] * n_after  # colourbar, its label, then label panels
    fig = plt.figure(figsize=(0.6 + 2.9 * (1 + g_count + n_after) + 1.0, 4.9))
    grid = fig.add_gridspec(1, len(ratios), width_ratios=ratios, left=0.01, right=0.99, wspace=0.06)
    axes = [fig.add_subplot(grid[0, i]) for i in range(1 + g_count)]
    cax = fig.add_subplot(grid[0, 1 + g_count])
    fig.add_subplot(grid[0, 2 + g_count]).axis("off")
    axes += [fig.add_subplot(grid[0, 3 + g_count + i]) for i in range(n_after)]
    shown = image if rgb else window_ct(image)
    kw = dict(aspect=aspect, interpolation="nearest")

    def base(ax, title):
        ax.imshow(shown, cmap=None if rgb else "gray", **kw)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])

    base(axes[0], "image" + (" (RGB)" if rgb else f" ({result['channel']})") + "\n")
    gate_im = None
    for g, name in enumerate(names):
        ax = axes[1 + g]
        members = groups[name]
        shown_members = ", ".join(str(c) for c in members[:8]) + (", ..." if len(members) > 8 else "")
        base(ax, f"{name} expert: gate weight\nclasses {shown_members}")
        gate_im = ax.imshow(gates[g], cmap="magma", vmin=0.0, vmax=1.0, alpha=0.85, **kw)
        own = np.isin(prediction, members)
        if own.any() and own.ndim == 2 and min(own.shape) > 1:
            ax.contour(own.astype(float), levels=[0.5], colors="cyan", linewidths=0.9)
        m = result["slice_prediction"][name]["mean_gate"][name]
        ax.set_xlabel(f"mean in its predicted classes\n(this slice): {fmt_gate(m)}", fontsize=8)
    base(axes[1 + g_count], "prediction\n" + result.get("prediction_source", "(aggregation decoder D_A)"))
    axes[1 + g_count].imshow(label_rgba(prediction), **kw)
    if reference is not None:
        base(axes[2 + g_count], "reference\n")
        axes[2 + g_count].imshow(label_rgba(reference), **kw)
    cbar = fig.colorbar(gate_im, cax=cax)
    cbar.set_ticks(sorted({0.0, 0.25, 0.5, 0.75, 1.0, round(1.0 / g_count, 3)}))
    cbar.ax.tick_params(labelsize=7)
    cbar.set_label(f"DFAM gate weight (softmax over experts, 1/{g_count} = uniform);\n"
                   "cyan: outline of the expert's classes in the prediction", fontsize=7)

    present = sorted(set(np.unique(prediction).tolist()) | (set(np.unique(reference).tolist())
                                                           if reference is not None else set()))
    group_of = {c: n for n, members in groups.items() for c in members}
    handles = [Patch(color=class_colour(c), label=f"{c} {class_names.get(c, '')} ({group_of.get(c, '?')})")
               for c in present if c > 0]
    ncol = min(len(handles), 6) if handles else 1
    rows = math.ceil(len(handles) / ncol) if handles else 0
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7, frameon=False,
                   title="labels on this slice (" + ("prediction or reference" if reference is not None
                                                      else "prediction") + ")", title_fontsize=7)
    title = (f"{result['case']}: DFAM gates ({GATE_STAGE}), slice {result['slice']} of axis 0 "
             f"({result['slice_reason']}), {result['space_short']}")
    fig.suptitle(title + "\n" + "\n".join(summary_lines(result)), fontsize=9)
    fig.subplots_adjust(top=0.78, bottom=0.10 + 0.045 * (rows + 1 if rows else 0))
    return save_figure_atomic(fig, path, dpi=110)
