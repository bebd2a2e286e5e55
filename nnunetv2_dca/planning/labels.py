"""Foreground classes of a dataset and their labeled voxel counts, as the log-gap grouping needs them.

Counts come from the labeled training cases only (``labelsTr`` or the dataset.json ``dataset`` mapping, exactly
the files nnU-Net trains on), read with nnU-Net's reader for the dataset, so ``.nii.gz``, ``.png``, ``.tif`` ...
all work. The ignore label takes no part in grouping; region-based label definitions are refused because a
region is not a class that one expert could own.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import numpy as np


# key in dataset_fingerprint.json: labeled voxels per class id (written by the DCA fingerprint extractor)
CLASS_COUNTS_KEY = "class_voxel_counts"


class LabelDefinitionError(ValueError):
    """dataset.json labels that DCA cannot work with."""


def foreground_classes(dataset_json: Mapping) -> Dict[int, str]:
    """Foreground class id -> name, without background and without the ignore label. Not nnU-Net's LabelManager:
    it has no id -> name map, and the planner needs a one-line error naming the region labels it cannot group."""
    labels = dataset_json.get("labels")
    if not isinstance(labels, Mapping) or not labels:
        raise LabelDefinitionError("dataset.json has no 'labels' mapping")
    regions = [name for name, value in labels.items() if isinstance(value, (list, tuple))]
    if regions:
        raise LabelDefinitionError(
            f"region-based label definitions are not supported by DCA (regions: {', '.join(regions)}): class groups "
            f"need each voxel to belong to exactly one class. Train with plain integer labels.")
    out: Dict[int, str] = {}
    for name, value in labels.items():
        if name in ("background", "ignore"):
            continue
        out[int(value)] = name
    return dict(sorted(out.items()))


def count_label_voxels(raw_dataset_folder: str, dataset_json: Mapping) -> Dict[int, int]:
    """Voxels per foreground class over the labeled training cases (id -> count, every class present)."""
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    from nnunetv2_dca.imagefile import check_image_file, reader_writer_for

    classes = foreground_classes(dataset_json)
    dataset = get_filenames_of_train_images_and_targets(raw_dataset_folder, dict(dataset_json))
    if not dataset:
        raise LabelDefinitionError(f"no labeled training cases found in {raw_dataset_folder} (imagesTr/labelsTr are "
                                   f"empty or missing); add the labeled cases")
    first = next(iter(dataset.values()))
    # nnU-Net picks the reader by trying it on a file: give it a label file, which is read below anyway
    example = first["label"] if os.path.isfile(first["label"]) else first["images"][0]
    reader = reader_writer_for(dataset_json, example, "label file" if example == first["label"] else "image")()
    labels = dataset_json["labels"]
    known = {0, *classes} | ({int(labels["ignore"])} if "ignore" in labels else set())
    top = max(classes) if classes else 0
    total = np.zeros(top + 1, dtype=np.int64)
    for case, files in dataset.items():
        if not os.path.isfile(files["label"]):
            raise FileNotFoundError(f"label file of case {case} is missing: {files['label']}")
        check_image_file(files["label"])  # SimpleITK zero-fills a truncated file: the counts would be made up
        try:
            seg, _ = reader.read_seg(files["label"])
        except (RuntimeError, OSError, EOFError) as e:  # SimpleITK raises RuntimeError on a foreign/damaged file
            first_line = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise LabelDefinitionError(f"{files['label']}: cannot be read as a label map ({type(e).__name__}: "
                                       f"{first_line}); replace the file") from None
        seg = np.asarray(seg)
        if seg.size and ((not np.issubdtype(seg.dtype, np.integer) and not np.array_equal(seg, np.round(seg)))
                         or seg.min() < 0):
            raise LabelDefinitionError(f"{files['label']}: holds negative or non-integer label values; a label map "
                                       f"holds the integer values of dataset.json 'labels'")
        counts = np.bincount(seg.astype(np.int64, copy=False).ravel())
        unknown = sorted(int(v) for v in np.flatnonzero(counts) if int(v) not in known)
        if unknown:
            raise LabelDefinitionError(
                f"{files['label']}: label value(s) {', '.join(map(str, unknown))} are not in dataset.json 'labels' "
                f"(known: {', '.join(map(str, sorted(known)))}); fix the label file or add the class to dataset.json")
        n = min(counts.size, total.size)
        total[:n] += counts[:n]
    return {k: int(total[k]) for k in classes}


def load_class_voxel_counts(raw_dataset_folder: str, dataset_json: Mapping,
                            fingerprint_file: Optional[str] = None) -> Dict[int, int]:
    """Counts from the fingerprint's ``class_voxel_counts`` if present, else counted from the labels.

    nnU-Net reuses a cached fingerprint unless ``--clean`` is given, and a fingerprint made by the stock extractor
    has no counts: then they are counted here rather than failing.
    """
    if fingerprint_file and os.path.isfile(fingerprint_file):
        from nnunetv2_dca.errors import InputFileError, read_json

        fix = "delete it and run nnUNetv2_plan_and_preprocess (or nnUNetv2_extract_fingerprint) again"
        stored = read_json(fingerprint_file, "fingerprint", fix).get(CLASS_COUNTS_KEY)
        if stored is not None:
            try:
                return {int(k): int(v) for k, v in stored.items()}
            except (AttributeError, TypeError, ValueError):
                raise InputFileError(f"fingerprint {fingerprint_file}: '{CLASS_COUNTS_KEY}' is not an object of class "
                                     f"id -> voxel count; {fix}", fingerprint_file) from None
    return count_label_voxels(raw_dataset_folder, dataset_json)
