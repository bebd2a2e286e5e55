"""``nnunetv2-dca evaluate``: a reference folder against a prediction folder, per case and class, with group means.

Files are matched by name: every reference file (``*<file_ending>`` of dataset.json) needs a prediction file of the
same name (missing ones are an error that names them; extra prediction files are ignored). Both are read with
nnU-Net's reader for the dataset (``determine_reader_writer_from_dataset_json``), so every format nnU-Net reads
works. Classes are the foreground labels of dataset.json (background and ``ignore`` left out); reference voxels with
the ignore label are excluded from every metric; region-based labels are refused. The class groups are those the
network of a DCA plans file is built from (``arch_kwargs.class_groups``, read by
:func:`nnunetv2_dca.planning.class_groups.plans_class_groups`; ``configuration`` picks one when they differ).

Two modes (the metric definitions are in :mod:`nnunetv2_dca.evaluation.metrics`):

- default: images compared as they are (shapes and spacings must agree), Dice, ASD (symmetric) and HD95 in the
  image's spacing units (mm for medical images);
- ``protocol_b=True``: the convention of the published class-imbalanced SSL papers, for comparison with their
  tables: both label maps resized (nearest) to an array of shape (80, 160, 160) = 160 x 160 x 80 (x, y, z), Dice
  and directed ASD in voxels, a class missing on one side = Dice 0 / ASD 128, missing on both = Dice 1 / ASD 0.

Outputs (default folder: the prediction folder): ``evaluation.json`` (the layout of nnU-Net's ``summary.json`` plus
``group_mean`` and a few descriptive keys), ``evaluation.csv`` (one row per case x class) and ``evaluation.md``
(per-class and group means); protocol B writes ``evaluation_protocol_b.*`` instead, so both can sit side by side.
Undefined values (NaN) are ``null`` in JSON, empty cells in CSV and ``n/a`` in Markdown.

Size: one command (reading both folders with nnU-Net's readers, the protocols, the three outputs written as one
set); the metrics themselves are in :mod:`nnunetv2_dca.evaluation.metrics`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_dca.atomic import atomic_file_set
from nnunetv2_dca.imagefile import check_image_file, reader_writer_for
from nnunetv2_dca.planning.class_groups import plans_class_groups
from nnunetv2_dca.evaluation.metrics import (PROTOCOL_B_MISSING_ASD, PROTOCOL_B_SHAPE, evaluate_case_mm,
                                             evaluate_case_protocol_b, summarise)

BASENAME = "evaluation"
BASENAME_PROTOCOL_B = "evaluation_protocol_b"
MISSING_LIST_LIMIT = 20

DEFINITIONS = {
    "default": {
        "Dice": "2 TP / (|P| + |R|) over voxels whose reference label is not the ignore label",
        "ASD": "average symmetric surface distance (MedPy >= 0.5 assd): mean of d(P->R) and d(R->P) pooled, "
               "i.e. (sum d(P->R) + sum d(R->P)) / (|surface P| + |surface R|), in spacing units (mm)",
        "HD95": "95th percentile (numpy linear) of d(P->R) and d(R->P) pooled (MedPy hd95), in spacing units (mm)",
        "surface": "mask XOR binary_erosion(mask, face connectivity); d(A->B) = Euclidean distance (scipy "
                   "distance_transform_edt, sampling = spacing) from each surface voxel of A to B's surface",
        "both_empty": "Dice, ASD and HD95 undefined (null; empty = 'both'), as in nnU-Net: the case is not scored "
                      "for the class and left out of its means",
        "one_empty": "Dice 0, ASD and HD95 undefined (null), counted in n_undefined, left out of their means",
        "not_scored": "a class without reference voxels in any case (classes_not_scored) is not scored: listed, "
                      "but left out of foreground_mean, group_mean and the case means",
        "means": "class mean = mean over cases (undefined left out), n = cases with a defined Dice; "
                 "foreground_mean and group_mean = mean over the scored classes of the class means",
    },
    "B": {
        "resize": "prediction and reference resized (nearest, PyTorch F.interpolate(mode='nearest') index "
                  "mapping) to array shape (80, 160, 160) = (z, y, x), i.e. 160 x 160 x 80 (x, y, z)",
        "Dice": "2 TP / (|P| + |R|) on the resized maps",
        "ASD": "directed average surface distance from the prediction's surface to the reference's surface "
               "(MedPy asd(pred, ref), as in DHC's evaluate_Ntimes.py), in voxels, spacing ignored",
        "one_empty": f"Dice 0, ASD {PROTOCOL_B_MISSING_ASD:g}",
        "both_empty": "Dice 1, ASD 0 (included in the means, as published)",
        "means": "class mean = mean over cases; foreground_mean = mean over all classes (absent ones included) of "
                 "the class means = mean over cases of the mean over classes; group_mean = mean over the group's "
                 "classes",
    },
}


# --------------------------------------------------------------------------------------------------------- inputs
def _load_json(path: str, what: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{what} {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path} holds a JSON {type(data).__name__}, expected an object {{...}}")
    return data


def labels_from_dataset_json(dataset_json: Mapping) -> Tuple[Dict[int, str], Optional[int]]:
    """(foreground class id -> name, ignore label or None). Region-based labels are refused."""
    labels = dataset_json.get("labels")
    if not isinstance(labels, Mapping) or not labels:
        raise ValueError("dataset.json has no 'labels' mapping")
    regions = [name for name, value in labels.items() if isinstance(value, (list, tuple))]
    if regions:
        raise ValueError(f"region-based labels are not supported by nnunetv2-dca evaluate (regions: "
                         f"{', '.join(regions)}); use nnUNetv2_evaluate_folder for region-based datasets")
    ignore = labels.get("ignore")
    classes = {int(v): str(k) for k, v in labels.items() if k not in ("background", "ignore")}
    if not classes:
        raise ValueError("dataset.json 'labels' has no foreground class")
    return dict(sorted(classes.items())), (int(ignore) if ignore is not None else None)


def match_files(ref_folder: str, pred_folder: str, file_ending: str) -> List[Tuple[str, str, str]]:
    """(case, reference file, prediction file) for every reference file; missing predictions are an error."""
    for folder, what in ((ref_folder, "reference folder"), (pred_folder, "prediction folder")):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{what} not found: {folder}")
    refs = sorted(f for f in os.listdir(ref_folder)
                  if f.endswith(file_ending) and os.path.isfile(os.path.join(ref_folder, f)))
    if not refs:
        raise FileNotFoundError(f"no reference files ending in {file_ending!r} in {ref_folder}")
    missing = [f for f in refs if not os.path.isfile(os.path.join(pred_folder, f))]
    if missing:
        shown = ", ".join(missing[:MISSING_LIST_LIMIT])
        more = f" and {len(missing) - MISSING_LIST_LIMIT} more" if len(missing) > MISSING_LIST_LIMIT else ""
        raise FileNotFoundError(f"{len(missing)} of {len(refs)} reference files have no prediction of the same name "
                                f"in {pred_folder}: {shown}{more}")
    return [(f[: -len(file_ending)], os.path.join(ref_folder, f), os.path.join(pred_folder, f)) for f in refs]


def read_label_map(reader, path: str) -> Tuple[np.ndarray, Tuple[float, ...]]:
    """Label map without nnU-Net's channel axis (integer array) and its spacing in array axis order."""
    # SimpleITK zero-fills a truncated .nii.gz/.nii without error: the metrics would change silently
    check_image_file(path)
    seg, props = reader.read_seg(path)
    seg = np.asarray(seg)[0]
    if np.issubdtype(seg.dtype, np.integer):
        labels = seg
    else:
        labels = seg.astype(np.int32)
        if not np.array_equal(labels, seg):
            raise ValueError(f"{path} holds non-integer label values")
    spacing = tuple(float(s) for s in props["spacing"])
    if len(spacing) != labels.ndim:
        raise ValueError(f"{path}: spacing {spacing} does not match the array shape {labels.shape}")
    return labels, spacing


def read_label_file(reader, path: str, what: str) -> Tuple[np.ndarray, Tuple[float, ...]]:
    """:func:`read_label_map`, with any reader failure turned into one ValueError naming the file (the CLI prints
    it as one line): readers raise RuntimeError (SimpleITK), OSError, EOFError or their own types on a corrupt or
    foreign file, and a traceback from deep inside ITK does not say which of hundreds of files it was."""
    try:
        return read_label_map(reader, path)
    except ValueError as e:
        if path in str(e):  # our own checks already name the file
            raise
        raise ValueError(f"cannot read the {what} file {path}: {_first_line(e)}") from e
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 (any reader failure; see the docstring)
        raise ValueError(f"cannot read the {what} file {path}: {type(e).__name__}: {_first_line(e)}") from e


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def check_label_values(seg: np.ndarray, path: str, what: str, known: Sequence[int]) -> Dict[int, int]:
    """Refuse negative labels (naming the file); warn about label values that dataset.json does not have.

    ``known``: background, the classes and the ignore label. Unknown values would silently count as background,
    which hides a prediction made with another label set (e.g. label 20 in a 13-class dataset). Returns
    {unknown value: voxel count}.
    """
    if seg.size == 0:
        return {}
    lo, hi = int(seg.min()), int(seg.max())
    if lo < 0:
        raise ValueError(f"{what} {path} holds negative label values (min {lo}, {int((seg < 0).sum())} voxels)")
    if hi <= 65535:  # one bincount pass; uint8/uint16 label maps always land here
        counts = np.bincount(seg.ravel())
        values = np.flatnonzero(counts)
        counts = counts[values]
    else:
        values, counts = np.unique(seg, return_counts=True)
    known_set = {int(k) for k in known}
    unknown = {int(v): int(n) for v, n in zip(values, counts) if int(v) not in known_set}
    if unknown:
        shown = ", ".join(f"{v} ({n} voxels)" for v, n in sorted(unknown.items()))
        print(f"warning: {what} {path} holds label values that dataset.json does not have: {shown}; "
              f"{sum(unknown.values())} voxels counted as background", file=sys.stderr)
    return unknown


# ----------------------------------------------------------------------------------------------------- evaluation
def evaluate_folders(ref_folder: str, pred_folder: str, dataset_json_file: str, plans_file: Optional[str] = None,
                     output_folder: Optional[str] = None, protocol_b: bool = False, write: bool = True,
                     configuration: Optional[str] = None) -> Dict:
    """Evaluate and (``write``) save JSON/CSV/Markdown. Returns the result dict (JSON content, NaN as NaN) with
    ``"output_files"`` naming what was written."""
    dataset_json = _load_json(dataset_json_file, "dataset.json")
    try:
        classes, ignore_label = labels_from_dataset_json(dataset_json)
    except ValueError as e:
        raise ValueError(f"-djfile {dataset_json_file}: {e}") from None
    file_ending = dataset_json.get("file_ending")
    if not file_ending:
        raise ValueError(f"{dataset_json_file} has no 'file_ending'")
    groups = names = None
    if plans_file is not None:
        groups, names = plans_class_groups(_load_json(plans_file, "plans file"), 1 + len(classes), configuration,
                                           plans_file)
        if groups is None:
            print(f"warning: {plans_file} has no configuration with arch_kwargs.class_groups (not DCA plans?): "
                  f"no group means", file=sys.stderr)
    cases = match_files(ref_folder, pred_folder, file_ending)
    reader = reader_writer_for(dataset_json, cases[0][1], "reference file")()
    class_ids = list(classes)
    metric_names = ["Dice", "ASD"] if protocol_b else ["Dice", "ASD", "HD95"]

    known_labels = [0, *class_ids] + ([ignore_label] if ignore_label is not None else [])

    per_case, entries = [], []
    unknown_labels: Dict[str, Dict[int, int]] = {}
    for case, ref_file, pred_file in cases:
        ref, ref_spacing = read_label_file(reader, ref_file, "reference")
        pred, pred_spacing = read_label_file(reader, pred_file, "prediction")
        for seg, path, what in ((ref, ref_file, "reference"), (pred, pred_file, "prediction")):
            unknown = check_label_values(seg, path, what, known_labels)
            if unknown:
                unknown_labels[path] = unknown
        if protocol_b:
            try:
                metrics = evaluate_case_protocol_b(ref, pred, class_ids, ignore_label)
            except ValueError as e:
                raise ValueError(f"{case}: {e}") from None
        else:
            if ref.shape != pred.shape:
                raise ValueError(f"{case}: prediction {pred_file} has shape {pred.shape}, reference {ref_file} has "
                                 f"{ref.shape}")
            if not np.allclose(ref_spacing, pred_spacing, rtol=1e-4, atol=1e-6):
                raise ValueError(f"{case}: prediction {pred_file} has spacing {pred_spacing}, reference {ref_file} "
                                 f"has {ref_spacing}")
            metrics = evaluate_case_mm(ref, pred, class_ids, ref_spacing, ignore_label)
        per_case.append(metrics)
        entries.append({"case": case, "reference_file": ref_file, "prediction_file": pred_file,
                        "shape": list(ref.shape), "spacing": list(ref_spacing),
                        "metrics": {str(c): metrics[c] for c in class_ids}})

    grouped = {c for g in groups for c in g} if groups else set()
    result = {
        "protocol": "B" if protocol_b else "default",
        "distance_unit": "voxel" if protocol_b else "spacing unit (mm)",
        "definitions": DEFINITIONS["B" if protocol_b else "default"],
        "reference_folder": os.path.abspath(ref_folder),
        "prediction_folder": os.path.abspath(pred_folder),
        "dataset_json": os.path.abspath(dataset_json_file),
        "plans_file": os.path.abspath(plans_file) if plans_file else None,
        "labels": {str(c): n for c, n in classes.items()},
        "ignore_label": ignore_label,
        "groups": {n: g for n, g in zip(names, groups)} if groups else None,
        "ungrouped_classes": [c for c in class_ids if c not in grouped] if groups else None,
        "n_cases": len(cases),
        "metric_names": metric_names,
        "metric_per_case": entries,
        **_summary_fields(per_case, entries, class_ids, metric_names, groups, names, protocol_b),
        "unknown_label_values": unknown_labels or None,
    }
    if protocol_b:
        result["resize_shape_zyx"] = list(PROTOCOL_B_SHAPE)
    if write:
        result["output_files"] = write_outputs(result, output_folder or pred_folder)
    return result


def _summary_fields(per_case: Sequence[Mapping[int, Mapping]], entries: Sequence[Dict], class_ids: Sequence[int],
                    metric_names: Sequence[str], groups, names, protocol_b: bool) -> Dict:
    """The means of a result (and each entry's case mean); protocol B keeps the published means over every class,
    the default leaves classes no reference has out."""
    summary = summarise(per_case, class_ids, metric_names, groups, names, score_all_classes=protocol_b)
    for entry, case_mean in zip(entries, summary["case_mean"]):
        entry["mean"] = case_mean
    return {"mean": {str(c): summary["mean"][c] for c in class_ids},
            "foreground_mean": summary["foreground_mean"],
            "group_mean": summary.get("group_mean"),
            "classes_not_scored": [c for c in class_ids if not summary["mean"][c]["scored"]],
            "classes_without_reference": [c for c in class_ids if summary["mean"][c]["n_reference"] == 0]}


def rescore_result(old: Mapping) -> Dict:
    """A default-protocol result (e.g. an ``evaluation.json`` of an older version) re-summarised with the current
    rules from its stored per-case values: a class absent from both reference and prediction becomes undefined
    (it was Dice 1 / ASD 0 / HD95 0 before). Protocol-B results are returned unchanged (their rules did not change)."""
    result = json.loads(json.dumps(old))  # deep copy, JSON types
    if result.get("protocol") == "B":
        return result
    class_ids = [int(c) for c in result["labels"]]
    per_case = []
    for entry in result["metric_per_case"]:
        metrics = {}
        for c in class_ids:
            m = dict(entry["metrics"][str(c)])
            for k, v in m.items():
                if v is None:
                    m[k] = math.nan
            if m.get("empty") == "both":
                for k in result["metric_names"]:
                    m[k] = math.nan
            metrics[c] = m
            entry["metrics"][str(c)] = m
        per_case.append(metrics)
    groups = list(result["groups"].values()) if result.get("groups") else None
    names = list(result["groups"]) if result.get("groups") else None
    result.update(_summary_fields(per_case, result["metric_per_case"], class_ids, result["metric_names"], groups,
                                  names, False))
    result["definitions"] = DEFINITIONS["default"]
    return result


# -------------------------------------------------------------------------------------------------------- outputs
def json_ready(obj):
    """``obj`` with str keys, plain ints/floats and NaN as None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) else float(obj)
    return obj


def csv_text(result: Mapping) -> str:
    import io

    group_of = {c: n for n, members in (result.get("groups") or {}).items() for c in members}
    metric_names = result["metric_names"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["case", "reference_file", "prediction_file", "class_id", "class_name", "group", *metric_names,
                "TP", "FP", "FN", "n_ref", "n_pred", "empty"])
    for entry in result["metric_per_case"]:
        for key, m in entry["metrics"].items():
            values = ["" if m[k] is None or (isinstance(m[k], float) and math.isnan(m[k])) else repr(float(m[k]))
                      for k in metric_names]
            w.writerow([entry["case"], entry["reference_file"], entry["prediction_file"], key,
                        result["labels"][key], group_of.get(int(key), ""), *values,
                        m["TP"], m["FP"], m["FN"], m["n_ref"], m["n_pred"], m["empty"]])
    return buf.getvalue()


def _fmt(v, scale: float = 1.0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v * scale:.2f}"


def markdown_table(result: Mapping) -> str:
    """Per-class means (Dice in %), then the group means and the mean over classes."""
    pb = result["protocol"] == "B"
    unit = "voxels" if pb else "mm"
    metric_names = result["metric_names"]
    heads = ["Dice (%)"] + [f"{m} ({unit})" for m in metric_names[1:]]
    group_of = {c: n for n, members in (result.get("groups") or {}).items() for c in members}
    title = ("protocol B (resized to 160x160x80, voxels; published class-imbalanced SSL convention)" if pb
             else "Dice, ASD (symmetric), HD95 in mm")
    lines = [f"### Evaluation: {result['n_cases']} cases, {title}", ""]
    cols = ["class", "name", "group", *heads] + ([] if pb else ["n", "undefined"])
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def row(first, name, group, entry, n_cell=""):
        vals = [_fmt(entry["Dice"], 100.0)] + [_fmt(entry[m]) for m in metric_names[1:]]
        extra = [] if pb else [n_cell, str(entry["n_undefined"])]
        return "| " + " | ".join([first, name, group, *vals, *extra]) + " |"

    def member_list(entry) -> str:
        left_out = [c for c in entry["classes"] if c not in entry.get("classes_scored", entry["classes"])]
        return ", ".join(str(c) for c in entry["classes"]) + (
            f" ({', '.join(map(str, left_out))} not scored)" if left_out else "")

    for key, entry in result["mean"].items():
        n_cell = f"{entry.get('n', '')}/{entry['n_cases']}" if entry.get("scored", True) else "not scored"
        lines.append(row(key, result["labels"][key], group_of.get(int(key), ""), entry, n_cell))
    for gname, entry in (result.get("group_mean") or {}).items():
        lines.append(row(f"**{gname}**", "classes " + member_list(entry), "", entry))
    fg = result["foreground_mean"]
    n_scored = len(fg.get("classes_scored", fg["classes"]))
    lines.append(row("**mean**", f"{n_scored} classes" if n_scored == len(fg["classes"]) else
                     f"{n_scored} of {len(fg['classes'])} classes", "", fg))
    not_scored = result.get("classes_not_scored") or []
    absent = result.get("classes_without_reference") or []
    if not pb:
        lines += ["", "n: cases in which the class was scored (present in the reference or the prediction). A case "
                      "where both are empty leaves Dice, ASD and HD95 undefined (as in nnU-Net) and out of the "
                      "class mean. undefined: scored cases where exactly one of reference and prediction is empty "
                      "(Dice 0, no ASD/HD95; left out of the distance means)."]
        if not_scored:
            lines += ["", f"**Not scored**: {_class_list(result, not_scored)}: no reference voxels in any of the "
                          f"{result['n_cases']} cases, so left out of the group means and the mean over classes "
                          f"(their rows show false positives only)."]
    else:
        lines += ["", f"ASD: prediction surface -> reference surface. Class on one side only: Dice 0, ASD "
                      f"{PROTOCOL_B_MISSING_ASD:g}; on neither side: Dice 1, ASD 0."]
        if absent:
            lines += ["", f"No reference voxels in any case: {_class_list(result, absent)}; protocol B still counts "
                          f"them in every mean (the published convention; the default mode does not score them)."]
    return "\n".join(lines) + "\n"


def _class_list(result: Mapping, classes: Sequence[int]) -> str:
    return ", ".join(f"{c} ({result['labels'][str(c)]})" for c in classes)


def write_outputs(result: Dict, output_folder: str) -> Dict[str, str]:
    """JSON, CSV and Markdown written as one set: a failure (disk full, no permission) replaces none of the files
    of an earlier run, so the three never disagree; the OSError then names the output folder."""
    base = os.path.join(output_folder, BASENAME_PROTOCOL_B if result["protocol"] == "B" else BASENAME)
    paths = {"json": base + ".json", "csv": base + ".csv", "md": base + ".md"}
    content = {k: v for k, v in result.items() if k != "output_files"}
    texts = {paths["json"]: json.dumps(json_ready(content), indent=2, allow_nan=False) + "\n",
             paths["csv"]: csv_text(result), paths["md"]: markdown_table(result)}
    try:
        os.makedirs(output_folder, exist_ok=True)
        atomic_file_set(texts)
    except OSError as e:
        names = ", ".join(os.path.basename(p) for p in paths.values())
        message = (f"could not write {names} to {os.path.abspath(output_folder)}: {e.strerror or e}; files of an "
                   f"earlier run there, if any, are unchanged")
        raise (OSError(e.errno, message) if e.errno is not None else OSError(message)) from e
    return paths
