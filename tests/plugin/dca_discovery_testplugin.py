"""Test-only nnU-Net classes, registered by a hand-written dist-info (tests/conftest.py) in the entry-point group
nnunetv2_dca.classes: the same mechanism nnunetv2-dca uses for its own classes. They prove that the stock console
scripts find a planner, fingerprint extractor, preprocessor, normaliser (looked up inside nnU-Net's spawned
preprocessing workers) and trainer by name. Tiny widths keep the CPU run short. Not shipped."""

import os

import numpy as np
import torch
from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.preprocessing.normalization.default_normalization_schemes import CTNormalization
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

MARKER_ENV = "DCA_DISCOVERY_TEST_MARKERS"


def _mark(what: str) -> None:
    folder = os.environ.get(MARKER_ENV)
    if folder:
        with open(os.path.join(folder, f"{what}.{os.getpid()}"), "w") as f:
            f.write(what)


class DiscoveryTestFingerprintExtractor(DatasetFingerprintExtractor):
    def run(self, overwrite_existing: bool = False) -> dict:
        _mark("fingerprint")
        return super().run(overwrite_existing)


class DiscoveryTestPlanner(ExperimentPlanner):
    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = "nnUNetPlansDiscoveryTest",
                 overwrite_target_spacing=None, suppress_transpose: bool = False):
        if preprocessor_name == "DefaultPreprocessor":
            preprocessor_name = "DiscoveryTestPreprocessor"
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_base_num_features = 4
        self.UNet_max_features_3d = 16
        self.UNet_max_features_2d = 16
        _mark("planner")

    def determine_normalization_scheme_and_whether_mask_is_used_for_norm(self):
        schemes, masks = super().determine_normalization_scheme_and_whether_mask_is_used_for_norm()
        return ["DiscoveryTestNormalization"] * len(schemes), masks


class DiscoveryTestPreprocessor(DefaultPreprocessor):
    def run(self, *args, **kwargs):  # the main process of nnUNetv2_preprocess; cases go to a spawned pool
        _mark("preprocess_main")
        return super().run(*args, **kwargs)

    def run_case(self, *args, **kwargs):
        _mark("preprocessor")
        return super().run_case(*args, **kwargs)


class DiscoveryTestNormalization(CTNormalization):
    def run(self, image: np.ndarray, seg: np.ndarray = None) -> np.ndarray:
        _mark("normalization")
        return super().run(image, seg)


class DiscoveryTestTrainer(nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1
        _mark("trainer")
