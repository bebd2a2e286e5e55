"""Score the fused pseudo-labels of a benchmark's trained DCA model under each fusion rule (side analysis).

The model is trained once (with the default fusion); only the rule that fuses its experts' logits into pseudo-labels
changes, so the table isolates the fusion: which groups each rule starves on the unlabeled training images, scored
against their true labels (nnunetv2_dca.lab.pseudo_labels). Usage:

    python benchmarks/scripts/fusion_ablation.py BENCHMARK_FOLDER [--arm dca] [--seed 0] [--out FILE.json]
"""
import argparse
import glob
import os
import sys

from nnunetv2_dca.atomic import write_json_atomic
from nnunetv2_dca.lab.benchmark.arms import ARM_TRAINERS, FOLD, ID_FULL, ID_SEMI
from nnunetv2_dca.lab.benchmark.data import find_dataset
from nnunetv2_dca.lab.pseudo_labels import pseudo_label_quality
from nnunetv2_dca.network.fusion import FUSIONS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="output folder of `nnunetv2-dca benchmark` (phantom: true labels available)")
    p.add_argument("--arm", default="dca")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON file (default FOLDER/fusion_ablation.json)")
    a = p.parse_args(argv)
    models = glob.glob(os.path.join(a.folder, f"seed_{a.seed}", "nnUNet_results", "Dataset*",
                                    f"{ARM_TRAINERS[a.arm]}__*"))
    if len(models) != 1:
        sys.exit(f"{a.folder}: expected one trained {ARM_TRAINERS[a.arm]} model of seed {a.seed}, found {models}")
    raw = os.path.join(a.folder, "nnUNet_raw")
    try:
        semi, full = find_dataset(raw, ID_SEMI), find_dataset(raw, ID_FULL)
    except FileNotFoundError as e:
        sys.exit(f"{a.folder}: not a phantom benchmark with true labels for the unlabeled images: {e}")
    results = {}
    for fusion in FUSIONS:
        r = pseudo_label_quality(models[0], os.path.join(semi, "imagesTrUnlabeled"), os.path.join(full, "labelsTr"),
                                 fold=FOLD, fusion=fusion)
        results[fusion] = r["sources"]["pseudo_label"]
        g = results[fusion]
        print(f"{fusion:12s} Dice % " + " / ".join(f"{n} {100 * (g['groups'][n] or 0):.1f}" for n in r["group_names"])
              + "  voxel share % " + " / ".join(f"{n} {100 * g['voxel_share'][n]:.2f} "
                                                  f"({100 * g['voxel_share_true'][n]:.2f})" for n in r["group_names"]),
              flush=True)
    out = a.out or os.path.join(a.folder, "fusion_ablation.json")
    write_json_atomic({"arm": a.arm, "seed": a.seed, "model_folder": os.path.relpath(models[0], a.folder),
                       "fusions": results}, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
