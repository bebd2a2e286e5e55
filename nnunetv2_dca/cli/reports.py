"""Subcommands that report on datasets, plans and predictions: groups, cost, evaluate, gates."""

from __future__ import annotations

import argparse
import os
import sys

from nnunetv2_dca.cli.common import dataset_name, raw_dir


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

    raw = raw_dir(None)
    prep = os.environ.get("nnUNet_preprocessed")
    if not prep:
        raise SystemExit("error: nnUNet_preprocessed is not set (the chart is written next to the plans there)")
    name = dataset_name(args.d)
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


def add_groups_parser(sub: argparse._SubParsersAction) -> None:
    """``groups``: the log-gap class grouping of a dataset."""
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
        name = dataset_name(args.d)
        plans_file = os.path.join(prep, name, f"{args.plans}.json")
    report = _cost_report(plans_file, args.configuration, args.tr)
    print(json.dumps(report, indent=2) if args.json else format_cost_report(report))
    return 0


def add_cost_parser(sub: argparse._SubParsersAction) -> None:
    """``cost``: the DCA network's cost vs nnU-Net's network of the same plans."""
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


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    """``evaluate``: per-case, per-class and per-group scores of a prediction folder."""
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


def add_gates_parser(sub: argparse._SubParsersAction) -> None:
    """``gates``: picture of a trained DCA model's DFAM gate weights."""
    from nnunetv2_dca.evaluation import gates

    gates.add_gates_parser(sub)
