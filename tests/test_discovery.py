"""nnunetv2_dca.discovery / _hook: registered names resolve first, everything else goes to nnU-Net unchanged."""

from __future__ import annotations

import re
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from conftest import PLUGIN_CLASSES, fresh_env, run_cmd
from nnunetv2_dca import ENTRY_POINT_GROUP, discovery


def _fake_registry(monkeypatch: pytest.MonkeyPatch, entries: dict) -> None:
    eps = {name: EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in entries.items()}
    monkeypatch.setattr(discovery, "registered_entry_points", lambda: eps)


def test_registered_name_short_circuits_the_recursive_search(monkeypatch):
    _fake_registry(monkeypatch, {"MyOrderedDict": "collections:OrderedDict"})
    calls = []
    wrapped = discovery.wrap_lookup(lambda *a, **k: calls.append((a, k)) or "from nnU-Net")
    import collections

    assert wrapped("/some/folder", "MyOrderedDict", "pkg") is collections.OrderedDict
    assert calls == []
    # unregistered names reach the original with all arguments unchanged
    assert wrapped("/f", "nnUNetTrainer", "m", "/base", verbose=True) == "from nnU-Net"
    assert calls == [(("/f", "nnUNetTrainer", "m", "/base"), {"verbose": True})]


def test_wrapping_is_idempotent():
    wrapped = discovery.wrap_lookup(lambda *a, **k: None)
    assert discovery.wrap_lookup(wrapped) is wrapped


def test_unloadable_entry_point_names_the_class_and_target(monkeypatch):
    _fake_registry(monkeypatch, {"BrokenTrainer": "nnunetv2_dca_no_such_module:BrokenTrainer"})
    with pytest.raises(discovery.DiscoveryError, match="BrokenTrainer.*nnunetv2_dca_no_such_module"):
        discovery.find_registered_class("BrokenTrainer")


def test_non_class_entry_point_is_rejected(monkeypatch):
    _fake_registry(monkeypatch, {"NotAClass": "os.path:join"})
    with pytest.raises(discovery.DiscoveryError, match="not a class"):
        discovery.find_registered_class("NotAClass")


def test_conflicting_registrations_name_both_targets(monkeypatch):
    eps = [EntryPoint("X", "a:X", ENTRY_POINT_GROUP), EntryPoint("X", "b:X", ENTRY_POINT_GROUP)]
    monkeypatch.setattr(discovery, "entry_points", lambda group: eps)
    discovery.registered_entry_points.cache_clear()
    try:
        with pytest.raises(discovery.DiscoveryError, match="'a:X'.*'b:X'"):
            discovery.registered_entry_points()
    finally:
        discovery.registered_entry_points.cache_clear()


def test_our_names_do_not_shadow_stock_nnunet_classes():
    """A registered name hides nnU-Net's class of the same name, so ours must be new names. Checked on nnU-Net's
    source text (importing its trainer tree would crash on CPU-only torch, see _hook.py)."""
    import nnunetv2

    stock = set()
    for f in Path(nnunetv2.__path__[0]).rglob("*.py"):
        stock.update(re.findall(r"^class (\w+)", f.read_text(encoding="utf-8", errors="replace"), re.M))
    ours = {n for n, ep in discovery.registered_entry_points().items() if ep.value.startswith("nnunetv2_dca.")}
    assert ours, "nnunetv2-dca registers no classes: is the package installed (pip install -e .)?"
    assert "nnUNetTrainer" in stock and not (ours & stock)


LOOKUP_SCRIPT = r"""
import sys
from nnunetv2_dca.discovery import hook_active
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
from os.path import join
import nnunetv2
assert hook_active(), "discovery hook not active in a fresh interpreter"
for name in sys.argv[1:]:
    if name.endswith("Trainer") or "Trainer_" in name:
        cls = recursive_find_trainer_class_by_name(name)
    else:
        cls = recursive_find_python_class(join(nnunetv2.__path__[0], "experiment_planning"), name,
                                          "nnunetv2.experiment_planning")
    print(name, "->", cls.__module__ + "." + cls.__qualname__)
bad = [m for m in sys.modules if m.startswith(("torchvision", "timm", "nnunetv2.training.nnUNetTrainer.primus"))]
print("IMPORTED:", bad)
"""


@pytest.mark.slow  # starts a subprocess
def test_fresh_interpreter_resolves_registered_and_stock_names(tmp_path, discovery_plugin):
    """In a new process (as the console scripts are): our trainer, the test plug-in's classes and nnU-Net's own
    trainer resolve; nothing from nnU-Net's primus/timm/torchvision branch is imported for a registered name."""
    env = fresh_env(tmp_path, pythonpath=str(discovery_plugin))
    names = ["nnUNetTrainer_smoke", "DiscoveryTestTrainer", "DiscoveryTestPlanner", "nnUNetTrainer",
             "ExperimentPlanner"]
    out = run_cmd([sys.executable, "-c", LOOKUP_SCRIPT, *names], env, cwd=tmp_path).stdout
    assert "nnUNetTrainer_smoke -> nnunetv2_dca.trainers.smoke.nnUNetTrainer_smoke" in out
    assert "DiscoveryTestTrainer -> dca_discovery_testplugin.DiscoveryTestTrainer" in out
    assert "DiscoveryTestPlanner -> dca_discovery_testplugin.DiscoveryTestPlanner" in out
    assert "nnUNetTrainer -> nnunetv2.training.nnUNetTrainer.nnUNetTrainer.nnUNetTrainer" in out
    assert "ExperimentPlanner -> nnunetv2.experiment_planning.experiment_planners." in out
    assert "IMPORTED: []" in out


@pytest.mark.slow  # starts a subprocess
def test_plugin_registry_lists_all_test_classes(tmp_path, discovery_plugin):
    env = fresh_env(tmp_path, pythonpath=str(discovery_plugin))
    script = "from nnunetv2_dca.discovery import registered_entry_points as r; print(sorted(r()))"
    out = run_cmd([sys.executable, "-c", script], env, cwd=tmp_path).stdout
    for name in PLUGIN_CLASSES + ["nnUNetTrainer_smoke"]:
        assert repr(name) in out


def test_missing_lookup_names_nnunet_version_and_supported_range(monkeypatch):
    # A future nnU-Net without recursive_find_python_class must not surface as Python's "circular import" error.
    import types

    from nnunetv2_dca import SUPPORTED_NNUNETV2

    monkeypatch.setattr(discovery, "_nnunetv2_version", lambda: "2.99.0")
    module = types.ModuleType("nnunetv2.utilities.find_class_by_name")
    with pytest.raises(ImportError, match=r"nnunetv2 2\.99\.0.*supports nnunetv2" + re.escape(SUPPORTED_NNUNETV2)):
        discovery.patch_find_class_module(module)


@pytest.mark.slow  # a subprocess
def test_missing_lookup_through_the_import_hook_is_a_clear_import_error(tmp_path):
    # The real path: the start-up hook's loader executes a find_class_by_name module lacking the function.
    pkg = tmp_path / "nnunetv2" / "utilities"
    pkg.mkdir(parents=True)
    (tmp_path / "nnunetv2" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "find_class_by_name.py").write_text("def renamed_lookup():\n    pass\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import nnunetv2_dca._hook\n"
            "try:\n    import nnunetv2.utilities.find_class_by_name\n"
            "except ImportError as e:\n    print('IMPORTERROR', e)\n")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert "IMPORTERROR" in out.stdout, out.stdout + out.stderr
    assert "supports nnunetv2" in out.stdout and "circular" not in out.stdout + out.stderr


def test_supported_range_matches_the_package_requirement():
    from nnunetv2_dca import SUPPORTED_NNUNETV2

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert f'"nnunetv2{SUPPORTED_NNUNETV2}"' in pyproject


def test_every_trainer_and_planner_class_is_registered():
    """A class users name after -tr / -pl that is missing from the entry points falls through to nnU-Net's recursive
    search, which imports everything (and crashes on torchvision's CPU wheel): every one must be registered."""
    import importlib
    import inspect
    from importlib.metadata import entry_points

    registered = {ep.name: ep.value for ep in entry_points(group="nnunetv2_dca.classes")}
    for module_name in ("nnunetv2_dca.trainers.dca", "nnunetv2_dca.trainers.semi_moe", "nnunetv2_dca.trainers.smoke",
                        "nnunetv2_dca.planners.dca"):
        module = importlib.import_module(module_name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module_name and name.startswith("nnUNet"):
                assert registered.get(name) == f"{module_name}:{name}", f"{name} of {module_name} is not registered"
