"""Shared fixtures: nnU-Net folders, a phantom dataset, the test-only discovery plug-in, console-script runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from nnunetv2_dca.lab.demo import nnunet_env

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PLUGIN_SRC = Path(__file__).resolve().parent / "plugin" / "dca_discovery_testplugin.py"
PLUGIN_CLASSES = ["DiscoveryTestFingerprintExtractor", "DiscoveryTestPlanner", "DiscoveryTestPreprocessor",
                  "DiscoveryTestNormalization", "DiscoveryTestTrainer"]
BIN = Path(sys.executable).parent  # console scripts of the interpreter running the tests


def fresh_env(nnunet_base: Path, pythonpath: Optional[str] = None, training: bool = False) -> Dict[str, str]:
    """A 'fresh shell': no nnUNet_* or PYTHONPATH inherited, only nnU-Net's three folders (+ the plug-in path).
    Folders, PATH and the CPU training knobs come from the demo's own helper, so tests and demo agree."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_") and k != "PYTHONPATH"}
    env = nnunet_env(str(nnunet_base), training=training, base=base)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def run_cmd(cmd: List[str], env: Dict[str, str], cwd: Optional[Path] = None, check: bool = True,
            timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def discovery_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the test plug-in module and a dist-info that registers its classes by entry point."""
    root = tmp_path_factory.mktemp("plugin")
    shutil.copy(PLUGIN_SRC, root / PLUGIN_SRC.name)
    info = root / "dca_discovery_testplugin-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dca-discovery-testplugin\nVersion: 0.0\n")
    lines = ["[nnunetv2_dca.classes]"] + [f"{c} = dca_discovery_testplugin:{c}" for c in PLUGIN_CLASSES]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def phantom_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nnU-Net base folder with a small 3D phantom as Dataset 991 (6 labeled, 2 unlabeled, 2 test)."""
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    base = tmp_path_factory.mktemp("nnunet")
    write_phantom_dataset(str(base / "nnUNet_raw"), 991, labeled=6, unlabeled=2, test=2, seed=3)
    return base
