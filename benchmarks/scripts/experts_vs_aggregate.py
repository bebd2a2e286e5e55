"""Test-set Dice of a trained DCA model's two possible outputs: the fused experts and the aggregation decoder D_A.

The labeled-only baseline of the same seed is scored the same way, so all three numbers are comparable.

Why: ``nnUNetv2_predict`` returns D_A, which learns only from the fused pseudo-labels (and, with ``_supAgg``, the
labeled ground truth). Where D_A drops a class the experts find (the tail at short budgets), the fused experts may
be the better prediction; this scores both on the same trained weights, so the comparison costs no training.
Scored like the pseudo-labels (nnunetv2_dca.lab.pseudo_labels: preprocessed grid, no mirroring, Dice pooled
over the test images), so the numbers are comparable with each other, not with the benchmark's per-case means.
Usage:

    python benchmarks/scripts/experts_vs_aggregate.py BENCHMARK_FOLDER [--out FILE.json]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Dict

from nnunetv2_dca.atomic import write_json_atomic
from nnunetv2_dca.lab.benchmark.arms import ARM_TRAINERS, DCA_ARMS, FOLD, ID_SEMI
from nnunetv2_dca.lab.benchmark.data import bench_class_groups, find_dataset
from nnunetv2_dca.lab.benchmark.state import STATE_FILE, stored_results
from nnunetv2_dca.lab.pseudo_labels import pseudo_label_quality


def _dca_groups(folder: str, semi: str):
    """The run's DCA plans' groups (the baseline is not a DCA model): the benchmark's own lookup."""
    prep = glob.glob(os.path.join(folder, "nnUNet_preprocessed", f"Dataset{ID_SEMI}_*"))[0]
    with open(os.path.join(folder, STATE_FILE), encoding="utf-8") as f:
        configuration = json.load(f)["data_key"]["configuration"]
    with open(os.path.join(semi, "dataset.json"), encoding="utf-8") as f:
        return bench_class_groups(prep, json.load(f), configuration)


def score_models(folder: str) -> Dict[str, Dict[str, Dict]]:
    """arm -> seed -> {"experts": ..., "aggregate": ...} (pseudo_label_quality's per-source summaries)."""
    semi = find_dataset(os.path.join(folder, "nnUNet_raw"), ID_SEMI)
    out: Dict[str, Dict[str, Dict]] = {}
    for seed, arms in sorted(stored_results(folder).items()):
        for arm in (a for a in arms if a in DCA_ARMS or a == "baseline"):
            models = glob.glob(os.path.join(folder, f"seed_{seed}", "nnUNet_results", "Dataset*",
                                            f"{ARM_TRAINERS[arm]}__*"))
            if len(models) != 1:  # a fresh clone of a stored run has results but no models
                continue
            # every arm is summarised by the run's planned groups (the baseline is not a DCA model; a one-group
            # control's own groups are not head/medium/tail)
            groups = _dca_groups(folder, semi)
            r = pseudo_label_quality(models[0], os.path.join(semi, "imagesTs"), os.path.join(semi, "labelsTs"),
                                     fold=FOLD, class_groups=groups)
            names = {"pseudo_label": "experts", "aggregate": "aggregate", "prediction": "prediction"}
            out.setdefault(arm, {})[str(seed)] = {names[k]: v for k, v in r["sources"].items()}
            groups = r["group_names"]
            for source in out[arm][str(seed)]:
                g = out[arm][str(seed)][source]
                print(f"{arm} seed {seed} {source:9s} " + " / ".join(
                    f"{n} {100 * (g['groups'][n] or 0):.1f}" for n in groups) + f"  mean {100 * g['mean']:.1f}",
                    flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="output folder of `nnunetv2-dca benchmark` with trained DCA models")
    p.add_argument("--out", default=None, help="JSON file (default FOLDER/experts_vs_aggregate.json)")
    a = p.parse_args(argv)
    try:
        scores = score_models(a.folder)
    except FileNotFoundError as e:
        sys.exit(f"{a.folder}: not a benchmark folder with its test set: {e}")
    if not any(arm in DCA_ARMS for arm in scores):
        sys.exit(f"{a.folder}: no trained DCA model found (arms {', '.join(DCA_ARMS)})")
    write_json_atomic(scores, a.out or os.path.join(a.folder, "experts_vs_aggregate.json"), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
