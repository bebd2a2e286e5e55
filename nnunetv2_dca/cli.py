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
    return raw


def _cmd_phantom(args: argparse.Namespace) -> int:
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    path = write_phantom_dataset(
        _raw_dir(args.raw), args.d, name=args.name, labeled=args.labeled, unlabeled=args.unlabeled, test=args.test,
        seed=args.seed, size=args.size, sites=args.sites, dim=args.dim, overwrite=args.overwrite)
    print(f"wrote {path} ({args.labeled} labeled, {args.unlabeled} unlabeled, {args.test} test cases)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from nnunetv2_dca.demo import run_demo

    return run_demo(args.out, dataset_id=args.d, seed=args.seed)


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

    p = sub.add_parser("demo", help="main job end to end on a phantom: phantom, plan/preprocess, train, predict, "
                                    "evaluate, all through the stock nnU-Net commands")
    p.add_argument("--out", default="demo_output", help="folder for nnUNet_raw/preprocessed/results (default "
                                                       "./demo_output); existing nnUNet_* variables are ignored")
    p.add_argument("-d", type=int, default=901, help="dataset id for the phantom (default 901)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileExistsError) as e:
        print(f"nnunetv2-dca {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
