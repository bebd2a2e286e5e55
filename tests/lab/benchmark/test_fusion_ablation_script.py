"""benchmarks/scripts/fusion_ablation.py (the committed fusion ablation): it refuses a folder that is not a finished
phantom benchmark with an error naming the folder and what it looked for, and writes nothing."""
from pathlib import Path

import pytest

from benchscripts import load_script


def test_rejects_folder_without_trained_dca_model(tmp_path: Path):
    (tmp_path / "nnUNet_raw" / "Dataset951_AbdomenPhantom").mkdir(parents=True)
    (tmp_path / "nnUNet_raw" / "Dataset952_AbdomenPhantomSemi").mkdir(parents=True)
    with pytest.raises(SystemExit) as e:
        load_script("fusion_ablation").main([str(tmp_path)])
    assert str(tmp_path) in str(e.value) and "nnUNetTrainerDCA_budget" in str(e.value)
    assert not (tmp_path / "fusion_ablation.json").exists()



def test_experts_vs_aggregate_refuses_a_folder_without_a_test_set_or_models(tmp_path: Path):
    """benchmarks/scripts/experts_vs_aggregate.py names the folder and writes nothing."""
    script = load_script("experts_vs_aggregate")
    with pytest.raises(SystemExit) as e:
        script.main([str(tmp_path)])
    assert str(tmp_path) in str(e.value) and "test set" in str(e.value)
    (tmp_path / "nnUNet_raw" / "Dataset952_AbdomenPhantomSemi").mkdir(parents=True)
    with pytest.raises(SystemExit) as e:
        script.main([str(tmp_path)])
    assert "no trained DCA model" in str(e.value)
    assert not (tmp_path / "experts_vs_aggregate.json").exists()
