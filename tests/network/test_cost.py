"""Cost report: numbers agree with the real (CPU) networks, ratios, stock plans, CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunetv2_dca.cli import main
from nnunetv2_dca.network.cost import cost_report, format_cost_report
from nnunetv2_dca.network.architectures import dca_architecture

GROUPS = [[1], [2, 3], [4]]
DATASET_JSON = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3, "d": 4},
                "numTraining": 2, "file_ending": ".nii.gz"}


def stock_plans() -> dict:
    arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {"n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
                            "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                            "n_conv_per_stage": [2, 2, 2], "n_conv_per_stage_decoder": [2, 2], "conv_bias": True,
                            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                            "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
                            "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                            "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    cfg = {"data_identifier": "x_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
           "patch_size": [8, 16, 16], "median_image_size_in_voxels": [8, 16, 16], "spacing": [1.0, 1.0, 1.0],
           "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
           "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
           "resampling_fn_data_kwargs": {}, "resampling_fn_seg_kwargs": {},
           "resampling_fn_probabilities": "resample_data_or_seg_to_shape", "resampling_fn_probabilities_kwargs": {},
           "architecture": arch, "batch_dice": False}
    return {"dataset_name": "Dataset001_X", "plans_name": "P", "original_median_spacing_after_transp": [1, 1, 1],
            "original_median_shape_after_transp": [8, 16, 16], "image_reader_writer": "SimpleITKIO",
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "configurations": {"3d_fullres": cfg},
            "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {}}


def dca_plans() -> dict:
    plans = stock_plans()
    cfg = plans["configurations"]["3d_fullres"]
    cfg["architecture"] = dca_architecture(cfg["architecture"], GROUPS)
    plans["plans_name"] = "PDCA"
    return plans


def _real(arch: dict, dca: bool) -> tuple:
    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"], 1, 5,
                                 deep_supervision=False)
    with FlopCounterMode(display=False) as fc:
        net(torch.zeros(1, 1, 8, 16, 16))
    return sum(p.numel() for p in net.parameters()), fc.get_total_flops()


def test_report_matches_the_real_networks():
    report = cost_report(dca_plans(), "3d_fullres", DATASET_JSON)
    plans = dca_plans()
    dca_arch = plans["configurations"]["3d_fullres"]["architecture"]
    stock_arch = stock_plans()["configurations"]["3d_fullres"]["architecture"]
    params, flops = _real(dca_arch, True)
    assert report["networks"]["DCA"]["parameters"] == params
    assert report["networks"]["DCA"]["inference_gflops"] == pytest.approx(flops / 1e9)
    params, flops = _real(stock_arch, False)
    assert report["networks"]["nnU-Net"]["parameters"] == params
    assert report["networks"]["nnU-Net"]["inference_gflops"] == pytest.approx(flops / 1e9)
    # three experts + D_A + DFAM on one encoder: more than the stock net, less than 5 stock nets
    for key, ratio in report["ratios"].items():
        assert 1.0 < ratio < 5.0, key
    assert report["ratios"]["parameters"] == pytest.approx(
        report["networks"]["DCA"]["parameters"] / report["networks"]["nnU-Net"]["parameters"])
    # DCA's training forward evaluates the expert heads on top of inference
    assert report["networks"]["DCA"]["training_forward_gflops"] > report["networks"]["DCA"]["inference_gflops"]
    text = format_cost_report(report)
    assert "DCA/nnU-Net" in text and "parameters (M)" in text


def test_stock_plans_need_groups():
    with pytest.raises(ValueError, match="not DCA plans"):
        cost_report(stock_plans(), "3d_fullres", DATASET_JSON)
    r1 = cost_report(stock_plans(), "3d_fullres", DATASET_JSON, class_groups=GROUPS)
    r2 = cost_report(dca_plans(), "3d_fullres", DATASET_JSON)
    assert r1["networks"] == r2["networks"]
    with pytest.raises(ValueError, match="configuration '2d'"):
        cost_report(dca_plans(), "2d", DATASET_JSON)


def test_cli(tmp_path, capsys):
    (tmp_path / "PDCA.json").write_text(json.dumps(dca_plans()))
    (tmp_path / "dataset.json").write_text(json.dumps(DATASET_JSON))
    assert main(["cost", "--plans-file", str(tmp_path / "PDCA.json"), "-c", "3d_fullres", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dca_network"].endswith("DCAPlainConvUNet") and report["ratios"]["parameters"] > 1
    assert main(["cost", "--plans-file", str(tmp_path / "missing.json")]) == 2
    assert "plans file not found" in capsys.readouterr().err


def test_report_follows_the_trainers_recipe():
    """The cost of what a DCA trainer runs: its heads and prediction output (nnUNetTrainerDCA predicts with the
    fused experts: no D_A at inference) and D_A on the labeled samples of its step (supervise_aggregation)."""
    from types import SimpleNamespace

    from nnunetv2_dca.trainers.dca import nnUNetTrainerDCA, nnUNetTrainerDCA_asBuilt

    reports = {t: cost_report(dca_plans(), "3d_fullres", DATASET_JSON, recipe_arch_kwargs=t.recipe_arch_kwargs,
                              aggregate_labeled=t.supervise_aggregation)["networks"]["DCA"]
               for t in (nnUNetTrainerDCA, nnUNetTrainerDCA_asBuilt)}
    arch = dca_plans()["configurations"]["3d_fullres"]["architecture"]
    cm = SimpleNamespace(network_arch_class_name=arch["network_class_name"],
                         network_arch_init_kwargs=arch["arch_kwargs"],
                         network_arch_init_kwargs_req_import=arch["_kw_requires_import"])
    for trainer, report in reports.items():
        net = trainer.build_network_architecture(None, cm, 1, 5, False)
        with FlopCounterMode(display=False) as fc:
            net(torch.zeros(1, 1, 8, 16, 16))
        assert report["inference_gflops"] == pytest.approx(fc.get_total_flops() / 1e9), trainer.__name__
        assert report["parameters"] == sum(p.numel() for p in net.parameters())
    new, built = reports[nnUNetTrainerDCA], reports[nnUNetTrainerDCA_asBuilt]
    assert new["training_step_gflops"] > built["training_step_gflops"]  # D_A also runs on the labeled sample
    assert new["training_step_feature_maps_millions"] > built["training_step_feature_maps_millions"]
