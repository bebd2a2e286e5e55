"""Issue 26, cheaper seeds: seconds per training step of a benchmark arm's trainer, eager vs channels-last memory
format, on the benchmark's own plans and data (data loading excluded: ``lab.harness.timed_compute_step``).

nnU-Net switches torch.compile off on CPU ("CPU compile crashes for 2D models", ``nnUNetTrainer._do_i_compile``),
so it is not a CPU candidate here. Each (trainer, variant) runs in a fresh process, one after the other, with a
warm-up of 3 steps, then the median of N timed steps. Usage (B: a benchmark folder with its preprocessed data):

    python benchmarks/scripts/cpu_step_speed.py B OUT.json [N]
"""
import json
import os
import statistics
import sys
import tempfile

from nnunetv2_dca.commands import run_command

TRAINERS = (("baseline", "nnUNetTrainer_budget", "nnUNetPlansBenchStock"),
            ("dca", "nnUNetTrainerDCA_budget", "nnUNetPlansBenchDCA"))
VARIANTS = ("eager", "channels_last")


def worker(folder: str, trainer_name: str, plans_name: str, variant: str, steps: int) -> dict:
    import torch

    from nnunetv2_dca.discovery import find_registered_class
    from nnunetv2_dca.lab import harness
    from nnunetv2_dca.lab.benchmark.arms import ID_SEMI
    from nnunetv2_dca.lab.benchmark.data import find_dataset

    name = os.path.basename(find_dataset(os.path.join(folder, "nnUNet_raw"), ID_SEMI))
    pre = os.path.join(folder, "nnUNet_preprocessed", name)
    trainer = harness.build_trainer(find_registered_class(trainer_name),
                                    harness.read_json(os.path.join(pre, plans_name + ".json")), "2d",
                                    harness.read_json(os.path.join(pre, "dataset.json")))
    harness.start(trainer)
    if variant == "channels_last":
        trainer.network.to(memory_format=torch.channels_last)
    seconds = []
    for i in range(3 + steps):
        _, s = harness.timed_compute_step(trainer)
        if i >= 3:
            seconds.append(s)
    harness.finish(trainer)
    return {"median_seconds": statistics.median(seconds), "seconds": seconds, "threads": torch.get_num_threads()}


def main() -> None:
    if sys.argv[1] == "--worker":
        folder, trainer, plans, variant, steps, out = sys.argv[2:8]
        with open(out, "w", encoding="utf-8") as f:
            json.dump(worker(folder, trainer, plans, variant, int(steps)), f)
        return
    folder, out = os.path.abspath(sys.argv[1]), sys.argv[2]
    steps = sys.argv[3] if len(sys.argv) > 3 else "20"
    env = {**os.environ, "nnUNet_raw": os.path.join(folder, "nnUNet_raw"),
           "nnUNet_preprocessed": os.path.join(folder, "nnUNet_preprocessed"),
           "nnUNet_results": tempfile.mkdtemp(prefix="cpu_step_speed_"),  # its own: trainers write checkpoints
           "nnUNet_def_n_proc": "1", "nnUNet_n_proc_DA": "0", "nnUNetDCA_budget_epochs": "1",
           "nnUNetDCA_budget_iterations": "1", "nnUNetDCA_budget_seed": "0"}
    results = {}
    for arm, trainer, plans in TRAINERS:
        for variant in VARIANTS:
            part = f"{out}.{arm}.{variant}.json"
            run_command([sys.executable, __file__, "--worker", folder, trainer, plans, variant, steps, part], env)
            with open(part, encoding="utf-8") as f:
                results.setdefault(arm, {})[variant] = json.load(f)
            os.remove(part)
    for arm, r in results.items():
        r["channels_last_speedup"] = r["eager"]["median_seconds"] / r["channels_last"]["median_seconds"]
    with open(out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    print(json.dumps({a: {v: (r[v]["median_seconds"] if isinstance(r[v], dict) else r[v]) for v in r}
                      for a, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
