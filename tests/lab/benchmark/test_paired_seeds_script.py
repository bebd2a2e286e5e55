"""benchmarks/scripts/paired_seeds.py (the README's result picture): values per seed on the seeds both arms share,
and a clear error naming the arms when one is missing."""
import json
from pathlib import Path

import pytest

from benchscripts import load_script


def _ev(head, medium, tail, mean):
    return {"group_mean": {"head": {"Dice": head}, "medium": {"Dice": medium}, "tail": {"Dice": tail}},
            "foreground_mean": {"Dice": mean}}


def test_pairs_follow_the_seeds_both_arms_have(tmp_path: Path):
    script = load_script("paired_seeds")
    report = {"per_seed_evaluation": {
        "baseline": {"0": _ev(0.9, 0.7, 0.1, 0.5), "1": _ev(0.8, 0.3, 0.0, 0.3), "2": _ev(0.9, 0.4, 0.0, 0.35)},
        "dca": {"1": _ev(0.95, 0.6, 0.05, 0.5), "0": _ev(0.92, 0.72, 0.2, 0.6)}}}
    values = script.paired_values(report, "dca")
    assert values["tail"] == {"seeds": [0, 1], "baseline": pytest.approx([10.0, 0.0]),
                              "dca": pytest.approx([20.0, 5.0])}
    assert values["mean"]["dca"] == pytest.approx([60.0, 50.0])
    (tmp_path / "benchmark.json").write_text(json.dumps(report))
    assert script.main([str(tmp_path), "dca"]) == 0
    assert (tmp_path / "paired_dca.png").stat().st_size > 0
    assert script.main([str(tmp_path), "semimoe"]) == 2  # names the arms it has
    assert not (tmp_path / "paired_semimoe.png").exists()
