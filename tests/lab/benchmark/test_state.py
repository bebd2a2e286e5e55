"""Resumable benchmark: which stored arms a later invocation reuses, retrains or refuses to mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunetv2_dca.lab.benchmark import state
from nnunetv2_dca.lab.benchmark.run import BenchmarkConfig


def test_stored_result_is_reused_only_with_the_same_key(tmp_path: Path):
    cfg = BenchmarkConfig(out=str(tmp_path))
    key = state.arm_key(cfg, "dca", "nnUNetTrainerDCA_budget")
    state.save_result(str(tmp_path), 3, "dca", key, {"evaluation": {"x": float("nan")}, "timing": {}})
    assert state.load_result(str(tmp_path), 3, "dca", key)["evaluation"] == {"x": None}
    assert state.stored_results(str(tmp_path)) == {3: ["dca"]}
    for change in ({"epochs": cfg.epochs + 1}, {"iterations": 7}, {"device": "cuda"}, {"tta": True},
                   {"batch_size": 2}, {"phantom_size": "medium"}):
        other = BenchmarkConfig(out=str(tmp_path), **change)
        assert state.load_result(str(tmp_path), 3, "dca", state.arm_key(other, "dca", "nnUNetTrainerDCA_budget")) \
            is None, change
    assert state.load_result(str(tmp_path), 4, "dca", key) is None


def test_a_changed_dca_recipe_under_the_same_trainer_name_is_trained_again(tmp_path: Path, monkeypatch):
    """nnUNetTrainerDCA keeps its name when its default recipe changes: the key holds the recipe."""
    from nnunetv2_dca.lab.benchmark.arms import arm_recipe
    from nnunetv2_dca.training.dca import DCATrainer

    cfg = BenchmarkConfig(out=str(tmp_path))
    key = state.arm_key(cfg, "dca", "nnUNetTrainerDCA_budget", recipe=arm_recipe("dca"))
    state.save_result(str(tmp_path), 0, "dca", key, {})
    assert state.load_result(str(tmp_path), 0, "dca", state.arm_key(cfg, "dca", "nnUNetTrainerDCA_budget",
                                                                     recipe=arm_recipe("dca"))) is not None
    monkeypatch.setattr(DCATrainer, "lambda_max", DCATrainer.lambda_max + 1)  # the default recipe changes
    assert state.load_result(str(tmp_path), 0, "dca", state.arm_key(cfg, "dca", "nnUNetTrainerDCA_budget",
                                                                     recipe=arm_recipe("dca"))) is None
    assert arm_recipe("baseline") is None and "recipe" not in state.arm_key(cfg, "baseline", "t")


def test_data_settings_decide_reuse_and_mixing_is_refused(tmp_path: Path):
    cfg = BenchmarkConfig(out=str(tmp_path))
    assert state.check_state(str(tmp_path), cfg, fresh=False) is False  # nothing there yet
    state.write_state(str(tmp_path), cfg, plans_ready=False)
    assert state.check_state(str(tmp_path), cfg, fresh=False) is False  # stopped before the plans were done
    state.write_state(str(tmp_path), cfg, plans_ready=True)
    assert state.check_state(str(tmp_path), cfg, fresh=False) is True
    other = BenchmarkConfig(out=str(tmp_path), phantom_test=cfg.phantom_test + 1)
    assert state.check_state(str(tmp_path), other, fresh=False) is False  # no results yet: rebuilt silently
    state.save_result(str(tmp_path), 0, "baseline", state.arm_key(cfg, "baseline", "t"), {})
    with pytest.raises(state.BenchmarkStateError, match=rf"phantom_test: {cfg.phantom_test} -> {cfg.phantom_test + 1}.*--fresh"):
        state.check_state(str(tmp_path), other, fresh=False)
    assert state.check_state(str(tmp_path), other, fresh=True) is False
    assert json.loads((tmp_path / state.STATE_FILE).read_text())["data_key"]["phantom_test"] == cfg.phantom_test


def test_phantom_variability_is_keyed_only_when_varied(tmp_path: Path):
    """The varied phantom is other data; the classic one keeps the key every stored result was saved under."""
    classic = state.data_key(BenchmarkConfig(out=str(tmp_path)))
    assert "phantom_variability" not in classic
    varied = state.data_key(BenchmarkConfig(out=str(tmp_path), phantom_variability="varied"))
    assert varied == {**classic, "phantom_variability": "varied"}


def test_arm_dependencies_are_checked():
    with pytest.raises(ValueError, match="baseline_wallclock.*'dca'"):
        BenchmarkConfig(out="x", arms=["baseline", "baseline_wallclock"]).validate()
    BenchmarkConfig(out="x", arms=["baseline", "dca", "baseline_wallclock"]).validate()
