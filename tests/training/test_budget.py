"""BudgetMixin's time breakdown: each phase of nnU-Net's run_training loop lands in its own bucket (fake clock)."""

import pytest
import torch

from nnunetv2_dca.training import budget


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def spend(self, seconds):
        self.now += seconds


class _Loader:
    """A batch generator whose every batch costs `cost` seconds; its type is what nnU-Net checks at shut-down."""

    def __init__(self, clock, cost):
        self.clock, self.cost, self.finished = clock, cost, False

    def __next__(self):
        self.clock.spend(self.cost)
        return {"data": None}

    def _finish(self):
        self.finished = True


class _Trainer:
    """Stands in for nnUNetTrainer: the hooks run_training calls, each spending known time."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cpu")):
        self.fold, self.local_rank, self.device, self.output_folder = fold, 0, device, plans["out"]
        self.clock = plans["clock"]
        self.logger = None
        self.num_epochs = self.num_iterations_per_epoch = self.num_val_iterations_per_epoch = 0

    def on_train_start(self):
        self.clock.spend(5.0)  # set-up: dataloaders, network compile
        self.dataloader_train = _Loader(self.clock, 0.25)
        self.dataloader_unlabeled = _Loader(self.clock, 0.5)

    def on_train_epoch_start(self):
        pass

    def train_step(self, batch):
        next(self.dataloader_unlabeled)  # the semi-supervised step fetches its unlabeled batch itself
        self.clock.spend(1.0)
        return {"loss": 0.0}

    def on_train_epoch_end(self, outputs):
        pass

    def on_validation_epoch_start(self):
        pass

    def on_validation_epoch_end(self, outputs):
        self.clock.spend(2.0)

    def save_checkpoint(self, filename):
        self.clock.spend(3.0)

    def on_epoch_end(self):
        self.clock.spend(0.5)  # logging and the progress plot
        self.save_checkpoint("checkpoint_best.pth")

    def on_train_end(self):
        # nnU-Net shuts the augmenters down only if they are of its own types: the originals must be back
        assert isinstance(self.dataloader_train, _Loader) and isinstance(self.dataloader_unlabeled, _Loader)
        self.save_checkpoint("checkpoint_final.pth")


class _Budgeted(budget.BudgetMixin, _Trainer):
    pass


def _run(trainer, epochs, iterations):
    trainer.on_train_start()
    for _ in range(epochs):
        trainer.on_train_epoch_start()
        outputs = [trainer.train_step(next(trainer.dataloader_train)) for _ in range(iterations)]
        trainer.on_train_epoch_end(outputs)
        trainer.on_validation_epoch_start()
        trainer.on_validation_epoch_end([])
        trainer.on_epoch_end()
    trainer.on_train_end()


def test_time_breakdown_puts_each_phase_in_its_bucket(tmp_path, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(budget.time, "perf_counter", clock)
    monkeypatch.setenv(budget.ENV_EPOCHS, "2")
    monkeypatch.setenv(budget.ENV_ITERATIONS, "4")
    trainer = _Budgeted({"out": str(tmp_path), "clock": clock}, "2d", "all", {})
    _run(trainer, epochs=2, iterations=4)

    timing = budget.load_timing(str(tmp_path))
    phases = timing["time_breakdown_seconds"]
    assert set(phases) == set(budget.PHASES)
    assert phases["data_wait"] == pytest.approx(2 * 4 * (0.25 + 0.5))  # labeled and unlabeled batches
    assert phases["step"] == pytest.approx(2 * 4 * 1.0)
    assert phases["validation"] == pytest.approx(2 * 2.0)
    assert phases["checkpoint"] == pytest.approx(3 * 3.0)  # best per epoch + final
    assert phases["epoch_end"] == pytest.approx(2 * 0.5)  # checkpoints not counted twice
    assert phases["other"] == pytest.approx(5.0)
    assert sum(phases.values()) == pytest.approx(clock.now)
    assert timing["seconds_per_iteration_per_epoch"] == pytest.approx([1.75, 1.75])


def test_breakdown_reaches_the_report():
    from nnunetv2_dca.lab.benchmark.report import mean_breakdown, time_breakdown_lines

    runs = [{"time_breakdown_seconds": {"data_wait": 60.0, "step": 120.0}},
            {"time_breakdown_seconds": {"data_wait": 180.0, "step": 240.0}}, {}]
    mean = mean_breakdown(runs)
    assert mean == {"data_wait": 120.0, "step": 180.0}
    report = {"timing": {"baseline": {"time_breakdown_seconds": mean, "train_wall_seconds": {"mean": 600.0}},
                         "old": {"time_breakdown_seconds": {}}}}
    text = "\n".join(time_breakdown_lines(report, ["baseline", "old"]))
    assert "| baseline | 10.0 | 2.0 | 3.0 |" in text and "| old |" not in text
    assert "10.0 min per seed" in text
