"""Semi-supervised base trainer pieces in-process: the non-finite guard, DDP sharding of the unlabeled stream, the
worker budget split and the progress plot."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from nnunetv2_dca.training import semi_supervised as ss
from nnunetv2_dca.training.plots import panels_for, plot_progress


def _bare_trainer(loss_values):
    """A base trainer without nnU-Net's __init__: only what train_step touches."""
    t = ss.nnUNetTrainerSemiSupervised.__new__(ss.nnUNetTrainerSemiSupervised)
    net = torch.nn.Linear(3, 1)
    values = iter(loss_values)

    def losses(data, target, unlabeled):
        v = next(values)
        return {"loss": net(data).mean() * 0 + v, "part": torch.tensor(v)}

    t.network, t.device, t.is_ddp, t.grad_scaler = net, torch.device("cpu"), False, None
    t.optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    t.dataloader_unlabeled = iter(lambda: {"data": torch.ones(2, 3)}, None)
    t.semi_supervised_losses = losses
    t.current_epoch, t._iteration_in_epoch, t._consecutive_nonfinite = 0, 0, 0
    t.messages = []
    t.print_to_log_file = lambda *a, **k: t.messages.append(" ".join(map(str, a)))
    return t, net


def test_non_finite_loss_skips_the_step_and_stops_after_five():
    t, net = _bare_trainer([float("nan")] * 4 + [1.0] + [float("inf")] * 5)
    before = [p.detach().clone() for p in net.parameters()]
    batch = {"data": torch.ones(2, 3), "target": torch.zeros(2, 1)}
    for _ in range(4):
        out = t.train_step(batch)
        assert out["ssl_skipped_steps"] == 1.0 and np.isnan(out["loss"])
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # no update from a NaN step
    assert "non-finite loss at epoch 0" in t.messages[0]
    assert t.train_step(batch)["ssl_skipped_steps"] == 0.0  # a finite step resets the count
    for _ in range(4):
        t.train_step(batch)
    with pytest.raises(ss.NonFiniteLossError, match="5 consecutive steps"):
        t.train_step(batch)


def test_unlabeled_stream_is_sharded_per_rank(monkeypatch, tmp_path):
    for i in range(5):
        (tmp_path / f"case_{i}.b2nd").write_bytes(b"")
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    t = ss.nnUNetTrainerSemiSupervised.__new__(ss.nnUNetTrainerSemiSupervised)
    t.unlabeled_dataset_folder, t.dataset_class, t.is_ddp = str(tmp_path), nnUNetDatasetBlosc2, True
    shards = []
    for rank in range(2):
        monkeypatch.setattr(ss.dist, "get_world_size", lambda: 2)
        monkeypatch.setattr(ss.dist, "get_rank", lambda r=rank: r)
        shards.append(t.unlabeled_identifiers())
    assert shards == [["case_0", "case_2", "case_4"], ["case_1", "case_3"]]
    monkeypatch.setattr(ss.dist, "get_world_size", lambda: 8)
    with pytest.raises(ss.UnlabeledDataError, match="cannot be sharded over 8 GPUs"):
        t.unlabeled_identifiers()


def test_worker_budget_override_is_temporary(monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "6")
    with ss._data_augmentation_workers(3):
        assert os.environ["nnUNet_n_proc_DA"] == "3"
    assert os.environ["nnUNet_n_proc_DA"] == "6"
    monkeypatch.delenv("nnUNet_n_proc_DA")
    with ss._data_augmentation_workers(1):
        assert os.environ["nnUNet_n_proc_DA"] == "1"
    assert "nnUNet_n_proc_DA" not in os.environ


def test_progress_plot_panels(tmp_path):
    keys = ["ssl_lambda", "ssl_seconds_per_iteration", "dca_loss_sup_head", "dca_loss_unsup", "dca_share_tail",
            "dca_gate_tail", "moe_balance", "dca_gradnorm_unsup", "dca_gradnorm_gate_balance"]
    panels = panels_for(keys)
    assert panels["encoder gradient norm per loss term"] == ["dca_gradnorm_unsup", "dca_gradnorm_gate_balance"]
    assert panels["losses"] == ["dca_loss_sup_head", "dca_loss_unsup", "moe_balance"]
    assert panels["unsupervised weight (lambda)"] == ["ssl_lambda"]
    assert panels["share of pseudo-label voxels"] == ["dca_share_tail"]
    log = {k: [0.1, 0.2, float("nan")] for k in keys}
    path = plot_progress(log, keys, str(tmp_path / "p.png"), title="t")
    assert os.path.getsize(path) > 5000 and not [p for p in os.listdir(tmp_path) if p != "p.png"]


def test_train_step_reads_the_device_once(monkeypatch):
    # issue 15: the step's logging and finiteness decision come from one transfer (on a GPU, one synchronisation)
    from host_reads import count_host_reads

    t, net = _bare_trainer([1.0, float("nan")])
    batch = {"data": torch.ones(2, 3), "target": torch.zeros(2, 1)}
    with count_host_reads(monkeypatch) as reads:
        out = t.train_step(batch)
    assert reads == ["cpu", "tolist"]  # .tolist() of the copy already on the host
    assert out["loss"] == 1.0 and out["part"] == 1.0 and out["ssl_skipped_steps"] == 0.0
    with count_host_reads(monkeypatch) as reads:
        assert t.train_step(batch)["ssl_skipped_steps"] == 1.0  # a skipped step takes the same single read
    assert reads == ["cpu", "tolist"]


def test_non_finite_gradient_skips_the_step():
    t, net = _bare_trainer([])
    # finite loss (sqrt(0) + 1), NaN gradient (d sqrt at 0 = inf, times 0)
    t.semi_supervised_losses = lambda d, y, u: {"loss": torch.sqrt((net.weight - net.weight).sum()) + 1.0}
    before = [p.detach().clone() for p in net.parameters()]
    out = t.train_step({"data": torch.ones(2, 3), "target": torch.zeros(2, 1)})
    assert out["ssl_skipped_steps"] == 1.0 and "non-finite gradient norm" in t.messages[-1]
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    # a finite loss with a bad gradient is skipped but is not one of the five non-finite losses that stop training
    for _ in range(ss.MAX_CONSECUTIVE_NONFINITE):
        assert t.train_step({"data": torch.ones(2, 3), "target": torch.zeros(2, 1)})["ssl_skipped_steps"] == 1.0
