"""The candidates of issue 25's screen (docs/dca.md, "Screened candidates"): a confidence threshold on the fused
pseudo-labels, a mean teacher, experts of equal capacity, and how their recipes are keyed."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from nnunetv2_dca.training.dca import RECIPE_ATTRIBUTES, DCATrainer, ema_update, recipe, with_ignore_label
from nnunetv2_dca.training.semi_supervised import nnUNetTrainerSemiSupervised

from conftest import BIN, fresh_env, run_cmd
from dcanets import DCA_CLASS, GROUPS, REQUIRES_IMPORT, _batch, _fake_trainer, _tiny_net, nnunet_loss, tiny_arch_kwargs

DS, NAME, PLANS = 989, "Dataset989_AbdomenPhantom", "nnUNetPlansDCA_CPU"


def test_options_enter_the_recipe_only_when_on():
    """Results stored before the options existed keep their keys; a candidate's key differs from the default's."""
    from nnunetv2_dca.trainers import dca as t

    assert set(recipe(t.nnUNetTrainerDCA)) == set(RECIPE_ATTRIBUTES)
    assert recipe(t.nnUNetTrainerDCA_confidence)["pseudo_label_confidence"] == 0.9
    assert recipe(t.nnUNetTrainerDCA_ema)["ema_teacher_momentum"] == 0.99
    assert recipe(t.nnUNetTrainerDCA_equalExperts)["equal_capacity_experts"] is True
    assert recipe(t.nnUNetTrainerDCA_lambda01)["lambda_max"] == 0.1
    candidates = [t.nnUNetTrainerDCA_confidence, t.nnUNetTrainerDCA_ema, t.nnUNetTrainerDCA_equalExperts,
                  t.nnUNetTrainerDCA_lambda01]
    keys = [recipe(c) for c in candidates]
    assert all(k != recipe(t.nnUNetTrainerDCA) for k in keys)
    assert all(recipe(c) == recipe(getattr(t, c.__name__ + "_budget")) for c in candidates)


@pytest.mark.parametrize("deep_supervision", [True, False])
def test_loss_with_an_ignore_label_skips_those_voxels_and_leaves_the_original_alone(deep_supervision):
    torch.manual_seed(0)
    loss = nnunet_loss(deep_supervision)
    ignoring = with_ignore_label(loss, 6)
    logits = [torch.randn(2, 6, 4, 8, 8), torch.randn(2, 6, 2, 4, 4)]
    target = [torch.randint(0, 6, (2, 1, 4, 8, 8)).float(), torch.randint(0, 6, (2, 1, 2, 4, 4)).float()]
    if not deep_supervision:
        logits, target = logits[0], target[0]
    ts = target if deep_supervision else [target]
    # nothing ignored: nnU-Net's loss
    torch.testing.assert_close(ignoring(logits, target), loss(logits, target))
    # a masked voxel's own class does not matter
    masked_a = [torch.where(t == 1, torch.full_like(t, 6), t) for t in ts]
    masked_b = [torch.where(t == 1, torch.full_like(t, 6), t) for t in ts]
    changed = [torch.where(t == 2, torch.zeros_like(t), t) for t in ts]
    assert not torch.equal(loss(logits, target if deep_supervision else ts[0]),
                           loss(logits, changed if deep_supervision else changed[0]))
    a = ignoring(logits, masked_a if deep_supervision else masked_a[0])
    b = ignoring(logits, masked_b if deep_supervision else masked_b[0])
    torch.testing.assert_close(a, b)
    inner = loss.loss if deep_supervision else loss
    assert inner.ignore_label is None and inner.ce.ignore_index != 6


def test_confidence_threshold_drops_uncertain_pseudo_labels_from_the_aggregation_loss():
    net = _tiny_net(True)
    data, target, unlabeled = _batch(True)
    plain = DCATrainer.semi_supervised_losses(_fake_trainer(net, True), data, target, unlabeled)
    everything = DCATrainer.semi_supervised_losses(_fake_trainer(net, True, confidence=0.0), data, target, unlabeled)
    assert float(everything["dca_pseudo_kept"]) == 1.0
    torch.testing.assert_close(everything["dca_loss_unsup"], plain["dca_loss_unsup"])
    some = DCATrainer.semi_supervised_losses(_fake_trainer(net, True, confidence=0.5), data, target, unlabeled)
    assert 0.0 <= float(some["dca_pseudo_kept"]) <= 1.0
    # nothing is that confident: D_A gets no gradient from the unlabeled images
    none = DCATrainer.semi_supervised_losses(_fake_trainer(net, True, confidence=1.01), data, target, unlabeled)
    assert float(none["dca_pseudo_kept"]) == 0.0
    net.zero_grad(set_to_none=True)
    none["dca_loss_unsup"].backward()
    grads = [p.grad for p in net.decoder.aggregation.parameters() if p.grad is not None]
    assert all(float(g.abs().sum()) == 0 for g in grads)


def test_ema_update_moves_the_teacher_a_step_towards_the_student():
    torch.manual_seed(0)
    student, teacher = _tiny_net(True), _tiny_net(True)
    before = [p.clone() for p in teacher.parameters()]
    ema_update(teacher, student, 0.99)
    for b, t, s in zip(before, teacher.parameters(), student.parameters()):
        torch.testing.assert_close(t, 0.99 * b + 0.01 * s)


def test_the_teacher_makes_the_pseudo_labels():
    """A teacher whose tail expert is certain of class 5 everywhere turns every pseudo-label into class 5; the
    student's own experts do not."""
    net = _tiny_net(True)
    data, target, unlabeled = _batch(True)
    teacher = copy.deepcopy(net)
    with torch.no_grad():
        for layer in teacher.decoder.experts[2].seg_layers:
            layer.weight.zero_()
            layer.bias.copy_(torch.tensor([-20.0, -20.0, 20.0]))
    own = DCATrainer.semi_supervised_losses(_fake_trainer(net, True), data, target, unlabeled)
    taught = DCATrainer.semi_supervised_losses(_fake_trainer(net, True, teacher=teacher), data, target, unlabeled)
    assert float(taught["dca_share_tail"]) == 1.0 and float(own["dca_share_tail"]) < 1.0


def test_teacher_starts_as_a_frozen_copy_and_follows_only_taken_steps(monkeypatch):
    net = _tiny_net(True)
    fake = DCATrainer.__new__(DCATrainer)  # no nnU-Net set-up: only what the two hooks read
    fake.ema_teacher_momentum, fake._teacher, fake._plain_network = 0.5, None, lambda: net
    monkeypatch.setattr(nnUNetTrainerSemiSupervised, "on_train_start", lambda self: None)
    fake.on_train_start()
    assert fake._teacher is not net and not any(p.requires_grad for p in fake._teacher.parameters())
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    start = [p.clone() for p in fake._teacher.parameters()]
    for skipped, moved in ((1.0, False), (0.0, True)):
        monkeypatch.setattr(nnUNetTrainerSemiSupervised, "train_step",
                            lambda self, batch, s=skipped: {"loss": 0.0, "ssl_skipped_steps": s})
        fake.train_step({})
        changed = any(not torch.equal(a, b) for a, b in zip(start, fake._teacher.parameters()))
        assert changed == moved


def test_equal_capacity_experts_get_the_planned_decoder():
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2_dca.trainers.dca import nnUNetTrainerDCA, nnUNetTrainerDCA_equalExperts

    planned = tiny_arch_kwargs(n_conv_per_stage_decoder=[2, 2])
    nets = {c: get_network_from_plans(DCA_CLASS, c.recipe_arch_kwargs(planned), REQUIRES_IMPORT, 1, 6)
            for c in (nnUNetTrainerDCA, nnUNetTrainerDCA_equalExperts)}
    equal = nets[nnUNetTrainerDCA_equalExperts].decoder.experts
    assert [e.n_conv_per_stage for e in equal] == [[2, 2]] * len(GROUPS) and {e.dilation for e in equal} == {1}
    default = nets[nnUNetTrainerDCA].decoder.experts
    assert [e.n_conv_per_stage for e in default] == [[1, 1], [2, 2], [3, 3]] and default[0].dilation == 2


@pytest.fixture(scope="module")
def planned_2d(tmp_path_factory):
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    base = tmp_path_factory.mktemp("candidates")
    write_phantom_dataset(str(base / "nnUNet_raw"), DS, labeled=4, unlabeled=2, test=1, seed=5)
    run_cmd([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(DS), "-pl", "nnUNetPlannerDCA_CPU", "-c", "2d",
             "-np", "1", "-npfp", "1"], fresh_env(base))
    return base


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["nnUNetTrainerDCA_confidence_budget", "nnUNetTrainerDCA_ema_budget",
                                     "nnUNetTrainerDCA_equalExperts_budget"])
def test_candidates_train_and_predict_with_the_stock_commands(planned_2d, tmp_path, trainer):
    """Each candidate through nnUNetv2_train (1 epoch x 3 iterations) and nnUNetv2_predict: its hooks run in a real
    trainer, and predict rebuilds the network the checkpoint was trained with."""
    env = {**fresh_env(planned_2d, training=True), "nnUNetDCA_budget_epochs": "1", "nnUNetDCA_budget_iterations": "3",
           "nnUNetDCA_budget_val_iterations": "1", "nnUNetDCA_budget_seed": "0"}
    run_cmd([str(BIN / "nnUNetv2_train"), str(DS), "2d", "all", "-tr", trainer, "-p", PLANS, "-device", "cpu"], env)
    out = planned_2d / "nnUNet_results" / NAME / f"{trainer}__{PLANS}__2d" / "fold_all"
    logging = torch.load(out / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]
    assert all(math.isfinite(v) for v in logging["train_losses"])
    if trainer == "nnUNetTrainerDCA_confidence_budget":
        assert 0.0 <= logging["dca_pseudo_kept"][0] <= 1.0
    run_cmd([str(BIN / "nnUNetv2_predict"), "-i", str(planned_2d / "nnUNet_raw" / NAME / "imagesTs"), "-o",
             str(tmp_path / "pred"), "-d", str(DS), "-c", "2d", "-f", "all", "-tr", trainer, "-p", PLANS, "-device",
             "cpu", "-npp", "0", "-nps", "0", "--disable_tta"], fresh_env(planned_2d))
    assert len(list((tmp_path / "pred").glob("*.nii.gz"))) == 1
