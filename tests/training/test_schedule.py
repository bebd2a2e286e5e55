"""FixedSchedule: trainer variants set nnU-Net's schedule through class attributes."""

import pytest
import torch

from nnunetv2_dca.training.schedule import FixedSchedule


class _Trainer:  # stands in for nnUNetTrainer's constructor: nnU-Net's default schedule
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1000, 250, 50
        self.init_args = (plans, configuration, fold, dataset_json, device)


@pytest.mark.parametrize("attrs, expected", [
    ({}, (1000, 250, 50)),
    ({"schedule_epochs": 50}, (50, 250, 50)),
    ({"schedule_epochs": 2, "schedule_iterations": 5, "schedule_val_iterations": 2}, (2, 5, 2)),
])
def test_fixed_schedule_overrides_only_what_is_set(attrs, expected):
    variant = type("Variant", (FixedSchedule, _Trainer), attrs)
    t = variant({}, "3d_fullres", 0, {}, torch.device("cpu"))
    assert (t.num_epochs, t.num_iterations_per_epoch, t.num_val_iterations_per_epoch) == expected
    assert t.init_args == ({}, "3d_fullres", 0, {}, torch.device("cpu"))


def test_registered_variants_declare_their_schedules():
    from nnunetv2_dca.trainers.dca import nnUNetTrainerDCA_100epochs, nnUNetTrainerDCA_smoke
    from nnunetv2_dca.trainers.semi_moe import nnUNetTrainerSemiMoE_smoke
    from nnunetv2_dca.trainers.smoke import nnUNetTrainer_smoke

    for cls in (nnUNetTrainerDCA_smoke, nnUNetTrainerSemiMoE_smoke, nnUNetTrainer_smoke):
        assert (cls.schedule_epochs, cls.schedule_iterations, cls.schedule_val_iterations) == (2, 5, 2)
    assert nnUNetTrainerDCA_100epochs.schedule_epochs == 100
