"""Subcommands that run nnU-Net end to end: gpu-check, demo, distill, benchmark."""

from __future__ import annotations

import argparse
import sys
from typing import List


def _cmd_gpu_check(args: argparse.Namespace) -> int:
    from nnunetv2_dca.lab.gpu_check import run_gpu_check

    try:
        run_gpu_check(args.out, args.size, args.steps, args.device)
    except RuntimeError as e:  # GpuCheckError, or a failed step (the message names the command)
        print(f"nnunetv2-dca gpu-check: {e}", file=sys.stderr)
        return 1
    return 0


def add_gpu_check_parser(sub: argparse._SubParsersAction) -> None:
    """``gpu-check``: the GPU checks of a DCA training run."""
    p = sub.add_parser("gpu-check", help="the GPU checks of a DCA training run in one command: steps with AMP and "
                                         "torch.compile, time and memory ratios vs nnU-Net, inference; JSON + MD",
                       description="Plans a 3d phantom (full width: nnUNetPlannerDCA; --size tiny: the CPU planner "
                                   "on a small phantom), runs N steps of nnUNetTrainer and nnUNetTrainerDCA as "
                                   "nnUNetv2_train builds them, validation and training again (recompiles), and "
                                   "nnUNetPredictor inference; writes OUT/gpu_check.json and OUT/gpu_check.md.")
    p.add_argument("--out", default="gpu_check_output", help="folder for the nnU-Net folders and the report")
    p.add_argument("--size", choices=["full", "tiny"], default="full")
    p.add_argument("--steps", type=int, default=50, help="timed training steps per arm (default 50)")
    p.add_argument("-device", "--device", choices=["cuda", "cpu"], default="cuda")
    p.set_defaults(func=_cmd_gpu_check)


def _cmd_demo(args: argparse.Namespace) -> int:
    from nnunetv2_dca.lab.demo import run_demo

    return run_demo(args.out, dataset_id=args.d, seed=args.seed)


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    """``demo``: the main job end to end on a phantom."""
    p = sub.add_parser("demo", help="main job end to end on a phantom: phantom, plan/preprocess, train, predict, "
                                    "evaluate, all through the stock nnU-Net commands")
    p.add_argument("--out", default="demo_output", help="folder for nnUNet_raw/preprocessed/results (default "
                                                       "./demo_output); existing nnUNet_* variables are ignored")
    p.add_argument("-d", type=int, default=901, help="dataset id for the phantom (default 901)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)


def _cmd_distill(args: argparse.Namespace) -> int:
    from nnunetv2_dca.distill import DistillConfig, DistillError, distill

    cfg = DistillConfig(model_folder=args.m, out_id=args.out_id, fold=args.f, checkpoint=args.chk, name=args.name,
                        threshold=args.threshold, overwrite=args.overwrite, plan=not args.no_plan,
                        planner=args.pl, plans_name=args.p, train=args.train, train_fold=args.train_fold,
                        device=args.device)
    try:
        result = distill(cfg)
    except DistillError as e:
        from nnunetv2_dca.errors import one_line

        print(f"nnunetv2-dca distill: error: {one_line(e)}", file=sys.stderr)
        return 2
    print(f"wrote {result['dataset']}: {result['n_labeled']} labeled + {result['n_pseudo_labeled']} pseudo-labeled "
          f"cases (provenance in pseudo_labels.json)")
    if args.no_plan:
        print(f"plan and preprocess it with:\n  {result['plan_command']}")
    if not args.train:
        print(f"train the plain nnU-Net student with:\n  {result['train_command']}")
    return 0


def add_distill_parser(sub: argparse._SubParsersAction) -> None:
    """``distill``: a DCA model's pseudo-labels as a new dataset for a plain nnU-Net student."""
    p = sub.add_parser("distill", help="a trained DCA model's predictions of the unlabeled images as labels of a new "
                                       "dataset, planned for the stock nnUNetv2_train (a plain nnU-Net student)",
                       description="Predicts every image in imagesTrUnlabeled of the model's dataset with the stock "
                                   "nnUNetPredictor, writes DatasetOUT_ID = labeled cases + pseudo-labeled images "
                                   "(hard links; pseudo_labels.json records each label's source), runs "
                                   "nnUNetv2_plan_and_preprocess on it and prints the nnUNetv2_train command.")
    p.add_argument("-m", required=True, metavar="MODEL_FOLDER",
                   help="trained DCA model: nnUNet_results/DatasetXXX_Name/nnUNetTrainerDCA__<plans>__<configuration>")
    p.add_argument("--out-id", type=int, required=True, help="id of the new (distilled) dataset")
    p.add_argument("-f", default="0", help="fold of the DCA model to predict with (default 0; or 'all')")
    p.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint (default checkpoint_final.pth)")
    p.add_argument("--name", default=None, help="name of the new dataset (default <source name>Distilled)")
    p.add_argument("--threshold", type=float, default=None,
                   help="keep only voxels whose top softmax probability is >= this; the rest get nnU-Net's ignore "
                        "label (default: keep every voxel)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset with --out-id (the old one is deleted only once the new one "
                        "is in place; its nnUNet_preprocessed folder is removed)")
    p.add_argument("--no-plan", action="store_true", help="only write the raw dataset; print the planning command")
    p.add_argument("-pl", default="ExperimentPlanner", help="stock planner for the new dataset (default "
                                                          "ExperimentPlanner; e.g. nnUNetPlannerResEncM)")
    p.add_argument("-p", default=None, help="plans identifier of -pl when it is not a stock one")
    p.add_argument("--train", action="store_true", help="also run the stock nnUNetv2_train on the new dataset")
    p.add_argument("--train-fold", default="all", help="fold for --train and the printed command (default all)")
    p.add_argument("-device", "--device", default="cpu", help="device for the predictions (cpu, cuda, mps)")
    p.set_defaults(func=_cmd_distill)


def _int_list(text: str) -> List[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from nnunetv2_dca.lab.benchmark.arms import PRESETS
    from nnunetv2_dca.lab.benchmark.run import BenchmarkConfig, BenchmarkError, run_benchmark

    preset = PRESETS[args.preset]  # explicit flags win over the preset's values
    arms = args.arms if args.arms is not None else ",".join(preset["arms"])
    epochs, iterations, val_iterations = (preset[k] if getattr(args, k) is None else getattr(args, k)
                                          for k in ("epochs", "iterations", "val_iterations"))
    variability = args.phantom_variability or (preset["phantom_variability"] if args.d is None else "classic")
    cfg = BenchmarkConfig(
        out=args.out, dataset=args.d, full_dataset=args.full_dataset,
        arms=[a.strip() for a in arms.split(",") if a.strip()], epochs=epochs, iterations=iterations,
        val_iterations=val_iterations, width=args.width, batch_size=args.batch_size or None, seeds=args.seeds,
        planner=args.planner, fresh=args.fresh,
        configuration=args.c, device=args.device, phantom_labeled=args.phantom_labeled,
        phantom_unlabeled=args.phantom_unlabeled, phantom_test=args.phantom_test, phantom_seed=args.phantom_seed,
        phantom_size=args.phantom_size, phantom_variability=variability,
        gates_picture=not args.no_gates, tta=args.tta, sites=args.sites)
    try:
        run_benchmark(cfg)
    except BenchmarkError as e:
        print(f"nnunetv2-dca benchmark: {e}", file=sys.stderr)
        return 1
    return 0


def add_benchmark_parser(sub: argparse._SubParsersAction) -> None:
    """``benchmark``: DCA vs nnU-Net baselines in one run."""
    from nnunetv2_dca.lab.benchmark.arms import ARMS, DEFAULT_ARMS, DEFAULTS, PRESETS  # light: stdlib imports only

    p = sub.add_parser("benchmark", help="DCA vs nnU-Net baselines (labeled-only, offline pseudo-labels, all labels) "
                                         "in one run: train, predict, evaluate, cost; report with charts",
                       description="Trains every arm with the stock nnUNetv2_train (same plans, budget and seeds), "
                                   "predicts the test set with nnUNetv2_predict, evaluates per class and group, "
                                   "measures seconds per iteration / per case and network cost, and writes "
                                   "OUT/README.md, OUT/benchmark.json and charts. Default data: a fresh phantom. "
                                   "The default budget (arms baseline, dca, full) takes about 45 min on 2 CPU "
                                   "cores; a run into the same --out resumes.")
    p.add_argument("--out", default="benchmark_output",
                   help="output folder (default ./benchmark_output). A run into a folder of an earlier run with the "
                        "same data settings resumes it: finished arms and seeds are kept, and seeds of separate runs "
                        "end in one report")
    p.add_argument("--fresh", action="store_true",
                   help="delete the earlier data, plans and results in --out and start over")
    p.add_argument("-d", type=int, default=None,
                   help="semi-supervised raw dataset id in $nnUNet_raw (imagesTr/labelsTr, imagesTrUnlabeled, "
                        "imagesTs/labelsTs; e.g. from `nnunetv2-dca split`); default: a generated phantom")
    p.add_argument("--full-dataset", type=int, default=None,
                   help="with -d: the fully labeled source dataset id, for the 'full' arm")
    p.add_argument("--preset", choices=list(PRESETS), default="default",
                   help="budget and arms under one name (explicit --epochs/--iterations/--val-iterations/--arms "
                        "win): " + "; ".join(f"{k} = {v['epochs']} x {v['iterations']} iterations, arms "
                                             f"{','.join(v['arms'])}: {v['help']}" for k, v in PRESETS.items())
                        + ". Minutes per seed on 2 CPU cores: docs/benchmark.md")
    p.add_argument("--arms", default=None,
                   help=f"comma-separated arms out of {','.join(ARMS)} (default: the preset's, "
                        f"{','.join(DEFAULT_ARMS)}; baseline is required)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per arm (default: the preset's)")
    p.add_argument("--iterations", type=int, default=None,
                   help="training iterations per epoch (default: the preset's)")
    p.add_argument("--val-iterations", type=int, default=None,
                   help="validation iterations per epoch (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                   help="labeled patches per training step for every arm (default %(default)s; 0 = as planned)")
    p.add_argument("--width", type=int, default=None,
                   help="features of the first stage (others scaled alike); default: as planned")
    p.add_argument("--seeds", type=_int_list, default=[0], help="comma-separated seeds, e.g. 0,1,2 (mean ± std)")
    p.add_argument("--planner", default="nnUNetPlannerDCA_CPU",
                   help="DCA planner (default nnUNetPlannerDCA_CPU; on a GPU nnUNetPlannerDCA or "
                        "nnUNetPlannerDCAResEncM)")
    p.add_argument("-c", default="2d", help="configuration (default 2d: CPU-sized; use 3d_fullres on a GPU)")
    p.add_argument("-device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--phantom-labeled", type=int, default=DEFAULTS["phantom_labeled"])
    p.add_argument("--phantom-unlabeled", type=int, default=DEFAULTS["phantom_unlabeled"])
    p.add_argument("--phantom-test", type=int, default=DEFAULTS["phantom_test"])
    p.add_argument("--phantom-seed", type=int, default=0)
    p.add_argument("--phantom-size", choices=["small", "medium"], default=DEFAULTS["phantom_size"])
    from nnunetv2_dca.data.phantom_variation import VARIABILITIES  # light: numpy only

    p.add_argument("--phantom-variability", choices=VARIABILITIES, default=None,
                   help="default: the preset's (default: classic, converged: thick_tail). classic: every result "
                        "before issue 26; thick_tail: classic with the tail organs "
                        "~4 voxels across; moderate or varied: cases differ in habitus, coverage, organ pose and "
                        "size, contrast phase, noise (see `nnunetv2-dca phantom -h`)")
    p.add_argument("--sites", type=int, default=1,
                   help="domain shift: phantom with K scanner sites, labeled cases from site 0 only, unlabeled from "
                        "all, test Dice reported per site (default 1 = no shift)")
    p.add_argument("--no-gates", action="store_true", help="skip the DFAM gates picture")
    p.add_argument("--tta", action="store_true",
                   help="predict with nnU-Net's mirroring test-time augmentation (default off: 8x cheaper in 3D; "
                        "the same for every arm)")
    p.set_defaults(func=_cmd_benchmark)
