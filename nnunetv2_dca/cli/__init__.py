"""``nnunetv2-dca``: the project's own commands. Training and inference stay with nnU-Net's stock commands.

One module per group of subcommands (datasets, reports, lab); each has an ``add_<name>_parser(sub)`` that registers
one subcommand and its ``func``. Heavy imports (torch, nnunetv2) stay inside the functions, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from nnunetv2_dca.cli.datasets import add_cohort_parser, add_convert_parser, add_phantom_parser, add_split_parser
from nnunetv2_dca.cli.lab import add_benchmark_parser, add_demo_parser, add_distill_parser, add_gpu_check_parser
from nnunetv2_dca.cli.reports import add_cost_parser, add_evaluate_parser, add_gates_parser, add_groups_parser

__all__ = ["build_parser", "main"]

# the order of the subcommands in `nnunetv2-dca --help`
SUBCOMMANDS = (add_phantom_parser, add_cohort_parser, add_split_parser, add_convert_parser, add_groups_parser,
               add_cost_parser, add_gpu_check_parser, add_evaluate_parser, add_demo_parser, add_gates_parser,
               add_distill_parser, add_benchmark_parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnunetv2-dca",
        description="nnU-Net v2 extension for class-imbalance-aware semi-supervised segmentation. Training and "
                    "prediction use nnU-Net's own commands (nnUNetv2_train -tr ..., nnUNetv2_predict); these "
                    "subcommands make data and reports.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_parser in SUBCOMMANDS:
        add_parser(sub)
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
