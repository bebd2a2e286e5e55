"""scripts/torch_constraint.py: the constraint that keeps the user's torch must match the installed distribution."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "torch_constraint.py"


def _module():
    spec = importlib.util.spec_from_file_location("torch_constraint", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("dist_version, runtime_version", [("2.13.0", "2.13.0+cu130"), ("2.13.0+cpu", "2.13.0+cpu"),
                                                           ("2.13.0", "2.13.0")])
def test_constraint_names_the_distribution_version_not_torch_version(dist_version, runtime_version):
    # PyPI's CUDA wheel: distribution 2.13.0, torch.__version__ 2.13.0+cu130. Only the former satisfies a pin.
    mod = _module()
    lines = mod.constraint_lines(lambda name: {"torch": dist_version, "torchvision": "0.28.0"}[name])
    assert lines == [f"torch=={dist_version}", "torchvision==0.28.0"]
    pin = SpecifierSet("==" + lines[0].split("==", 1)[1])
    assert Version(dist_version) in pin
    if runtime_version != dist_version:  # the old rule (torch.__version__) excluded the installed distribution
        assert Version(dist_version) not in SpecifierSet("==" + runtime_version)


def test_torchvision_is_optional_torch_is_not():
    mod = _module()

    def only_torch(name):
        if name == "torch":
            return "2.13.0"
        raise metadata.PackageNotFoundError(name)

    assert mod.constraint_lines(only_torch) == ["torch==2.13.0"]
    with pytest.raises(metadata.PackageNotFoundError):
        mod.constraint_lines(lambda name: (_ for _ in ()).throw(metadata.PackageNotFoundError(name)))


@pytest.mark.slow  # a subprocess
def test_script_prints_this_environments_pins():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == f"torch=={metadata.version('torch')}"
