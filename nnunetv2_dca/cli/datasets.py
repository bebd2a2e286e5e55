"""Subcommands that write nnU-Net raw datasets: phantom, cohort, split, convert."""

from __future__ import annotations

import argparse
import os

from nnunetv2_dca.cli.common import raw_dir


def _cmd_phantom(args: argparse.Namespace) -> int:
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    path = write_phantom_dataset(
        raw_dir(args.raw), args.d, name=args.name, labeled=args.labeled, unlabeled=args.unlabeled, test=args.test,
        seed=args.seed, size=args.size, sites=args.sites, dim=args.dim, overwrite=args.overwrite,
        variability=args.variability)
    print(f"wrote {path} ({args.labeled} labeled, {args.unlabeled} unlabeled, {args.test} test cases)")
    return 0


def add_phantom_parser(sub: argparse._SubParsersAction) -> None:
    """``phantom``: a synthetic raw dataset."""
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
    from nnunetv2_dca.data.phantom_variation import VARIABILITIES  # light: numpy only

    p.add_argument("--variability", choices=VARIABILITIES, default="classic",
                   help="3D only: how much cases differ. classic (default, every result before issue 26): small "
                        "jitter, one contrast phase; varied: per-case habitus, coverage, organ pose and size, "
                        "contrast phase, fat, noise, absent gallbladder; moderate: between them; thick_tail: "
                        "classic with esophagus and adrenals ~4 voxels across (docs/data.md)")
    p.add_argument("--dim", type=int, choices=[2, 3], default=3, help="3: CT volumes (.nii.gz); 2: RGB PNG")
    p.add_argument("--raw", default=None, help="nnUNet_raw folder (default: $nnUNet_raw)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    p.set_defaults(func=_cmd_phantom)


def _cmd_cohort(args: argparse.Namespace) -> int:
    from nnunetv2_dca.data.cohort import write_cohort_dataset

    path = write_cohort_dataset(raw_dir(args.raw), args.d, args.source, train=args.train, test=args.test,
                                seed=args.seed, spacing=args.spacing, name=args.name, overwrite=args.overwrite,
                                variability=args.variability)
    print(f"wrote {path} ({args.train} labeled training cases, {args.test} test cases); make it semi-supervised "
          f"with: nnunetv2-dca split -d {args.d} --out-id ID --labeled-cases cohort_0000,...")
    return 0


def add_cohort_parser(sub: argparse._SubParsersAction) -> None:
    """``cohort``: deformed copies of one real labeled CT."""
    from nnunetv2_dca.data.cohort import COHORT_VARIATIONS  # light: numpy only

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
    p.add_argument("--variability", choices=tuple(COHORT_VARIATIONS), default="classic",
                   help="classic: the cohort of every earlier result; varied: larger deformations, a contrast phase, "
                        "kernel and noise per case, an absent gallbladder in 20%% of cases (docs/data.md)")
    p.add_argument("--raw", default=None, help="nnUNet_raw folder (default: $nnUNet_raw)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    p.set_defaults(func=_cmd_cohort)


def _cmd_split(args: argparse.Namespace) -> int:
    from nnunetv2_dca.data.split import make_semi_supervised_split

    cases = [c.strip() for c in args.labeled_cases.split(",") if c.strip()] if args.labeled_cases is not None \
        else None
    result = make_semi_supervised_split(
        raw_dir(args.raw), args.d, args.out_id, labeled_fraction=args.labeled_fraction, labeled_cases=cases,
        preset=args.preset, seed=args.seed, name=args.name,
        preprocessed_dir=args.preprocessed or os.environ.get("nnUNet_preprocessed"), overwrite=args.overwrite)
    print(result.summary())
    return 0


def add_split_parser(sub: argparse._SubParsersAction) -> None:
    """``split``: a fully labeled raw dataset made semi-supervised under a new id."""
    from nnunetv2_dca.data.split import PRESETS  # light module: no numpy/nnunetv2 at import

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


def add_convert_parser(sub: argparse._SubParsersAction) -> None:
    """``convert btcv|amos``: downloads -> raw datasets on published splits."""
    from nnunetv2_dca.data import convert  # light module: json only at import

    convert.add_convert_parser(sub)
