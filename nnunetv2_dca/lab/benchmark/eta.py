"""Remaining-time estimate of a benchmark run, from its own measurements.

A benchmark is a sequence of jobs (one arm x seed each: nnUNetv2_train, then predict and evaluate). Counting steps
(the old rule) was off by 5-10x because the arms differ that much in cost. Here:

- a running job's remaining training time = its epochs left x its own epoch wall time (median of the epochs seen
  so far; nnU-Net prints ``Epoch time: X s`` per epoch, training + validation + bookkeeping);
- a job not started yet: the epoch time that arm had in an earlier seed; else the epoch time of an arm already
  measured, scaled by the ratio of the two arms' cost (``cost_ratio``: training cost per step relative to the
  baseline, from FLOPs, see ``Benchmark.eta_cost_ratios``); before any epoch is measured there is no estimate;
- per-job overhead after the last epoch (predict, evaluate, pseudo-label scoring, process ends): the mean over the
  same arm's jobs done, else over all jobs done; before the first job ends, the running job's own start-up (job
  start to the end of its first epoch, minus that epoch), as both are dominated by process starts and data loading.
"""

from __future__ import annotations

import re
import statistics
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

EPOCH_TIME = re.compile(r"Epoch time: ([0-9.]+) s")

Job = Tuple[str, int]  # (arm, seed)


def parse_epoch_time(line: str) -> Optional[float]:
    """Seconds of one epoch from nnU-Net's log line ``... Epoch time: 12.34 s``; None for other lines."""
    m = EPOCH_TIME.search(line)
    return float(m.group(1)) if m else None


class EtaModel:
    """Remaining time of ``jobs`` (in run order), each training ``epochs`` epochs."""

    def __init__(self, jobs: Sequence[Job], epochs: int, cost_ratio: Optional[Mapping[str, float]] = None):
        self.jobs = list(jobs)
        self.epochs = epochs
        self.cost_ratio = dict(cost_ratio or {})
        self.epoch_times: Dict[Job, List[float]] = {j: [] for j in self.jobs}
        self.startup: Dict[Job, float] = {}
        self.overheads: Dict[Job, float] = {}  # seconds after the last epoch, per job done (its keys: jobs done)

    def epoch_done(self, job: Job, seconds: float, since_job_start: Optional[float] = None) -> None:
        """One epoch of ``job`` took ``seconds``; ``since_job_start``: wall time from the job's start to now."""
        if not self.epoch_times[job] and since_job_start is not None:
            self.startup[job] = max(0.0, since_job_start - seconds)
        self.epoch_times[job].append(seconds)

    def job_done(self, job: Job, wall_seconds: float) -> None:
        used = self.startup.get(job, 0.0) + sum(self.epoch_times[job])
        self.overheads[job] = max(0.0, wall_seconds - used)

    def _epoch_seconds(self, arm: str) -> Optional[float]:
        """Typical epoch time of ``arm``: measured (any seed), else scaled from a measured arm, else None."""
        own = [t for (a, _), ts in self.epoch_times.items() if a == arm for t in ts]
        if own:
            return statistics.median(own)
        measured = {a: statistics.median(ts) for (a, _), ts in self.epoch_times.items() if ts}
        scalable = [a for a in measured if a in self.cost_ratio and arm in self.cost_ratio]
        if not scalable:
            return None
        ref = scalable[-1]
        return measured[ref] * self.cost_ratio[arm] / self.cost_ratio[ref]

    def _mean_startup(self) -> float:
        return statistics.mean(self.startup.values()) if self.startup else 0.0

    def _overhead(self, job: Job) -> float:
        same_arm = [s for (arm, _), s in self.overheads.items() if arm == job[0]]
        if same_arm or self.overheads:
            return statistics.mean(same_arm or list(self.overheads.values()))
        return self.startup.get(job, self._mean_startup())

    def job_remaining(self, job: Job) -> Optional[float]:
        """Seconds left for ``job`` (training epochs left + overhead); None if nothing can be estimated yet."""
        if job in self.overheads:  # done
            return 0.0
        seen = self.epoch_times[job]
        per_epoch = statistics.median(seen) if seen else self._epoch_seconds(job[0])
        if per_epoch is None:
            return None
        startup = 0.0 if seen else self._mean_startup()
        return startup + max(0, self.epochs - len(seen)) * per_epoch + self._overhead(job)

    def remaining(self) -> Optional[float]:
        """Seconds left for the whole run; None while some job cannot be estimated."""
        parts = [self.job_remaining(j) for j in self.jobs if j not in self.overheads]
        if any(p is None for p in parts):
            return None
        return float(sum(parts))


def format_minutes(seconds: Optional[float]) -> str:
    if seconds is None:
        return "unknown until the first epoch"
    return f"{seconds / 60:.1f} min" if seconds < 600 else f"{seconds / 60:.0f} min"
