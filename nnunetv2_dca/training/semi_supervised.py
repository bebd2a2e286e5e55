"""Semi-supervised base trainer: nnU-Net's trainer plus an unlabeled data stream, a ramp-up weight, extra per-epoch
logging (in nnU-Net's own logger, so it is checkpointed and restored with ``--c``), a progress plot, and a guard
against non-finite losses. DCA and Semi-MoE are small layers on top (``semi_supervised_losses``).

Everything else is nnU-Net's: constructor signature (nnU-Net rebuilds trainers from ``checkpoint['init_args']``),
plans, splits, augmentation, optimiser, poly LR, gradient clipping, autocast + grad scaler on CUDA, torch.compile,
DDP, validation and ``perform_actual_validation``.

Unlabeled stream
----------------
Reads ``nnUNet_preprocessed/DatasetXXX/<data_identifier>_unlabeled`` (written by ``DCAPreprocessor`` with the same
plans; its stamp must match the plans, see :meth:`nnUNetTrainerSemiSupervised.check_unlabeled_folder`) through
nnU-Net's own dataset class, ``nnUNetDataLoader`` (random crops: ``oversample_foreground_percent=0``) and the *same*
training transforms as the labeled stream. Batch size: ``unlabeled_batch_size`` (None = the labeled
batch size per GPU, i.e. the seed's 2 labeled + 2 unlabeled). Worker processes: nnU-Net's per-GPU budget
``nnUNet_n_proc_DA`` = N is split, the labeled stream keeps N - N//2 (its validation loader derives its own share
from that, as in nnU-Net) and the unlabeled stream gets N//2 (0 -> loaded in the main process). DDP: every rank
reads a disjoint shard of the unlabeled cases.

Ramp-up
-------
``weight(t) = lambda_max * exp(-5 (1 - t)^2)`` with ``t = step / (rampup_fraction * total steps)`` clipped to 1
(Laine & Aila's sigmoid ramp-up, used by Mean Teacher, UA-MT, DHC, GA). ``step`` counts training iterations from
the start (epoch * iterations per epoch + iteration), so a run resumed with ``--c`` continues on the same curve.
"""

from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch
from torch import distributed as dist
from torch._dynamo import OptimizedModule

from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.collate_outputs import collate_outputs
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
from nnunetv2.utilities.helpers import dummy_context

from nnunetv2_dca.preprocessing.unlabeled import UNLABELED_IMAGES_FOLDER, unlabeled_folder, unlabeled_stamp_problem
from nnunetv2_dca.training.schedule import EpochClock

MAX_CONSECUTIVE_NONFINITE = 5


class UnlabeledDataError(RuntimeError):
    """The unlabeled images a semi-supervised trainer needs are missing or unusable."""


class NonFiniteLossError(FloatingPointError):
    """The loss stayed non-finite for several consecutive steps."""


def sigmoid_rampup(step: float, rampup_steps: float) -> float:
    """exp(-5 (1 - t)^2), t = step / rampup_steps clipped to [0, 1]; 1 from the end of the ramp on."""
    if rampup_steps <= 0:
        return 1.0
    t = min(max(step / rampup_steps, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


@contextmanager
def _data_augmentation_workers(n: int) -> Iterator[None]:
    """nnU-Net reads its worker budget from ``nnUNet_n_proc_DA`` when it builds loaders; give the labeled stream its
    share for the duration of that call only."""
    old = os.environ.get("nnUNet_n_proc_DA")
    os.environ["nnUNet_n_proc_DA"] = str(n)
    try:
        yield
    finally:
        if old is None:
            del os.environ["nnUNet_n_proc_DA"]
        else:
            os.environ["nnUNet_n_proc_DA"] = old


class nnUNetTrainerSemiSupervised(EpochClock, nnUNetTrainer):
    """Base for semi-supervised trainers. Subclasses implement :meth:`semi_supervised_losses` and list their extra
    per-epoch log keys in :meth:`extra_log_keys`."""

    # knobs (subclasses / trainer variants set these in __init__)
    lambda_max: float = 1.0
    rampup_fraction: float = 0.2
    unlabeled_batch_size: Optional[int] = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.label_manager.has_regions:
            raise NotImplementedError(
                f"{self.__class__.__name__}: region-based label definitions (dataset.json 'regions_class_order') "
                f"are not supported; the semi-supervised trainers need one class per label value")
        self.dataloader_unlabeled = None
        self.unlabeled_dataset_folder = unlabeled_folder(self.preprocessed_dataset_folder_base,
                                                         self.configuration_manager.data_identifier)
        self._iteration_in_epoch = 0
        self._consecutive_nonfinite = 0
        self._register_log_keys()

    # ----- hooks for subclasses -----
    def semi_supervised_losses(self, data: torch.Tensor, target, unlabeled: torch.Tensor
                               ) -> Dict[str, torch.Tensor]:
        """Forward (:meth:`step_forward`) + losses of one step. Must return ``{'loss': total, **scalars to log}``."""
        raise NotImplementedError

    def step_forward(self, data: torch.Tensor, unlabeled: torch.Tensor, **kwargs):
        """The labeled and the unlabeled batch through the network in one call (DDP and torch.compile see every
        parameter used), ``network(cat, num_labeled=n)``: the network hands back its outputs already split into
        the labeled and the unlabeled part (``DCAStepOutput`` / ``MoEStepOutput``), running only what the step
        uses."""
        return self.network(torch.cat((data, unlabeled)), num_labeled=data.shape[0], **kwargs)

    def extra_log_keys(self) -> List[str]:
        """Per-epoch scalars returned by :meth:`semi_supervised_losses` (means over the epoch's iterations)."""
        return []

    # ----- schedule -----
    @property
    def global_step(self) -> int:
        return self.current_epoch * self.num_iterations_per_epoch + self._iteration_in_epoch

    def unsupervised_weight(self) -> float:
        total = self.num_epochs * self.num_iterations_per_epoch
        return self.lambda_max * sigmoid_rampup(self.global_step, self.rampup_fraction * total)

    # ----- logging state lives in nnU-Net's logger (checkpointed with it) -----
    def _all_log_keys(self) -> List[str]:
        return ["ssl_lambda", "ssl_seconds_per_iteration", "ssl_skipped_steps"] + self.extra_log_keys()

    def _register_log_keys(self) -> None:
        store = self.logger.local_logger.my_fantastic_logging
        for key in self._all_log_keys():
            store.setdefault(key, [])

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        # a checkpoint of another trainer (or an older version) lacks our keys: pad them so logging continues
        store = self.logger.local_logger.my_fantastic_logging
        for key in self._all_log_keys():
            values = store.setdefault(key, [])
            values.extend([float("nan")] * (self.current_epoch - len(values)))
            del values[self.current_epoch:]

    # ----- data -----
    def get_dataloaders(self):
        budget = get_allowed_n_proc_DA()
        labeled_share, unlabeled_share = budget - budget // 2, budget // 2
        with _data_augmentation_workers(labeled_share):
            dl_train, dl_val = super().get_dataloaders()
        self.dataloader_unlabeled = self.get_unlabeled_dataloader(unlabeled_share)
        return dl_train, dl_val

    def unlabeled_identifiers(self) -> List[str]:
        folder = self.unlabeled_dataset_folder
        ids = sorted(self.dataset_class.get_identifiers(folder)) if os.path.isdir(folder) else []
        if not ids:
            raw = os.path.join(os.environ.get("nnUNet_raw", "$nnUNet_raw"), self.plans_manager.dataset_name,
                               UNLABELED_IMAGES_FOLDER)
            raise UnlabeledDataError(
                f"{self.__class__.__name__} needs unlabeled images, but {folder} holds none. Put them in {raw} "
                f"(named like imagesTr: CASE_0000{self.dataset_json.get('file_ending', '')}) and "
                f"{self._unlabeled_preprocessing_command()}")
        if self.is_ddp:  # disjoint shard per rank, like distributing the labeled batch
            world, rank = dist.get_world_size(), dist.get_rank()
            if len(ids) < world:
                raise UnlabeledDataError(f"{len(ids)} unlabeled cases cannot be sharded over {world} GPUs")
            ids = ids[rank::world]
        return ids

    def check_unlabeled_folder(self) -> None:
        """Refuse an unlabeled folder whose stamp does not match these plans/configuration (another spacing,
        normalization, ...: e.g. re-planned, the labeled data preprocessed again, the unlabeled step failed), or
        that lacks a stamp (made by an older nnunetv2-dca: refused too, since nothing says which settings it has;
        preprocessing again is quick). The error names the folder, what differs and the command that rebuilds it."""
        folder = self.unlabeled_dataset_folder
        ids = sorted(self.dataset_class.get_identifiers(folder))  # all cases, not this rank's shard
        problem = unlabeled_stamp_problem(folder, self.plans_manager, self.configuration_manager, ids)
        if problem:
            raise UnlabeledDataError(
                f"{self.__class__.__name__} refuses the unlabeled data: {problem}. Training on it would pair labeled "
                f"and unlabeled cases preprocessed differently. Preprocess them again: "
                f"{self._unlabeled_preprocessing_command()}")

    def _unlabeled_preprocessing_command(self) -> str:
        """How to fill the unlabeled folder with these plans: ``nnUNetv2_preprocess`` if the plans' preprocessor is
        DCAPreprocessor (DCA planners set it), else re-planning with ``-preprocessor_name DCAPreprocessor``."""
        from nnunetv2_dca.preprocessing.unlabeled import DCAPreprocessor

        pm, name = self.plans_manager, self.configuration_manager.preprocessor_name
        try:
            ours = issubclass(self.configuration_manager.preprocessor_class, DCAPreprocessor)
        except Exception:  # unresolvable name: say what the plans hold
            ours = False
        if ours:
            return (f"run nnUNetv2_preprocess -d {pm.dataset_name} -plans_name {pm.plans_name} -c "
                    f"{self.configuration_name}")
        planner = pm.plans.get("experiment_planner_used")
        return (f"note: configuration {self.configuration_name!r} of plans {pm.plans_name!r} uses preprocessor "
                f"{name!r}, which does not preprocess unlabeled images; re-plan with nnUNetv2_plan_and_preprocess -d "
                f"{pm.dataset_name}{f' -pl {planner}' if planner else ''} -overwrite_plans_name {pm.plans_name} -c "
                f"{self.configuration_name} -preprocessor_name DCAPreprocessor (the same plans, plus the unlabeled "
                f"images)")

    def _plain_network(self) -> torch.nn.Module:
        """The network without DDP / torch.compile wrappers (``_orig_mod``: how nnU-Net's own trainer unwraps)."""
        net = self.network.module if self.is_ddp else self.network
        return net._orig_mod if isinstance(net, OptimizedModule) else net

    def get_unlabeled_dataloader(self, num_processes: int):
        if self.is_cascaded:
            raise NotImplementedError("semi-supervised training of cascade stages is not supported")
        ids = self.unlabeled_identifiers()
        self.check_unlabeled_folder()
        dataset = self.dataset_class(self.unlabeled_dataset_folder, ids)
        self.dataset_class.unpack_dataset(self.unlabeled_dataset_folder, overwrite_existing=False,
                                          num_processes=max(1, num_processes), verify=True)
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        patch_size = self.configuration_manager.patch_size
        transforms = self.get_training_transforms(
            patch_size, rotation, self._get_deep_supervision_scales(), mirror_axes, dummy_2d,
            use_mask_for_norm=self.configuration_manager.use_mask_for_norm, is_cascaded=False,
            foreground_labels=self.label_manager.foreground_labels, regions=None,
            ignore_label=self.label_manager.ignore_label)
        batch_size = self.unlabeled_batch_size or self.batch_size
        loader = nnUNetDataLoader(dataset, batch_size, initial_patch_size, patch_size, self.label_manager,
                                  oversample_foreground_percent=0.0, sampling_probabilities=None, pad_sides=None,
                                  transforms=transforms)
        if num_processes == 0:
            gen = SingleThreadedAugmenter(loader, None)
        else:
            gen = NonDetMultiThreadedAugmenter(data_loader=loader, transform=None, num_processes=num_processes,
                                               num_cached=max(3, num_processes), seeds=None,
                                               pin_memory=self.device.type == "cuda", wait_time=0.002)
        self.print_to_log_file(f"unlabeled stream: {len(ids)} cases from {self.unlabeled_dataset_folder}, batch "
                               f"size {batch_size}, {num_processes} worker processes")
        _ = next(gen)
        return gen

    def on_train_end(self):
        super().on_train_end()
        gen = self.dataloader_unlabeled
        if isinstance(gen, NonDetMultiThreadedAugmenter):
            old_stdout = sys.stdout
            with open(os.devnull, "w") as f:  # batchgenerators prints while shutting down, as nnU-Net notes
                sys.stdout = f
                try:
                    gen._finish()  # nnU-Net's on_train_end shuts its loaders down the same way
                finally:
                    sys.stdout = old_stdout
        self.dataloader_unlabeled = None

    # ----- training step -----
    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._iteration_in_epoch = 0

    def _to_device(self, x):
        if isinstance(x, list):
            return [i.to(self.device, non_blocking=True) for i in x]
        return x.to(self.device, non_blocking=True)

    def train_step(self, batch: dict) -> dict:
        data, target = self._to_device(batch["data"]), self._to_device(batch["target"])
        unlabeled = self._to_device(next(self.dataloader_unlabeled)["data"])
        self.optimizer.zero_grad(set_to_none=True)
        autocast = torch.autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context()
        with autocast:
            losses = self.semi_supervised_losses(data, target, unlabeled)
        loss = losses["loss"]
        parts = [k for k in losses if k != "loss"]
        # Backward and clipping run before the finiteness decision, so that the step reads the device once: a
        # non-finite loss gives non-finite gradients, and the decision below then skips the optimizer step.
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
        # flags [loss finite, gradient norm finite]; with AMP, overflowing gradients are the scaler's business (it
        # skips the step and rescales), so only the loss decides
        flags = torch.stack([torch.isfinite(loss.detach()),
                             torch.isfinite(norm) if self.grad_scaler is None else torch.ones((), dtype=torch.bool,
                                                                                               device=norm.device)])
        flags = flags.to(torch.float32)
        if self.is_ddp:  # every rank must take the same decision (all-reduce on the device, no host sync)
            dist.all_reduce(flags, op=dist.ReduceOp.MIN)
        stats = torch.cat([flags, loss.detach().float().reshape(1)]
                          + [torch.as_tensor(losses[k], device=flags.device).detach().float().reshape(1)
                             for k in parts])
        loss_ok, norm_ok, loss_value, *part_values = stats.cpu().tolist()  # the one host synchronisation of the step
        logged = dict(zip(parts, part_values))
        skipped = 0.0 if loss_ok and norm_ok else 1.0
        if skipped:  # do not let one NaN/inf corrupt the weights: no optimizer step
            self.optimizer.zero_grad(set_to_none=True)
            if self.grad_scaler is not None:
                self.grad_scaler.update()  # the scaler saw the inf gradients in unscale_: lowers its scale
        elif self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()
        if not loss_ok:
            self._consecutive_nonfinite += 1
            self.print_to_log_file(f"non-finite loss at epoch {self.current_epoch}, iteration "
                                   f"{self._iteration_in_epoch}: {loss_value} (parts: {logged}); step skipped")
            if self._consecutive_nonfinite >= MAX_CONSECUTIVE_NONFINITE:
                raise NonFiniteLossError(
                    f"the loss was non-finite for {self._consecutive_nonfinite} consecutive steps (last parts: "
                    f"{logged}); training stopped to protect the weights. Lower the learning rate or lambda_max, "
                    f"or check the data (NaNs in images?)")
        else:
            self._consecutive_nonfinite = 0
            if not norm_ok:
                self.print_to_log_file(f"non-finite gradient norm at epoch {self.current_epoch}, iteration "
                                       f"{self._iteration_in_epoch}; step skipped")
        self._iteration_in_epoch += 1
        loss_value = np.array(loss_value) if skipped == 0 else np.array(np.nan)
        return {"loss": loss_value, "ssl_skipped_steps": skipped, **logged}

    def on_train_epoch_end(self, train_outputs: List[dict]):
        finite_outputs = [o for o in train_outputs if np.isfinite(o["loss"])] or train_outputs
        super().on_train_epoch_end([{"loss": o["loss"]} for o in finite_outputs])
        collated = collate_outputs(train_outputs)
        values = {k: float(np.nanmean(collated[k])) if k in collated else float("nan")
                  for k in self.extra_log_keys()}
        values["ssl_skipped_steps"] = float(np.sum(collated["ssl_skipped_steps"]))
        if self.is_ddp:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, values)
            values = {k: float(np.nanmean([g[k] for g in gathered])) for k in values}
        seconds = self.train_epoch_seconds() / max(1, len(train_outputs))
        values["ssl_seconds_per_iteration"] = seconds
        # lambda as used at the end of this epoch's iterations
        values["ssl_lambda"] = self.unsupervised_weight()
        for key, value in values.items():
            self.logger.log(key, value, self.current_epoch)

    def on_epoch_end(self):
        epoch = self.current_epoch
        super().on_epoch_end()  # nnU-Net's logging, checkpoints, progress.png; increments current_epoch
        if self.local_rank == 0:
            log = self.logger.local_logger.my_fantastic_logging
            self.print_to_log_file(", ".join(f"{k} {log[k][epoch]:.4g}" for k in self._all_log_keys()
                                             if len(log[k]) > epoch))
            self.plot_semi_supervised_progress()

    def plot_semi_supervised_progress(self) -> None:
        """``progress_semi_supervised.png`` next to nnU-Net's progress.png (see :mod:`nnunetv2_dca.training.plots`)."""
        from nnunetv2_dca.training.plots import plot_progress

        plot_progress(self.logger.local_logger.my_fantastic_logging, self._all_log_keys(),
                      os.path.join(self.output_folder, "progress_semi_supervised.png"), title=self.__class__.__name__)
