"""Regenerate a finished benchmark's report with the current evaluation protocol, without retraining.

Every benchmark run keeps each arm's ``seed_<s>/predictions/<arm>/evaluation.json`` with the per-case values (and
the committed results keep nothing else: no predictions, no weights). This script re-summarises those with the
current rules (:func:`nnunetv2_dca.evaluation.evaluate.rescore_result`), rewrites the evaluation files, the tables,
the verdict and the per-class chart in ``benchmark.json`` / ``README.md``, and keeps the hand-written part of the
README (from ``## Analysis`` on). Pictures made from the trained models (gates, training logs) are kept as they are.

    python benchmarks/scripts/rescore_report.py benchmarks/results/phantom_cpu
"""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

from nnunetv2_dca.atomic import write_json_atomic, write_text_atomic
from nnunetv2_dca.benchmark.charts import plot_dice_per_class
from nnunetv2_dca.benchmark.report import markdown_report, summarise_arms, verdict
from nnunetv2_dca.evaluation.evaluate import json_ready, rescore_result, write_outputs

HAND_WRITTEN = "## Analysis"


def rescore_folder(out: str) -> dict:
    with open(os.path.join(out, "benchmark.json"), encoding="utf-8") as f:
        report = json.load(f)
    seeds, arms = report["seeds"], list(report["arms"])
    results = {}
    for arm in arms:
        results[arm] = {}
        for seed in seeds:
            folder = os.path.join(out, f"seed_{seed}", "predictions", arm)
            with open(os.path.join(folder, "evaluation.json"), encoding="utf-8") as f:
                results[arm][seed] = rescore_result(json.load(f))
            write_outputs(results[arm][seed], folder)
    summary = summarise_arms(results, seeds)
    report["dice"] = summary["arms"]
    report["dataset"]["groups"] = summary["groups"]
    report["per_seed_evaluation"] = {arm: {str(s): {k: v for k, v in r.items() if k != "metric_per_case"}
                                           for s, r in results[arm].items()} for arm in arms}
    report["verdict"] = verdict(summary, seeds)
    cfg = SimpleNamespace(**report["config"])
    plot_dice_per_class(summary, os.path.join(out, "dice_per_class.png"),
                        f"test-set Dice per class, {len(seeds)} seed(s), {cfg.epochs} epochs x {cfg.iterations} "
                        f"iterations")
    text = markdown_report(report, summary, cfg)
    with open(os.path.join(out, "README.md"), encoding="utf-8") as f:
        old = f.read()
    if HAND_WRITTEN in old:
        text = text.rstrip("\n") + "\n\n" + old[old.index(HAND_WRITTEN):]
    write_json_atomic(json_ready(report), os.path.join(out, "benchmark.json"))
    write_text_atomic(os.path.join(out, "README.md"), text)
    return report


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    r = rescore_folder(sys.argv[1])
    print(json.dumps(r["verdict"], indent=2))
