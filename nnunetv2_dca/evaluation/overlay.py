"""A picture of a prediction: one slice of the image with the reference and the prediction overlaid side by side.

The slice is the one where the reference holds the most classes (ties: most foreground), so small organs show up
when the case has them. Used by the demo next to its evaluation table; the colours are the gates picture's.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import numpy as np

from nnunetv2_dca.atomic import save_figure_atomic
from nnunetv2_dca.evaluation.gates_plot import class_colour, label_rgba, window_ct


def _read(path: str) -> np.ndarray:
    import SimpleITK as sitk

    if not os.path.isfile(path):
        raise FileNotFoundError(f"overlay: no such file {path}")
    return sitk.GetArrayFromImage(sitk.ReadImage(path))


def best_slice(reference: np.ndarray) -> int:
    """Index along axis 0 with the most distinct foreground classes, then the most foreground voxels."""
    scores = [(len(np.unique(s[s > 0])), int((s > 0).sum())) for s in reference]
    return int(max(range(len(scores)), key=lambda i: scores[i]))


def plot_overlay(image_file: str, reference_file: str, prediction_file: str, path: str,
                 labels: Mapping[str, int], title: str = "", dice: Optional[Mapping[str, float]] = None) -> Dict:
    """Write ``path`` (PNG): image | reference | prediction on the chosen axial slice; returns the slice and the
    classes shown. ``dice`` (class name -> Dice in [0, 1]) is printed in the legend when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    image, ref, pred = _read(image_file), _read(reference_file), _read(prediction_file)
    if not image.shape == ref.shape == pred.shape:
        raise ValueError(f"overlay: shapes differ: image {image.shape} ({image_file}), reference {ref.shape}, "
                         f"prediction {pred.shape} ({prediction_file})")
    k = best_slice(ref)
    shown = window_ct(image[k].astype(np.float32))
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 4.0))
    for ax, (name, seg) in zip(axes, (("image", None), ("reference", ref[k]), ("prediction", pred[k]))):
        ax.imshow(shown, cmap="gray")  # row 0 (anterior) at the top, patient left on the right: radiological view
        if seg is not None:
            ax.imshow(label_rgba(seg, 0.6))
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    names = {int(v): n for n, v in labels.items() if isinstance(v, int) and v > 0}
    present = sorted((set(np.unique(ref[k]).tolist()) | set(np.unique(pred[k]).tolist())) - {0})
    handles = [Patch(color=class_colour(c), label=names.get(c, str(c)) + (
        f" {dice[names[c]] * 100:.0f}" if dice and names.get(c) in dice and dice[names[c]] is not None else ""))
        for c in present if c in names]
    fig.legend(handles=handles, loc="lower center", ncol=min(7, max(1, len(handles))), fontsize=7, frameon=False)
    fig.suptitle(title or f"{os.path.basename(image_file)}, slice {k}", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure_atomic(fig, path, dpi=110)
    return {"png": path, "slice": k, "classes": [names.get(c, str(c)) for c in present]}
