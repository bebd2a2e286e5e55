"""nnunetv2_dca.lab.benchmark.eta: remaining time from the run's own epoch times (fake and recorded timelines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunetv2_dca.lab.benchmark.eta import EtaModel, parse_epoch_time

RECORDED = Path(__file__).parent / "data" / "eta_log_recorded.json"


def test_parse_epoch_time_reads_nnunet_log_lines():
    assert parse_epoch_time("2026-12-02 06:01:02.123456: Epoch time: 12.34 s\n") == pytest.approx(12.34)
    assert parse_epoch_time("2026-12-02 06:01:02.123456: Epoch 3\n") is None


def test_fake_timeline_estimates():
    # two arms x one seed, 10 epochs each; baseline 2 s/epoch, dca 10 s/epoch, 5 s overhead per job
    eta = EtaModel([("baseline", 0), ("dca", 0)], epochs=10, cost_ratio={"baseline": 1.0, "dca": 4.0})
    assert eta.remaining() is None  # nothing measured: no guess
    eta.epoch_done(("baseline", 0), 2.0)
    # baseline: 9 epochs x 2 s; dca unmeasured: 10 x 2 s x 4 (cost ratio); no overhead measured yet
    assert eta.job_remaining(("baseline", 0)) == pytest.approx(18.0)
    assert eta.remaining() == pytest.approx(18.0 + 80.0)
    for _ in range(9):
        eta.epoch_done(("baseline", 0), 2.0)
    eta.job_done(("baseline", 0), wall_seconds=25.0)  # 20 s of epochs + 5 s overhead
    assert eta.job_remaining(("baseline", 0)) == 0.0
    assert eta.remaining() == pytest.approx(80.0 + 5.0)
    eta.epoch_done(("dca", 0), 10.0)  # measured: replaces the cost-ratio guess
    assert eta.remaining() == pytest.approx(9 * 10.0 + 5.0)


def test_later_seeds_use_the_arms_own_earlier_epochs():
    eta = EtaModel([("baseline", 0), ("dca", 0), ("baseline", 1), ("dca", 1)], epochs=4,
                   cost_ratio={"baseline": 1.0, "dca": 100.0})  # a bad guess must not matter once measured
    for arm, t, after in (("baseline", 1.0, 2.0), ("dca", 6.0, 7.0)):  # dca: longer predict/scoring afterwards
        for _ in range(4):
            eta.epoch_done((arm, 0), t)
        eta.job_done((arm, 0), 4 * t + after)
    assert eta.remaining() == pytest.approx((4 * 1.0 + 2.0) + (4 * 6.0 + 7.0))  # each arm its own overhead


def _replay(log: dict):
    """(estimate, truth) pairs at the first epoch of each job: for the job itself and for the whole run."""
    jobs = [tuple(j) for j in log["jobs"]]
    eta = EtaModel(jobs, log["epochs"], log["cost_ratio"])
    events = log["events"]
    end = {tuple(e["job"]): e["t"] for e in events if e["event"] == "done"}
    run_end = max(end.values())
    arm_pairs, run_pairs = [], []
    for e in events:
        job = tuple(e["job"])
        if e["event"] == "epoch":
            eta.epoch_done(job, e["seconds"], e["since_job_start"])
            if len(eta.epoch_times[job]) == 1:
                arm_pairs.append((job, eta.job_remaining(job), end[job] - e["t"]))
                run_pairs.append((job, eta.remaining(), run_end - e["t"]))
        else:
            eta.job_done(job, e["seconds"])
    return arm_pairs, run_pairs


@pytest.mark.skipif(not RECORDED.is_file(), reason="recorded timeline missing")
def test_recorded_benchmark_timeline_estimates_within_30_percent():
    # A real `nnunetv2-dca benchmark` run's eta_log.json (see the file's "source"): after the first epoch of each
    # arm, the estimate of that arm's remaining time is within 30 % of what it then took.
    log = json.loads(RECORDED.read_text())
    arm_pairs, run_pairs = _replay(log)
    assert len(arm_pairs) == len(log["jobs"])
    for job, estimate, truth in arm_pairs:
        assert estimate is not None and abs(estimate - truth) <= 0.3 * truth, (job, estimate, truth)
    # the whole run's remaining time, also before the DCA arm was measured (its cost then from the FLOP ratio)
    for job, estimate, truth in run_pairs:
        assert estimate is not None and abs(estimate - truth) <= 0.3 * truth, (job, estimate, truth)
    # the replay reproduces what the run printed
    printed = [e["estimate_arm"] for e in log["events"] if e["event"] == "epoch"]
    assert printed[0] == pytest.approx(arm_pairs[0][1])
