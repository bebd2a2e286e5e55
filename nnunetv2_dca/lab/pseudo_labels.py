"""Pseudo-label quality per class group on unlabeled training images whose true labels are known.

Why: when DCA does not beat the labeled-only baseline on a group, the first suspect is the pseudo-labels the
aggregation decoder learns from on the unlabeled images. In a benchmark on the phantom (or on a split of a fully
labeled dataset, ``benchmark -d ... --full-dataset ...``) the true labels of the "unlabeled" images are known, so the
pseudo-labels can be scored directly, per group, next to the obvious alternative (the labeled-only nnU-Net's
predictions, i.e. the offline pseudo-labels of the ``pseudolabel`` arm).

What is scored, per trained model, on nnU-Net's preprocessed grid (what training sees), stitched from nnU-Net's
sliding-window tiles (:func:`nnunetv2_dca.inference.stitch_tiles`) without mirroring:

* DCA model: ``pseudo_label`` = argmax of the experts' fused scores (``fuse_expert_logits`` with the trainer's
  fusion), exactly the target of D_A's unsupervised loss; ``aggregate`` = D_A's own output (the model's prediction
  only with ``prediction_output="aggregate"``; the default recipe predicts with the fused experts, i.e.
  ``pseudo_label``).
  Training computes the fused pseudo-label per patch, here per stitched image: a good approximation at patch size.
* any other model: ``prediction`` (its argmax).

Dice per class is pooled over all voxels of all scored images (one Dice per class, no per-case averaging, so a class
absent from some images does not produce undefined values); a class absent from every reference and prediction is
``None`` and left out of the group means. ``voxel_share`` is the fraction of all voxels labeled with a group's
classes, in the pseudo-labels and in the truth: a group starved by the fusion shows as a share far below the truth.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from nnunetv2_dca.caseids import validate_case_ids


class PseudoLabelError(ValueError):
    """Bad input to the pseudo-label scoring; the message names the folder or file."""


def confusion_counts(prediction: np.ndarray, reference: np.ndarray, num_classes: int,
                     valid: Optional[np.ndarray] = None) -> np.ndarray:
    """(num_classes, 3) array of true positives, false positives and false negatives per class id 0..K-1."""
    p = np.asarray(prediction).ravel().astype(np.int64)
    r = np.asarray(reference).ravel().astype(np.int64)
    if valid is not None:
        keep = np.asarray(valid).ravel().astype(bool)
        p, r = p[keep], r[keep]
    joint = np.bincount(r * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    tp = np.diag(joint)
    return np.stack([tp, joint.sum(0) - tp, joint.sum(1) - tp], axis=1)


def dice_from_counts(counts: np.ndarray) -> List[Optional[float]]:
    """Dice per class from :func:`confusion_counts`; None where the class is in neither prediction nor reference."""
    out: List[Optional[float]] = []
    for tp, fp, fn in np.asarray(counts, dtype=np.float64):
        denom = 2 * tp + fp + fn
        out.append(None if denom == 0 else float(2 * tp / denom))
    return out


def summarise_counts(counts: np.ndarray, class_groups: Sequence[Sequence[int]], group_names: Sequence[str]
                     ) -> Dict[str, object]:
    """Per-class Dice, group means (over the defined classes), mean over all foreground classes, voxel shares."""
    dice = dice_from_counts(counts)
    # every voxel is exactly once a reference voxel: sum over classes of (tp + fn)
    total = float((counts[:, 0] + counts[:, 2]).sum()) or 1.0

    def mean(values: Sequence[Optional[float]]) -> Optional[float]:
        v = [x for x in values if x is not None]
        return float(np.mean(v)) if v else None

    groups = {name: mean([dice[c] for c in members]) for name, members in zip(group_names, class_groups)}
    share_pred = {name: float(sum(counts[c, 0] + counts[c, 1] for c in members)) / total
                  for name, members in zip(group_names, class_groups)}
    share_true = {name: float(sum(counts[c, 0] + counts[c, 2] for c in members)) / total
                  for name, members in zip(group_names, class_groups)}
    return {"dice": {str(c): dice[c] for c in range(1, len(dice))}, "groups": groups,
            "mean": mean(dice[1:]), "voxel_share": share_pred, "voxel_share_true": share_true}


def _cases(images_folder: str, labels_folder: str, file_ending: str,
           cases: Optional[Sequence[str]] = None) -> List[str]:
    for folder in (images_folder, labels_folder):
        if not os.path.isdir(folder):
            raise PseudoLabelError(f"folder not found: {folder}")
    from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder

    images = {str(c) for c in get_identifiers_from_splitted_dataset_folder(images_folder, file_ending)}
    labels = {f[:-len(file_ending)] for f in os.listdir(labels_folder) if f.endswith(file_ending)}
    # explicit ids become file paths below; listed ones are file names already
    chosen = sorted(images & labels) if cases is None else validate_case_ids(cases, "the cases to score")
    missing = [c for c in chosen if c not in images or c not in labels]
    if missing:
        raise PseudoLabelError(f"case(s) {', '.join(missing)} need <case>_0000{file_ending} in {images_folder} and "
                               f"<case>{file_ending} in {labels_folder}")
    if not chosen:
        raise PseudoLabelError(f"no case has both an image in {images_folder} and a label in {labels_folder} "
                               f"(file ending {file_ending!r})")
    return chosen


def pseudo_label_quality(model_folder: str, images_folder: str, labels_folder: str, fold: str = "all",
                         device: str = "cpu", class_groups: Optional[Sequence[Sequence[int]]] = None,
                         group_names: Optional[Sequence[str]] = None, fusion: Optional[str] = None,
                         cases: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Score a trained model's pseudo-labels on ``images_folder`` against ``labels_folder`` (see the module text).

    ``class_groups``/``group_names`` (the groups the Dice is summarised by) default to the DCA network's own groups
    (required for other networks); the experts are always fused by the network's own groups;
    ``fusion`` defaults to the model's trainer's (passed to the network as ``prediction_fusion``)."""
    import torch

    from nnunetv2_dca.inference import expand_image_files, load_model, preprocess_case, stitch_tiles
    from nnunetv2_dca.network.dca_unet import DCAUNet
    from nnunetv2_dca.network.fusion import fuse_expert_logits
    from nnunetv2_dca.planning.grouping import group_names as default_group_names

    predictor = load_model(model_folder, fold=fold, device=device, dca_only=False)
    net = predictor.network
    is_dca = isinstance(net, DCAUNet)
    if class_groups is None:
        if not is_dca:
            raise PseudoLabelError(f"{model_folder}: not a DCA model, so the class groups must be given")
        class_groups = [list(g) for g in net.class_groups]
    class_groups = [[int(c) for c in g] for g in class_groups]
    group_names = list(group_names or default_group_names(len(class_groups)))
    if fusion is None:
        # the model's own trainer's fusion (build_network_architecture hands it to the network), so the score is of
        # the pseudo-labels that trainer actually made
        from nnunetv2_dca.training.dca import DCATrainer

        fusion = getattr(net, "prediction_fusion", DCATrainer.fusion)
    dj = predictor.dataset_json
    ending = dj["file_ending"]
    lm = predictor.label_manager
    num_classes = len(lm.foreground_labels) + 1
    ignore = lm.ignore_label if lm.has_ignore_label else None
    sources = ("pseudo_label", "aggregate") if is_dca else ("prediction",)
    counts = {s: np.zeros((num_classes, 3), dtype=np.int64) for s in sources}

    def forward(x):
        if not is_dca:
            return (net(x),)
        out = net.all_outputs(x)
        first = (lambda t: t[0] if isinstance(t, (list, tuple)) else t)
        experts = [first(e) for e in out.experts]
        # fused by the experts' own groups (a one-group control's differ from the groups the score is summarised by)
        return fuse_expert_logits(experts, net.class_groups, fusion), first(out.aggregate)

    chosen = _cases(images_folder, labels_folder, ending, cases)
    net.to(torch.device(device))
    net.eval()
    for case in chosen:
        files = expand_image_files([os.path.join(images_folder, f"{case}_0000{ending}")],
                                   len(dj["channel_names"]), ending, dj["channel_names"])
        data, reference, _ = preprocess_case(predictor, files, os.path.join(labels_folder, case + ending))
        outputs = stitch_tiles(forward, torch.from_numpy(data), predictor.configuration_manager.patch_size,
                               predictor.tile_step_size, predictor.use_gaussian, device)
        valid = None if ignore is None else reference != ignore
        ref = np.where(reference == ignore, 0, reference) if ignore is not None else reference
        if ref.max(initial=0) >= num_classes:
            raise PseudoLabelError(f"{os.path.join(labels_folder, case + ending)} holds label {int(ref.max())}, "
                                   f"the model knows 0..{num_classes - 1}")
        for name, scores in zip(sources, outputs):
            counts[name] += confusion_counts(scores.argmax(0).numpy(), ref, num_classes, valid)
    return {
        "model_folder": model_folder, "fusion": fusion if is_dca else None, "cases": chosen,
        "class_groups": class_groups, "group_names": group_names,
        "sources": {s: summarise_counts(c, class_groups, group_names) for s, c in counts.items()},
    }
