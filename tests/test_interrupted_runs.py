"""Issue 27, interrupted runs: every command that writes is killed with SIGKILL (no ``finally``, no clean-up) at a
point where it has started writing, then run again. Checked each time: nothing half-written is taken for complete
(no dataset under the id, no short evaluation file, the benchmark rebuilds its data), the next run of the same
command succeeds and removes the hidden leftovers of the killed one (putting an old folder back where the kill cut
a swap short), and nothing else in the folder tree changed (tests/treesnap.py).

Where to kill: the test-only hook ``nnUNetDCA_test_pause=<point>:<name pattern>`` (nnunetv2_dca.atomic.pause_point)
makes the writer print a line and sleep at ``building`` (new folder complete in its hidden sibling), ``replacing``
(old folder moved aside, new one not yet in) or ``writing`` (a file's temporary copy complete); the benchmark's
second run is killed once its data preparation is over (no training). The quick tests at the top check the clean-up
rules themselves. Size: tiny phantoms; about 2 minutes on 2 CPU cores, most of it the unlabeled preprocessing
(nnU-Net's planning and preprocessing) and the benchmark's data preparation."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from conftest import BIN, SHARED, fresh_env, run_cmd
from nnunetv2_dca.atomic import TEST_PAUSE_ENV, write_json_atomic
from nnunetv2_dca.folders import clean_interrupted_dataset
from treesnap import changed, snapshot

CLI = str(BIN / "nnunetv2-dca")
EXAMPLES = SHARED / "data" / "totalsegmentator-examples"
LEFTOVER_MARKS = (".partial-", ".old-", ".deleting-", ".distill-")


# ------------------------------------------------------------------------------------------------------- helpers
def _start(cmd: List[str], env: Dict[str, str], log: Path, pause: Optional[str] = None) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (so the kill also takes nnU-Net's child processes), output to ``log``."""
    env = dict(env)
    if pause:
        env[TEST_PAUSE_ENV] = pause
    with open(log, "w") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _kill_when(proc: subprocess.Popen, log: Path, text: str, timeout: float = 240) -> str:
    """SIGKILL ``proc``'s process group as soon as ``text`` appears in its output; returns the output."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            out = log.read_text(errors="replace")
            if text in out:
                return out
            if proc.poll() is not None:
                raise AssertionError(f"the command ended ({proc.returncode}) before {text!r}:\n{out[-4000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} within {timeout} s:\n{log.read_text(errors='replace')[-4000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)


def _killed_at_pause(cmd: List[str], env: Dict[str, str], log: Path, pause: str) -> str:
    return _kill_when(_start(cmd, env, log, pause), log, f"{TEST_PAUSE_ENV}: {pause.split(':')[0]} ")


def _leftovers(root: Path) -> List[str]:
    """Hidden temporary names the writers use, anywhere below ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if any(m in p.name for m in LEFTOVER_MARKS))


def _visible(folder: Path, prefix: str) -> List[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(prefix)) if folder.is_dir() else []


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """An nnU-Net base folder, plus things no run may touch: another id's hidden build folder and a user's file."""
    b = tmp_path / "nnunet"
    fresh_env(b)  # creates the three folders
    keep = b / "nnUNet_raw" / ".Dataset977_Other.partial-abcd1234"
    keep.mkdir()
    (keep / "x.txt").write_text("another id's, not ours")
    (b / "nnUNet_raw" / ".my_notes.old-12345678").write_text("the user's")
    return b


# ------------------------------------------------------------------------------ the clean-up rules, quick tests
def _folder(path: Path, content: str = "x") -> Path:
    path.mkdir()
    (path / "f.txt").write_text(content)
    return path


def test_clean_interrupted_undoes_unfinished_swaps_and_finishes_finished_ones(tmp_path: Path, capsys):
    # id 1: a swap cut short after the old folder (another name) was moved aside: old back, new removed
    _folder(tmp_path / ".Dataset001_Old.old-aaaaaaaa", "old 1")
    _folder(tmp_path / ".Dataset001_New.partial-aaaaaaaa", "new 1")
    _folder(tmp_path / ".Dataset001_Old.deleting-dddddddd")  # a deletion cut short
    # id 2: a finished swap whose old folder's deletion was cut short: the aside goes
    _folder(tmp_path / "Dataset002_New", "new 2")
    _folder(tmp_path / ".Dataset002_Old.old-bbbbbbbb", "old 2")
    # id 3: an aside of an earlier version (no partial of its token) and nothing in place: renamed back, never lost
    _folder(tmp_path / ".Dataset003_A.old-cccccccc", "old 3")
    _folder(tmp_path / ".Dataset004_B.partial-eeeeeeee")  # another id: untouched
    for dataset_id in (1, 2, 3):
        clean_interrupted_dataset(str(tmp_path), dataset_id)
    assert sorted(os.listdir(tmp_path)) == [".Dataset004_B.partial-eeeeeeee", "Dataset001_Old", "Dataset002_New",
                                            "Dataset003_A"]
    assert (tmp_path / "Dataset001_Old" / "f.txt").read_text() == "old 1"
    assert (tmp_path / "Dataset003_A" / "f.txt").read_text() == "old 3"
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and "restored Dataset001_Old" in err and "Dataset002_Old.old-bbbbbbbb" in err


def test_atomic_write_removes_only_its_own_targets_leftovers(tmp_path: Path):
    (tmp_path / ".a.json.partial-x1y2z3w4.tmp").write_text('{"half')
    (tmp_path / ".b.json.partial-x1y2z3w4.tmp").write_text('{"half')
    (tmp_path / "tmpabcdefgh.tmp").write_text("not recognisably ours")
    write_json_atomic({"ok": 1}, str(tmp_path / "a.json"))
    assert sorted(os.listdir(tmp_path)) == [".b.json.partial-x1y2z3w4.tmp", "a.json", "tmpabcdefgh.tmp"]


def test_pause_hook_is_off_without_the_variable(tmp_path: Path, monkeypatch):
    from nnunetv2_dca.folders import building

    monkeypatch.delenv(TEST_PAUSE_ENV, raising=False)
    t0 = time.monotonic()
    with building(str(tmp_path / "Dataset001_A")) as tmp:
        Path(tmp, "f.txt").write_text("x")
    assert time.monotonic() - t0 < 5 and (tmp_path / "Dataset001_A" / "f.txt").is_file()


# ----------------------------------------------------------------------------------- the commands, killed -9
@pytest.mark.slow
def test_phantom_killed_while_replacing_its_dataset(base: Path, tmp_path: Path):
    env, raw = fresh_env(base), base / "nnUNet_raw"
    cmd = [CLI, "phantom", "-d", "901", "--labeled", "1", "--unlabeled", "0", "--test", "0"]
    run_cmd(cmd, env)
    before = snapshot(base)
    again = cmd + ["--overwrite", "--seed", "1"]
    _killed_at_pause(again, env, tmp_path / "log1", "replacing:Dataset901_*")
    # the old dataset is moved aside, the new one not yet in: nothing under the id that nnU-Net would find
    assert _visible(raw, "Dataset901_") == []
    assert len(_leftovers(raw)) == 2 + 2  # ours (aside + partial) + the fixture's two
    proc = run_cmd(again, env)
    assert "restored Dataset901_AbdomenPhantom" in proc.stdout and proc.stdout.count("cleaned up after") == 1
    assert json.loads((raw / "Dataset901_AbdomenPhantom" / "phantom.json").read_text())["seed"] == 1
    assert _leftovers(raw) == [".Dataset977_Other.partial-abcd1234", ".my_notes.old-12345678"]
    assert changed(before, snapshot(base), allowed=["nnUNet_raw/Dataset901_AbdomenPhantom"]) == []


@pytest.mark.slow
@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="../shared/data/totalsegmentator-examples absent")
def test_cohort_killed_while_building(base: Path, tmp_path: Path):
    env, raw = fresh_env(base), base / "nnUNet_raw"
    before = snapshot(base)
    cmd = [CLI, "cohort", "-d", "941", "--source", str(EXAMPLES), "--train", "1", "--test", "0", "--spacing", "6"]
    _killed_at_pause(cmd, env, tmp_path / "log1", "building:Dataset941_*")
    assert _visible(raw, "Dataset941_") == [] and any(".Dataset941_CohortP1.partial-" in p for p in _leftovers(raw))
    proc = run_cmd(cmd, env)  # not refused as an existing id: the killed run left no dataset
    assert "removed the unfinished .Dataset941_CohortP1.partial-" in proc.stdout
    assert (raw / "Dataset941_CohortP1" / "cohort.json").is_file()
    assert changed(before, snapshot(base), allowed=["nnUNet_raw/Dataset941_CohortP1"]) == []


@pytest.mark.slow
def test_split_killed_while_replacing_a_split_of_another_name(base: Path, tmp_path: Path):
    env, raw = fresh_env(base), base / "nnUNet_raw"
    run_cmd([CLI, "phantom", "-d", "901", "--labeled", "3", "--unlabeled", "0", "--test", "1"], env)
    split = [CLI, "split", "-d", "901", "--out-id", "902"]
    run_cmd(split + ["--labeled-cases", "phantom_0000"], env)
    assert _visible(raw, "Dataset902_") == ["Dataset902_AbdomenPhantom_L1c"]
    before = snapshot(base)
    again = split + ["--labeled-cases", "phantom_0000,phantom_0001", "--overwrite"]
    _killed_at_pause(again, env, tmp_path / "log1", "replacing:Dataset902_*")
    assert _visible(raw, "Dataset902_") == []  # the old split aside, the new one hidden
    proc = run_cmd(again, env)
    assert "restored Dataset902_AbdomenPhantom_L1c" in proc.stdout
    assert _visible(raw, "Dataset902_") == ["Dataset902_AbdomenPhantom_L2c"]
    record = json.loads((raw / "Dataset902_AbdomenPhantom_L2c" / "split.json").read_text())
    assert record["labeled"] == ["phantom_0000", "phantom_0001"]
    assert _leftovers(raw) == [".Dataset977_Other.partial-abcd1234", ".my_notes.old-12345678"]
    assert changed(before, snapshot(base), allowed=["nnUNet_raw/Dataset902_AbdomenPhantom_L*"]) == []


# nnunetv2-dca distill with a stand-in teacher (no training in these tests): every unlabeled image 'predicted' as
# its own label; everything else is the real command
FAKE_TEACHER = """
import os, shutil, sys
import nnunetv2_dca.inference as inference

class Teacher:
    def predict_from_files(self, source, out, **kwargs):
        for f in sorted(os.listdir(source)):
            shutil.copy(os.path.join(source, f), os.path.join(out, f.replace("_0000.nii.gz", ".nii.gz")))

inference.load_model = lambda *args, **kwargs: Teacher()
from nnunetv2_dca.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_distill_killed_while_building_its_dataset(base: Path, tmp_path: Path):
    env, raw = fresh_env(base), base / "nnUNet_raw"
    run_cmd([CLI, "phantom", "-d", "901", "--labeled", "2", "--unlabeled", "2", "--test", "0"], env)
    model = base / "nnUNet_results" / "Dataset901_AbdomenPhantom" / "nnUNetTrainerDCA__nnUNetPlansDCA__2d"
    model.mkdir(parents=True)
    legacy = raw / ".distill-q1w2e3r4"  # an earlier version's prediction folder, id unknown: named, not deleted
    legacy.mkdir()
    before = snapshot(base)
    cmd = [sys.executable, "-c", FAKE_TEACHER, "distill", "-m", str(model), "--out-id", "902", "--no-plan"]
    _killed_at_pause(cmd, env, tmp_path / "log1", "building:Dataset902_*")
    left = _leftovers(raw)
    assert _visible(raw, "Dataset902_") == [], left
    assert any(p.startswith(".distill-902-") for p in left) and any(".Dataset902_" in p for p in left), left
    proc = run_cmd(cmd, env)  # the id is free: not refused as taken
    assert "predictions of an interrupted run for id 902" in proc.stdout
    assert "removed the unfinished .Dataset902_AbdomenPhantomDistilled.partial-" in proc.stdout
    assert ".distill-q1w2e3r4" in proc.stdout and legacy.is_dir()
    assert (raw / "Dataset902_AbdomenPhantomDistilled" / "pseudo_labels.json").is_file()
    assert _leftovers(raw) == [".Dataset977_Other.partial-abcd1234", ".distill-q1w2e3r4", ".my_notes.old-12345678"]
    assert changed(before, snapshot(base), allowed=["nnUNet_raw/Dataset902_AbdomenPhantomDistilled"]) == []


@pytest.mark.slow
def test_evaluate_killed_while_writing_keeps_the_earlier_complete_files(base: Path, tmp_path: Path):
    env, raw = fresh_env(base), base / "nnUNet_raw"
    run_cmd([CLI, "phantom", "-d", "901", "--labeled", "1", "--unlabeled", "0", "--test", "1"], env)
    ds = raw / "Dataset901_AbdomenPhantom"
    pred, out = tmp_path / "pred", tmp_path / "eval"
    shutil.copytree(ds / "labelsTs", pred)
    cmd = [CLI, "evaluate", "-ref", str(ds / "labelsTs"), "-pred", str(pred), "-djfile", str(ds / "dataset.json"),
           "-o", str(out)]
    run_cmd(cmd, env)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["evaluation.csv", "evaluation.json", "evaluation.md"]
    # another prediction: the (differently shaped organs of the) training case under the test case's name
    shutil.copy(ds / "labelsTr" / "phantom_0000.nii.gz", pred / "phantom_0001.nii.gz")
    before = snapshot(tmp_path)
    _killed_at_pause(cmd, env, tmp_path / "log1", "writing:evaluation.*")
    # the earlier set is there, whole; the killed run's files are hidden temporary ones
    assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")} == first
    assert len(_leftovers(out)) == 3
    run_cmd(cmd, env)
    assert _leftovers(out) == [] and sorted(os.listdir(out)) == sorted(first)
    assert json.loads((out / "evaluation.json").read_bytes()) != json.loads(first["evaluation.json"])
    assert changed(before, snapshot(tmp_path), allowed=["eval", "log1"]) == []


@pytest.mark.slow
def test_unlabeled_preprocessing_killed_while_replacing_keeps_no_stamp_beside_a_partial_set(base: Path,
                                                                                              tmp_path: Path):
    env = fresh_env(base)
    run_cmd([CLI, "phantom", "-d", "901", "--labeled", "2", "--unlabeled", "1", "--test", "0"], env)
    run_cmd([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", "901", "-pl", "nnUNetPlannerDCA_CPU", "-c", "2d",
             "-np", "1", "-npfp", "1"], env)
    pre = base / "nnUNet_preprocessed" / "Dataset901_AbdomenPhantom"
    target = pre / "nnUNetPlansDCA_CPU_2d_unlabeled"
    old_stamp = (target / "dca" / "unlabeled_stamp.json").read_bytes()
    before = snapshot(base)
    cmd = [str(BIN / "nnUNetv2_preprocess"), "-d", "901", "-plans_name", "nnUNetPlansDCA_CPU", "-c", "2d", "-np", "1"]
    _killed_at_pause(cmd, env, tmp_path / "log1", "replacing:*_unlabeled")
    assert not target.exists()  # moved aside: no folder a trainer would read
    left = _leftovers(pre)
    assert [re.sub(r"-[0-9a-f]{8}$", "", p) for p in left] == [
        ".nnUNetPlansDCA_CPU_2d_unlabeled.old", ".nnUNetPlansDCA_CPU_2d_unlabeled.partial"], left
    proc = run_cmd(cmd, env)
    assert "restored nnUNetPlansDCA_CPU_2d_unlabeled" in proc.stdout
    assert (target / "dca" / "unlabeled_stamp.json").read_bytes() == old_stamp
    assert (target / "phantom_0002.pkl").is_file() and _leftovers(pre) == []
    # nnU-Net's preprocessing rewrites the labeled cases, ours the unlabeled ones; raw and results stay as they were
    ds = "nnUNet_preprocessed/Dataset901_AbdomenPhantom/"
    allowed = [ds + "nnUNetPlansDCA_CPU_2d", ds + "nnUNetPlansDCA_CPU_2d_unlabeled", ds + "gt_segmentations"]
    assert changed(before, snapshot(base), allowed=allowed) == []


@pytest.mark.slow
def test_benchmark_killed_during_data_preparation_rebuilds_its_data(tmp_path: Path):
    out = tmp_path / "bench"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.txt").write_text("not the benchmark's")
    env = fresh_env(tmp_path / "nnunet")
    cmd = [CLI, "benchmark", "--out", str(out), "--arms", "baseline", "--seeds", "0", "--epochs", "1",
           "--iterations", "1", "--val-iterations", "1", "--phantom-labeled", "1", "--phantom-unlabeled", "1",
           "--phantom-test", "1", "--no-gates"]
    before = snapshot(tmp_path)
    _killed_at_pause(cmd, env, tmp_path / "log1", "replacing:Dataset*")
    raw = out / "nnUNet_raw"
    state = json.loads((out / "benchmark_state.json").read_text())
    assert state["plans_ready"] is False and _visible(raw, "Dataset") == [] and _leftovers(raw)
    # the next run recognises its folder, rebuilds the data from scratch (no training here: killed at planning)
    log = _kill_when(_start(cmd, env, tmp_path / "log2"), tmp_path / "log2", "plan and preprocess")
    assert "data and plans: reused" not in log
    datasets = _visible(raw, "Dataset")
    assert len(datasets) == 2 and all((raw / d / "dataset.json").is_file() for d in datasets), datasets
    assert _leftovers(raw) == []
    assert json.loads((out / "benchmark_state.json").read_text())["plans_ready"] is False
    assert changed(before, snapshot(tmp_path), allowed=["bench", "log1", "log2", "nnunet"]) == []
