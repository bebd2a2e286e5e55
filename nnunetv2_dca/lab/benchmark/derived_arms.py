"""The benchmark's two arms built from another arm's model: ``pseudolabel`` (nnU-Net trained on the baseline's
predictions for the unlabeled images) and ``dca_distill`` (nnU-Net trained on the DCA model's distilled dataset),
and the pseudo-label quality every semi-supervised arm reports. Each runs stock console scripts through the
benchmark's :class:`~nnunetv2_dca.lab.benchmark.runner.Runner`, in the order :meth:`Benchmark.run` calls them.
They were the benchmark's methods; as functions of it they keep run.py about the arms every run has."""

from __future__ import annotations

import os
from typing import Any, Dict

from nnunetv2_dca.lab.benchmark.arms import (ARM_TITLES, ARM_TRAINERS, FOLD, ID_DISTILL, ID_FULL, ID_PSEUDO,
                                             ID_SEMI, PLANS_DCA, PLANS_STOCK)
from nnunetv2_dca.lab.benchmark.data import bench_class_groups, find_dataset, make_pseudo_label_dataset
from nnunetv2_dca.lab.benchmark.runner import Runner

# ``bench``: the running :class:`nnunetv2_dca.lab.benchmark.run.Benchmark` (typed Any: run.py imports this module,
# and an import back, even for type checking only, would be an import circle)
def score_pseudo_labels(bench: Any, model_dir: str) -> Dict:
    """Pseudo-labels of a trained model on the unlabeled training images, scored against their true labels in
    the fully labeled dataset (:mod:`nnunetv2_dca.lab.pseudo_labels`); groups as planned for DCA."""
    from nnunetv2_dca.lab.pseudo_labels import PseudoLabelError, pseudo_label_quality

    groups = bench_class_groups(os.path.dirname(bench.plans_files[PLANS_DCA]), bench.dataset_json,
                                bench.cfg.configuration)
    try:
        return pseudo_label_quality(model_dir, os.path.join(bench.semi, "imagesTrUnlabeled"),
                                    os.path.join(find_dataset(bench.raw, ID_FULL), "labelsTr"), fold=FOLD,
                                    device=bench.cfg.device, class_groups=groups)
    except PseudoLabelError as e:  # e.g. a user's full dataset without the unlabeled cases: report, go on
        print(f"pseudo-label quality not measured: {e}", flush=True)
        return {"error": str(e)}


def pseudo_label_arm(bench: Any, runner: Runner, seed: int, index: int) -> None:
    """The baseline predicts the unlabeled images; nnU-Net trains on labeled + those predictions."""
    cfg = bench.cfg
    runner.step(f"seed {seed}: pseudo-label the unlabeled images with the baseline, build the dataset")
    pl = os.path.join(bench.out, f"seed_{seed}", "pseudo_labels")
    runner.run(["nnUNetv2_predict", "-i", os.path.join(bench.semi, "imagesTrUnlabeled"), "-o", pl, "-d",
                str(ID_SEMI), "-c", cfg.configuration, "-f", FOLD, "-tr", ARM_TRAINERS["baseline"], "-p",
                PLANS_STOCK, "-device", cfg.device, "-npp", "0", "-nps", "0"]
               + ([] if cfg.tta else ["--disable_tta"]), bench.env(seed), ["nnUNet_results"])
    pid = ID_PSEUDO + index
    make_pseudo_label_dataset(bench.raw, bench.semi, pl, pid)
    with open(runner.log, "a", encoding="utf-8") as f:
        f.write(f"# Dataset{pid:03d}: imagesTr+labelsTr of Dataset{ID_SEMI:03d} plus imagesTrUnlabeled with the "
                f"labels predicted above (hard links), written by the benchmark\n")
    bench.transfer_plans(runner, pid)
    runner.step(f"seed {seed}: arm pseudolabel ({ARM_TITLES['pseudolabel']})")
    bench.train_predict(runner, "pseudolabel", seed, pid, PLANS_STOCK)


def distill_arm(bench: Any, runner: Runner, seed: int, index: int) -> None:
    """``nnunetv2-dca distill`` turns this seed's DCA model into a dataset; nnU-Net trains on it."""
    cfg = bench.cfg
    runner.step(f"seed {seed}: distill the DCA model into a dataset for a plain nnU-Net (nnunetv2-dca distill)")
    did = ID_DISTILL + index
    model = os.path.dirname(bench.timings["dca"][seed]["model_folder"])
    runner.run(["nnunetv2-dca", "distill", "-m", model, "-f", FOLD, "--out-id", str(did), "--no-plan",
                "--overwrite", "-device", cfg.device], bench.env(seed), ["nnUNet_results"])
    bench.transfer_plans(runner, did)
    runner.step(f"seed {seed}: arm dca_distill ({ARM_TITLES['dca_distill']})")
    bench.train_predict(runner, "dca_distill", seed, did, PLANS_STOCK)
