"""Side check of the committed CPU benchmark: the labeled-only baseline retrained with another initial learning rate.

Tests whether the arms' differences at the CPU budget are optimisation speed (see the benchmark's analysis). Run in the
benchmark's nnU-Net environment, with its budget variables, writing to a *separate* nnUNet_results (the class keeps
the baseline's trainer name so that the stock ``nnUNetv2_predict -tr nnUNetTrainer_budget`` rebuilds it):

    export nnUNet_raw=B/nnUNet_raw nnUNet_preprocessed=B/nnUNet_preprocessed nnUNet_results=/tmp/lr2
    export nnUNet_def_n_proc=1 nnUNet_n_proc_DA=0 nnUNetDCA_budget_epochs=60 nnUNetDCA_budget_iterations=50 \\
           nnUNetDCA_budget_val_iterations=1 nnUNetDCA_budget_seed=0
    python benchmarks/scripts/baseline_lr.py 0.02
    nnUNetv2_predict -i B/nnUNet_raw/Dataset952_AbdomenPhantomSemi/imagesTs -o /tmp/lr2/pred -d 952 -c 2d -f all \\
        -tr nnUNetTrainer_budget -p nnUNetPlansBenchStock -device cpu -npp 0 -nps 0 --disable_tta
    nnunetv2-dca evaluate -ref B/nnUNet_raw/Dataset952_AbdomenPhantomSemi/labelsTs -pred /tmp/lr2/pred \\
        -djfile B/nnUNet_raw/Dataset952_AbdomenPhantomSemi/dataset.json \\
        -pfile B/nnUNet_preprocessed/Dataset952_AbdomenPhantomSemi/nnUNetPlansBenchDCA.json -o /tmp/lr2/pred
"""
import sys

import torch
from batchgenerators.utilities.file_and_folder_operations import join, load_json
from nnunetv2.paths import nnUNet_preprocessed

from nnunetv2_dca.lab.benchmark.arms import FOLD, ID_SEMI, PLANS_STOCK
from nnunetv2_dca.lab.benchmark.data import find_dataset
from nnunetv2_dca.trainers.smoke import nnUNetTrainer_budget as _Budget

LR = float(sys.argv[1]) if len(sys.argv) > 1 else 0.02


class nnUNetTrainer_budget(_Budget):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = LR


if __name__ == "__main__":
    pp = find_dataset(nnUNet_preprocessed, ID_SEMI)
    plans = load_json(join(pp, PLANS_STOCK + ".json"))
    plans["continue_training"] = False  # what nnU-Net's run_training adds before building a trainer
    trainer = nnUNetTrainer_budget(plans, "2d", FOLD, load_json(join(pp, "dataset.json")), device=torch.device("cpu"))
    print(f"initial_lr {trainer.initial_lr}")
    trainer.run_training()
