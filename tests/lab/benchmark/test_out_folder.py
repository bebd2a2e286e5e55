"""Regression (issue 27): `nnunetv2-dca benchmark --out DIR` may only ever delete what the benchmark created itself.

DIR being the user's own nnU-Net base folder (nnUNet_raw/DatasetXXX with their data) emptied their datasets, and
`--fresh` deleted any seed_* folder. Now a non-empty --out without the benchmark's own benchmark_state.json is refused
before anything is written. The run is stopped at its data step (the phantom writer), so no nnU-Net command runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest

from nnunetv2_dca.lab.benchmark import state
from nnunetv2_dca.lab.benchmark.run import Benchmark, BenchmarkConfig
from nnunetv2_dca.cli import main
from treesnap import changed, snapshot


class ReachedDataStep(Exception):
    """Raised by the patched phantom writer: the benchmark got past its checks to writing data."""


@pytest.fixture
def stop_at_data(monkeypatch) -> List[dict]:
    """Replace the phantom writer by a stop; returns the calls it received (raw folder, keyword arguments)."""
    import nnunetv2_dca.data.phantom as phantom

    calls: List[dict] = []

    def stop(raw_dir: str, dataset_id: int, **kwargs):
        calls.append({"raw_dir": raw_dir, "dataset_id": dataset_id, **kwargs})
        raise ReachedDataStep()

    monkeypatch.setattr(phantom, "write_phantom_dataset", stop)
    return calls


def users_nnunet_base(root: Path) -> Path:
    """A user's nnU-Net base folder: raw and preprocessed data, and a seed_0 folder of their own."""
    base = root / "nnunet"
    ds = base / "nnUNet_raw" / "Dataset001_Mine"
    (ds / "imagesTr").mkdir(parents=True)
    (ds / "imagesTr" / "case_0000_0000.nii.gz").write_bytes(b"my image")
    (ds / "dataset.json").write_text("{}")
    pre = base / "nnUNet_preprocessed" / "Dataset001_Mine"
    pre.mkdir(parents=True)
    (pre / "nnUNetPlans.json").write_text("{}")
    (base / "seed_0").mkdir()
    (base / "seed_0" / "notes.txt").write_text("mine")
    return base


@pytest.mark.parametrize("fresh", [False, True])
@pytest.mark.parametrize("layout", ["nnunet_base", "one_file", "foreign_state_file"])
def test_out_the_benchmark_did_not_make_is_refused_untouched(tmp_path: Path, stop_at_data, layout, fresh):
    if layout == "nnunet_base":
        out = users_nnunet_base(tmp_path)
    else:
        out = tmp_path / "mine"
        out.mkdir()
        name = "notes.txt" if layout == "one_file" else state.STATE_FILE  # a file of that name, not the benchmark's
        (out / name).write_text("[1, 2]")
    before = snapshot(tmp_path)
    with pytest.raises(state.BenchmarkStateError, match=rf"{out}.*not.*benchmark.*empty or new folder"):
        Benchmark(BenchmarkConfig(out=str(out), fresh=fresh)).run()
    assert changed(before, snapshot(tmp_path)) == []
    assert stop_at_data == []


def test_cli_refuses_users_folder_in_one_line(tmp_path: Path, stop_at_data, capsys):
    base = users_nnunet_base(tmp_path)
    before = snapshot(tmp_path)
    assert main(["benchmark", "--out", str(base), "--fresh"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(base) in err and "empty or new folder" in err, err
    assert changed(before, snapshot(tmp_path)) == []


@pytest.mark.parametrize("case", ["new", "empty", "own_fresh", "own_resumed"])
def test_new_empty_or_own_out_is_used_and_only_it_changes(tmp_path: Path, stop_at_data, case):
    users_nnunet_base(tmp_path)  # next to --out: must stay as it is
    out = tmp_path / "bench"
    cfg = BenchmarkConfig(out=str(out), fresh=case == "own_fresh")
    if case == "empty":
        out.mkdir()
    if case.startswith("own"):  # a folder of an earlier run (the current on-disk format)
        state.write_state(str(out), cfg, plans_ready=False)
        (out / "nnUNet_raw" / "Dataset951_AbdomenPhantom").mkdir(parents=True)
        state.save_result(str(out), 0, "baseline", state.arm_key(cfg, "baseline", "t"), {"evaluation": {}})
    before = snapshot(tmp_path)
    with pytest.raises(ReachedDataStep):
        Benchmark(cfg).run()
    assert changed(before, snapshot(tmp_path), allowed=["bench"]) == []
    assert "data_key" in json.loads((out / state.STATE_FILE).read_text())
    # the dataset writers write into the benchmark's own nnUNet_raw only and never replace a dataset there
    assert stop_at_data[0]["raw_dir"] == str(out / "nnUNet_raw") and not stop_at_data[0].get("overwrite")
    assert (out / "seed_0" / "results" / "baseline.json").is_file() == (case == "own_resumed")


def test_dataset_read_from_inside_out_is_refused_untouched(tmp_path: Path, monkeypatch):
    """-d reads $nnUNet_raw: when that is the benchmark's own nnUNet_raw (which a new run rebuilds), stop."""
    out = tmp_path / "bench"
    cfg = BenchmarkConfig(out=str(out), dataset=952, arms=["baseline", "dca"], fresh=True)
    state.write_state(str(out), cfg, plans_ready=True)
    ds = out / "nnUNet_raw" / "Dataset952_Mine"
    (ds / "imagesTs").mkdir(parents=True)
    (ds / "imagesTs" / "a_0000.nii.gz").write_bytes(b"my image")
    monkeypatch.setenv("nnUNet_raw", str(out / "nnUNet_raw"))
    before = snapshot(tmp_path)
    with pytest.raises(state.BenchmarkStateError, match=rf"nnUNet_raw.*{out / 'nnUNet_raw'}.*another --out"):
        Benchmark(cfg).run()
    assert changed(before, snapshot(tmp_path)) == []
