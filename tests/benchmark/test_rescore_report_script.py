"""benchmarks/scripts/rescore_report.py: re-scoring a finished benchmark from its stored evaluations."""
import json
import shutil
from pathlib import Path

from benchscripts import SCRIPTS, load_script

COMMITTED = SCRIPTS.parents[0] / "results" / "phantom_cpu"


def test_old_rule_results_are_rescored_and_the_analysis_kept(tmp_path: Path):
    out = tmp_path / "bench"
    shutil.copytree(COMMITTED, out, ignore=shutil.ignore_patterns("*.png", "side_checks"))
    committed = json.loads((COMMITTED / "benchmark.json").read_text())
    # turn one arm's stored case into the old rule's "both empty = Dice 1": the class mean must drop back to
    # what the case values say once re-scored
    ev_file = out / "seed_0" / "predictions" / "full" / "evaluation.json"
    ev = json.loads(ev_file.read_text())
    case = ev["metric_per_case"][0]["metrics"]["5"]
    case.update({"TP": 0, "FP": 0, "FN": 0, "n_ref": 0, "n_pred": 0, "Dice": 1.0, "ASD": 0.0, "HD95": 0.0,
                 "empty": "both"})
    ev_file.write_text(json.dumps(ev))
    report = load_script("rescore_report").rescore_folder(str(out))

    others = [e["metrics"]["5"]["Dice"] for e in ev["metric_per_case"][1:]]
    assert report["dice"]["full"]["dice"]["class:5"]["mean"] == sum(others) / len(others)  # case 0 left out
    rescored = json.loads(ev_file.read_text())
    assert rescored["mean"]["5"]["n"] == len(others) and rescored["mean"]["5"]["n_reference"] == len(others)
    # the untouched arms keep their numbers; the hand-written analysis stays in the README
    assert report["dice"]["dca"]["dice"] == committed["dice"]["dca"]["dice"]
    readme = (out / "README.md").read_text()
    assert "## Analysis" in readme and "test cases with it" in readme and "| esophagus (5) | tail | 6/6 |" in readme
    assert (out / "dice_per_class.png").is_file()
