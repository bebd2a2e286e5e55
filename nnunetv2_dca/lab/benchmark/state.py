"""What makes a benchmark resumable: each finished (arm, seed) is stored on its own, and a later invocation with
the same settings reuses the data, the plans and every finished arm instead of redoing them.

Two keys decide what may be reused. The *data key* (phantom or user dataset, planner, configuration, width) names
what the raw and preprocessed folders were built from: a run with another data key into the same ``--out`` is
refused unless ``--fresh`` (its finished arms would be mixed with results on other data). The *arm key* (budget,
device, test-time augmentation, the arm's trainer, plus the data key) names one training: a stored result with
another arm key is trained again; a DCA arm's key also holds its trainer's recipe (the class attributes of
``training.dca.RECIPE_ATTRIBUTES``), since a trainer name such as nnUNetTrainerDCA keeps its name when its default
recipe changes. Results live in ``OUT/seed_<s>/results/<arm>.json``, written atomically once the
arm's prediction, evaluation and timing are complete, so a run stopped mid-way loses at most the arm in progress.
Seeds run in separate invocations (``--seeds 0``, later ``--seeds 1,2``) end in one report over all stored seeds.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Mapping, Optional

from nnunetv2_dca.atomic import write_json_atomic

STATE_FILE = "benchmark_state.json"
STATE_VERSION = 1


class BenchmarkStateError(ValueError):
    """``--out`` is not the benchmark's own folder, or holds a benchmark built from other data or settings (the
    message names the folder or the settings)."""


def is_benchmark_folder(out: str) -> bool:
    """OUT holds the benchmark_state.json that :func:`write_state` writes first into every folder it runs in: the
    marker of a folder the benchmark made (and may therefore delete in)."""
    try:
        with open(os.path.join(out, STATE_FILE), encoding="utf-8") as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(stored, dict) and isinstance(stored.get("data_key"), dict)


def check_out_folder(out: str) -> None:
    """Refuse an ``--out`` the benchmark did not make: a run (and ``--fresh``) deletes nnUNet_raw,
    nnUNet_preprocessed, test_sites and seed_* inside it, which in a user's own folder would be their data."""
    if not os.path.lexists(out):
        return
    if not os.path.isdir(out):
        raise BenchmarkStateError(f"--out {out} is not a folder; choose an empty or new folder for the benchmark")
    if os.listdir(out) and not is_benchmark_folder(out):
        raise BenchmarkStateError(
            f"--out {out} is not empty and was not made by the benchmark (no {STATE_FILE}); the benchmark deletes "
            f"and rebuilds nnUNet_raw, nnUNet_preprocessed and seed_* inside --out, so it leaves this folder as it "
            f"is: choose an empty or new folder")


def data_key(cfg) -> Dict[str, object]:
    from nnunetv2_dca.data.phantom import GENERATOR_VERSION

    key: Dict[str, object] = {"dataset": cfg.dataset, "full_dataset": cfg.full_dataset, "planner": cfg.planner,
                              "configuration": cfg.configuration, "width": cfg.width, "batch_size": cfg.batch_size,
                              "state_version": STATE_VERSION}
    if cfg.dataset is None:
        key.update(phantom_labeled=cfg.phantom_labeled, phantom_unlabeled=cfg.phantom_unlabeled,
                   phantom_test=cfg.phantom_test, phantom_seed=cfg.phantom_seed, phantom_size=cfg.phantom_size,
                   sites=cfg.sites, generator_version=GENERATOR_VERSION)
        if cfg.phantom_variability != "classic":  # keyed only when set: earlier runs' stored keys stay valid
            key["phantom_variability"] = cfg.phantom_variability
    return key


def arm_key(cfg, arm: str, trainer: str, epochs: Optional[int] = None,
            recipe: Optional[Mapping] = None) -> Dict[str, object]:
    """``recipe``: a DCA trainer's recipe (training.dca.recipe), so that a changed default of the same trainer name
    is trained again; other trainers have none (their keys stay as they were)."""
    key = {"data": data_key(cfg), "arm": arm, "trainer": trainer, "epochs": epochs or cfg.epochs,
           "iterations": cfg.iterations, "val_iterations": cfg.val_iterations, "device": cfg.device, "tta": cfg.tta}
    if recipe is not None:
        key["recipe"] = dict(recipe)
    return key


def differences(old: Mapping, new: Mapping) -> List[str]:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def check_state(out: str, cfg, fresh: bool) -> bool:
    """True when OUT's data and plans were built with this run's data key (reuse them); False when they must be
    (re)built. Raises BenchmarkStateError when OUT holds finished arms of other data and ``fresh`` is not set."""
    path = os.path.join(out, STATE_FILE)
    if fresh or not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        stored = json.load(f)
    new = data_key(cfg)
    diff = differences(stored.get("data_key", {}), new)
    if not diff:
        return bool(stored.get("plans_ready"))
    if stored_results(out):
        raise BenchmarkStateError(
            f"{out} holds benchmark results of other data or plans ({'; '.join(diff)}); pass --fresh to delete them "
            f"and start over, or choose another --out")
    return False


def write_state(out: str, cfg, plans_ready: bool) -> None:
    write_json_atomic({"data_key": data_key(cfg), "plans_ready": plans_ready}, os.path.join(out, STATE_FILE))


def result_path(out: str, seed: int, arm: str) -> str:
    return os.path.join(out, f"seed_{seed}", "results", f"{arm}.json")


def save_result(out: str, seed: int, arm: str, key: Mapping, record: Mapping) -> None:
    from nnunetv2_dca.evaluation.evaluate import json_ready

    write_json_atomic(json_ready({"key": dict(key), **record}), result_path(out, seed, arm))


def load_result(out: str, seed: int, arm: str, key: Mapping) -> Optional[Dict]:
    """The stored record of (arm, seed) if it was made with ``key``, else None."""
    path = result_path(out, seed, arm)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    return record if record.get("key") == json.loads(json.dumps(dict(key))) else None


def stored_results(out: str) -> Dict[int, List[str]]:
    """seed -> arms with a stored result under OUT."""
    found: Dict[int, List[str]] = {}
    if not os.path.isdir(out):
        return found
    for name in os.listdir(out):
        folder = os.path.join(out, name, "results")
        if name.startswith("seed_") and name[5:].lstrip("-").isdigit() and os.path.isdir(folder):
            arms = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".json"))
            if arms:
                found[int(name[5:])] = arms
    return found
