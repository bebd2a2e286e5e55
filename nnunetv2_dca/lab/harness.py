"""In-process runs of real nnU-Net trainers for measurements and checks (the GPU check, the DDP test): a trainer
built from a plans file exactly as ``nnUNetv2_train`` builds it, started on its real data loaders, stepped one
``train_step`` at a time. Nothing here changes how training works."""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Callable, Optional, Tuple, Type

import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_dca.network.architectures import stock_architecture


def read_json(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"not found: {path}")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def stock_plans(plans: dict, configuration: str, suffix: str = "_stock") -> dict:
    """The same plans with the configuration's stock nnU-Net network (DCA layer removed) under another plans name:
    same data identifier, so the stock trainer reads the same preprocessed data (nothing is written to disk)."""
    plans = copy.deepcopy(plans)
    cfg = plans["configurations"][configuration]
    cfg["architecture"] = stock_architecture(cfg["architecture"])
    plans["plans_name"] = plans["plans_name"] + suffix
    return plans


def build_trainer(trainer_class: Type[nnUNetTrainer], plans: dict, configuration: str, dataset_json: dict,
                  fold="all", device: Optional[torch.device] = None) -> nnUNetTrainer:
    plans = {**plans, "continue_training": False}  # as nnU-Net's get_trainer_from_args passes it
    return trainer_class(plans=plans, configuration=configuration, fold=fold, dataset_json=dataset_json,
                         device=device or torch.device("cpu"))


def start(trainer: nnUNetTrainer) -> None:
    """What ``run_training`` does before the first iteration: initialise, data loaders, first epoch started."""
    trainer.on_train_start()
    trainer.on_epoch_start()
    trainer.on_train_epoch_start()


def step(trainer: nnUNetTrainer) -> dict:
    return trainer.train_step(next(trainer.dataloader_train))


def timed_compute_step(trainer: nnUNetTrainer, sync: Callable[[], None] = lambda: None) -> Tuple[dict, float]:
    """One ``train_step`` on batches fetched beforehand (labeled and, for the semi-supervised trainers, unlabeled),
    and its seconds: the step's compute without data loading and augmentation."""
    batch = next(trainer.dataloader_train)
    unlabeled = getattr(trainer, "dataloader_unlabeled", None)
    if unlabeled is not None:
        trainer.dataloader_unlabeled = iter([next(unlabeled)])
    try:
        sync()
        t0 = time.perf_counter()
        out = trainer.train_step(batch)
        sync()
        return out, time.perf_counter() - t0
    finally:
        if unlabeled is not None:
            trainer.dataloader_unlabeled = unlabeled


def finish(trainer: nnUNetTrainer) -> None:
    """Writes checkpoint_final.pth (what nnUNetPredictor loads) and shuts the loaders down."""
    trainer.on_train_end()
