"""``nnunetv2-dca gpu-check``: every check a GPU run of DCA needs, in one command (issue 15).

Plans a 3d phantom with the default ``nnUNetPlannerDCA`` (full width; ``--size tiny``: the CPU planner on a small
phantom, what CI runs), then, in one fresh process per check run, builds ``nnUNetTrainer`` (the stock network of the
same plans) and ``nnUNetTrainerDCA`` exactly as ``nnUNetv2_train`` does and runs, per arm: one warm-up step
(torch.compile compiles here when nnU-Net enables it: CUDA), N timed steps (nnU-Net's autocast + GradScaler on
CUDA; every loss must be finite), a few validation steps and training steps again (graphs compiled after the
warm-up = recompiles), then the final checkpoint and nnU-Net's sliding-window inference of one test case
(``nnUNetPredictor``). Written: ``gpu_check.json`` and ``gpu_check.md`` (one set) under ``--out``.

Memory: on CUDA the peak allocated memory of the timed steps, next to the planner's estimate (its feature-map
count scaled as nnU-Net scales its reference: 560e6 maps = 8 GB at batch 2); without compile also the bytes autograd
keeps in one step (saved-tensor hooks), the quantity the planner's factor models. FLOPs: forward + backward of one
step from the cost report (meta device), and, without compile, counted around a real ``train_step``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Dict, List, Optional

from nnunetv2_dca.atomic import atomic_file_set, write_json_atomic

DATASET_ID, DATASET_NAME = 940, "Dataset940_AbdomenPhantom"
CONFIGURATION = "3d_fullres"
SIZES = {"full": {"phantom": "medium", "planner": "nnUNetPlannerDCA", "plans": "nnUNetPlansDCA"},
         "tiny": {"phantom": "small", "planner": "nnUNetPlannerDCA_CPU", "plans": "nnUNetPlansDCA_CPU"}}
ARMS = (("nnU-Net", "nnUNetTrainer"), ("DCA", "nnUNetTrainerDCA"))
PHANTOM = {"labeled": 5, "unlabeled": 3, "test": 1}
VALIDATION_STEPS, STEPS_AFTER_VALIDATION = 3, 3
# nnU-Net's 3d reference: 560e6 feature maps (its estimate for batch 2) correspond to 8 GB
REFERENCE_MAPS, REFERENCE_GB, REFERENCE_BATCH = 560_000_000, 8.0, 2


class GpuCheckError(RuntimeError):
    """A step of the GPU check failed; the message names it."""


def run_gpu_check(out: str, size: str = "full", steps: int = 50, device: str = "cuda") -> Dict:
    """Prepare the phantom and plans with the stock commands, measure in a fresh process, write JSON + Markdown."""
    from nnunetv2_dca.lab.demo import nnunet_env, run_step

    if size not in SIZES:
        raise GpuCheckError(f"--size must be one of {sorted(SIZES)}, got {size!r}")
    if steps < 1:
        raise GpuCheckError(f"--steps must be >= 1, got {steps}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise GpuCheckError(f"--out {out} is a file, not a folder; pass a folder for the check's nnU-Net folders")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise GpuCheckError("no CUDA device is visible (torch.cuda.is_available() is False); on a CPU run "
                                "`nnunetv2-dca gpu-check --size tiny -device cpu`")
    t0 = time.time()
    spec = SIZES[size]
    out = os.path.abspath(out)
    env = nnunet_env(out)
    bin_dir = os.path.dirname(sys.executable)
    run_step([os.path.join(bin_dir, "nnunetv2-dca"), "phantom", "-d", str(DATASET_ID), "--name",
              DATASET_NAME.split("_", 1)[1], "--size", spec["phantom"],
              "--labeled", str(PHANTOM["labeled"]), "--unlabeled", str(PHANTOM["unlabeled"]), "--test",
              str(PHANTOM["test"]), "--overwrite"], env)
    run_step([os.path.join(bin_dir, "nnUNetv2_plan_and_preprocess"), "-d", str(DATASET_ID), "-pl", spec["planner"],
              "-c", CONFIGURATION, "-np", "2", "-npfp", "2"], env)
    prepared = time.time() - t0
    plans_file = os.path.join(env["nnUNet_preprocessed"], DATASET_NAME, f"{spec['plans']}.json")
    measured_json = os.path.join(out, "measure.json")
    worker_env = nnunet_env(out, training=device == "cpu")  # CPU: loaders in the main process (2-core machines)
    cmd = [sys.executable, "-m", "nnunetv2_dca.lab.gpu_check", "--plans-file", plans_file, "--steps", str(steps),
           "--device", device, "--images", os.path.join(env["nnUNet_raw"], DATASET_NAME, "imagesTs"), "--json",
           measured_json]
    run_step(cmd, worker_env)
    with open(measured_json, encoding="utf-8") as f:
        report = json.load(f)
    os.remove(measured_json)
    report.update({"size": size, "prepare_seconds": prepared, "wall_seconds": time.time() - t0,
                   "command": f"nnunetv2-dca gpu-check --size {size} --steps {steps} -device {device}"})
    json_path, md_path = os.path.join(out, "gpu_check.json"), os.path.join(out, "gpu_check.md")
    atomic_file_set({json_path: json.dumps(report, indent=2) + "\n", md_path: format_markdown(report)})
    print(f"wrote {json_path} and {md_path} ({report['wall_seconds'] / 60:.1f} min)")
    return report


# ----- the measuring process (nnU-Net's folders come from its environment, read when nnunetv2 is imported)

def _counting_compile(counter: List[int]):
    """torch.compile with a backend that counts the graphs it compiles (graph breaks and recompiles included)."""
    import torch

    original = torch.compile

    def compile_(model=None, *args, backend="inductor", **kwargs):
        from torch._dynamo import lookup_backend

        inner = lookup_backend(backend) if isinstance(backend, str) else backend

        def counted(gm, example_inputs):
            counter[0] += 1
            return inner(gm, example_inputs)

        return original(model, *args, backend=counted, **kwargs)

    return compile_


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def measure_arm(trainer, steps: int, device: str, compiles: List[int]) -> Dict:
    import math

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nnunetv2_dca.network.cost import saved_activation_bytes
    from nnunetv2_dca.lab import harness

    harness.start(trainer)
    compiled = trainer._do_i_compile()  # nnU-Net's own decision (env, device); it has no public name
    result: Dict = {"trainer": type(trainer).__name__, "compiled": compiled, "amp": trainer.grad_scaler is not None,
                    "batch_size": trainer.batch_size}
    harness.step(trainer)  # warm-up (compiles)
    after_warmup = compiles[0]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds, compute, losses, skipped = [], [], [], 0.0
    for i in range(steps):
        # alternate: full iterations (data loading included, as in training) and the step's compute alone
        if i % 2 == 0:
            _sync(device)
            t = time.perf_counter()
            out = harness.step(trainer)
            _sync(device)
            seconds.append(time.perf_counter() - t)
        else:
            out, s = harness.timed_compute_step(trainer, lambda: _sync(device))
            compute.append(s)
        losses.append(float(out["loss"]))
        skipped += float(out.get("ssl_skipped_steps", 0.0))
    result.update({"seconds_per_iteration": statistics.median(seconds),
                   "compute_seconds_per_step": statistics.median(compute or seconds),
                   "losses_first_last": [losses[0], losses[-1]],
                   "losses_finite": all(math.isfinite(v) for v in losses), "skipped_steps": skipped})
    if device == "cuda":
        result["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
    if not compiled:  # hooks and dispatch modes would be traced into compiled graphs; measured eagerly only
        params = list(trainer.network.parameters())
        result["activation_gb"] = saved_activation_bytes(lambda: harness.step(trainer), params) / 2 ** 30
        with FlopCounterMode(display=False) as counter:
            harness.step(trainer)
        result["step_gflops_counted"] = counter.get_total_flops() / 1e9
    trainer.on_validation_epoch_start()
    with torch.no_grad():
        for _ in range(VALIDATION_STEPS):
            trainer.validation_step(next(trainer.dataloader_val))
    trainer.network.train()
    for _ in range(STEPS_AFTER_VALIDATION):
        harness.step(trainer)
    result["recompiles_after_warmup"] = compiles[0] - after_warmup
    result["graphs_compiled"] = compiles[0]
    harness.finish(trainer)  # checkpoint_final.pth for the predictor
    return result


def measure(plans_file: str, steps: int, device: str, images: str) -> Dict:
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunetv2_dca.discovery import find_registered_class
    from nnunetv2_dca.inference import time_network_inference
    from nnunetv2_dca.network.cost import cost_report
    from nnunetv2_dca.lab import harness

    plans = harness.read_json(plans_file)
    dataset_json = harness.read_json(os.path.join(os.path.dirname(plans_file), "dataset.json"))
    dca_trainer = find_registered_class(dict(ARMS)["DCA"])  # its recipe decides heads, output and step
    cost = cost_report(plans, CONFIGURATION, dataset_json, recipe_arch_kwargs=dca_trainer.recipe_arch_kwargs,
                       aggregate_labeled=dca_trainer.supervise_aggregation)
    compiles = [0]
    torch.compile = _counting_compile(compiles)
    arms = {}
    for arm, trainer_name in ARMS:
        cls = nnUNetTrainer if trainer_name == "nnUNetTrainer" else find_registered_class(trainer_name)
        arm_plans = harness.stock_plans(plans, CONFIGURATION) if arm == "nnU-Net" else plans
        trainer = harness.build_trainer(cls, arm_plans, CONFIGURATION, dataset_json, device=torch.device(device))
        compiles[0] = 0
        torch._dynamo.reset()  # compiled code is cached per function (nnU-Net's Dice loss): count per arm
        result = measure_arm(trainer, steps, device, compiles)
        net_cost = cost["networks"][arm]
        maps = net_cost["training_step_feature_maps_millions"] * 1e6
        result["planner_estimate_gb"] = maps * result["batch_size"] / REFERENCE_BATCH / REFERENCE_MAPS * REFERENCE_GB
        result["step_gflops_meta"] = net_cost["training_step_gflops"] * result["batch_size"]
        result["inference_seconds_per_case"] = time_network_inference(
            trainer.output_folder_base, images, dataset_json["file_ending"], device, tta=False)
        arms[arm] = result
        del trainer
        if device == "cuda":
            torch.cuda.empty_cache()
    stock, dca = arms["nnU-Net"], arms["DCA"]

    def ratio(key: str) -> Optional[float]:
        return dca[key] / stock[key] if key in dca and key in stock and stock[key] else None

    ratios = {key: ratio(key) for key, _, _ in ROWS}
    return {"device": device, "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor()
            or platform.machine(), "torch": torch.__version__, "plans": plans["plans_name"],
            "patch_size": cost["patch_size"], "steps": steps, "arms": arms, "ratios": ratios,
            "cost_report_ratios": cost["ratios"]}


ROWS = (("seconds_per_iteration", "s / iteration, data loading included (median)", "{:.3f}"),
        ("compute_seconds_per_step", "s / train_step on fetched batches (median)", "{:.3f}"),
        ("step_gflops_meta", "GFLOPs / training step (cost report, meta device)", "{:.1f}"),
        ("step_gflops_counted", "GFLOPs / training step (counted around a real train_step)", "{:.1f}"),
        ("peak_memory_gb", "peak GPU memory allocated (GB)", "{:.2f}"),
        ("activation_gb", "activations autograd keeps in one step (GB)", "{:.3f}"),
        ("planner_estimate_gb", "planner's estimate (GB, nnU-Net's reference scale)", "{:.2f}"),
        ("inference_seconds_per_case", "inference s / test case (nnUNetPredictor, no TTA)", "{:.2f}"))


def format_markdown(report: Dict) -> str:
    stock, dca, ratios = report["arms"]["nnU-Net"], report["arms"]["DCA"], report["ratios"]
    lines = [f"# GPU check: {report['device_name']} ({report['device']})", "",
             f"`{report['command']}`; torch {report['torch']}; plans {report['plans']}, 3d_fullres patch "
             f"{report['patch_size']}, batch {dca['batch_size']} labeled (+ as many unlabeled for DCA); "
             f"{report['steps']} timed steps per arm; {report['wall_seconds'] / 60:.1f} min in all "
             f"({report['prepare_seconds'] / 60:.1f} min phantom + planning).", "",
             "| | nnU-Net | DCA | DCA / nnU-Net |", "|---|---|---|---|"]
    for key, label, f in ROWS:
        if key in stock or key in dca:
            r = ratios.get(key)
            lines.append(f"| {label} | {f.format(stock[key]) if key in stock else 'n/a'} | "
                         f"{f.format(dca[key]) if key in dca else 'n/a'} | {'n/a' if r is None else f'{r:.2f}x'} |")
    for key, label in (("compiled", "torch.compile"), ("amp", "autocast + GradScaler"),
                       ("losses_finite", "all losses finite"), ("skipped_steps", "skipped steps"),
                       ("recompiles_after_warmup", "graphs compiled after the warm-up (train -> val -> train)")):
        lines.append(f"| {label} | {stock[key]} | {dca[key]} | |")
    lines += ["", "Without torch.compile (nnU-Net compiles on CUDA only) the activation memory and the FLOPs of a "
              "real step are measured too; with it, only what the compiled step allows (time, peak memory).", ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="measuring process of nnunetv2-dca gpu-check (internal)")
    ap.add_argument("--plans-file", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)

    write_json_atomic(measure(args.plans_file, args.steps, args.device, args.images), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
