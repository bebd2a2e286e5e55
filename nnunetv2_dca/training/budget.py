"""Benchmark budget: one schedule, seed and timing rule for every arm of ``nnunetv2-dca benchmark``.

nnU-Net fixes a trainer's schedule in its class (``nnUNetTrainer_5epochs`` ...). A benchmark needs the *same*
arbitrary budget (epochs x iterations) for nnU-Net's trainer, DCA and Semi-MoE, chosen on the command line, while
still training through the stock ``nnUNetv2_train``. The ``*_budget`` trainer variants therefore read the schedule
from environment variables (written into the benchmark's ``commands.sh``, so a run can be repeated by hand):

======================================  =====================================================  =======
variable                                meaning                                                required
======================================  =====================================================  =======
``nnUNetDCA_budget_epochs``             epochs                                                 yes
``nnUNetDCA_budget_iterations``         training iterations per epoch                          yes
``nnUNetDCA_budget_val_iterations``     validation iterations per epoch (default: iterations/5, at least 1)
``nnUNetDCA_budget_seed``               seeds Python, NumPy and torch before the network is built (default 0)
======================================  =====================================================  =======

Nothing else of the trainers changes, except that with ``-f all`` the final validation (on the training cases
themselves) is skipped. Prediction does not read the variables (the predictor only rebuilds the
network). Timing: every arm records the wall time of its training iterations per epoch (data loading included, the
validation iterations excluded) in ``budget_timing.json`` in its output folder, so seconds per iteration are measured
the same way for all arms. The same file holds where a run's wall time goes (``time_breakdown_seconds``, summed over
epochs): ``data_wait`` (waiting for the labeled and, in semi-supervised arms, unlabeled batches: loading and
augmentation), ``step`` (the rest of the training iterations: forward, backward, optimiser, per-step logging; nnU-Net's
loss collation at the epoch's end falls under ``other``),
``validation`` (the validation iterations, their data included), ``checkpoint`` (``save_checkpoint``), ``epoch_end``
(nnU-Net's epoch logging and progress plot, checkpoints excluded) and ``other`` (set-up and shut-down inside
``run_training``: the whole run minus the phases above).
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Dict, List

import numpy as np
import torch

from nnunetv2_dca.atomic import write_json_atomic
from nnunetv2_dca.training.schedule import EpochClock

ENV_EPOCHS = "nnUNetDCA_budget_epochs"
ENV_ITERATIONS = "nnUNetDCA_budget_iterations"
ENV_VAL_ITERATIONS = "nnUNetDCA_budget_val_iterations"
ENV_SEED = "nnUNetDCA_budget_seed"
TIMING_FILE = "budget_timing.json"


class BudgetError(RuntimeError):
    """The budget variables are missing or invalid."""


def _positive_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise BudgetError(f"{name} is not set: the *_budget trainers take their schedule from the environment "
                              f"({ENV_EPOCHS}, {ENV_ITERATIONS}; see nnunetv2_dca/training/budget.py), e.g. "
                              f"{ENV_EPOCHS}=20 {ENV_ITERATIONS}=25 nnUNetv2_train ...")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BudgetError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise BudgetError(f"{name}={value} must be >= 1")
    return value


def read_budget() -> Dict[str, int]:
    """The schedule and seed from the environment (see the module docstring)."""
    epochs = _positive_int(ENV_EPOCHS)
    iterations = _positive_int(ENV_ITERATIONS)
    val = _positive_int(ENV_VAL_ITERATIONS, max(1, iterations // 5))
    seed_raw = os.environ.get(ENV_SEED, "0")
    try:
        seed = int(seed_raw)
    except ValueError:
        raise BudgetError(f"{ENV_SEED}={seed_raw!r} is not an integer") from None
    return {"epochs": epochs, "iterations": iterations, "val_iterations": val, "seed": seed}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _TimedIterator:
    """Wraps a batch generator and adds the seconds spent in ``next()`` to ``seconds``. Only the training loop
    calls ``next``; everything else is delegated, and the original is put back before nnU-Net shuts it down
    (it checks the augmenter's type)."""

    def __init__(self, inner):
        self.inner = inner
        self.seconds = 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t0 = time.perf_counter()
        try:
            return next(self.inner)
        finally:
            self.seconds += time.perf_counter() - t0

    def __getattr__(self, name):
        if name == "inner":  # not set yet (copy/unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


_LOADERS = ("dataloader_train", "dataloader_unlabeled")
PHASES = ("data_wait", "step", "validation", "checkpoint", "epoch_end", "other")


class BudgetMixin(EpochClock):
    """Put before a trainer class: ``class T(BudgetMixin, nnUNetTrainer)``. Reads the budget in ``__init__`` (which
    nnU-Net calls before building the network, so the seed also fixes the initial weights) and times the training
    iterations of each epoch."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        budget = read_budget()
        seed_everything(budget["seed"])
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = budget["epochs"]
        self.num_iterations_per_epoch = budget["iterations"]
        self.num_val_iterations_per_epoch = budget["val_iterations"]
        self.budget = budget
        self._budget_seconds: List[float] = []
        self._phase = dict.fromkeys(PHASES, 0.0)
        # a run resumed with --c times its own part only
        self._run_start = self._val_start = self._epoch_wait_start = 0.0

    def _data_wait(self) -> float:
        return sum(g.seconds for g in (getattr(self, n, None) for n in _LOADERS) if isinstance(g, _TimedIterator))

    def on_train_start(self):
        self._run_start = time.perf_counter()
        super().on_train_start()
        for name in _LOADERS:
            if getattr(self, name, None) is not None:
                setattr(self, name, _TimedIterator(getattr(self, name)))

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._epoch_wait_start = self._data_wait()

    def on_train_epoch_end(self, train_outputs):
        # train_step of every iteration has run (loss.item()/numpy() synchronises on CUDA); logging not included
        seconds = self.train_epoch_seconds()
        wait = self._data_wait() - self._epoch_wait_start
        self._phase["data_wait"] += wait
        self._phase["step"] += seconds - wait
        self._budget_seconds.append(seconds / max(1, len(train_outputs)))
        super().on_train_epoch_end(train_outputs)

    def on_validation_epoch_start(self):
        self._val_start = time.perf_counter()
        super().on_validation_epoch_start()

    def on_validation_epoch_end(self, val_outputs):
        super().on_validation_epoch_end(val_outputs)
        self._phase["validation"] += time.perf_counter() - self._val_start

    def on_epoch_end(self):
        t0, before = time.perf_counter(), self._phase["checkpoint"]
        super().on_epoch_end()
        self._phase["epoch_end"] += time.perf_counter() - t0 - (self._phase["checkpoint"] - before)

    def save_checkpoint(self, filename: str) -> None:
        t0 = time.perf_counter()
        super().save_checkpoint(filename)
        self._phase["checkpoint"] += time.perf_counter() - t0

    def time_breakdown(self) -> Dict[str, float]:
        """Seconds per phase so far (module docstring); ``other`` is what the run's wall time leaves over."""
        phases = dict(self._phase)
        phases["other"] = max(0.0, time.perf_counter() - self._run_start - sum(phases.values()))
        return {k: round(v, 3) for k, v in phases.items()}

    def perform_actual_validation(self, save_probabilities: bool = False):
        # fold 'all' validates on the training cases themselves: minutes of sliding-window inference on CPU for a
        # number that says nothing; the benchmark evaluates every arm on the held-out test set instead
        if self.fold == "all":
            self.print_to_log_file("budget trainer, fold 'all': final validation on the training cases skipped")
            return
        super().perform_actual_validation(save_probabilities)

    def on_train_end(self):
        for name in _LOADERS:  # nnU-Net shuts the augmenters down by their type
            if isinstance(getattr(self, name, None), _TimedIterator):
                setattr(self, name, getattr(self, name).inner)
        super().on_train_end()  # saves checkpoint_final (timed)
        if self.local_rank == 0:
            write_json_atomic({"trainer": self.__class__.__name__, "budget": self.budget,
                               "seconds_per_iteration_per_epoch": self._budget_seconds, "device": str(self.device),
                               "time_breakdown_seconds": self.time_breakdown(),
                               **learning_curve(self.logger)},
                              os.path.join(self.output_folder, TIMING_FILE))


def learning_curve(logger) -> Dict[str, List]:
    """nnU-Net's per-epoch validation pseudo-Dice (foreground classes in label order, and their mean) from its
    logger: the benchmark's learning curves. With fold 'all' these are the training cases' patches, so the curve
    shows whether an arm has converged, not how well it generalises (the test set says that)."""
    def values(key: str) -> List:
        try:
            return [[float(x) for x in v] if isinstance(v, (list, tuple)) else float(v)
                    for v in logger.get_value(key, step=None)]
        except (KeyError, AttributeError, TypeError):
            return []
    return {"validation_dice_per_class_per_epoch": values("dice_per_class_or_region"),
            "validation_mean_dice_per_epoch": values("mean_fg_dice")}


def load_timing(output_folder: str) -> Dict:
    with open(os.path.join(output_folder, TIMING_FILE), encoding="utf-8") as f:
        return json.load(f)
