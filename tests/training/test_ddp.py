"""Issue 15, item 4: DCA and Semi-MoE under DDP (torchrun, 2 CPU processes, gloo), torch.compile off and on, 3 real
training steps each; a NaN in one rank's unlabeled batch skips that step on every rank (no hang: collectives time
out after 60 s) and the replicas stay identical."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from conftest import BIN, fresh_env, run_cmd

pytestmark = pytest.mark.slow
DS, NAME = 993, "Dataset993_AbdomenPhantom"
WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    base = tmp_path_factory.mktemp("ddp")
    write_phantom_dataset(str(base / "nnUNet_raw"), DS, labeled=4, unlabeled=2, test=1, seed=3)
    run_cmd([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(DS), "-pl", "nnUNetPlannerDCA_CPU", "-c",
             "3d_fullres", "-np", "1", "-npfp", "1"], fresh_env(base))
    return base


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("trainer,nan_rank", [("nnUNetTrainerDCA", 1), ("nnUNetTrainerSemiMoE", 0)])
@pytest.mark.parametrize("compiled", [False, True])
def test_two_ranks_train_and_skip_a_nan_step_together(planned, tmp_path, trainer, nan_rank, compiled):
    env = {**fresh_env(planned, training=True), "OMP_NUM_THREADS": "1"}
    plans = planned / "nnUNet_preprocessed" / NAME / "nnUNetPlansDCA_CPU.json"
    cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
           str(_free_port()), str(WORKER), "--plans", str(plans), "--trainer", trainer, "--out", str(tmp_path),
           "--nan-rank", str(nan_rank)] + (["--compile"] if compiled else [])
    run_cmd(cmd, env, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r in ranks:
        assert r["ddp"] and r["compiled"] == compiled
        assert [s["skipped"] for s in r["steps"]] == [0.0, 1.0, 0.0]  # the NaN step skipped on *both* ranks
        assert all(s["loss"] == s["loss"] for i, s in enumerate(r["steps"]) if i != 1)  # finite steps finite
    # DDP kept the replicas identical through the skipped step
    assert ranks[0]["parameter_sums"] == ranks[1]["parameter_sums"]
    assert ranks[0]["parameter_sums"][0] == ranks[1]["parameter_sums"][1]
