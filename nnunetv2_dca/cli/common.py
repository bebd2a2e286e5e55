"""Helpers of several subcommands: the nnUNet_raw folder and nnU-Net's dataset id/name lookup."""

from __future__ import annotations

import os
from typing import Optional


def raw_dir(arg: Optional[str]) -> str:
    raw = arg or os.environ.get("nnUNet_raw")
    if not raw:
        raise SystemExit("error: nnUNet_raw is not set; export nnUNet_raw=/path/to/nnUNet_raw or pass --raw")
    if os.path.exists(raw) and not os.path.isdir(raw):
        raise ValueError(f"nnUNet_raw {raw} (--raw or $nnUNet_raw) is a file, not a folder; point it at a folder")
    return raw


def dataset_name(d) -> str:
    """nnU-Net's own id/name resolution (looks in raw, preprocessed and results); a clear error otherwise."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(d)
    except RuntimeError:  # nnU-Net's message spans five lines; one line naming the id and where it looked
        folders = ", ".join(f"{k}={os.environ.get(k) or '(not set)'}"
                            for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"))
        pattern = f"Dataset{int(d):03d}_*" if str(d).isdigit() else str(d)
        raise ValueError(f"-d {d}: no dataset {pattern} in {folders}; check the id or the nnUNet_* folders") from None
