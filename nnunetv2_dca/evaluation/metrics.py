"""Per-class segmentation metrics (pure numpy/scipy): Dice, surface distances, protocol-B resize, summaries.

Nothing here reads files; ``nnunetv2_dca.evaluation.evaluate`` does the folders and outputs. The definitions (also
in docs/evaluation.md):

Dice
    ``2 TP / (|P| + |R|)`` over the voxels that are not ignored (reference voxel == ignore label), counted for all
    classes at once from one ``np.bincount`` of the (reference, prediction) class-index pairs.

Surfaces and distances (MedPy's definitions, computed the same way MedPy's ``medpy.metric.binary`` does it, with
``scipy.ndimage``; neither MedPy nor another surface-distance package is a dependency of nnU-Net, so none is used)
    surface(M) = ``M XOR binary_erosion(M, generate_binary_structure(ndim, 1))`` (face connectivity, voxels outside
    the image count as background, so a mask touching the image border has its border voxels on its surface);
    d(A->B) = for every surface voxel of A, the Euclidean distance (``distance_transform_edt(~surface(B),
    sampling=spacing)``) to the nearest surface voxel of B.

    - ``ASD`` (default mode) = average *symmetric* surface distance, MedPy's ``assd`` (MedPy >= 0.5, the
      standard definition of Heimann et al. 2009): the mean of ``concat(d(P->R), d(R->P))``, i.e. every surface
      distance of both directions pooled, ``(sum d(P->R) + sum d(R->P)) / (|surface(P)| + |surface(R)|)``.
      (MedPy < 0.5 averaged the two directed means instead, ``(mean d(P->R) + mean d(R->P)) / 2``; the two agree
      only when both surfaces have the same number of voxels.)
    - ``HD95`` = MedPy's ``hd95``: ``numpy.percentile(concat(d(P->R), d(R->P)), 95)`` (both directions pooled,
      numpy's default linear interpolation);
    - protocol B's ``ASD`` = MedPy's ``asd(prediction, reference)`` without spacing: the *directed* mean
      ``mean d(P->R)`` in voxels, exactly what the published code calls (DHC's ``evaluate_Ntimes.py``:
      ``metric.binary.asd(pred == i, label == i)``).

    The distance transform only runs on the bounding box of the union of the two masks. That is exact, not an
    approximation: every surface voxel of both masks lies inside that box, and the erosion treats the outside of the
    box as background just as it treats the outside of the image.

    Axes of length 1 (a 2D image read as 1 x H x W, with nnU-Net's dummy spacing 999) are dropped before the
    surfaces are taken, so a 2D image is measured in 2D.

Empty masks
    default (spacing) mode (nnU-Net's own convention: a class absent from a case is not a perfect score there):
      both empty              -> Dice = ASD = HD95 = NaN (undefined, ``null`` in JSON), ``empty = "both"``; the
                                 case is not scored for the class and left out of the class means;
      only one of them empty  -> Dice 0, ASD = HD95 = NaN (undefined, ``null`` in JSON), ``empty = "reference"`` or
                                 ``"prediction"``; counted in ``n_undefined`` and left out of the ASD/HD95 means
                                 (the Dice 0 is kept in the Dice mean).
    protocol B (the published class-imbalanced SSL code, verified against DHC's ``evaluate_Ntimes.py``):
      both present            -> Dice, directed ASD in voxels;
      only one of them present -> Dice 0, ASD 128;
      both empty              -> Dice 1, ASD 0 (both included in the means).

Means
    per class: mean over cases, NaN (undefined) values left out; ``n`` = cases in which the class was scored (Dice
    defined). Default mode: a class with no reference voxels in any case is *not scored* (``scored`` False): its
    row is still reported (false positives give Dice 0) but it is left out of the group means and the mean over
    classes, which would otherwise reward or punish a class the data cannot measure. ``foreground_mean``: mean over
    the scored classes of the class means (nnU-Net's ``foreground_mean``), classes whose mean is undefined left out;
    group mean: mean over the group's scored classes of the class means. In protocol B nothing is undefined and
    every class is scored, so the mean of the class means equals the papers' "mean over cases of the mean over
    classes".
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

# protocol B: the published class-imbalanced SSL papers (DHC, GA, TAK, DCA) resize to 160 x 160 x 80 (x, y, z), i.e.
# an array of shape (80, 160, 160) in SimpleITK / nnU-Net axis order (z, y, x).
PROTOCOL_B_SHAPE: Tuple[int, int, int] = (80, 160, 160)
PROTOCOL_B_MISSING_ASD = 128.0  # ASD charged when a class is present in only one of prediction and reference

EMPTY_NONE, EMPTY_BOTH, EMPTY_REF, EMPTY_PRED = "none", "both", "reference", "prediction"


# ----------------------------------------------------------------------------------------------------------- counts
def _class_index(seg: np.ndarray, classes: Sequence[int], ignore_label: Optional[int] = None,
                 ignore_index: int = 0) -> np.ndarray:
    """Map label values to 1..C (position in ``classes`` + 1); other values to 0, ``ignore_label`` to ignore_index."""
    seg = np.asarray(seg)
    if seg.size and seg.min() < 0:
        raise ValueError(f"segmentation holds negative labels (min {seg.min()})")
    top = int(max([int(seg.max()) if seg.size else 0] + [int(c) for c in classes]
                  + ([int(ignore_label)] if ignore_label is not None else [])))
    n = len(classes)
    lut = np.zeros(top + 1, dtype=np.uint8 if n + 1 < 255 else np.uint16)
    for i, c in enumerate(classes):
        lut[int(c)] = i + 1
    if ignore_label is not None:
        lut[int(ignore_label)] = ignore_index
    if not np.issubdtype(seg.dtype, np.integer):
        seg = seg.astype(np.int64)
    return lut[seg]


def class_counts(ref: np.ndarray, pred: np.ndarray, classes: Sequence[int], ignore_label: Optional[int] = None
                 ) -> Dict[int, Dict[str, int]]:
    """TP / FP / FN / n_ref / n_pred per class over the non-ignored voxels, from one bincount."""
    ri, pi = _index_pair(ref, pred, classes, ignore_label)
    return _counts_from_index(ri, pi, classes)


def _index_pair(ref, pred, classes, ignore_label):
    n = len(classes)
    ri = _class_index(ref, classes, ignore_label, ignore_index=n + 1)  # n + 1 marks ignored voxels
    pi = _class_index(pred, classes, ignore_label, ignore_index=0)  # an "ignore" value predicted = background
    return ri, pi


def _counts_from_index(ri: np.ndarray, pi: np.ndarray, classes: Sequence[int]) -> Dict[int, Dict[str, int]]:
    n = len(classes)
    k = n + 2
    code = ri.astype(np.uint16 if k * k <= np.iinfo(np.uint16).max else np.int64)
    code *= k
    code += pi
    joint = np.bincount(code.ravel(), minlength=k * k).reshape(k, k)
    joint = joint[: n + 1, : n + 1]  # drop reference-ignored voxels (row n + 1) and the unused column
    out = {}
    for i, c in enumerate(classes, start=1):
        tp = int(joint[i, i])
        n_ref = int(joint[i, :].sum())
        n_pred = int(joint[:, i].sum())
        out[int(c)] = {"TP": tp, "FP": n_pred - tp, "FN": n_ref - tp, "n_ref": n_ref, "n_pred": n_pred}
    return out


def dice(tp: int, n_ref: int, n_pred: int) -> float:
    """2 TP / (|R| + |P|); NaN (undefined) when both are empty, as in nnU-Net: an absent class is no success.
    Protocol B overrides that case with its published Dice 1."""
    return math.nan if n_ref + n_pred == 0 else 2.0 * tp / (n_ref + n_pred)


# ------------------------------------------------------------------------------------------------ surface distances
def _drop_singleton_axes(a: np.ndarray, b: np.ndarray, spacing: Optional[Sequence[float]]):
    keep = [ax for ax, s in enumerate(a.shape) if s != 1]
    if len(keep) == a.ndim or not keep:
        return a, b, spacing
    sq = tuple(ax for ax in range(a.ndim) if ax not in keep)
    return (np.squeeze(a, axis=sq), np.squeeze(b, axis=sq),
            None if spacing is None else [spacing[ax] for ax in keep])


def _bbox(mask: np.ndarray) -> Tuple[slice, ...]:
    sl = ndimage.find_objects(mask.astype(np.uint8, copy=False))
    return sl[0]


def _union(a: Tuple[slice, ...], b: Tuple[slice, ...]) -> Tuple[slice, ...]:
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def _surface(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask ^ ndimage.binary_erosion(mask, structure=structure, iterations=1)


def surface_distances(a: np.ndarray, b: np.ndarray, spacing: Optional[Sequence[float]] = None
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """(d(A->B), d(B->A)): distances of A's surface voxels to B's surface and vice versa (MedPy's definition).

    ``spacing`` per axis of the arrays (None: 1 = voxels). Both masks must be non-empty. Works on the bounding box
    of A | B (exact, see the module docstring).
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    if not a.any() or not b.any():
        raise ValueError("surface distances need two non-empty masks")
    if spacing is not None and len(spacing) != a.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match {a.ndim} array axes")
    a, b, spacing = _drop_singleton_axes(a, b, spacing)
    box = _union(_bbox(a), _bbox(b))
    a, b = a[box], b[box]
    sa, sb = _surface(a), _surface(b)
    sampling = None if spacing is None else [float(s) for s in spacing]
    d_ab = ndimage.distance_transform_edt(~sb, sampling=sampling)[sa]
    d_ba = ndimage.distance_transform_edt(~sa, sampling=sampling)[sb]
    return d_ab, d_ba


def assd_hd95(pred: np.ndarray, ref: np.ndarray, spacing: Optional[Sequence[float]] = None) -> Tuple[float, float]:
    """MedPy's (>= 0.5) ``assd`` and ``hd95`` of two non-empty masks: mean and 95th percentile of the pooled
    surface distances of both directions."""
    pooled = np.concatenate(surface_distances(pred, ref, spacing))
    assd = float(pooled.mean())
    hd95 = float(np.percentile(pooled, 95))
    return assd, hd95


def directed_asd(pred: np.ndarray, ref: np.ndarray, spacing: Optional[Sequence[float]] = None) -> float:
    """MedPy's ``asd(pred, ref)``: mean distance from the prediction's surface to the reference's surface."""
    d_pr, _ = surface_distances(pred, ref, spacing)
    return float(d_pr.mean())


# -------------------------------------------------------------------------------------------------- per-case metrics
def _empty_state(n_ref: int, n_pred: int) -> str:
    if n_ref == 0 and n_pred == 0:
        return EMPTY_BOTH
    if n_ref == 0:
        return EMPTY_REF
    if n_pred == 0:
        return EMPTY_PRED
    return EMPTY_NONE


def _class_boxes(index: np.ndarray, n: int) -> List[Optional[Tuple[slice, ...]]]:
    boxes = ndimage.find_objects(index, max_label=n)
    return list(boxes) + [None] * (n - len(boxes))


def evaluate_case_mm(ref: np.ndarray, pred: np.ndarray, classes: Sequence[int],
                     spacing: Optional[Sequence[float]] = None, ignore_label: Optional[int] = None
                     ) -> Dict[int, Dict]:
    """Default mode: Dice, ASD (symmetric, MedPy assd) and HD95 per class, distances in ``spacing`` units.

    ``ref`` and ``pred`` are label maps of equal shape; ``spacing`` per array axis (None: voxels).
    """
    ref = np.asarray(ref)
    pred = np.asarray(pred)
    if ref.shape != pred.shape:
        raise ValueError(f"reference shape {ref.shape} != prediction shape {pred.shape}")
    n = len(classes)
    ri, pi = _index_pair(ref, pred, classes, ignore_label)
    counts = _counts_from_index(ri, pi, classes)
    if ignore_label is not None:
        pi[ri == n + 1] = 0  # ignored voxels are background in both masks for the surfaces (pi is a fresh array)
    ref_boxes, pred_boxes = _class_boxes(ri, n), _class_boxes(pi, n)
    out: Dict[int, Dict] = {}
    for i, c in enumerate(classes, start=1):
        m = dict(counts[int(c)])
        state = _empty_state(m["n_ref"], m["n_pred"])
        m["Dice"] = dice(m["TP"], m["n_ref"], m["n_pred"])
        if state != EMPTY_NONE:  # both empty or one empty: no surfaces to compare (both empty: Dice NaN too)
            m["ASD"], m["HD95"] = math.nan, math.nan
        else:
            box = _union(ref_boxes[i - 1], pred_boxes[i - 1])
            m["ASD"], m["HD95"] = assd_hd95(pi[box] == i, ri[box] == i, spacing)
        m["empty"] = state
        out[int(c)] = m
    return out


def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of every output index for a nearest resize, exactly as PyTorch's
    ``F.interpolate(mode='nearest')`` computes it (the resize of DHC's ``preprocess.py``/``evaluate_Ntimes.py``):
    ``min(floor(o * (in / out)), in - 1)`` in float32, identity when the sizes agree, ``o >> 1`` when doubling."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be >= 1, got {in_size} -> {out_size}")
    if in_size == out_size:
        return np.arange(out_size)
    if out_size == 2 * in_size:
        return np.arange(out_size) >> 1
    scale = np.float32(in_size) / np.float32(out_size)
    idx = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(idx, in_size - 1)


def resize_nearest(seg: np.ndarray, shape: Sequence[int] = PROTOCOL_B_SHAPE) -> np.ndarray:
    """Nearest-neighbour resize of a label map to ``shape`` (per axis, see :func:`nearest_indices`)."""
    seg = np.asarray(seg)
    if seg.ndim != len(shape):
        raise ValueError(f"cannot resize a {seg.ndim}D array to shape {tuple(shape)}")
    return seg[np.ix_(*[nearest_indices(s, int(o)) for s, o in zip(seg.shape, shape)])]


def evaluate_case_protocol_b(ref: np.ndarray, pred: np.ndarray, classes: Sequence[int],
                             ignore_label: Optional[int] = None, shape: Sequence[int] = PROTOCOL_B_SHAPE
                             ) -> Dict[int, Dict]:
    """Protocol B: both resized (nearest) to ``shape`` = (80, 160, 160) (z, y, x); Dice and directed ASD in voxels;
    a class in only one of them: Dice 0, ASD 128; in neither: Dice 1, ASD 0."""
    ref = np.asarray(ref)
    pred = np.asarray(pred)
    if ref.ndim != 3 or pred.ndim != 3 or 1 in ref.shape or 1 in pred.shape:
        raise ValueError(f"protocol B is defined for 3D volumes; got reference {ref.shape}, prediction "
                         f"{pred.shape}")
    ref = resize_nearest(ref, shape)
    pred = resize_nearest(pred, shape)
    n = len(classes)
    ri, pi = _index_pair(ref, pred, classes, ignore_label)
    counts = _counts_from_index(ri, pi, classes)
    if ignore_label is not None:
        pi[ri == n + 1] = 0
    ref_boxes, pred_boxes = _class_boxes(ri, n), _class_boxes(pi, n)
    out: Dict[int, Dict] = {}
    for i, c in enumerate(classes, start=1):
        m = dict(counts[int(c)])
        state = _empty_state(m["n_ref"], m["n_pred"])
        if state == EMPTY_BOTH:
            m["Dice"], m["ASD"] = 1.0, 0.0
        elif state != EMPTY_NONE:
            m["Dice"], m["ASD"] = 0.0, PROTOCOL_B_MISSING_ASD
        else:
            m["Dice"] = dice(m["TP"], m["n_ref"], m["n_pred"])
            box = _union(ref_boxes[i - 1], pred_boxes[i - 1])
            m["ASD"] = directed_asd(pi[box] == i, ri[box] == i)
        m["empty"] = state
        out[int(c)] = m
    return out


# ------------------------------------------------------------------------------------------------------- summaries
def _isnan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def nanmean(values) -> float:
    """Mean over the defined values (None and NaN left out); NaN when none is."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else math.nan


def _reference_has_class(m: Mapping) -> bool:
    """Whether the case's reference holds the class (from the ``empty`` state, else the voxel count)."""
    if "empty" in m:
        return m["empty"] in (EMPTY_NONE, EMPTY_PRED)
    return int(m.get("n_ref", 0)) > 0


def summarise(per_case: Sequence[Mapping[int, Mapping]], classes: Sequence[int], metric_names: Sequence[str],
              groups: Optional[Sequence[Sequence[int]]] = None, group_names: Optional[Sequence[str]] = None,
              score_all_classes: bool = False) -> Dict:
    """Class means over cases, the mean over classes and the group means (see the module docstring).

    ``per_case``: one {class: {metric: value, "empty": ...}} per case. Returns ``{"mean": {class: {...}},
    "foreground_mean": {...}, "group_mean": {name: {...}}, "case_mean": [{...} per case]}``. A class entry carries
    ``n`` (cases with a defined Dice), ``n_reference`` (cases whose reference holds the class), ``scored`` and
    ``n_undefined`` = scored (case, class) pairs whose distances are undefined (NaN). Classes with no reference
    voxels in any case are not scored and stay out of the group / foreground / case means, unless
    ``score_all_classes`` (protocol B, whose published means include every class).
    """
    mean: Dict[int, Dict] = {}
    for c in classes:
        entry = {m: nanmean(pc[c][m] for pc in per_case) for m in metric_names}
        scored_cases = [pc[c] for pc in per_case if not _isnan(pc[c]["Dice"])]
        entry["n"] = len(scored_cases)
        entry["n_undefined"] = int(sum(any(_isnan(m[k]) for k in metric_names) for m in scored_cases))
        entry["n_reference"] = int(sum(_reference_has_class(pc[c]) for pc in per_case))
        entry["n_cases"] = len(per_case)
        entry["scored"] = bool(score_all_classes or entry["n_reference"] > 0)
        mean[int(c)] = entry
    scored = [int(c) for c in classes if mean[int(c)]["scored"]]

    def over(members: Sequence[int]) -> Dict:
        used = [int(c) for c in members if mean[int(c)]["scored"]]
        d = {m: nanmean(mean[c][m] for c in used) for m in metric_names}
        d["n_undefined"] = int(sum(mean[c]["n_undefined"] for c in used))
        d["classes"] = [int(c) for c in members]
        d["classes_scored"] = used
        return d

    out = {"mean": mean, "foreground_mean": over(classes)}
    if groups is not None:
        names = list(group_names) if group_names is not None else [f"group_{g}" for g in range(len(groups))]
        out["group_mean"] = {name: over(members) for name, members in zip(names, groups)}
    out["case_mean"] = [{m: nanmean(pc[c][m] for c in scored) for m in metric_names} for pc in per_case]
    return out
