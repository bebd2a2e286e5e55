"""``nnunetv2-dca gates``: sliding-window gate maps (shapes, simplex, stitching), per-region numbers on a case with a
known answer, slice choice, the figure, clear errors; and (slow) a DCA model trained with the stock command."""

from __future__ import annotations

import argparse
import json
import re
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from conftest import BIN, fresh_env, run_cmd
from netspec import REQ_IMPORT, tiny_arch_kwargs
from nnunetv2_dca.evaluation import gates as G
from nnunetv2_dca.evaluation import gates_plot as GP
from nnunetv2_dca.inference import ModelInputError, load_model, require_dca
from test_inference import write_nifti
from nnunetv2_dca.planning.class_groups import plans_class_groups

NUM_CLASSES = 8
GROUPS = [[3], [1, 4, 6], [2, 5, 7]]  # head, medium, tail
NAMES = ["head", "medium", "tail"]


def tiny_dca(dim: int = 3, in_ch: int = 1, **extra):
    torch.manual_seed(0)
    kw = tiny_arch_kwargs(dim, "plain", **{"class_groups": GROUPS, **extra})
    return get_network_from_plans("nnunetv2_dca.network.dca_unet.DCAPlainConvUNet", kw, REQ_IMPORT, in_ch,
                                  NUM_CLASSES, allow_init=True, deep_supervision=False)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The networks here are tiny: on a shared 2-core machine one thread is much faster than two competing ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def png_size(path: Path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


# ------------------------------------------------------------------------------------------------ sliding window
@pytest.mark.parametrize("deep_supervision", [False, True])
def test_sliding_window_shapes_simplex_and_single_tile_equals_forward(deep_supervision):
    net = tiny_dca()
    net.decoder.deep_supervision = deep_supervision
    data = torch.randn(1, 12, 20, 28)  # larger than the patch in y and x, smaller in z: padded and tiled
    logits, gates = G.sliding_window_gates(net, data, [8, 16, 16], tile_step_size=0.5)
    assert tuple(logits.shape) == (NUM_CLASSES, 12, 20, 28)
    assert tuple(gates.shape) == (3, 12, 20, 28)
    assert gates.min() >= 0 and gates.max() <= 1
    torch.testing.assert_close(gates.sum(0), torch.ones(12, 20, 28))
    assert net.training  # the caller's mode is restored
    # an image of exactly the patch size is one tile: the stitched maps are the network's own outputs
    x = torch.randn(1, 8, 16, 16)
    logits, gates = G.sliding_window_gates(net, x, [8, 16, 16])
    net.eval()
    with torch.no_grad():
        out = net.all_outputs(x[None])
    agg = out.aggregate[0] if deep_supervision else out.aggregate
    torch.testing.assert_close(logits, agg[0])
    torch.testing.assert_close(gates, out.gates[0][0])


def test_sliding_window_constant_gates_survive_stitching():
    """With the gate's last conv forced to constant logits the softmax is known everywhere; Gaussian and plain
    averaging of overlapping tiles must both return it exactly (the weights are normalised)."""
    net = tiny_dca()
    bias = torch.tensor([0.0, 1.0, 2.0])
    for dfam in net.decoder.aggregation.dfam:
        last = dfam.gate[-1]
        torch.nn.init.zeros_(last.weight)
        last.bias.data.copy_(bias)
    from nnunetv2_dca.network.dfam import DFAM_LOGIT_BOUND

    # DFAM soft-bounds its gate logits (b -> B tanh(b / B)) before the softmax
    expected = torch.softmax(DFAM_LOGIT_BOUND * torch.tanh(bias / DFAM_LOGIT_BOUND), 0)
    for gaussian in (True, False):
        _, gates = G.sliding_window_gates(net, torch.randn(1, 10, 20, 21), [8, 16, 16], 0.5, use_gaussian=gaussian)
        torch.testing.assert_close(gates, expected[:, None, None, None].expand_as(gates), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [(2, 20, 30), (1, 10, 12)])  # larger than the patch; smaller (padded)
def test_sliding_window_2d_network_tiles_every_slice(size):
    net = tiny_dca(dim=2, in_ch=3)
    logits, gates = G.sliding_window_gates(net, torch.randn(3, *size), [16, 24])
    assert tuple(logits.shape) == (NUM_CLASSES, *size) and tuple(gates.shape) == (3, *size)
    torch.testing.assert_close(gates.sum(0), torch.ones(size))


def test_non_dca_network_is_refused():
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    kw = tiny_arch_kwargs(3, "plain")
    plain = get_network_from_plans("dynamic_network_architectures.architectures.unet.PlainConvUNet", kw, REQ_IMPORT,
                                   1, NUM_CLASSES, allow_init=True, deep_supervision=False)
    assert isinstance(plain, PlainConvUNet)
    with pytest.raises(G.GatesError, match="gates needs a DCA model.*PlainConvUNet"):
        G.sliding_window_gates(plain, torch.randn(1, 8, 16, 16), [8, 16, 16])
    with pytest.raises(G.GatesError, match="gates needs a DCA model"):
        G.compute_gates(SimpleNamespace(network=plain), ["unused"], None)
    assert require_dca(SimpleNamespace(_orig_mod=tiny_dca())) is not None  # torch.compile wrapper unwrapped


# ------------------------------------------------------------------------------------------------------ numbers
def known_case():
    """4 slices of 2 x 3: labels per group in known places, gates chosen so every region's mean is known."""
    labels = np.zeros((4, 2, 3), dtype=np.int32)
    labels[0] = [[3, 3, 0], [0, 0, 0]]  # head (class 3): 2 voxels
    labels[1] = [[1, 4, 6], [0, 0, 0]]  # medium: 3 voxels
    labels[2] = [[2, 5, 0], [0, 0, 0]]  # tail: 2 voxels
    labels[3] = [[7, 0, 0], [0, 0, 9]]  # tail: 1 voxel; 9 plays the ignore label
    gates = np.zeros((3, 4, 2, 3), dtype=np.float32)
    gates[:] = np.array([0.5, 0.3, 0.2])[:, None, None, None]  # background everywhere: (0.5, 0.3, 0.2)
    for g, members in enumerate(GROUPS):
        mask = np.isin(labels, members)
        gates[:, mask] = 0.1
        gates[g, mask] = 0.8  # each expert takes over its own classes
    gates[:, 2, 0, 0] = [0.0, 0.0, 1.0]  # one tail voxel fully tail: tail mean (0.8 + 1 + 0.8) / 3
    gates[:, 2, 0, 1] = [0.1, 0.1, 0.8]
    return gates, labels


def test_gate_statistics_use_the_voxels_of_each_region():
    gates, labels = known_case()
    stats = G.gate_statistics(gates, labels, GROUPS, NAMES, ignore_label=9)
    assert list(stats) == ["background", "head", "medium", "tail"]
    assert {k: v["voxels"] for k, v in stats.items()} == {"background": 24 - 8 - 1, "head": 2, "medium": 3,
                                                          "tail": 3}
    assert stats["background"]["mean_gate"] == pytest.approx({"head": 0.5, "medium": 0.3, "tail": 0.2})
    assert stats["head"]["mean_gate"] == pytest.approx({"head": 0.8, "medium": 0.1, "tail": 0.1})
    assert stats["medium"]["mean_gate"] == pytest.approx({"head": 0.1, "medium": 0.8, "tail": 0.1})
    assert stats["tail"]["mean_gate"] == pytest.approx({"head": 0.2 / 3, "medium": 0.2 / 3, "tail": 2.6 / 3})
    # without an ignore label, label 9 is in no group and not background either
    assert G.gate_statistics(gates, labels, GROUPS, NAMES)["background"]["voxels"] == 15
    # an empty region has no mean
    empty = G.gate_statistics(gates, np.zeros_like(labels), GROUPS, NAMES)
    assert empty["tail"] == {"voxels": 0, "mean_gate": {"head": None, "medium": None, "tail": None}}
    with pytest.raises(ValueError, match="differ in shape"):
        G.gate_statistics(gates[:, :2], labels, GROUPS, NAMES)


def test_choose_slice_prefers_tail_then_foreground_then_middle():
    _, labels = known_case()
    assert G.choose_slice(labels, GROUPS, NAMES) == (2, "most predicted tail voxels")
    no_tail = np.where(np.isin(labels, GROUPS[2]), 0, labels)
    no_tail[1, 1] = 1  # slice 1 now has the most foreground
    assert G.choose_slice(no_tail, GROUPS, NAMES) == (1, "most predicted foreground voxels")
    assert G.choose_slice(np.zeros((5, 2, 2), int), GROUPS, NAMES) == (2, "middle slice, nothing predicted")


def test_plot_writes_a_readable_png_with_the_numbers(tmp_path):
    gates, labels = known_case()
    result = {"case": "case_x", "slice": 2, "slice_reason": "most predicted tail voxels",
              "space_short": "preprocessed space", "experts": NAMES,
              "class_groups": dict(zip(NAMES, GROUPS)), "channel": "CT",
              "prediction": G.gate_statistics(gates, labels, GROUPS, NAMES),
              "slice_prediction": G.gate_statistics(gates[:, 2], labels[2], GROUPS, NAMES)}
    lines = GP.summary_lines(result)
    assert lines[0] == "mean gate in predicted tail voxels (n=3): head 0.07, medium 0.07, tail 0.87"
    assert lines[1].startswith("mean gate in predicted background (n=15): head 0.50, medium 0.30, tail 0.20")
    out = tmp_path / "sub" / "gates.png"
    image = np.random.default_rng(0).normal(size=(2, 3))
    GP.plot_gates(str(out), image, gates[:, 2], labels[2], labels[2], result, {c: f"c{c}" for c in range(1, 10)})
    width, height = png_size(out)
    assert width > 1500 and height > 400
    assert [p.name for p in out.parent.iterdir()] == ["gates.png"]  # written atomically, no temporary left


def test_plot_shows_rgb_images_and_a_single_group(tmp_path):
    """2D RGB (e.g. H&E) images are shown in colour; one group ('all') has no tail line in the title."""
    labels = np.array([[[0, 1], [2, 1]]])
    gates = np.ones((1, 1, 2, 2), dtype=np.float32)
    result = {"case": "rgb", "slice": 0, "slice_reason": "chosen with --slice", "space_short": "preprocessed space",
              "experts": ["all"], "class_groups": {"all": [1, 2]}, "channel": "R",
              "prediction": G.gate_statistics(gates, labels, [[1, 2]], ["all"]),
              "slice_prediction": G.gate_statistics(gates[:, 0], labels[0], [[1, 2]], ["all"])}
    assert GP.summary_lines(result) == ["mean gate in predicted background (n=1): all 1.00"]
    assert G._is_rgb({"0": "R", "1": "G", "2": "B"}) and not G._is_rgb({"0": "T1", "1": "T2", "2": "FLAIR"})
    out = tmp_path / "rgb.png"
    GP.plot_gates(str(out), np.random.default_rng(0).random((2, 2, 3)), gates[:, 0], labels[0], None, result, {},
                 rgb=True)
    assert png_size(out)[0] > 1000


# ------------------------------------------------------------------------------------------------ inputs, errors
def test_model_folder_errors(tmp_path, monkeypatch):
    with pytest.raises(G.GatesError, match="model folder not found: .*missing"):
        G.resolve_model_folder(str(tmp_path / "missing"))
    (tmp_path / "m").mkdir()
    with pytest.raises(G.GatesError, match="plans.json is missing"):
        G.resolve_model_folder(str(tmp_path / "m"))
    monkeypatch.delenv("nnUNet_results", raising=False)
    with pytest.raises(G.GatesError, match="nnUNet_results is not set"):
        G.resolve_model_folder(None, "991")
    with pytest.raises(G.GatesError, match="either as -m"):
        G.resolve_model_folder(None, None)
    for f in ("plans.json", "dataset.json"):
        (tmp_path / "m" / f).write_text("{}")
    (tmp_path / "m" / "fold_1").mkdir()
    with pytest.raises(ModelInputError, match=r"checkpoint not found: .*fold_0.*checkpoint_final.pth.*fold_1"):
        load_model(str(tmp_path / "m"), "0")
    assert G.main(["-m", str(tmp_path / "missing"), "-i", "x_0000.nii.gz", "-o", str(tmp_path / "g.png")]) == 2


def test_subcommand_registers_on_a_subparsers_object():
    parser = argparse.ArgumentParser(prog="nnunetv2-dca")
    G.add_gates_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["gates", "-d", "4", "-tr", "T", "-i", "a_0000.nii.gz", "-o", "g.png", "--slice", "3"])
    assert args.command == "gates" and args.func is G.run_from_args
    assert (args.d, args.tr, args.p, args.c, args.f, args.checkpoint, args.device, args.slice, args.ref) == \
        ("4", "T", "nnUNetPlansDCA", "3d_fullres", "0", "checkpoint_final.pth", "cpu", 3, None)


# ------------------------------------------------------------------------------------------- end to end (slow)
DS, NAME = 994, "Dataset994_AbdomenPhantom"
PLANS, TRAINER = "nnUNetPlansDCA_CPU", "GatesTestTrainer"
TRAINER_SRC = '''
import torch
from nnunetv2_dca.trainers.dca import nnUNetTrainerDCA


class GatesTestTrainer(nnUNetTrainerDCA):
    """1 epoch x 2 iterations and no final validation: only a checkpoint of a DCA network is needed."""

    def __init__(self, plans, configuration, fold, dataset_json, device=None):
        super().__init__(plans, configuration, fold, dataset_json, device or torch.device("cuda"))
        self.num_epochs = 1
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1

    def perform_actual_validation(self, save_probabilities: bool = False):
        pass
'''


@pytest.fixture(scope="module")
def trained_dca(tmp_path_factory):
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    base = tmp_path_factory.mktemp("gates")
    plugin = base / "plugin"
    info = plugin / "dca_gates_testplugin-0.0.dist-info"
    info.mkdir(parents=True)
    (plugin / "dca_gates_testplugin.py").write_text(TRAINER_SRC)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dca-gates-testplugin\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(f"[nnunetv2_dca.classes]\n{TRAINER} = dca_gates_testplugin:{TRAINER}\n")
    write_phantom_dataset(str(base / "nnUNet_raw"), DS, labeled=5, unlabeled=1, test=1, seed=11)
    run_cmd([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(DS), "-pl", "nnUNetPlannerDCA_CPU", "-c",
             "3d_fullres", "-np", "1", "-npfp", "1"], fresh_env(base))
    env = fresh_env(base, pythonpath=str(plugin), training=True)
    run_cmd([str(BIN / "nnUNetv2_train"), str(DS), "3d_fullres", "0", "-tr", TRAINER, "-p", PLANS, "-device", "cpu"],
            env)
    model = base / "nnUNet_results" / NAME / f"{TRAINER}__{PLANS}__3d_fullres"
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()
    return base, env, model


@pytest.mark.slow
def test_gates_of_a_trained_dca_model(trained_dca, tmp_path):
    base, env, model = trained_dca
    raw = base / "nnUNet_raw" / NAME
    image = raw / "imagesTr" / "phantom_0000_0000.nii.gz"
    ref = raw / "labelsTr" / "phantom_0000.nii.gz"
    png = tmp_path / "gates.png"
    proc = run_cmd([str(BIN / "python"), "-m", "nnunetv2_dca.evaluation.gates", "-m", str(model), "-i", str(image),
                    "-ref", str(ref), "-o", str(png), "--json"], env)
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))
    width, height = png_size(png)
    assert width > 1500 and 400 < height < 2000
    assert result["case"] == "phantom_0000" and result["experts"] == ["head", "medium", "tail"]
    assert result["class_groups"] == dict(zip(result["experts"], plans_class_groups(json.loads(
        (model / "plans.json").read_text()), 14)[0]))
    assert len(result["shape"]) == 3 and 0 <= result["slice"] < result["shape"][0]
    for source in ("prediction", "reference"):
        stats = result[source]
        assert set(stats) == {"background", "head", "medium", "tail"}
        assert sum(v["voxels"] for v in stats.values()) == int(np.prod(result["shape"]))  # no ignore label
        for entry in stats.values():
            if entry["voxels"]:
                assert sum(entry["mean_gate"].values()) == pytest.approx(1.0, abs=1e-4)
                assert all(0.0 <= v <= 1.0 for v in entry["mean_gate"].values())
    assert result["reference"]["tail"]["voxels"] > 0  # the phantom has adrenal glands and the esophagus

    # -d/-tr/-p/-c as nnUNetv2_predict, a chosen slice, the table output
    proc = run_cmd([str(BIN / "python"), "-m", "nnunetv2_dca.evaluation.gates", "-d", str(DS), "-tr", TRAINER, "-p",
                    PLANS, "-i", str(image), "-o", str(tmp_path / "s0.png"), "--slice", "0"], env)
    assert "slice 0 of axis 0 (chosen with --slice)" in proc.stdout and "region from the prediction" in proc.stdout
    assert png_size(tmp_path / "s0.png")[0] > 1000

    # clear errors through the command line (the others are checked without a model above)
    bad_ref = tmp_path / "bad_ref.nii.gz"
    write_nifti(bad_ref, (3, 4, 5))
    for args, message in (
            (["-m", str(model), "-i", str(image), "-ref", str(bad_ref)], "reference .*bad_ref.nii.gz has shape"),
            (["-m", str(model), "-i", str(image), "--slice", "999"], "--slice 999 is outside")):
        proc = run_cmd([str(BIN / "python"), "-m", "nnunetv2_dca.evaluation.gates", *args, "-o",
                        str(tmp_path / "err.png")], env, check=False)
        assert proc.returncode == 2 and "nnunetv2-dca gates: error:" in proc.stdout, proc.stdout[-2000:]
        assert re.search(message, proc.stdout), (message, proc.stdout[-2000:])
    assert not (tmp_path / "err.png").exists()
