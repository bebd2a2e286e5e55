"""Foreground classes of a dataset and their labeled voxel counts, as the log-gap grouping needs them.

Counts come from the labeled training cases only (``labelsTr`` or the dataset.json ``dataset`` mapping, exactly
the files nnU-Net trains on), read with nnU-Net's reader for the dataset, so ``.nii.gz``, ``.png``, ``.tif`` ...
all work. The ignore label takes no part in grouping; region-based label definitions are refused because a
region is not a class that one expert could own.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Mapping, Optional

import numpy as np


# key in dataset_fingerprint.json: labeled voxels per class id (written by the DCA fingerprint extractor)
CLASS_COUNTS_KEY = "class_voxel_counts"


class LabelDefinitionError(ValueError):
    """dataset.json labels that DCA cannot work with."""


def foreground_classes(dataset_json: Mapping) -> Dict[int, str]:
    """Foreground class id -> name, without background and without the ignore label."""
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
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    classes = foreground_classes(dataset_json)
    dataset = get_filenames_of_train_images_and_targets(raw_dataset_folder, dict(dataset_json))
    if not dataset:
        raise LabelDefinitionError(f"no labeled training cases found in {raw_dataset_folder}")
    first = next(iter(dataset.values()))
    reader = determine_reader_writer_from_dataset_json(dict(dataset_json), first["images"][0], verbose=False)()
    top = max(classes) if classes else 0
    total = np.zeros(top + 1, dtype=np.int64)
    for case, files in dataset.items():
        if not os.path.isfile(files["label"]):
            raise FileNotFoundError(f"label file of case {case} is missing: {files['label']}")
        seg, _ = reader.read_seg(files["label"])
        counts = np.bincount(np.asarray(seg, dtype=np.int64).ravel())
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
        with open(fingerprint_file, encoding="utf-8") as f:
            stored = json.load(f).get(CLASS_COUNTS_KEY)
        if stored is not None:
            return {int(k): int(v) for k, v in stored.items()}
    return count_label_voxels(raw_dataset_folder, dataset_json)
