"""DCA planners through the stock commands: plans, own data folders, the real network from the plans, the VRAM
factor, the fingerprint key, user groups, bad settings; and the stock predictor running the planned network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import BIN, SHARED, fresh_env, run_cmd
from nnunetv2_dca.network.dca_unet import DCAPlainConvUNet, DCAResidualEncoderUNet
from nnunetv2_dca.planning.class_groups import plans_class_groups
from nnunetv2_dca.planning.grouping import log_gap_grouping
from nnunetv2_dca.planning.labels import CLASS_COUNTS_KEY, count_label_voxels
from nnunetv2_dca.network.architectures import stock_architecture
from nnunetv2_dca.planning.planner import dca_feature_map_estimate

pytestmark = pytest.mark.slow
DS = 994
NAME = "Dataset994_AbdomenPhantom"
EXAMPLES = SHARED / "data" / "totalsegmentator-examples"


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """Phantom planned and preprocessed with the stock command and -pl nnUNetPlannerDCA (3d_fullres)."""
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    base = tmp_path_factory.mktemp("dcaplan")
    write_phantom_dataset(str(base / "nnUNet_raw"), DS, labeled=5, unlabeled=2, test=1, seed=5)
    env = fresh_env(base)
    out = run_cmd([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(DS), "-pl", "nnUNetPlannerDCA",
                   "-c", "3d_fullres", "-np", "1", "-npfp", "1"], env).stdout
    return base, env, out


def _plans(base: Path, name: str = "nnUNetPlansDCA") -> dict:
    return json.loads((base / "nnUNet_preprocessed" / NAME / f"{name}.json").read_text())


def test_plans_carry_groups_network_and_own_folders(planned):
    base, _, _ = planned
    plans = _plans(base)
    raw = base / "nnUNet_raw" / NAME
    dataset_json = json.loads((raw / "dataset.json").read_text())
    # groups: the log-gap rule on the labeled counts (a stock fingerprint has no counts: the planner counted)
    counts = count_label_voxels(str(raw), dataset_json)
    expected = log_gap_grouping(counts).groups
    assert plans_class_groups(plans, 14)[0] == [sorted(g) for g in expected]
    assert plans["dca"]["planned_class_groups"] == [sorted(g) for g in expected]  # provenance copy
    assert plans["dca"]["class_voxel_counts"] == {str(k): v for k, v in counts.items()}
    assert expected[0] == [6] and sorted(expected[-1]) == [5, 12, 13]  # liver head; esophagus + adrenals tail
    for cfg_name in ("2d", "3d_fullres"):
        cfg = plans["configurations"][cfg_name]
        assert cfg["data_identifier"] == f"nnUNetPlansDCA_{cfg_name}"
        assert cfg["preprocessor_name"] == "DCAPreprocessor"
        arch = cfg["architecture"]
        assert arch["network_class_name"] == "nnunetv2_dca.network.dca_unet.DCAPlainConvUNet"
        assert arch["arch_kwargs"]["class_groups"] == [sorted(g) for g in expected]
        planned_dec = arch["arch_kwargs"]["n_conv_per_stage_decoder"]
        assert arch["arch_kwargs"]["expert_n_conv_per_stage"] == [
            [max(1, n - 1) for n in planned_dec], list(planned_dec), [n + 1 for n in planned_dec]]
        assert arch["arch_kwargs"]["expert_dilations"] == [2, 1, 1]
    prep = base / "nnUNet_preprocessed" / NAME
    assert (prep / "nnUNetPlansDCA_3d_fullres").is_dir()
    assert not [p.name for p in prep.iterdir() if p.name.startswith("nnUNetPlans_")]  # never nnU-Net's folders


def test_network_from_plans_runs_in_the_stock_predictor(planned):
    """What nnUNetv2_predict does with a checkpoint of these plans: rebuild from plans, load, sliding window."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    base, _, _ = planned
    pm = PlansManager(_plans(base))
    cm = pm.get_configuration("3d_fullres")
    dataset_json = json.loads((base / "nnUNet_preprocessed" / NAME / "dataset.json").read_text())
    lm = pm.get_label_manager(dataset_json)
    n_in = determine_num_input_channels(pm, cm, dataset_json)
    from nnunetv2_dca.trainers.dca import nnUNetTrainerDCA

    torch.manual_seed(0)
    # nnU-Net builds through the trainer class (its recipe: expert heads, prediction output), for training and predict
    trained = nnUNetTrainerDCA.build_network_architecture(pm, cm, n_in, lm.num_segmentation_heads, True)
    assert isinstance(trained, DCAPlainConvUNet) and trained.class_groups == plans_class_groups(_plans(base), 14)[0]
    assert trained.prediction_output == nnUNetTrainerDCA.prediction_output
    inference_net = nnUNetTrainerDCA.build_network_architecture(pm, cm, n_in, lm.num_segmentation_heads, False)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.manual_initialization(inference_net, pm, cm, [trained.state_dict()], dataset_json, "nnUNetTrainerDCA",
                                    None)  # load_state_dict inside is strict
    image_file = next((base / "nnUNet_raw" / NAME / "imagesTs").glob("*_0000.nii.gz"))
    img = sitk.ReadImage(str(image_file))
    data = sitk.GetArrayFromImage(img)[None].astype(np.float32)
    props = {"spacing": list(img.GetSpacing())[::-1], "sitk_stuff": {"spacing": img.GetSpacing(),
             "origin": img.GetOrigin(), "direction": img.GetDirection()}}
    seg = predictor.predict_single_npy_array(data, props)
    assert seg.shape == data.shape[1:]
    assert set(np.unique(seg)) <= set(range(14))


def test_vram_estimate_of_chosen_plan_stays_within_target(planned):
    """A tight -gpu_memory_target: the DCA plan shrinks its patch where the stock plan does not, and the DCA
    estimate (all decoders, labeled + unlabeled batch) of the chosen patch/batch stays within nnU-Net's reference."""
    base, env, _ = planned
    target_gb = 1.0
    for planner, name in (("ExperimentPlanner", "T_stock"), ("nnUNetPlannerDCA", "T_dca")):
        run_cmd([str(BIN / "nnUNetv2_plan_experiment"), "-d", str(DS), "-pl", planner, "-gpu_memory_target",
                 str(target_gb), "-overwrite_plans_name", name], env)
    stock, dca = _plans(base, "T_stock"), _plans(base, "T_dca")
    reference, ref_bs = 560_000_000 * target_gb / 8, 2  # nnU-Net's 3D reference for this target
    cfg = dca["configurations"]["3d_fullres"]
    est = dca_feature_map_estimate(cfg["patch_size"], 1, 14, cfg["architecture"])
    # nnU-Net's rule: estimate / ref_bs * batch_size <= reference (batch size rounded to nearest)
    assert est / ref_bs * cfg["batch_size"] <= reference + 0.5 * est / ref_bs
    stock_cfg = stock["configurations"]["3d_fullres"]
    assert np.prod(cfg["patch_size"]) < np.prod(stock_cfg["patch_size"])
    # the stock patch would not fit a DCA step within the target
    over = dca_feature_map_estimate(stock_cfg["patch_size"], 1, 14, {**cfg["architecture"], "arch_kwargs": {
        **cfg["architecture"]["arch_kwargs"], **{k: stock_cfg["architecture"]["arch_kwargs"][k] for k in (
            "n_stages", "kernel_sizes", "strides", "features_per_stage", "n_conv_per_stage",
            "n_conv_per_stage_decoder")},
        "expert_n_conv_per_stage": None}})
    assert over / ref_bs * 2 > reference
    # stock_architecture undoes the DCA layer exactly
    assert stock_architecture(cfg["architecture"])["network_class_name"].endswith("unet.PlainConvUNet")


def test_resenc_m_preset_builds_the_dca_resenc_network(planned):
    base, env, _ = planned
    run_cmd([str(BIN / "nnUNetv2_plan_experiment"), "-d", str(DS), "-pl", "nnUNetPlannerDCAResEncM"], env)
    plans = _plans(base, "nnUNetPlansDCAResEncM")
    cfg = plans["configurations"]["3d_fullres"]
    # ResEnc presets reuse nnUNetPlans_* folders in nnU-Net; DCA plans never do
    assert cfg["data_identifier"] == "nnUNetPlansDCAResEncM_3d_fullres"
    assert cfg["architecture"]["arch_kwargs"]["expert_n_conv_per_stage"][-1] == [2] * (
        cfg["architecture"]["arch_kwargs"]["n_stages"] - 1)
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    net = get_network_from_plans(cfg["architecture"]["network_class_name"], cfg["architecture"]["arch_kwargs"],
                                 cfg["architecture"]["_kw_requires_import"], 1, 14, allow_init=False)
    assert isinstance(net, DCAResidualEncoderUNet)


def test_fingerprint_extractor_adds_class_counts(planned):
    base, env, _ = planned
    fp_file = base / "nnUNet_preprocessed" / NAME / "dataset_fingerprint.json"
    assert CLASS_COUNTS_KEY not in json.loads(fp_file.read_text())  # made by the stock extractor
    # cached fingerprint (no --clean): the key is added without recomputing the rest
    before = json.loads(fp_file.read_text())
    run_cmd([str(BIN / "nnUNetv2_extract_fingerprint"), "-d", str(DS), "-np", "1", "-fpe",
             "DCAFingerprintExtractor"], env)
    after = json.loads(fp_file.read_text())
    counts = count_label_voxels(str(base / "nnUNet_raw" / NAME), json.loads(
        (base / "nnUNet_raw" / NAME / "dataset.json").read_text()))
    assert after[CLASS_COUNTS_KEY] == {str(k): v for k, v in counts.items()}
    assert after["spacings"] == before["spacings"]


def test_user_groups_file_and_bad_settings(planned):
    base, env, _ = planned
    groups_file = base / "nnUNet_preprocessed" / NAME / "dca_groups.json"
    try:
        groups_file.write_text(json.dumps({"num_groups": 4}))
        run_cmd([str(BIN / "nnUNetv2_plan_experiment"), "-d", str(DS), "-pl", "nnUNetPlannerDCA",
                 "-overwrite_plans_name", "G4"], env)
        g4 = _plans(base, "G4")
        assert len(g4["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["class_groups"]) == 4
        assert plans_class_groups(g4, 14)[1] == ["head", "medium_1", "medium_2", "tail"]

        groups_file.write_text(json.dumps({"groups": [[6], [1, 2, 3], [5, 12, 13, 99]]}))
        proc = run_cmd([str(BIN / "nnUNetv2_plan_experiment"), "-d", str(DS), "-pl", "nnUNetPlannerDCA",
                        "-overwrite_plans_name", "Gbad"], env, check=False)
        assert proc.returncode != 0 and "unknown class 99" in proc.stdout
        assert not (base / "nnUNet_preprocessed" / NAME / "Gbad.json").exists()
    finally:
        groups_file.unlink(missing_ok=True)
    proc = run_cmd([str(BIN / "nnUNetv2_plan_experiment"), "-d", str(DS), "-pl", "nnUNetPlannerDCA",
                    "-overwrite_plans_name", "nnUNetPlans"], env, check=False)
    assert proc.returncode != 0 and "belongs to nnU-Net's own plans" in proc.stdout


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="../shared/data/totalsegmentator-examples not present")
def test_planner_on_the_real_ct(tmp_path):
    """P1 full, remapped to the 13 Synapse organs: head = liver, tail = adrenals + esophagus (zero voxels)."""
    mapping = json.loads((EXAMPLES / "synapse13_map.json").read_text())["from_total_ct"]
    raw = tmp_path / "nnUNet_raw" / "Dataset995_RealCT"
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    shutil.copy(EXAMPLES / "example_ct.nii.gz", raw / "imagesTr" / "p1_0000.nii.gz")
    seg = sitk.ReadImage(str(EXAMPLES / "example_seg_fast_force_split.nii.gz"))
    arr = sitk.GetArrayFromImage(seg)
    lut = np.zeros(int(arr.max()) + 1, dtype=np.uint8)
    for src, dst in mapping.items():
        if int(src) < lut.size:
            lut[int(src)] = dst
    out = sitk.GetImageFromArray(lut[arr])
    out.CopyInformation(seg)
    sitk.WriteImage(out, str(raw / "labelsTr" / "p1.nii.gz"))
    from nnunetv2_dca.data.phantom import SYNAPSE_LABELS

    (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": SYNAPSE_LABELS,
                                                  "numTraining": 1, "file_ending": ".nii.gz"}))
    env = fresh_env(tmp_path)
    run_cmd([str(BIN / "nnUNetv2_extract_fingerprint"), "-d", "995", "-np", "1", "-fpe",
             "DCAFingerprintExtractor"], env)
    proc = run_cmd([str(BIN / "nnUNetv2_plan_experiment"), "-d", "995", "-pl", "nnUNetPlannerDCA"], env)
    assert "esophagus" in proc.stdout  # the zero-voxel warning names the class
    plans = json.loads((tmp_path / "nnUNet_preprocessed" / "Dataset995_RealCT" / "nnUNetPlansDCA.json").read_text())
    groups = plans_class_groups(plans, 14, "3d_fullres")[0]
    assert groups[0] == [6] and sorted(groups[-1]) == [5, 12, 13]
    assert plans["dca"]["zero_voxel_classes"] == [5]
    assert plans["dca"]["class_voxel_counts"]["6"] == 41692  # the examples' README table


def test_groups_command_reads_the_plans_and_saves_user_groups(planned):
    base, env, _ = planned
    nnunetv2_dca = str(BIN / "nnunetv2-dca")
    out = json.loads(run_cmd([nnunetv2_dca, "groups", "-d", str(DS), "--json"], env).stdout)
    assert out["groups"] == plans_class_groups(_plans(base), 14)[0] and out["source"] == "plans nnUNetPlansDCA"
    groups_file = base / "nnUNet_preprocessed" / NAME / "dca_groups.json"
    try:
        run_cmd([nnunetv2_dca, "groups", "-d", str(DS), "--groups", "6;1,2,3,4,7,8,9,10,11;5,12,13", "--save"], env)
        assert json.loads(groups_file.read_text()) == {"groups": [[6], [1, 2, 3, 4, 7, 8, 9, 10, 11], [5, 12, 13]]}
        proc = run_cmd([nnunetv2_dca, "groups", "-d", str(DS), "--groups", "6;1,2", "--save"], env, check=False)
        assert proc.returncode == 2 and "missing" in proc.stdout
        assert json.loads(groups_file.read_text())["groups"][0] == [6]  # the bad call wrote nothing
    finally:
        groups_file.unlink(missing_ok=True)
