"""Per-epoch plot of the semi-supervised trainers' extra log (``progress_semi_supervised.png``), next to nnU-Net's
``progress.png``. Keys are grouped into panels by name: encoder gradient norms per loss term, losses, weight
(lambda), pseudo-label shares, gate weights, seconds per iteration."""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import numpy as np

from nnunetv2_dca.atomic import save_figure_atomic

PANELS = (
    ("encoder gradient norm per loss term", lambda k: "_gradnorm_" in k),
    ("losses", lambda k: "loss" in k or k.endswith(("_balance", "_consistency"))),
    ("unsupervised weight (lambda)", lambda k: k.endswith("lambda")),
    ("share of pseudo-label voxels", lambda k: "_share_" in k),
    ("mean gate weight", lambda k: "_gate" in k),
    ("seconds per iteration", lambda k: "seconds" in k),
)


def panels_for(keys: Sequence[str]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for key in keys:
        for title, match in PANELS:
            if match(key):
                out.setdefault(title, []).append(key)
                break
    return out


def plot_progress(log: Mapping[str, Sequence[float]], keys: Sequence[str], path: str, title: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = panels_for([k for k in keys if len(log.get(k, [])) > 0])
    if not panels:
        return path
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.6 * len(panels)), sharex=True, squeeze=False)
    for ax, (panel, panel_keys) in zip(axes[:, 0], panels.items()):
        for key in panel_keys:
            values = np.asarray(log[key], dtype=float)
            ax.plot(np.arange(len(values)), values, marker="o" if len(values) < 30 else None, ms=3, label=key)
        ax.set_ylabel(panel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right", ncol=2)
    axes[-1, 0].set_xlabel("epoch")
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    return save_figure_atomic(fig, path)
