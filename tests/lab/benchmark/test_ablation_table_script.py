"""benchmarks/scripts/ablation_table.py (the DCA screening table): rows come from stored per-arm results, a row
whose run has not finished is shown as pending (never dropped), and the hand-written README text is kept."""
import json
from pathlib import Path

from benchscripts import load_script


def _record(trainer: str, dice: dict, pseudo: dict = None) -> dict:
    ev = {"group_mean": {g: {"Dice": dice[g]} for g in ("head", "medium", "tail")},
          "foreground_mean": {"Dice": dice["mean"]}}
    rec = {"key": {"trainer": trainer, "epochs": 2, "iterations": 5, "data": {"batch_size": 8}}, "evaluation": ev,
           "timing": {"training_seconds": 90.0}}
    if pseudo is not None:
        rec["pseudo_quality"] = {"sources": {"pseudo_label": {"groups": pseudo}}}
    return rec


def test_table_reads_stored_results_and_keeps_pending_rows(tmp_path: Path):
    results = tmp_path / "run" / "seed_0" / "results"
    results.mkdir(parents=True)
    (results / "dca_other.json").write_text(json.dumps(_record(
        "T_budget", {"head": 0.9, "medium": 0.5, "tail": 0.25, "mean": 0.55},
        {"head": 0.95, "medium": 0.45, "tail": 0.0})))
    table = tmp_path / "table"
    table.mkdir()
    (table / "ROWS.json").write_text(json.dumps({"rows": [
        {"variant": "A", "change": "one", "run": "../run", "arm": "dca_other", "seed": 0},
        {"variant": "B", "change": "two", "run": "../run", "arm": "dca_seed", "seed": 0}]}))
    script = load_script("ablation_table")
    (table / "README.md").write_text(f"intro\n{script.BEGIN}\nold\n{script.END}\noutro\n")
    assert script.main([str(table)]) == 0
    rows = json.loads((table / "ablation.json").read_text())["rows"]
    assert rows[0]["status"] == "measured" and rows[0]["test"] == {"head": 90.0, "medium": 50.0, "tail": 25.0,
                                                                  "mean": 55.0}
    assert rows[0]["pseudo_label"]["medium"] == 45.0 and rows[0]["iterations"] == 10
    assert rows[1]["status"] == "pending"
    readme = (table / "README.md").read_text()
    assert readme.startswith("intro\n") and readme.endswith("outro\n") and "old" not in readme
    assert "| A | one | 90.0 | 50.0 | 25.0 | 55.0 | 95.0 / 45.0 / 0.0 |" in readme and "| B | two | pending |" in readme
    assert (table / "ablation.png").stat().st_size > 5_000
