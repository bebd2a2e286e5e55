"""The benchmark's command runner: each console script through :func:`nnunetv2_dca.commands.run_command` into the
run's ``commands.sh``, step and per-epoch progress with the ETA, the ETA's log (``eta_log.json``)."""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from nnunetv2_dca.atomic import write_json_atomic
from nnunetv2_dca.commands import run_command
from nnunetv2_dca.lab.benchmark.config import BenchmarkError
from nnunetv2_dca.lab.benchmark.eta import EtaModel, Job, format_minutes, parse_epoch_time


class Runner:
    """Runs console scripts, logs them to commands.sh and prints progress."""

    def __init__(self, out: str, total_steps: int, append: bool = False):
        self.out = out
        self.log = os.path.join(out, "commands.sh")
        self.total = total_steps
        self.done = 0
        self.t0 = time.time()
        self.eta: Optional[EtaModel] = None  # set once the jobs and their cost ratios are known
        self.eta_log: List[Dict] = []  # timeline of epochs, job ends and estimates -> OUT/eta_log.json
        if append and os.path.isfile(self.log):  # a resumed run adds its commands to the earlier ones
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(f"# resumed {time.strftime('%Y-%m-%d %H:%M')}: data and plans of the commands above\n")
            return
        with open(self.log, "w", encoding="utf-8") as f:
            f.write("#!/usr/bin/env bash\n# commands run by `nnunetv2-dca benchmark` (nnUNet_raw/_preprocessed under "
                    "this folder, nnUNet_results under seed_<s>/)\nset -euo pipefail\n")

    def step(self, title: str) -> None:
        self.done += 1
        elapsed = time.time() - self.t0
        eta = ""
        if self.eta is not None:
            eta = f", run: {format_minutes(self.eta.remaining())} left"
        print(f"[{self.done}/{self.total}] {title} ({elapsed / 60:.1f} min elapsed{eta})", flush=True)

    def run(self, cmd: List[str], env: Mapping[str, str], env_shown: Sequence[str] = (),
            on_line: Optional[Callable[[str], None]] = None) -> float:
        """Run one command into the run's command log (commands.run_command), its output streamed line by line to
        ``on_line``."""
        return run_command(cmd, env, log=self.log, env_shown=env_shown, echo="  $ ", on_line=on_line,
                           error=BenchmarkError)

    def epoch_progress(self, job: Job, epochs: int) -> Callable[[str], None]:
        """Line handler for a training: feeds nnU-Net's epoch times to the ETA, prints elapsed/remaining per arm
        after the first epoch and then every tenth of the run."""
        started = time.time()
        every = max(1, epochs // 10)

        def on_line(text: str) -> None:
            seconds = parse_epoch_time(text)
            if seconds is None or self.eta is None:
                return
            self.eta.epoch_done(job, seconds, time.time() - started)
            self.log_eta("epoch", job, seconds, time.time() - started)
            n = len(self.eta.epoch_times[job])
            if n == 1 or n % every == 0 or n == epochs:
                print(f"    {job[0]} seed {job[1]}: epoch {n}/{epochs}, {(time.time() - started) / 60:.1f} min "
                      f"elapsed, arm: {format_minutes(self.eta.job_remaining(job))} left, run: "
                      f"{format_minutes(self.eta.remaining())} left", flush=True)
        return on_line

    def log_eta(self, event: str, job: Job, seconds: float, since_job_start: Optional[float] = None) -> None:
        """Record an epoch or a job end with the estimates made at that moment (tests replay such logs)."""
        assert self.eta is not None
        self.eta_log.append({"t": time.time() - self.t0, "event": event, "job": list(job), "seconds": seconds,
                             "since_job_start": since_job_start, "estimate_arm": self.eta.job_remaining(job),
                             "estimate_run": self.eta.remaining()})
        if event == "done":
            write_json_atomic({"jobs": [list(j) for j in self.eta.jobs], "epochs": self.eta.epochs,
                               "cost_ratio": self.eta.cost_ratio, "events": self.eta_log},
                              os.path.join(self.out, "eta_log.json"))
