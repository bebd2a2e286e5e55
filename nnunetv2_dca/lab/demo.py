"""The README's main job: phantom -> plan/preprocess -> train -> predict -> evaluate, through nnU-Net's stock commands.

Every step is the console script a user would type (run in a subprocess, so the class discovery through
``nnunetv2_dca.pth`` is exercised exactly as in a user's shell). The commands are written to ``commands.sh`` in the
output folder so the run can be repeated by hand. CPU-sized (a few minutes on 2 cores): a small phantom, DCA plans
at CPU width (``-pl nnUNetPlannerDCA_CPU``: same pipeline, 8 base features), the 2d configuration and DCA with a
short schedule (``nnUNetTrainerDCA_demo``), evaluated per class and per head/medium/tail group, and a picture of a
test slice with reference and prediction overlaid (``overlay.png``). The short schedule learns the large organs;
small ones need the full schedule (see the benchmark in the README).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Dict, List, Mapping, Optional

from nnunetv2_dca.commands import run_command
from nnunetv2_dca.data.phantom import write_phantom_dataset

DEMO_TRAINER = "nnUNetTrainerDCA_demo"
DEMO_PLANNER = "nnUNetPlannerDCA_CPU"
DEMO_PLANS = "nnUNetPlansDCA_CPU"
DEMO_CONFIG = "2d"  # a 3d_fullres step takes seconds on 2 CPU cores; 2d buys ~10x more iterations per minute
DEMO_PHANTOM = {"labeled": 8, "unlabeled": 8, "test": 3}


def nnunet_env(out: str, training: bool = False, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Environment for nnU-Net's commands with the three nnU-Net folders under ``out`` (on top of ``base``,
    default: this process's environment).

    For training only: one process for nnU-Net's default pools and data augmentation in the main process (on 2 CPU
    cores every spawned worker re-imports nnunetv2 for seconds). Not for planning, where nnUNet_def_n_proc=1 breaks
    nnU-Net's torch.set_num_threads call.
    """
    env = dict(os.environ if base is None else base)
    # the console scripts of *this* environment, also when it is not activated (e.g. `.venv/bin/nnunetv2-dca demo`)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[key] = os.path.join(os.path.abspath(out), key)
        os.makedirs(env[key], exist_ok=True)
    if training:
        env["nnUNet_def_n_proc"] = "1"
        env["nnUNet_n_proc_DA"] = "0"
    return env


def run_step(cmd: List[str], env: Dict[str, str], log: Optional[str] = None) -> None:
    """Run one console script (commands.run_command); on failure raise with the command and its output's tail."""
    seconds = run_command(cmd, env, log=log)
    print(f"  ok ({seconds:.0f} s)", flush=True)


def run_demo(out: str, dataset_id: int = 901, seed: int = 0) -> int:
    if not 1 <= dataset_id <= 999:  # before anything is written
        raise ValueError(f"-d must be a dataset id in 1..999 (nnU-Net uses three digits), got {dataset_id}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file, not a folder; pass a folder for the demo's nnU-Net folders")
    os.makedirs(out, exist_ok=True)
    log = os.path.join(out, "commands.sh")
    with open(log, "w", encoding="utf-8") as f:
        f.write("# commands run by `nnunetv2-dca demo`, with nnUNet_raw/_preprocessed/_results under this folder\n")
    env = nnunet_env(out)
    train_env = nnunet_env(out, training=True)
    t_start = time.time()

    print("[1/5] phantom dataset", flush=True)
    ds = write_phantom_dataset(env["nnUNet_raw"], dataset_id, seed=seed, size="small", overwrite=True,
                               **DEMO_PHANTOM)
    with open(log, "a", encoding="utf-8") as f:
        flags = " ".join(f"--{k} {v}" for k, v in DEMO_PHANTOM.items())
        f.write(f"nnunetv2-dca phantom -d {dataset_id} {flags} --seed {seed} --overwrite\n")
    d = str(dataset_id)
    print("[2/5] plan and preprocess", flush=True)
    run_step(["nnUNetv2_plan_and_preprocess", "-d", d, "-pl", DEMO_PLANNER, "-c", DEMO_CONFIG, "-np", "1",
              "-npfp", "1", "--verify_dataset_integrity"], env, log)
    print("[3/5] train (fold 0)", flush=True)
    run_step(["nnUNetv2_train", d, DEMO_CONFIG, "0", "-tr", DEMO_TRAINER, "-p", DEMO_PLANS, "-device", "cpu"],
             train_env, log)
    print("[4/5] predict the test images", flush=True)
    pred = os.path.join(os.path.abspath(out), "predictions_test")
    run_step(["nnUNetv2_predict", "-i", os.path.join(ds, "imagesTs"), "-o", pred, "-d", d, "-c", DEMO_CONFIG,
              "-f", "0", "-tr", DEMO_TRAINER, "-p", DEMO_PLANS, "-device", "cpu", "-npp", "0", "-nps", "0"],
             train_env, log)
    print("[5/5] evaluate, and draw a test slice", flush=True)
    plans = os.path.join(env["nnUNet_preprocessed"], os.path.basename(ds), f"{DEMO_PLANS}.json")
    run_step(["nnunetv2-dca", "evaluate", "-ref", os.path.join(ds, "labelsTs"), "-pred", pred, "-djfile",
              os.path.join(ds, "dataset.json"), "-pfile", plans], env, log)
    print("test-set metrics per class and per group (a few minutes of training on CPU: the large organs are "
          "learned, the small ones need the full schedule):")
    with open(os.path.join(pred, "evaluation.md"), encoding="utf-8") as f:
        print(f.read())
    picture = draw_overlay(ds, pred, os.path.join(os.path.abspath(out), "overlay.png"))
    print(f"picture of a test slice (reference | prediction): {picture}")
    print(f"done in {time.time() - t_start:.0f} s; outputs in {os.path.abspath(out)}", flush=True)
    return 0


def draw_overlay(dataset: str, pred: str, png: str) -> str:
    """The first test case's slice with the most classes: image | reference | prediction, legend with Dice."""
    import json

    from nnunetv2_dca.evaluation.overlay import plot_overlay

    with open(os.path.join(dataset, "dataset.json"), encoding="utf-8") as f:
        dj = json.load(f)
    ending = dj["file_ending"]
    case = sorted(f for f in os.listdir(os.path.join(dataset, "labelsTs")) if f.endswith(ending))[0][:-len(ending)]
    with open(os.path.join(pred, "evaluation.json"), encoding="utf-8") as f:
        ev = json.load(f)
    names = {str(v): k for k, v in dj["labels"].items()}
    dice = {names[c]: m.get("Dice") for c, m in ev["mean"].items() if c in names}
    plot_overlay(os.path.join(dataset, "imagesTs", f"{case}_0000{ending}"),
                 os.path.join(dataset, "labelsTs", case + ending), os.path.join(pred, case + ending), png,
                 dj["labels"], title=f"demo: {case}, DCA after {DEMO_TRAINER} (legend: test-set Dice %)",
                 dice=dice)
    return png


if __name__ == "__main__":
    sys.exit(run_demo(sys.argv[1] if len(sys.argv) > 1 else "demo_output"))
