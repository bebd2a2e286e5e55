"""Side check of a finished benchmark: how much of a DCA step's gradient is the unsupervised term, and how much does
nnU-Net's single gradient-norm clip (12, over all parameters) shrink the experts' label-split gradients?

Builds the DCA arm's trainer as nnUNetv2_train does (benchmark plans and data), optionally loads a checkpoint of the
run, and for a few batches computes, without any optimizer step: the gradient of the supervised part (sum of the
three label-split losses), of the unsupervised part (lambda * L_un + gate balance, lambda at its maximum), their
norms per module (encoder, each expert decoder, DFAM + D_A), and the clip factor min(1, 12 / ||total||) that
nnU-Net's step would apply to every gradient. Usage (benchmark folder B, its nnU-Net folders):

    export nnUNet_raw=B/nnUNet_raw nnUNet_preprocessed=B/nnUNet_preprocessed nnUNet_results=/tmp/unused
    export nnUNet_def_n_proc=1 nnUNet_n_proc_DA=0 nnUNetDCA_budget_epochs=1 nnUNetDCA_budget_iterations=1
    python benchmarks/scripts/grad_norms.py B/seed_0/nnUNet_results/.../fold_all/checkpoint_final.pth OUT.json [N]
"""
import json
import sys

import torch
from batchgenerators.utilities.file_and_folder_operations import join, load_json
from nnunetv2.paths import nnUNet_preprocessed

from nnunetv2_dca.lab.benchmark.arms import ID_SEMI, PLANS_DCA
from nnunetv2_dca.lab.benchmark.data import find_dataset
from nnunetv2_dca.trainers.dca import nnUNetTrainerDCA_budget
from nnunetv2_dca.lab import harness


def module_of(name: str) -> str:
    if name.startswith("encoder") or ".encoder." in name:
        return "encoder"
    for key in ("experts.0", "experts.1", "experts.2"):
        if key in name:
            return {"experts.0": "expert_head", "experts.1": "expert_medium", "experts.2": "expert_tail"}[key]
    return "dfam_and_aggregation"


def norms(params, grads):
    out = {}
    for (name, _), g in zip(params, grads):
        if g is not None:
            out[module_of(name)] = out.get(module_of(name), 0.0) + float(g.float().pow(2).sum())
    total = sum(out.values()) ** 0.5
    return {k: v ** 0.5 for k, v in out.items()}, total


def main(checkpoint: str, out: str, n: int = 8) -> None:
    pp = find_dataset(nnUNet_preprocessed, ID_SEMI)
    plans = load_json(join(pp, PLANS_DCA + ".json"))
    trainer = harness.build_trainer(nnUNetTrainerDCA_budget, plans, "2d", load_json(join(pp, "dataset.json")))
    harness.start(trainer)
    if checkpoint != "-":
        trainer.load_checkpoint(checkpoint)
    trainer.unsupervised_weight = lambda: trainer.lambda_max  # after the warm-up
    names = [m for m in trainer.network.named_parameters()]
    params = [p for _, p in names]
    rows = []
    for _ in range(n):
        batch = next(trainer.dataloader_train)
        unlabeled = next(trainer.dataloader_unlabeled)["data"]
        losses = trainer.semi_supervised_losses(batch["data"], batch["target"], unlabeled)
        sup = sum(v for k, v in losses.items() if k.startswith("dca_loss_sup_"))
        unsup = losses["loss"] - sup
        g_sup = torch.autograd.grad(sup, params, retain_graph=True, allow_unused=True)
        g_un = torch.autograd.grad(unsup, params, allow_unused=True)
        g_tot = [a if b is None else b if a is None else a + b for a, b in zip(g_sup, g_un)]
        by_sup, n_sup = norms(names, g_sup)
        by_un, n_un = norms(names, g_un)
        _, n_tot = norms(names, g_tot)
        rows.append({"sup_norm": n_sup, "unsup_norm": n_un, "total_norm": n_tot, "clip_factor": min(1.0, 12 / n_tot),
                     "sup_by_module": by_sup, "unsup_by_module": by_un,
                     "losses": {k: float(v) for k, v in losses.items() if k.startswith("dca_loss")}})
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("sup_norm", "unsup_norm", "total_norm", "clip_factor")}
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"checkpoint": checkpoint, "lambda": trainer.lambda_max, "mean": mean, "steps": rows}, f, indent=1)
    print(json.dumps(mean))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8)
