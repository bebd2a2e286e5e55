"""``-fpe DCAFingerprintExtractor``: nnU-Net's fingerprint plus the labeled voxel count of every class.

The counts (key ``class_voxel_counts``, class id -> voxels over the labeled training cases) feed the log-gap
grouping. nnU-Net reuses a cached fingerprint unless ``--clean`` is given; a cached fingerprint without the key gets
it added here, and the DCA planner counts the labels itself if a stock extractor made the fingerprint.
"""

from __future__ import annotations

import os

from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
from nnunetv2.paths import nnUNet_preprocessed

from nnunetv2_dca.atomic import numpy_to_builtin, write_json_atomic
from nnunetv2_dca.planning.labels import CLASS_COUNTS_KEY, count_label_voxels


class DCAFingerprintExtractor(DatasetFingerprintExtractor):
    def run(self, overwrite_existing: bool = False) -> dict:
        fingerprint = super().run(overwrite_existing)
        if CLASS_COUNTS_KEY not in fingerprint:
            counts = count_label_voxels(self.input_folder, self.dataset_json)
            fingerprint[CLASS_COUNTS_KEY] = {str(k): int(v) for k, v in counts.items()}
            # a crash mid-write must not leave a truncated fingerprint that nnU-Net would load next time
            write_json_atomic(fingerprint, os.path.join(nnUNet_preprocessed, self.dataset_name,
                                                        "dataset_fingerprint.json"), indent=4, default=numpy_to_builtin)
        return fingerprint

