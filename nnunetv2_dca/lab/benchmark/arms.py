"""The benchmark's arms and fixed names: which trainer and plans each arm uses, its title, the benchmark's own
dataset ids. Standard library only, so the CLI can list the arms without importing torch."""

from __future__ import annotations

# run order: every arm after the arms it needs (pseudolabel after baseline, dca_distill after dca; baseline_wallclock
# after baseline and dca, whose measured seconds per iteration set its epochs)
ARMS = ("baseline", "dca", "dca_asbuilt", "dca_other", "dca_other_supagg", "dca_other_supagg_experts", "dca_seed",
        "dca_supagg", "dca_g1_lambda0", "dca_lambda0", "dca_other_lambda0", "dca_nounlabeled", "dca_lambda01",
        "dca_confidence", "dca_equal", "dca_ema", "semimoe", "pseudolabel", "dca_distill", "full", "baseline_wallclock")
DEFAULT_ARMS = ("baseline", "dca", "full")
ARM_TRAINERS = {"baseline": "nnUNetTrainer_budget", "dca": "nnUNetTrainerDCA_budget",
                "dca_asbuilt": "nnUNetTrainerDCA_asBuilt_budget",
                "dca_other": "nnUNetTrainerDCA_other_budget", "dca_seed": "nnUNetTrainerDCA_seed_budget",
                "dca_other_supagg": "nnUNetTrainerDCA_other_supAgg_budget",
                "dca_other_supagg_experts": "nnUNetTrainerDCA_other_supAgg_predExperts_budget",
                "dca_supagg": "nnUNetTrainerDCA_supAgg_budget",
                "dca_g1_lambda0": "nnUNetTrainerDCA_g1_lambda0_budget",
                "dca_lambda0": "nnUNetTrainerDCA_lambda0_budget",
                "dca_other_lambda0": "nnUNetTrainerDCA_other_lambda0_budget",
                "dca_nounlabeled": "nnUNetTrainerDCA_noUnlabeled_budget",
                "dca_lambda01": "nnUNetTrainerDCA_lambda01_budget",
                "dca_confidence": "nnUNetTrainerDCA_confidence_budget",
                "dca_equal": "nnUNetTrainerDCA_equalExperts_budget",
                "dca_ema": "nnUNetTrainerDCA_ema_budget",
                "semimoe": "nnUNetTrainerSemiMoE_budget",
                "pseudolabel": "nnUNetTrainer_budget", "full": "nnUNetTrainer_budget",
                "baseline_wallclock": "nnUNetTrainer_budget", "dca_distill": "nnUNetTrainer_budget"}
ARM_TITLES = {"baseline": "nnU-Net, labeled only",
              "dca": "DCA (default recipe: other-organ channel, supervised D_A, fused experts as the prediction)",
              "dca_asbuilt": "DCA as first built (label-split, D_A as the prediction)",
              "dca_other": "DCA first build + experts with an other-organ channel (D_A predicts)",
              "dca_seed": "DCA, the seed's literal recipe",
              "dca_other_supagg": "DCA first build + other-organ channel + supervised D_A (D_A predicts)",
              "dca_other_supagg_experts": "DCA, other-organ channel + supervised D_A, fused experts as the prediction",
              "dca_supagg": "DCA first build + supervised D_A (D_A predicts)",
              "dca_g1_lambda0": "control: one group (one expert), no unlabeled loss, experts' prediction",
              "dca_lambda0": "control: three experts with label-split, no unlabeled loss, experts' prediction",
              "dca_other_lambda0": "control: three experts with the other-organ channel, no unlabeled loss",
              "dca_nounlabeled": "control: the default recipe without the unlabeled images' loss (lambda = 0)",
              "dca_lambda01": "DCA default recipe with a small unlabeled weight (lambda = 0.1)",
              "dca_confidence": "DCA default recipe, pseudo-label voxels below fused probability 0.9 ignored",
              "dca_equal": "DCA default recipe with experts of equal capacity (no asymmetry)",
              "dca_ema": "DCA default recipe, pseudo-labels from a mean teacher (EMA 0.99)",
              "semimoe": "Semi-MoE", "pseudolabel": "nnU-Net + offline pseudo-labels",
              "full": "nnU-Net, all labels (upper bound)",
              "baseline_wallclock": "nnU-Net, labeled only, trained as long as DCA took (equal wall-clock)",
              "dca_distill": "nnU-Net trained on labeled + DCA-pseudo-labeled images (nnunetv2-dca distill)"}
# arms that need another arm of the same seed first
ARM_NEEDS = {"pseudolabel": ("baseline",), "dca_distill": ("dca",), "baseline_wallclock": ("baseline", "dca")}
PLANS_DCA = "nnUNetPlansBenchDCA"
PLANS_STOCK = "nnUNetPlansBenchStock"
# arms trained on the DCA plans; every other arm on the stock plans
DCA_ARMS = ("dca", "dca_asbuilt", "dca_other", "dca_other_supagg", "dca_other_supagg_experts", "dca_seed", "dca_supagg",
            "dca_g1_lambda0", "dca_lambda0", "dca_other_lambda0", "dca_nounlabeled", "dca_lambda01", "dca_confidence",
            "dca_equal", "dca_ema")
FOLD = "all"
# arms whose models produce pseudo-labels: DCA's fused experts, and the baseline (the offline recipe's labels)
PSEUDO_LABEL_SOURCES = ("baseline", *DCA_ARMS)
# dataset ids inside the benchmark's own nnUNet_raw
ID_FULL, ID_SEMI, ID_PSEUDO, ID_DISTILL = 951, 952, 960, 970

# The default benchmark (nnunetv2-dca benchmark with no options), one home for the CLI and BenchmarkConfig. Measured
# (docs/benchmark.md, "The CPU frontier"): on 2 CPU cores nnU-Net's all-labels arm needs ~15,000 iterations at
# batch 8 (~21 min) to reach the instrument's targets (test mean 75, tail 50), and a DCA step costs ~3.5 stock
# steps, so a converged seed of baseline + dca + full takes ~2 h. The default is the closest setting that keeps one
# seed of those three arms within ~45 min: 5,000 iterations (all-labels arm: validation mean ~60, tail ~5). The
# converged setting is --epochs 60; on a GPU, nnU-Net's own budget.
DEFAULTS = {"epochs": 20, "iterations": 250, "val_iterations": 4, "batch_size": 8, "phantom_labeled": 4,
            "phantom_unlabeled": 16, "phantom_test": 6, "phantom_size": "small"}
# --preset: a budget and arms under one name, so that every method change runs the same instrument (issue 26).
# Explicit --epochs / --iterations / --val-iterations / --arms override a preset's values.
# phantom_variability applies to the generated phantom only (with -d the user's dataset is used as it is)
PRESETS = {
    "default": {"epochs": DEFAULTS["epochs"], "iterations": DEFAULTS["iterations"],
                "val_iterations": DEFAULTS["val_iterations"], "arms": DEFAULT_ARMS, "phantom_variability": "classic",
                "help": "screening: 5,000 iterations on the classic phantom; ranks recipes quickly, not converged "
                        "(the all-labels arm has not learned the tail)"},
    "converged": {"epochs": 60, "iterations": 250, "val_iterations": DEFAULTS["val_iterations"],
                  "arms": DEFAULT_ARMS, "phantom_variability": "thick_tail",
                  "help": "15,000 iterations on the thick_tail phantom, where the all-labels arm reaches the "
                          "instrument's targets (mean >= 70, tail >= 50) and nnU-Net on 4 labeled cases stays >= 15 "
                          "tail points below (seeds 0, 1): the instrument for claims about unlabeled images"},
}


def dca_arm_trainer(arm: str) -> type:
    """The trainer class of a DCA arm (imports nnunetv2: only called when a DCA arm is keyed or costed)."""
    from nnunetv2_dca.trainers import dca as trainers

    return getattr(trainers, ARM_TRAINERS[arm])


def arm_recipe(arm: str):
    """The DCA recipe of a DCA arm's trainer (part of its stored result's key), None for the other arms."""
    if arm not in DCA_ARMS:
        return None
    from nnunetv2_dca.training.dca import recipe

    return recipe(dca_arm_trainer(arm))
