"""Run by ``torchrun --nproc_per_node 2`` from test_ddp.py: a real semi-supervised trainer under DDP on CPU (gloo),
3 training steps; with ``--nan-rank R`` rank R's unlabeled batch of step 2 is NaN. Writes one JSON per rank.

nnU-Net runs DDP on CUDA only; two of its CUDA assumptions are bent here, for this test alone: the device (its
``__init__`` sets cuda:rank under DDP) and ``DDP(device_ids=[rank])`` (CPU modules take none). ``--compile`` turns on
nnU-Net's torch.compile path (off on CPU in nnU-Net) with the ``aot_eager`` backend: dynamo, AOTAutograd and DDP's
graph splitting as on a GPU, without generating C++ kernels on a 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import sys

import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel

import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as nnunet_trainer_module
from nnunetv2_dca.discovery import find_registered_class
from nnunetv2_dca.lab import harness


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plans", required=True)
    ap.add_argument("--trainer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--nan-rank", type=int, default=-1)
    args = ap.parse_args()
    # a collective that waits longer than this raises instead of hanging (the NaN case must not deadlock)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank = dist.get_rank()
    nnunet_trainer_module.DDP = _cpu_ddp
    trainer_class = find_registered_class(args.trainer)
    if args.compile:
        trainer_class._do_i_compile = lambda self: True
        original = torch.compile
        torch.compile = functools.partial(original, backend="aot_eager")
    plans = harness.read_json(args.plans)
    dataset_json = harness.read_json(os.path.join(os.path.dirname(args.plans), "dataset.json"))
    trainer = harness.build_trainer(trainer_class, plans, "3d_fullres", dataset_json, fold="all")
    trainer.device, trainer.grad_scaler = torch.device("cpu"), None  # nnU-Net set cuda:rank under DDP
    harness.start(trainer)
    results = []
    for i in range(3):
        if i == 1 and rank == args.nan_rank:
            unlabeled = trainer.dataloader_unlabeled
            batch = next(unlabeled)
            batch["data"] = torch.full_like(torch.as_tensor(batch["data"]), float("nan"))
            trainer.dataloader_unlabeled = iter([batch])
            out = harness.step(trainer)
            trainer.dataloader_unlabeled = unlabeled
        else:
            out = harness.step(trainer)
        results.append({"loss": float(out["loss"]), "skipped": float(out["ssl_skipped_steps"])})
    checksum = torch.stack([p.detach().double().sum() for p in trainer.network.parameters()]).sum()
    sums = [torch.zeros(()) for _ in range(dist.get_world_size())]
    dist.all_gather(sums, checksum.float().reshape(()))
    with open(os.path.join(args.out, f"rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump({"steps": results, "parameter_sums": [float(s) for s in sums],
                   "compiled": args.compile, "ddp": trainer.is_ddp}, f)
    harness.finish(trainer)
    dist.barrier()
    # Leave without interpreter teardown: freeing DDP's reducer there can deadlock with gloo's worker thread, which
    # still destroys the finished all-gather's work (it needs the GIL, teardown holds it and waits for gloo's lock;
    # seen as a worker that never exits after writing its results). Everything this rank had to write is written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _cpu_ddp(module, device_ids=None, **kwargs):
    return DistributedDataParallel(module, device_ids=None, **kwargs)


if __name__ == "__main__":
    main()
