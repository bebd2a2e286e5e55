"""``nnunetv2-dca``: the project's own commands. Training and inference stay with nnU-Net's stock commands."""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional


def _raw_dir(arg: Optional[str]) -> str:
    raw = arg or os.environ.get("nnUNet_raw")
    if not raw:
        raise SystemExit("error: nnUNet_raw is not set; export nnUNet_raw=/path/to/nnUNet_raw or pass --raw")
    if os.path.exists(raw) and not os.path.isdir(raw):
        raise ValueError(f"nnUNet_raw {raw} (--raw or $nnUNet_raw) is a file, not a folder; point it at a folder")
    return raw


def _dataset_name(d) -> str:
    """nnU-Net's own id/name resolution (looks in raw, preprocessed and results); a clear error otherwise."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(d)
    except RuntimeError:  # nnU-Net's message spans five lines; one line naming the id and where it looked
        folders = ", ".join(f"{k}={os.environ.get(k) or '(not set)'}"
                            for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"))
        pattern = f"Dataset{int(d):03d}_*" if str(d).isdigit() else str(d)
        raise ValueError(f"-d {d}: no dataset {pattern} in {folders}; check the id or the nnUNet_* folders") from None


def _cmd_phantom(args: argparse.Namespace) -> int:
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    path = write_phantom_dataset(
        _raw_dir(args.raw), args.d, name=args.name, labeled=args.labeled, unlabeled=args.unlabeled, test=args.test,
        seed=args.seed, size=args.size, sites=args.sites, dim=args.dim, overwrite=args.overwrite)
    print(f"wrote {path} ({args.labeled} labeled, {args.unlabeled} unlabeled, {args.test} test cases)")
    return 0


def _cmd_cohort(args: argparse.Namespace) -> int:
    from nnunetv2_dca.data.cohort import write_cohort_dataset

    path = write_cohort_dataset(_raw_dir(args.raw), args.d, args.source, train=args.train, test=args.test,
                                seed=args.seed, spacing=args.spacing, name=args.name, overwrite=args.overwrite)
    print(f"wrote {path} ({args.train} labeled training cases, {args.test} test cases); make it semi-supervised "
          f"with: nnunetv2-dca split -d {args.d} --out-id ID --labeled-cases cohort_0000,...")
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from nnunetv2_dca.data.split import make_semi_supervised_split

    cases = [c.strip() for c in args.labeled_cases.split(",") if c.strip()] if args.labeled_cases is not None \
        else None
    result = make_semi_supervised_split(
        _raw_dir(args.raw), args.d, args.out_id, labeled_fraction=args.labeled_fraction, labeled_cases=cases,
        preset=args.preset, seed=args.seed, name=args.name,
        preprocessed_dir=args.preprocessed or os.environ.get("nnUNet_preprocessed"), overwrite=args.overwrite)
    print(result.summary())
    return 0


def _parse_groups(text: str) -> list:
    """'6;1,2,3;5,12,13' (head first, ';' between groups) or a JSON file holding [[6], [1, 2, 3], [5, 12, 13]]."""
    import json

    if os.path.isfile(text):
        from nnunetv2_dca.errors import InputFileError, read_json

        fix = 'expected [[6], [1, 2, 3], [5, 12, 13]] or {"groups": [...]} (head group first)'
        data = read_json(text, "--groups file", fix, expect=None)
        data = data.get("groups") if isinstance(data, dict) else data
        if not isinstance(data, list) or not all(isinstance(g, list) and g and all(
                isinstance(c, int) and not isinstance(c, bool) for c in g) for g in data):
            raise InputFileError(f"--groups file {text} holds no list of class-id lists; {fix}", text)
        return data
    try:
        return [[int(c) for c in grp.split(",") if c.strip()] for grp in text.split(";")]
    except ValueError:
        raise ValueError(f"--groups {text!r} is neither a JSON file nor a list like '6;1,2,3;5,12,13'") from None


def _cmd_groups(args: argparse.Namespace) -> int:
    import json
    import warnings

    from nnunetv2_dca.errors import read_dataset_json, read_json
    from nnunetv2_dca.planning.grouping import DEFAULT_NUM_GROUPS, GroupingError, explicit_grouping, log_gap_grouping
    from nnunetv2_dca.planning.labels import foreground_classes, load_class_voxel_counts
    from nnunetv2_dca.planning.report import grouping_json, grouping_table, plot_grouping

    raw = _raw_dir(None)
    prep = os.environ.get("nnUNet_preprocessed")
    if not prep:
        raise SystemExit("error: nnUNet_preprocessed is not set (the chart is written next to the plans there)")
    name = _dataset_name(args.d)
    ds = os.path.join(raw, name)
    if args.num_groups is not None and args.num_groups < 1:
        raise ValueError(f"--num-groups must be >= 1, got {args.num_groups}")
    dataset_json = read_dataset_json(os.path.join(ds, "dataset.json"))
    names = foreground_classes(dataset_json)
    out_dir = os.path.join(prep, name)
    counts = load_class_voxel_counts(ds, dataset_json, os.path.join(out_dir, "dataset_fingerprint.json"))
    plans_file = os.path.join(out_dir, f"{args.plans}.json")
    plans_groups = None
    if not args.groups and args.num_groups is None and os.path.isfile(plans_file):
        from nnunetv2_dca.planning.class_groups import plans_class_groups

        plans = read_json(plans_file, "plans file", "re-plan with -pl nnUNetPlannerDCA, or pass --groups")
        plans_groups = plans_class_groups(plans, 1 + len(names), plans_file=plans_file)[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.groups:
            try:
                grouping = explicit_grouping(_parse_groups(args.groups), counts, names)
            except GroupingError as e:
                raise GroupingError(f"--groups {args.groups}: {e}") from None
        elif plans_groups is not None:  # what the network of these plans was built with
            try:
                grouping = explicit_grouping(plans_groups, counts, names)
            except GroupingError as e:
                raise GroupingError(f"{plans_file}: {e}; edit arch_kwargs.class_groups there, re-plan, or pass "
                                    f"--groups") from None
            grouping.source = f"plans {args.plans}"
        else:
            grouping = log_gap_grouping(counts, args.num_groups or DEFAULT_NUM_GROUPS, names)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if args.save:
        from nnunetv2_dca.atomic import write_json_atomic
        from nnunetv2_dca.planning.grouping import GROUPS_FILE

        target = os.path.join(out_dir, GROUPS_FILE)
        write_json_atomic({"groups": grouping.groups}, target)
        print(f"saved {target}: the DCA planners use these groups from now on (delete the file to go back to "
              f"the log-gap rule)", file=sys.stderr)
    png = plot_grouping(grouping, names, os.path.join(out_dir, f"{args.plans}_class_groups.png"))
    if args.json:
        print(json.dumps(grouping_json(grouping)))
    else:
        print(grouping_table(grouping, names))
        print(f"\nchart: {png}")
    return 0


def _cmd_gpu_check(args: argparse.Namespace) -> int:
    from nnunetv2_dca.lab.gpu_check import run_gpu_check

    try:
        run_gpu_check(args.out, args.size, args.steps, args.device)
    except RuntimeError as e:  # GpuCheckError, or a failed step (the message names the command)
        print(f"nnunetv2-dca gpu-check: {e}", file=sys.stderr)
        return 1
    return 0


def _dca_trainer_class(name: str) -> type:
    """A registered DCA trainer by its -tr name (our registry only: nnU-Net's recursive search is not run)."""
    from nnunetv2_dca.discovery import find_registered_class
    from nnunetv2_dca.trainers import dca as trainers
    from nnunetv2_dca.training.dca import DCATrainer

    cls = find_registered_class(name)
    if not (isinstance(cls, type) and issubclass(cls, DCATrainer)):
        known = sorted(n for n, c in vars(trainers).items() if isinstance(c, type) and issubclass(c, DCATrainer)
                       and not n.startswith("_"))
        raise ValueError(f"-tr {name!r} is not a DCA trainer of nnunetv2_dca; choose one of {', '.join(known)}")
    return cls


def _cost_report(plans_file: str, configuration: str, trainer: str = "nnUNetTrainerDCA") -> dict:
    """network.cost's report of a plans file for a DCA trainer's recipe, its input files checked first (one line
    naming the file)."""
    from nnunetv2_dca.errors import InputFileError, is_input_error, one_line, read_dataset_json, read_json
    from nnunetv2_dca.network.cost import cost_report

    fix = "re-plan with nnUNetv2_plan_and_preprocess -pl nnUNetPlannerDCA"
    plans = read_json(plans_file, "plans file", fix)
    if not isinstance(plans.get("configurations"), dict) or not isinstance(plans.get("plans_name"), str):
        raise InputFileError(f"plans file {plans_file} is not nnU-Net plans (no 'plans_name' and 'configurations'); "
                             f"{fix}", plans_file)
    dataset_json = read_dataset_json(os.path.join(os.path.dirname(plans_file), "dataset.json"))
    t = _dca_trainer_class(trainer)
    try:
        return {"trainer": trainer, **cost_report(plans, configuration, dataset_json,
                                                  recipe_arch_kwargs=t.recipe_arch_kwargs,
                                                  aggregate_labeled=t.supervise_aggregation)}
    except ValueError as e:  # the configuration, the class groups: name the plans file they came from
        if not is_input_error(e) or plans_file in str(e):
            raise
        raise ValueError(f"{plans_file}: {one_line(e)}") from None


def _cmd_cost(args: argparse.Namespace) -> int:
    import json

    from nnunetv2_dca.network.cost import format_cost_report

    plans_file = args.plans_file
    if plans_file is None:
        prep = os.environ.get("nnUNet_preprocessed")
        if not prep:
            raise SystemExit("error: nnUNet_preprocessed is not set; export it or pass --plans-file")
        name = _dataset_name(args.d)
        plans_file = os.path.join(prep, name, f"{args.plans}.json")
    report = _cost_report(plans_file, args.configuration, args.tr)
    print(json.dumps(report, indent=2) if args.json else format_cost_report(report))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from nnunetv2_dca.evaluation.evaluate import evaluate_folders, json_ready, markdown_table

    try:
        result = evaluate_folders(args.ref, args.pred, args.djfile, plans_file=args.pfile, output_folder=args.o,
                                  protocol_b=args.protocol_b, configuration=args.c)
    except OSError as e:  # e.g. a full disk while writing: one line naming the folder, not a traceback
        print(f"nnunetv2-dca evaluate: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(json_ready({k: v for k, v in result.items() if k != "output_files"}), indent=2))
    else:
        print(markdown_table(result))
    print("wrote " + ", ".join(result["output_files"].values()), file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from nnunetv2_dca.lab.demo import run_demo

    return run_demo(args.out, dataset_id=args.d, seed=args.seed)


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
    cfg = BenchmarkConfig(
        out=args.out, dataset=args.d, full_dataset=args.full_dataset,
        arms=[a.strip() for a in arms.split(",") if a.strip()], epochs=epochs, iterations=iterations,
        val_iterations=val_iterations, width=args.width, batch_size=args.batch_size or None, seeds=args.seeds,
        planner=args.planner, fresh=args.fresh,
        configuration=args.c, device=args.device, phantom_labeled=args.phantom_labeled,
        phantom_unlabeled=args.phantom_unlabeled, phantom_test=args.phantom_test, phantom_seed=args.phantom_seed,
        phantom_size=args.phantom_size, gates_picture=not args.no_gates, tta=args.tta, sites=args.sites)
    try:
        run_benchmark(cfg)
    except BenchmarkError as e:
        print(f"nnunetv2-dca benchmark: {e}", file=sys.stderr)
        return 1
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnunetv2-dca",
        description="nnU-Net v2 extension for class-imbalance-aware semi-supervised segmentation. Training and "
                    "prediction use nnU-Net's own commands (nnUNetv2_train -tr ..., nnUNetv2_predict); these "
                    "subcommands make data and reports.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("phantom", help="write a synthetic nnU-Net raw dataset (abdominal CT 3D or H&E glands 2D)",
                       description="Write DatasetID_Name (imagesTr, labelsTr, imagesTrUnlabeled, imagesTs, "
                                   "labelsTs, dataset.json) under $nnUNet_raw.")
    p.add_argument("-d", type=int, required=True, help="dataset id (1..999)")
    p.add_argument("--name", default=None, help="dataset name (default AbdomenPhantom / GlandPhantom)")
    p.add_argument("--labeled", type=int, default=8, help="labeled training cases (default 8)")
    p.add_argument("--unlabeled", type=int, default=16, help="unlabeled training images (default 16)")
    p.add_argument("--test", type=int, default=4, help="test cases with labels in labelsTs (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=["small", "medium"], default="small",
                   help="small: 64x64x32 at 5 mm (CPU); medium: 128x128x64 at 2.5 mm (2D: 128 / 256 px)")
    p.add_argument("--sites", type=int, default=1, help="number of scanners/labs with shifted appearance")
    p.add_argument("--dim", type=int, choices=[2, 3], default=3, help="3: CT volumes (.nii.gz); 2: RGB PNG")
    p.add_argument("--raw", default=None, help="nnUNet_raw folder (default: $nnUNet_raw)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    p.set_defaults(func=_cmd_phantom)

    from nnunetv2_dca.data.split import PRESETS  # light module: no numpy/nnunetv2 at import

    p = sub.add_parser("cohort", help="a cohort of real anatomy: deformed, intensity-varied copies of the real "
                                      "labeled CT in the TotalSegmentator examples (13 Synapse organs)",
                       description="Writes a fully labeled raw dataset: every case is the example CT (patient P1) "
                                   "under a random smooth deformation and intensity change, labels warped alike. "
                                   "One patient's anatomy in many shapes, not a population (docs/data.md).")
    p.add_argument("-d", type=int, required=True, help="dataset id (1..999)")
    p.add_argument("--source", required=True,
                   help="folder with example_ct.nii.gz, example_seg_fast_force_split.nii.gz and synapse13_map.json "
                        "(e.g. ../shared/data/totalsegmentator-examples)")
    p.add_argument("--train", type=int, default=20, help="labeled training cases (default 20)")
    p.add_argument("--test", type=int, default=6, help="test cases (default 6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spacing", type=float, default=None, help="resample to this isotropic spacing in mm "
                                                               "(default: the CT's own, 3 mm)")
    p.add_argument("--name", default="CohortP1")
    p.add_argument("--raw", default=None, help="nnUNet_raw folder (default: $nnUNet_raw)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    p.set_defaults(func=_cmd_cohort)

    p = sub.add_parser("split", help="turn a fully labeled raw dataset into a semi-supervised one (new dataset id)",
                       description="Write a NEW raw dataset DatasetOUT_Name: the chosen cases stay labeled "
                                   "(imagesTr/labelsTr), the other training cases become unlabeled images "
                                   "(imagesTrUnlabeled, labels never copied), test cases stay test cases. The source "
                                   "is not modified; files are hard links (copies across filesystems). The choice is "
                                   "recorded in split.json; presets with validation cases also write "
                                   "splits_final.json (train with fold 0).")
    p.add_argument("-d", type=int, required=True, help="source dataset id (fully labeled)")
    p.add_argument("--out-id", type=int, required=True, help="id of the new dataset")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--labeled-fraction", type=float, default=None,
                      help="fraction f in (0, 1): max(1, round-half-up(f*N)) cases drawn with --seed")
    mode.add_argument("--labeled-cases", default=None, help="comma-separated case identifiers to keep labeled")
    mode.add_argument("--preset", choices=sorted(PRESETS), default=None,
                      help="published protocol-B case lists (labeled, validation, test)")
    p.add_argument("--seed", type=int, default=0, help="seed for --labeled-fraction (default 0)")
    p.add_argument("--name", default=None, help="name of the new dataset (default: source name + _L20s0 / "
                                                "_L4c / _synapse20)")
    p.add_argument("--raw", default=None, help="nnUNet_raw folder (default: $nnUNet_raw)")
    p.add_argument("--preprocessed", default=None,
                   help="nnUNet_preprocessed folder for splits_final.json (default: $nnUNet_preprocessed)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset with --out-id (and its splits_final.json)")
    p.set_defaults(func=_cmd_split)

    from nnunetv2_dca.data.convert import add_convert_parser  # light module: json only at import

    add_convert_parser(sub)  # convert btcv|amos: downloads -> raw datasets on published splits

    p = sub.add_parser("groups", help="log-gap class grouping (head/medium/tail) of a dataset: table, JSON, chart",
                       description="Counts labeled voxels per class (from the DCA fingerprint, else from labelsTr), "
                                   "splits the classes at the largest log gaps of their sorted proportions, prints "
                                   "the table and writes a bar chart next to the plans in nnUNet_preprocessed.")
    p.add_argument("-d", type=int, required=True, help="dataset id")
    p.add_argument("--plans", default="nnUNetPlansDCA", help="plans identifier; names the chart file")
    p.add_argument("--num-groups", type=int, default=None,
                   help="number of groups for the log-gap rule (default 3: head/medium/tail)")
    p.add_argument("--groups", default=None, help="explicit groups instead of the log-gap rule, head first: "
                                                  "'6;1,2,3;5,12,13' or a JSON file with [[6], [1, 2, 3], ...]")
    p.add_argument("--json", action="store_true", help='print {"groups": [...], "voxel_counts": {...}} only')
    p.add_argument("--save", action="store_true",
                   help="write the groups to nnUNet_preprocessed/DatasetXXX/dca_groups.json for the DCA planners")
    p.set_defaults(func=_cmd_groups)

    p = sub.add_parser("cost", help="parameters, FLOPs and feature maps of the DCA network vs nnU-Net's network "
                                    "of the same plans",
                       description="Builds both networks of one plans configuration on PyTorch's meta device "
                                   "(no weights, no compute) and prints their cost side by side with ratios.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-d", type=str, default=None, help="dataset id or name (plans in nnUNet_preprocessed)")
    src.add_argument("--plans-file", default=None, help="path to a plans JSON (dataset.json next to it)")
    p.add_argument("-p", "--plans", default="nnUNetPlansDCA", help="plans identifier with -d (default nnUNetPlansDCA)")
    p.add_argument("-c", "--configuration", default="3d_fullres")
    p.add_argument("-tr", default="nnUNetTrainerDCA",
                   help="DCA trainer whose recipe is costed (expert heads, prediction output, D_A on the labeled "
                        "samples; default nnUNetTrainerDCA)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_cost)

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

    p = sub.add_parser("evaluate", help="Dice, ASD and HD95 per case and class of a prediction folder, with "
                                        "head/medium/tail group means (or the published protocol B)",
                       description="Compares every reference file with the prediction file of the same name (read "
                                   "with nnU-Net's reader for the dataset) and writes evaluation.json (nnU-Net "
                                   "summary.json layout + group_mean), evaluation.csv (case x class) and "
                                   "evaluation.md; prints the Markdown table. Default: Dice, average symmetric "
                                   "surface distance and HD95 in mm; a class absent from both reference and "
                                   "prediction of a case is undefined there (as in nnU-Net) and left out of the "
                                   "means, n per class says in how many cases it was scored, and a class with no "
                                   "reference voxels in any case is 'not scored' (out of the group means and the "
                                   "mean). --protocol-b: the class-imbalanced SSL papers' convention (resize to "
                                   "160x160x80, Dice and ASD in voxels, missing class = ASD 128, absent from both "
                                   "= Dice 1 / ASD 0 in every mean), written as evaluation_protocol_b.*.")
    p.add_argument("-ref", dest="ref", metavar="REF_FOLDER", required=True,
                   help="folder with the reference segmentations")
    p.add_argument("-pred", dest="pred", metavar="PRED_FOLDER", required=True,
                   help="folder with the predicted segmentations (same file names)")
    p.add_argument("-djfile", metavar="DATASET_JSON", required=True,
                   help="dataset.json (labels, ignore label, file_ending)")
    p.add_argument("-pfile", metavar="PLANS_JSON", default=None,
                   help="DCA plans JSON: the class groups its network is built from give the group means")
    p.add_argument("-c", metavar="CONFIGURATION", default=None,
                   help="configuration whose class groups to use (needed only when the plans' configurations "
                        "have different groups)")
    p.add_argument("-o", metavar="OUT", default=None, help="output folder (default: the prediction folder)")
    p.add_argument("--protocol-b", action="store_true",
                   help="published protocol B: nearest resize to 160x160x80 (x, y, z), Dice and directed ASD in "
                        "voxels, class missing on one side = Dice 0 / ASD 128, on both = Dice 1 / ASD 0 (counted "
                        "in the means, as published; the default leaves such cases and classes out)")
    p.add_argument("--json", action="store_true", help="print the JSON result instead of the Markdown table")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("demo", help="main job end to end on a phantom: phantom, plan/preprocess, train, predict, "
                                    "evaluate, all through the stock nnU-Net commands")
    p.add_argument("--out", default="demo_output", help="folder for nnUNet_raw/preprocessed/results (default "
                                                       "./demo_output); existing nnUNet_* variables are ignored")
    p.add_argument("-d", type=int, default=901, help="dataset id for the phantom (default 901)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)

    from nnunetv2_dca.evaluation.gates import add_gates_parser

    add_gates_parser(sub)

    from nnunetv2_dca.lab.benchmark.arms import ARMS, DEFAULT_ARMS, DEFAULTS  # light: stdlib imports only
    from nnunetv2_dca.lab.benchmark.arms import PRESETS as BENCH_PRESETS

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
    p.add_argument("--preset", choices=list(BENCH_PRESETS), default="default",
                   help="budget and arms under one name (explicit --epochs/--iterations/--val-iterations/--arms "
                        "win): " + "; ".join(f"{k} = {v['epochs']} x {v['iterations']} iterations, arms "
                                             f"{','.join(v['arms'])}: {v['help']}" for k, v in BENCH_PRESETS.items())
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
    p.add_argument("--sites", type=int, default=1,
                   help="domain shift: phantom with K scanner sites, labeled cases from site 0 only, unlabeled from "
                        "all, test Dice reported per site (default 1 = no shift)")
    p.add_argument("--no-gates", action="store_true", help="skip the DFAM gates picture")
    p.add_argument("--tta", action="store_true",
                   help="predict with nnU-Net's mirroring test-time augmentation (default off: 8x cheaper in 3D; "
                        "the same for every arm)")
    p.set_defaults(func=_cmd_benchmark)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from nnunetv2_dca.errors import is_input_error, one_line

    try:
        return int(args.func(args) or 0)
    except (ValueError, RuntimeError, OSError) as e:  # the project's input errors; anything else keeps its trace
        if not is_input_error(e):
            raise
        print(f"nnunetv2-dca {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
