"""The benchmark's arms and fixed names: which trainer and plans each arm uses, its title, the benchmark's own
dataset ids. Standard library only, so the CLI can list the arms without importing torch."""

from __future__ import annotations

ARMS = ("baseline", "dca", "dca_supagg", "semimoe", "pseudolabel", "full")
DEFAULT_ARMS = ("baseline", "dca", "pseudolabel", "full")
ARM_TRAINERS = {"baseline": "nnUNetTrainer_budget", "dca": "nnUNetTrainerDCA_budget",
                "dca_supagg": "nnUNetTrainerDCA_supAgg_budget", "semimoe": "nnUNetTrainerSemiMoE_budget",
                "pseudolabel": "nnUNetTrainer_budget", "full": "nnUNetTrainer_budget"}
ARM_TITLES = {"baseline": "nnU-Net, labeled only", "dca": "DCA", "dca_supagg": "DCA + supervised D_A",
              "semimoe": "Semi-MoE", "pseudolabel": "nnU-Net + offline pseudo-labels",
              "full": "nnU-Net, all labels (upper bound)"}
PLANS_DCA = "nnUNetPlansBenchDCA"
PLANS_STOCK = "nnUNetPlansBenchStock"
FOLD = "all"
# arms whose models produce pseudo-labels: DCA's fused experts, and the baseline (the offline recipe's labels)
PSEUDO_LABEL_SOURCES = ("baseline", "dca", "dca_supagg")
# dataset ids inside the benchmark's own nnUNet_raw
ID_FULL, ID_SEMI, ID_PSEUDO = 951, 952, 960
