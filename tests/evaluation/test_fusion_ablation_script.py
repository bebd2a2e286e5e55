"""benchmarks/scripts/fusion_ablation.py (the committed fusion ablation): it refuses a folder that is not a finished
phantom benchmark with an error naming the folder and what it looked for, and writes nothing."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scripts" / "fusion_ablation.py"


def load_script():
    spec = importlib.util.spec_from_file_location("fusion_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rejects_folder_without_trained_dca_model(tmp_path: Path):
    (tmp_path / "nnUNet_raw" / "Dataset951_AbdomenPhantom").mkdir(parents=True)
    (tmp_path / "nnUNet_raw" / "Dataset952_AbdomenPhantomSemi").mkdir(parents=True)
    with pytest.raises(SystemExit) as e:
        load_script().main([str(tmp_path)])
    assert str(tmp_path) in str(e.value) and "nnUNetTrainerDCA_budget" in str(e.value)
    assert not (tmp_path / "fusion_ablation.json").exists()

