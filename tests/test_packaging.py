"""Install modes: the wheel ships nnunetv2_dca.pth and our packages only (no top-level `trainers`), a regular
`pip install` makes the stock lookup find our classes, and `pip uninstall` leaves a working stock nnU-Net."""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, fresh_env, run_cmd

LOOKUP = ("from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f; "
          "import sys; print(f(sys.argv[1]).__module__)")


def test_running_environment_has_the_start_up_hook():
    """The environment running the tests (README set-up: editable install) carries the .pth next to the package."""
    dirs = site.getsitepackages() + [sysconfig.get_paths()["purelib"]]
    pth = [Path(d) / "nnunetv2_dca.pth" for d in dirs if (Path(d) / "nnunetv2_dca.pth").is_file()]
    assert pth, f"nnunetv2_dca.pth not found in {dirs}"
    assert pth[0].read_text().strip() == "import nnunetv2_dca._hook"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True)
    return next(out.glob("nnunetv2_dca-*.whl"))


def test_wheel_contents(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    assert "nnunetv2_dca.pth" in names
    assert "nnunetv2_dca/trainers/smoke.py" in names and "nnunetv2_dca/planners/__init__.py" in names
    assert "nnunetv2_dca/data/splits/dhc-synapse-20.json" in names  # package data: the published case lists
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"nnunetv2_dca", "nnunetv2_dca.pth"}
    record = next(n for n in names if n.endswith(".dist-info/RECORD"))
    assert "nnunetv2_dca.pth," in zipfile.ZipFile(wheel).read(record).decode()  # so pip uninstall removes it


@pytest.mark.slow
def test_regular_install_and_uninstall(wheel: Path, tmp_path: Path):
    """`pip install <wheel>` into a fresh venv (dependencies borrowed from this environment by a plain path entry,
    which does not run this environment's .pth files), then `pip uninstall`."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "_borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = fresh_env(tmp_path / "nnunet")
    env["PYTHONNOUSERSITE"] = "1"
    run_cmd([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], env, cwd=tmp_path)
    assert (Path(purelib) / "nnunetv2_dca.pth").is_file()
    out = run_cmd([str(py), "-c", LOOKUP + "; import nnunetv2_dca; print(nnunetv2_dca.__file__)",
                   "nnUNetTrainer_smoke"], env, cwd=tmp_path).stdout
    assert "nnunetv2_dca.trainers.smoke" in out and purelib in out  # the installed copy, not the checkout

    run_cmd([str(py), "-m", "pip", "uninstall", "-y", "-q", "nnunetv2-dca"], env, cwd=tmp_path)
    assert not (Path(purelib) / "nnunetv2_dca.pth").exists() and not (Path(purelib) / "nnunetv2_dca").exists()
    out = run_cmd([str(py), "-c", LOOKUP, "nnUNetTrainer"], env, cwd=tmp_path).stdout
    assert "nnunetv2.training.nnUNetTrainer.nnUNetTrainer" in out
    script = "import nnunetv2.utilities.find_class_by_name as m; print(hasattr(m.recursive_find_python_class, " \
             "'__nnunetv2_dca_wrapped__'))"
    assert run_cmd([str(py), "-c", script], env, cwd=tmp_path).stdout.strip() == "False"
