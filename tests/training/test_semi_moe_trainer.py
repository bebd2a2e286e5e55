"""nnUNetTrainerSemiMoE: plans -> Semi-MoE network mapping, the network nnU-Net's trainer and stock predictor build
from the plans (2D/3D, deep supervision on/off, stock and DCA plans), one training step in-process (finite loss,
gradients to the gate and every expert, which loss sees which images); slow: the stock commands end to end on a 2D RGB
phantom with stock plans (+ DCAPreprocessor) and on a 3D phantom with DCA CPU plans."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import numpy as np
import pytest
import torch

from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from conftest import BIN, fresh_env, run_cmd
from netspec import REQ_IMPORT, grad_sum, tiny_arch_kwargs
from nnunetv2_dca.network.architectures import SemiMoEArchitectureError, dca_architecture, semi_moe_architecture
from nnunetv2_dca.network.moe_unet import MoEUNet
from nnunetv2_dca.preprocessing.unlabeled import find_unlabeled_images
from nnunetv2_dca.trainers.semi_moe import nnUNetTrainerSemiMoE, nnUNetTrainerSemiMoE_voxelGate
from nnunetv2_dca.training.semi_moe import SemiMoETrainer, deep_supervision_weights

NUM_CLASSES = 3
STOCK = {"plain": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
         "resenc": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"}
MOE = {"plain": "nnunetv2_dca.network.moe_unet.MoEPlainConvUNet",
       "resenc": "nnunetv2_dca.network.moe_unet.MoEResidualEncoderUNet"}
MOE_KEYS = ["moe_loss_sup", "moe_loss_sup_experts", "moe_loss_balance", "moe_loss_consistency", "moe_gate_entropy",
            "moe_gate_entropy_per_input", "moe_gate_0", "moe_gate_1", "moe_gate_2"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny CPU tensors: one intra-op thread is faster and does not stall when other processes load the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def plans_architecture(dim: int, encoder: str) -> Dict:
    """A stock plan's ``architecture`` entry with tiny widths."""
    return {"network_class_name": STOCK[encoder], "arch_kwargs": tiny_arch_kwargs(dim, encoder),
            "_kw_requires_import": list(REQ_IMPORT)}


def patch(dim: int) -> List[int]:
    return [8, 16, 16] if dim == 3 else [16, 24]


# ----- plans -> network -----

@pytest.mark.parametrize("encoder", ["plain", "resenc"])
def test_semi_moe_architecture_maps_stock_dca_and_moe_networks(encoder):
    stock = plans_architecture(3, encoder)
    moe = semi_moe_architecture(stock, 4, "voxel", "network")
    assert moe["network_class_name"] == MOE[encoder]
    assert moe["arch_kwargs"] == {**tiny_arch_kwargs(3, encoder), "num_experts": 4, "gating": "voxel",
                                  "expert_scope": "network"}
    assert moe["_kw_requires_import"] == tuple(REQ_IMPORT)
    assert stock == plans_architecture(3, encoder)  # the plans entry is not modified
    dca = dca_architecture(stock, [[1], [2]])  # DCA plans: DCA network + DCA-only keys
    assert dca["network_class_name"] != STOCK[encoder] and "class_groups" in dca["arch_kwargs"]
    assert semi_moe_architecture(dca, 4, "voxel", "network") == moe
    assert semi_moe_architecture(moe, 4, "voxel", "network") == moe  # idempotent
    default = semi_moe_architecture(moe)  # the arguments replace the MoE keys
    assert [default["arch_kwargs"][k] for k in ("num_experts", "gating", "expert_scope")] == [3, "image", "decoder"]


def test_semi_moe_architecture_rejects_unknown_networks_and_bad_settings():
    primus = {"network_class_name": "dynamic_network_architectures.architectures.primus.Primus", "arch_kwargs": {},
              "_kw_requires_import": []}
    with pytest.raises(SemiMoEArchitectureError, match=r"no network for .*primus\.Primus"):
        semi_moe_architecture(primus)
    stock = plans_architecture(2, "plain")
    for bad, message in [({"num_experts": 0}, "num_experts"), ({"num_experts": 2.0}, "num_experts"),
                         ({"gating": "token"}, "gating"), ({"expert_scope": "layer"}, "expert_scope")]:
        with pytest.raises(SemiMoEArchitectureError, match=message):
            semi_moe_architecture(stock, **bad)


def _plans_manager(architecture: Dict, dim: int) -> PlansManager:
    return PlansManager({"dataset_name": "Dataset999_Test", "plans_name": "nnUNetPlans",
                         "configurations": {"cfg": {"architecture": architecture, "patch_size": patch(dim)}}})


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("deep_supervision", [True, False])
@pytest.mark.parametrize("trainer,plans", [(nnUNetTrainerSemiMoE, "stock-plain"),
                                           (nnUNetTrainerSemiMoE_voxelGate, "dca-resenc")])
def test_build_network_architecture_from_plans(dim, deep_supervision, trainer, plans):
    """The call nnU-Net's trainer and nnUNetv2_predict make (the predictor checks the signature for 'plans_manager'
    and calls it on the class) gives the Semi-MoE network with nnU-Net's output format."""
    kind, encoder = plans.split("-")
    arch = plans_architecture(dim, encoder)
    if kind == "dca":
        arch = dca_architecture(arch, [[1], [2]])
    pm = _plans_manager(arch, dim)
    assert "plans_manager" in inspect.signature(trainer.build_network_architecture).parameters
    net = trainer.build_network_architecture(pm, pm.get_configuration("cfg"), 2, NUM_CLASSES,
                                             enable_deep_supervision=deep_supervision)
    assert isinstance(net, MoEUNet) and type(net).__name__ == MOE[encoder].rsplit(".", 1)[-1]
    assert (net.num_experts, net.gating, net.expert_scope) == (3, trainer.gating, "decoder")
    assert pm.get_configuration("cfg").network_arch_class_name == arch["network_class_name"]  # plans untouched
    p = patch(dim)
    with torch.no_grad():
        out = net(torch.randn(2, 2, *p))
    if deep_supervision:  # 3 stages -> full and half resolution, highest first
        assert isinstance(out, list) and [tuple(o.shape) for o in out] == \
            [(2, NUM_CLASSES, *p), (2, NUM_CLASSES, *[s // 2 for s in p])]
    else:
        assert isinstance(out, torch.Tensor) and tuple(out.shape) == (2, NUM_CLASSES, *p)


# ----- one training step -----

def _tiny_net(dim: int, gating: str, deep_supervision: bool) -> MoEUNet:
    arch = plans_architecture(dim, "plain")
    pm = _plans_manager(arch, dim)
    cls = nnUNetTrainerSemiMoE_voxelGate if gating == "voxel" else nnUNetTrainerSemiMoE
    return cls.build_network_architecture(pm, pm.get_configuration("cfg"), 1, NUM_CLASSES, deep_supervision)


def _fake_trainer(net, deep_supervision: bool, lam: float = 0.5, expert_weight: float = 1.0,
                  balance_weight: float = 0.1):
    loss = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    if deep_supervision:
        loss = DeepSupervisionWrapper(loss, [2 / 3, 1 / 3])
    fake = SimpleNamespace(network=net, loss=loss, unsupervised_weight=lambda: lam, num_experts=3,
                           expert_supervision_weight=expert_weight, balance_weight=balance_weight,
                           consistency_detach_target=False)
    fake.step_forward = lambda data, unlabeled, **kw: SemiMoETrainer.step_forward(fake, data, unlabeled, **kw)
    return fake


def _batch(dim: int, deep_supervision: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    p = patch(dim)
    data, unlabeled = torch.randn(2, 1, *p, generator=g), torch.randn(2, 1, *p, generator=g)
    target = torch.randint(0, NUM_CLASSES, (2, 1, *p), generator=g).float()
    half = (slice(None), slice(None)) + (slice(None, None, 2),) * dim
    return data, ([target, target[half]] if deep_supervision else target), unlabeled


@pytest.mark.parametrize("dim,gating,deep_supervision", [(2, "image", True), (2, "voxel", False),
                                                         (3, "image", False), (3, "voxel", True)])
def test_one_step_gives_finite_loss_and_gradients_to_gate_and_every_expert(dim, gating, deep_supervision):
    torch.manual_seed(0)
    net = _tiny_net(dim, gating, deep_supervision)
    fake = _fake_trainer(net, deep_supervision)
    out = SemiMoETrainer.semi_supervised_losses(fake, *_batch(dim, deep_supervision))
    assert sorted(k for k in out if k != "loss") == sorted(SemiMoETrainer.extra_log_keys(fake)) == sorted(MOE_KEYS)
    v = {k: float(t.detach()) for k, t in out.items()}
    assert all(math.isfinite(x) for x in v.values())
    expected = (v["moe_loss_sup"] + v["moe_loss_sup_experts"] + 0.1 * v["moe_loss_balance"]
                + 0.5 * v["moe_loss_consistency"])
    assert v["loss"] == pytest.approx(expected, rel=1e-5)
    # the gate starts uniform (zero output layer): balanced, maximal entropy, usage 1/K each
    assert v["moe_loss_balance"] == pytest.approx(0, abs=1e-6)
    assert v["moe_gate_entropy"] == pytest.approx(math.log(3), abs=1e-5)
    assert v["moe_gate_entropy_per_input"] == pytest.approx(math.log(3), abs=1e-5)
    assert [v[f"moe_gate_{k}"] for k in range(3)] == pytest.approx([1 / 3] * 3, abs=1e-6)
    assert v["moe_loss_consistency"] > 0  # differently initialised experts disagree
    out["loss"].backward()
    assert grad_sum(net.gate) > 0 and grad_sum(net.encoder) > 0
    assert all(grad_sum(expert) > 0 for expert in net.decoder.experts)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_supervised_losses_see_the_labeled_and_consistency_the_unlabeled_images_only():
    """Instance norm keeps the samples of a batch independent: changing the unlabeled images must leave the supervised
    losses unchanged, changing the labeled images the consistency loss."""
    torch.manual_seed(0)
    net = _tiny_net(2, "image", True)
    fake = _fake_trainer(net, True)
    data, target, unlabeled = _batch(2, True)
    with torch.no_grad():
        ref = SemiMoETrainer.semi_supervised_losses(fake, data, target, unlabeled)
        other_unlabeled = SemiMoETrainer.semi_supervised_losses(fake, data, target, unlabeled.flip(-1) * 2)
        other_labeled = SemiMoETrainer.semi_supervised_losses(fake, data.flip(-1) * 2, target, unlabeled)
    for key in ("moe_loss_sup", "moe_loss_sup_experts"):
        assert float(other_unlabeled[key]) == pytest.approx(float(ref[key]), rel=1e-6)
        assert float(other_labeled[key]) != pytest.approx(float(ref[key]), rel=1e-6)
    assert float(other_labeled["moe_loss_consistency"]) == pytest.approx(float(ref["moe_loss_consistency"]), rel=1e-6)
    assert float(other_unlabeled["moe_loss_consistency"]) != pytest.approx(float(ref["moe_loss_consistency"]),
                                                                          rel=1e-6)


@pytest.mark.parametrize("expert_weight", [0.0, 1.0])
def test_expert_supervision_trains_experts_the_gate_ignores(expert_weight):
    """Gate routes every image to expert 0: from the mixture loss alone, experts 1 and 2 learn nothing; the per-expert
    supervised loss (default weight 1) still trains them. Unsupervised and balance terms off to isolate it."""
    torch.manual_seed(0)
    net = _tiny_net(2, "image", False)
    with torch.no_grad():
        net.gate.mlp[-1].bias.copy_(torch.tensor([30.0, -30.0, -30.0]))
    fake = _fake_trainer(net, False, lam=0.0, expert_weight=expert_weight, balance_weight=0.0)
    out = SemiMoETrainer.semi_supervised_losses(fake, *_batch(2, False))
    assert float(out["moe_gate_0"].detach()) == pytest.approx(1.0)
    assert ("moe_loss_sup_experts" in out) == (expert_weight > 0)
    assert ("moe_loss_sup_experts" in SemiMoETrainer.extra_log_keys(fake)) == (expert_weight > 0)
    out["loss"].backward()
    grads = [grad_sum(expert) for expert in net.decoder.experts]
    assert grads[0] > 0
    if expert_weight == 0:
        assert max(grads[1:]) < 1e-12
    else:
        assert min(grads[1:]) > 1e-3


def test_consistency_uses_the_supervised_loss_scale_weights():
    loss = DeepSupervisionWrapper(torch.nn.MSELoss(), [0.8, 0.2, 0.0])
    assert deep_supervision_weights(loss, 3) == pytest.approx([0.8, 0.2, 0.0])
    assert deep_supervision_weights(torch.nn.MSELoss(), 3) is None


# ----- stock commands end to end -----

def _train_predict(base: Path, ds: int, config: str, plans: str, trainer: str, env: Dict[str, str],
                   train_env: Dict[str, str], name: str):
    run_cmd([str(BIN / "nnUNetv2_train"), str(ds), config, "0", "-tr", trainer, "-p", plans, "-device", "cpu"],
            train_env)
    out = base / "nnUNet_results" / name / f"{trainer}__{plans}__{config}" / "fold_0"
    pred = base / "pred"
    run_cmd([str(BIN / "nnUNetv2_predict"), "-i", str(base / "nnUNet_raw" / name / "imagesTs"), "-o", str(pred),
             "-d", str(ds), "-c", config, "-f", "0", "-tr", trainer, "-p", plans, "-device", "cpu", "-npp", "0",
             "-nps", "0", "--disable_tta"], env)
    return out, pred


def _assert_moe_training_logged(out: Path) -> None:
    final = torch.load(out / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert final["trainer_name"] == "nnUNetTrainerSemiMoE_smoke"
    log = final["logging"]
    for key in MOE_KEYS + ["ssl_lambda"]:
        assert len(log[key]) == 2 and all(math.isfinite(v) for v in log[key]), key
    assert sum(log[f"moe_gate_{k}"][-1] for k in range(3)) == pytest.approx(1.0, abs=1e-4)
    assert any(k.startswith("gate.") for k in final["network_weights"])
    assert (out / "progress_semi_supervised.png").stat().st_size > 10_000
    assert (out / "validation" / "summary.json").is_file()
    text = "".join(p.read_text() for p in out.glob("training_log_*.txt"))
    assert "Semi-MoE: 3 experts (decoder scope), image gating" in text and "moe_loss_consistency" in text


def test_unlabeled_rgb_pngs_are_found_as_nnunet_reads_them(tmp_path: Path):
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    raw = write_phantom_dataset(str(tmp_path), 992, labeled=1, unlabeled=2, test=0, seed=1, dim=2)
    cases = find_unlabeled_images(raw)
    assert sorted(cases) == ["phantom_0001", "phantom_0002"]
    assert all(len(files) == 1 and files[0].endswith("_0000.png") for files in cases.values())


@pytest.mark.slow
def test_2d_rgb_stock_plans_with_dca_preprocessor_end_to_end(tmp_path: Path):
    """The README's recipe for stock plans: ``-preprocessor_name DCAPreprocessor`` stores the preprocessor in the
    plans, so plan_and_preprocess also writes ``nnUNetPlans_2d_unlabeled``; then the stock train and predict."""
    from nnunetv2_dca.data.phantom import write_phantom_dataset
    import SimpleITK as sitk

    ds, name = 993, "Dataset993_GlandPhantom"
    base = tmp_path
    raw = Path(write_phantom_dataset(str(base / "nnUNet_raw"), ds, labeled=5, unlabeled=4, test=2, seed=5, sites=3,
                                     dim=2))
    # unlabeled RGB images as nnU-Net's NaturalImage2DIO stores them: one <case>_0000.png holding 3 channels
    env = fresh_env(base)
    run_cmd([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(ds), "-c", "2d", "-preprocessor_name",
             "DCAPreprocessor", "-np", "1", "-npfp", "1"], env)
    prep = base / "nnUNet_preprocessed" / name
    assert len(list((prep / "nnUNetPlans_2d_unlabeled").glob("*.pkl"))) == 4
    plans_file = prep / "nnUNetPlans.json"
    plans = json.loads(plans_file.read_text())
    cfg = plans["configurations"]["2d"]
    assert cfg["preprocessor_name"] == "DCAPreprocessor"
    assert cfg["architecture"]["network_class_name"] == STOCK["plain"]
    # CPU time only: the stock 2d plan is 32..512 features wide; the network width does not enter preprocessing
    n = cfg["architecture"]["arch_kwargs"]["n_stages"]
    cfg["architecture"]["arch_kwargs"]["features_per_stage"] = [min(8 * 2 ** i, 32) for i in range(n)]
    plans_file.write_text(json.dumps(plans, indent=1))

    out, pred = _train_predict(base, ds, "2d", "nnUNetPlans", "nnUNetTrainerSemiMoE_smoke", env,
                               fresh_env(base, training=True), name)
    _assert_moe_training_logged(out)
    preds = sorted(pred.glob("*.png"))
    assert [p.name for p in preds] == ["phantom_0009.png", "phantom_0010.png"]
    for p in preds:
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "imagesTs" / p.name.replace(".png", "_0000.png"))))
        assert seg.shape == image.shape[:2] and set(np.unique(seg).tolist()) <= {0, 1, 2, 3}

    # stock plans preprocessed without DCAPreprocessor: the error says how to get the unlabeled images
    (prep / "nnUNetPlans_2d_unlabeled").rename(prep / "hidden")
    cfg["preprocessor_name"] = "DefaultPreprocessor"
    plans_file.write_text(json.dumps(plans, indent=1))
    proc = run_cmd([str(BIN / "nnUNetv2_train"), str(ds), "2d", "1", "-tr", "nnUNetTrainerSemiMoE_smoke", "-device",
                    "cpu"], fresh_env(base, training=True), check=False)
    assert proc.returncode != 0 and "needs unlabeled images" in proc.stdout
    assert (f"nnUNetv2_plan_and_preprocess -d {name} -pl ExperimentPlanner -overwrite_plans_name nnUNetPlans -c 2d "
            f"-preprocessor_name DCAPreprocessor") in " ".join(proc.stdout.split())


@pytest.mark.slow
def test_3d_dca_cpu_plans_end_to_end(tmp_path: Path):
    """DCA plans (the DCA network in the plans) -> the Semi-MoE network on the same encoder, trained and predicted
    through the stock commands."""
    from nnunetv2_dca.data.phantom import write_phantom_dataset
    import SimpleITK as sitk

    ds, name, plans = 994, "Dataset994_AbdomenPhantom", "nnUNetPlansDCA_CPU"
    base = tmp_path
    raw = Path(write_phantom_dataset(str(base / "nnUNet_raw"), ds, labeled=5, unlabeled=2, test=1, seed=11))
    env = fresh_env(base)
    run_cmd([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(ds), "-pl", "nnUNetPlannerDCA_CPU", "-c",
             "3d_fullres", "-np", "1", "-npfp", "1"], env)
    out, pred = _train_predict(base, ds, "3d_fullres", plans, "nnUNetTrainerSemiMoE_smoke", env,
                               fresh_env(base, training=True), name)
    _assert_moe_training_logged(out)
    stored = json.loads((out.parent / "plans.json").read_text())
    assert stored["configurations"]["3d_fullres"]["architecture"]["network_class_name"].endswith("DCAPlainConvUNet")
    preds = sorted(pred.glob("*.nii.gz"))
    assert len(preds) == 1
    seg = sitk.ReadImage(str(preds[0]))
    image = sitk.ReadImage(str(next((raw / "imagesTs").glob("*_0000.nii.gz"))))
    assert seg.GetSize() == image.GetSize()
    assert int(sitk.GetArrayFromImage(seg).max()) <= 13


@pytest.mark.parametrize("gating", ["image", "voxel"])
def test_semi_moe_losses_read_nothing_back_from_the_device(gating, monkeypatch):
    from host_reads import count_host_reads

    torch.manual_seed(0)
    net = _tiny_net(2, gating, True)
    batch = _batch(2, True)
    with count_host_reads(monkeypatch) as reads:
        out = SemiMoETrainer.semi_supervised_losses(_fake_trainer(net, True), *batch)
    assert reads == [] and all(torch.is_tensor(v) for v in out.values())
