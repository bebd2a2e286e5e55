"""``nnunetv2-dca convert btcv|amos SOURCE -d ID``: the seed's two benchmarks, from the official download to nnU-Net
raw datasets on a published split.

What is written (``docs/reproduce_paper.md``):

- ``Dataset{ID}_BTCV`` / ``Dataset{ID}_AMOS``, fully labeled: ``imagesTr``/``labelsTr`` = the split's training and
  validation (``eval``) cases, ``imagesTs``/``labelsTs`` = its test cases, ``dataset.json`` with the organ names,
  ``convert.json`` (the record: download, split and its source, every case's role). With ``--unlabeled-testing``
  the download's unlabeled test scans go to ``imagesTrUnlabeled``.
- for a semi-supervised split, its twin ``Dataset{ID+1}_{name}_{split}``: made from the first by
  :func:`nnunetv2_dca.data.split.make_semi_supervised_split` (the project's one split writer: hard links,
  ``split.json``), labeled + validation cases in ``imagesTr``, the other training cases in ``imagesTrUnlabeled``.
- ``nnUNet_preprocessed/<dataset>/splits_final.json`` for each, where the split has validation cases: one fold,
  train = training (labeled) cases, val = the published eval cases, so ``nnUNetv2_train ... 0`` validates on them.

Why in this order: every file is checked (complete, 3D, label present, same grid as its image, labels in 0..K) before
anything is written, so a bad download fails with one line naming the file and leaves nothing. Each dataset is built
in a hidden folder and moved into place (:func:`nnunetv2_dca.folders.building`); if the twin then fails, a base
dataset this run created is removed again. ``--overwrite`` replaces only datasets this command made (``convert.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from nnunetv2_dca import __version__
from nnunetv2_dca.data.convert_sources import (RECORD, ConvertError, Download, Plan, check_cases, make_plan,
                                                read_amos, read_btcv)
from nnunetv2_dca.data.published_splits import PublishedSplit, find_split, get_split, published_splits, split_names

NAMES = {"btcv": "BTCV", "amos": "AMOS"}
DEFAULT_PERCENT = {"btcv": 20, "amos": 5}  # the DCA seed's table: Synapse 20 %, AMOS 5 % (DHC's protocol)
REFERENCES = {"btcv": "https://www.synapse.org/#!Synapse:syn3193805", "amos": "https://zenodo.org/record/7262581"}


# ---------------------------------------------------------------------------------------------------- the split


def resolve_split(kind: str, split: Optional[str], percent: Optional[float]) -> Optional[PublishedSplit]:
    """``--split`` (a name, an alias, a family such as ``dhc``, or ``none``) and ``--labeled-percent`` -> a split."""
    if split == "none":
        if percent is not None:
            raise ConvertError("--labeled-percent needs a published split (--split none has none); for a random "
                               "draw use `nnunetv2-dca split --labeled-fraction`")
        return None
    if split is not None and split in split_names():
        found = get_split(split, kind)
        if percent is not None and found.labeled_percent != percent:
            raise ConvertError(f"--split {split} is {found.labeled_percent or 'fully supervised, no'} % labeled, "
                               f"not {percent:g} %")
        return found
    families = sorted({s.family for s in published_splits().values() if s.dataset == kind})
    family = split or "dhc"
    if family not in families:
        raise ConvertError(f"unknown --split {split!r} for {kind}: give none, a family ({', '.join(families)}) or a "
                           f"name ({', '.join(split_names(kind, aliases=False))})")
    if split is None and percent is None:
        percent = DEFAULT_PERCENT[kind]
    try:
        return find_split(kind, family, percent)
    except ValueError as e:
        raise ConvertError(str(e)) from None


# ----------------------------------------------------------------------------------------------------- targets


def _folders(base: Optional[str], dataset_id: int) -> List[str]:
    prefix = f"Dataset{dataset_id:03d}_"
    if not base or not os.path.isdir(base):
        return []
    return sorted(os.path.join(base, d) for d in os.listdir(base)
                  if d.startswith(prefix) and os.path.isdir(os.path.join(base, d)))


def made_by_convert(folder: str) -> bool:
    """A dataset this command wrote (its convert.json; the twin carries the same file)."""
    try:
        with open(os.path.join(folder, RECORD), encoding="utf-8") as f:
            return json.load(f).get("tool") == "nnunetv2-dca convert"
    except (OSError, ValueError, AttributeError):
        return False


def _check_target(raw: str, prep: Optional[str], dataset_id: int, folder: str, overwrite: bool,
                  twin: bool = False) -> List[str]:
    """The existing folders of ``dataset_id`` that this run may replace; refuses anything else, before any write. A
    twin may only replace a twin (split.py's writer replaces only datasets with its split.json)."""
    existing = _folders(raw, dataset_id)
    if existing and not overwrite:
        raise FileExistsError(f"dataset id {dataset_id} already exists in nnUNet_raw: {', '.join(existing)} "
                              f"(use --overwrite to replace it, or pick another -d)")
    foreign = [e for e in existing if not made_by_convert(e)
               or (twin and not os.path.isfile(os.path.join(e, "split.json")))]
    if foreign:
        raise FileExistsError(f"dataset id {dataset_id} in nnUNet_raw is {', '.join(foreign)}, not a dataset "
                              f"`nnunetv2-dca convert` made (no {RECORD}): --overwrite replaces only such a dataset, "
                              f"so it is left as it is; pick another -d")
    other = [p for p in _folders(prep, dataset_id) if os.path.basename(p) != folder]
    if other:  # nnU-Net refuses an id with two names across raw/preprocessed/results
        raise FileExistsError(f"nnUNet_preprocessed already holds {', '.join(other)} for id {dataset_id}; remove it "
                              f"or pick another -d")
    return existing


def _splits_file(prep: Optional[str], folder: str, content: Optional[list], overwrite: bool) -> Optional[str]:
    """Where splits_final.json goes (content None: the split has no validation cases, and a file there would be
    stale). An existing file that differs is refused without --overwrite: nnU-Net would train on its folds."""
    if content is not None and not prep:
        raise ConvertError(f"the split has validation cases, written to nnUNet_preprocessed/{folder}/"
                           f"splits_final.json: set nnUNet_preprocessed (or pass --preprocessed)")
    if not prep:
        return None
    path = os.path.join(prep, folder, "splits_final.json")
    if os.path.isfile(path) and not overwrite:
        try:
            with open(path, encoding="utf-8") as f:
                same = json.load(f) == content
        except ValueError:
            same = False
        if not same:
            why = ("differs from the published split" if content is not None else
                   "would replace nnU-Net's own 5-fold split (the split has no validation cases)")
            raise FileExistsError(f"{path} already exists and {why} (use --overwrite)")
    return path


# ----------------------------------------------------------------------------------------------------- writing


def _dataset_json(download: Download, name: str, plan: Plan, split: Optional[PublishedSplit]) -> dict:
    what = "CT" if download.channel == "CT" else "CT and MRI"
    out = {"name": name, "channel_names": {"0": download.channel}, "labels": download.labels,
           "numTraining": len(plan.train) + len(plan.validation), "file_ending": ".nii.gz",
           "numTest": len(plan.test), "reference": REFERENCES[download.kind],
           "description": f"{NAMES[download.kind]} ({what}) converted by nnunetv2-dca convert"
                          + (f" on the published split {split.name} ({split.provenance()})" if split else "")
                          + f"; see {RECORD}"}
    if plan.testing:
        out["numUnlabeled"] = len(plan.testing)
    if download.reader:  # as nnU-Net's own AMOS conversion: some AMOS headers need nibabel's reader
        out["overwrite_image_reader_writer"] = download.reader
    return out


def _write_base(tmp: str, download: Download, plan: Plan, dataset_json: dict, record: dict) -> None:
    from nnunetv2_dca.folders import link_or_copy

    pools = {**download.training, **download.validation}
    subs = [("imagesTr", "labelsTr", plan.train + plan.validation), ("imagesTs", "labelsTs", plan.test)]
    for images, labels, cases in subs:
        if cases:
            os.makedirs(os.path.join(tmp, images))
            os.makedirs(os.path.join(tmp, labels))
        for case in cases:
            image, label = pools[case]
            link_or_copy(image, os.path.join(tmp, images, f"{case}_0000.nii.gz"))  # the download's bytes, unchanged
            link_or_copy(label, os.path.join(tmp, labels, f"{case}.nii.gz"))
    if plan.testing:
        os.makedirs(os.path.join(tmp, "imagesTrUnlabeled"))
        for case in plan.testing:
            link_or_copy(download.testing[case], os.path.join(tmp, "imagesTrUnlabeled", f"{case}_0000.nii.gz"))
    for fname, obj in (("dataset.json", dataset_json), (RECORD, record)):
        with open(os.path.join(tmp, fname), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")


def _record(download: Download, split: Optional[PublishedSplit], plan: Plan, base: str, twin: Optional[str],
            splits_files: Sequence[Optional[str]]) -> dict:
    return {
        "tool": "nnunetv2-dca convert", "version": __version__, "download": NAMES[download.kind],
        "source": os.path.abspath(download.root),
        "modality": "CT" if download.channel == "CT" else "CT+MRI",
        "split": None if split is None else {
            "name": split.name, "description": split.description, "labeled_percent": split.labeled_percent,
            "source": split.source, "used_by": list(split.used_by)},
        "dataset": base, "semi_supervised_dataset": twin,
        "train": plan.train, "validation": plan.validation, "test": plan.test, "labeled": plan.labeled,
        "unlabeled": plan.unlabeled, "unlabeled_test_scans": plan.testing, "left_out": plan.left_out,
        "splits_final": [p for p in splits_files if p], "notes": plan.notes,
    }


def _write_splits(path: Optional[str], content: Optional[list]) -> None:
    """Write splits_final.json, or remove a stale one (an --overwrite'd dataset's) where the split has none."""
    from nnunetv2_dca.atomic import write_json_atomic

    if path and content is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json_atomic(content, path)
    elif path and os.path.isfile(path):
        os.remove(path)


@dataclass
class ConvertResult:
    base: str
    twin: Optional[str]
    split: Optional[PublishedSplit]
    plan: Plan
    splits_files: List[str]

    def summary(self) -> str:
        p, s = self.plan, self.split
        lines = [f"wrote {self.base}: {len(p.train) + len(p.validation)} labeled training cases"
                 + (f" ({len(p.validation)} of them the published validation cases)" if p.validation else "")
                 + f", {len(p.test)} test cases (imagesTs + labelsTs)"
                 + (f", {len(p.testing)} unlabeled test scans (imagesTrUnlabeled)" if p.testing else "")]
        if self.twin:
            lines.append(f"wrote {self.twin}: {len(p.labeled)} labeled + {len(p.validation)} validation (imagesTr), "
                         f"{len(p.unlabeled) + len(p.testing)} unlabeled (imagesTrUnlabeled), {len(p.test)} test")
        lines.append(f"split: {s.name}: {s.description} [{s.provenance()}]" if s else
                     "split: none (every labeled training case in imagesTr)")
        lines += [f"splits_final.json: {f} (train with fold 0)" for f in self.splits_files]
        ds = int(os.path.basename(self.twin or self.base)[len("Dataset"):len("Dataset000")])
        trainer = "-tr nnUNetTrainerDCA -p nnUNetPlansDCA" if self.twin else "-tr nnUNetTrainer"
        planner = " -pl nnUNetPlannerDCA" if self.twin else ""
        lines.append(f"next: nnUNetv2_plan_and_preprocess -d {ds}{planner} -c 3d_fullres; "
                     f"nnUNetv2_train {ds} 3d_fullres 0 {trainer}")
        return "\n".join(lines + [f"note: {n}" for n in p.notes])


def convert_download(kind: str, source: str, raw: str, dataset_id: int, *, preprocessed: Optional[str] = None,
                     split: Optional[str] = None, labeled_percent: Optional[float] = None,
                     unlabeled_testing: bool = False, mri: bool = False, overwrite: bool = False,
                     workers: int = 4, log: Callable[[str], object] = print) -> ConvertResult:
    """Convert a BTCV or AMOS download (module docstring); raises ConvertError / FileExistsError naming the
    problem, with nothing written."""
    from nnunetv2_dca.data.split import Preset, make_semi_supervised_split

    published = resolve_split(kind, split, labeled_percent)
    twin_id = dataset_id + 1 if published is not None and published.semi_supervised else None
    for flag, value in (("-d", dataset_id), ("the twin's id (-d + 1)", twin_id)):
        if value is not None and not 1 <= value <= 999:
            raise ConvertError(f"{flag} must be a dataset id in 1..999, got {value}")
    if not os.path.isdir(source):
        raise ConvertError(f"{source}: no such folder (the {NAMES[kind]} download)")
    download = read_btcv(source) if kind == "btcv" else read_amos(source, mri=mri)
    plan = make_plan(download, published, unlabeled_testing)

    base = f"Dataset{dataset_id:03d}_{NAMES[kind]}"
    twin = f"Dataset{twin_id:03d}_{NAMES[kind]}_{published.name.replace('-', '')}" if twin_id else None
    from nnunetv2_dca.folders import building, clean_interrupted_dataset, remove_folder

    clean_interrupted_dataset(raw, dataset_id)  # hidden folders of a killed run of this id (the twin's: split.py)
    old_base = _check_target(raw, preprocessed, dataset_id, base, overwrite)
    base_splits = [{"train": sorted(plan.train), "val": plan.validation}] if plan.validation else None
    base_splits_file = _splits_file(preprocessed, base, base_splits, overwrite)
    twin_splits_file = None
    if twin_id:
        _check_target(raw, preprocessed, twin_id, twin, overwrite, twin=True)
        twin_splits = [{"train": plan.labeled, "val": plan.validation}] if plan.validation else None
        twin_splits_file = _splits_file(preprocessed, twin, twin_splits, overwrite)

    pairs: List[Tuple[str, Optional[str]]] = [{**download.training, **download.validation}[c]
                                              for c in plan.train + plan.validation + plan.test]
    pairs += [(download.testing[c], None) for c in plan.testing]
    log(f"checking {len(pairs)} cases of {download.root} (complete files, 3D, labels 0..{max(download.labels.values())}"
        f", label grid = image grid) ...")
    check_cases(pairs, max(download.labels.values()), workers)

    record = _record(download, published, plan, base, twin,
                     [base_splits_file if base_splits else None, twin_splits_file if plan.validation else None])
    target = os.path.join(raw, base)
    with building(target, also_replace=old_base) as tmp:
        _write_base(tmp, download, plan, _dataset_json(download, base[len("Dataset000_"):], plan, published), record)
    if twin_id:
        preset = Preset(tuple(plan.labeled), tuple(plan.validation), test_from_source_labels=True,
                        description=published.description, name=published.name)
        try:
            make_semi_supervised_split(raw, dataset_id, twin_id, preset=preset, name=twin[len("Dataset000_"):],
                                       preprocessed_dir=preprocessed, overwrite=overwrite)
        except BaseException:
            if not old_base:  # this run created the base: take it back, so a failed run leaves nothing
                remove_folder(target)
            raise
    _write_splits(base_splits_file, base_splits)
    written = [base_splits_file if base_splits else None, twin_splits_file if twin_id and plan.validation else None]
    return ConvertResult(target, os.path.join(raw, twin) if twin else None, published, plan,
                         [f for f in written if f])


# --------------------------------------------------------------------------------------------------------- CLI


def _cmd_convert(args: argparse.Namespace) -> int:
    raw = args.raw or os.environ.get("nnUNet_raw")
    if not raw:
        raise ConvertError("nnUNet_raw is not set; export nnUNet_raw=/path/to/nnUNet_raw or pass --raw")
    try:
        prep = args.preprocessed or os.environ.get("nnUNet_preprocessed")
        result = convert_download(
            args.kind, args.source, raw, args.d, preprocessed=prep, split=args.split,
            labeled_percent=args.labeled_percent, unlabeled_testing=args.unlabeled_testing,
            mri=getattr(args, "mri", False), overwrite=args.overwrite, workers=args.num_workers)
    except (FileExistsError, FileNotFoundError, ConvertError):
        raise  # one line by cli.main
    except OSError as e:  # e.g. a full disk or a permission: one line naming the path, not a traceback
        print(f"nnunetv2-dca convert: error: {e}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def add_convert_parser(sub: "argparse._SubParsersAction") -> None:
    """``nnunetv2-dca convert btcv|amos ...`` (called by :func:`nnunetv2_dca.cli.build_parser`)."""
    convert = sub.add_parser("convert", help="BTCV/Synapse or AMOS download -> nnU-Net raw datasets on a published "
                                             "semi-supervised split (docs/reproduce_paper.md)",
                             description="Convert an official download into DatasetID_<NAME> (all labels) and, for "
                                         "a semi-supervised split, its twin DatasetID+1 with imagesTrUnlabeled; every "
                                         "file is checked before anything is written.")
    kinds = convert.add_subparsers(dest="kind", metavar="DATASET", required=True)
    for kind, what in (("btcv", "Synapse multi-organ CT (RawData/Training/img, label; RawData/Testing/img)"),
                       ("amos", "AMOS 2022 (imagesTr/labelsTr, imagesVa/labelsVa, imagesTs, dataset.json)")):
        families = sorted({s.family for s in published_splits().values() if s.dataset == kind})
        p = kinds.add_parser(kind, help=what, description=f"Convert the {what} download.")
        p.add_argument("source", help="the extracted download")
        p.add_argument("-d", type=int, required=True, help="dataset id (1..999); a twin gets id + 1")
        p.add_argument("--split", default=None,
                       help=f"published split: none, a family ({', '.join(families)}; with --labeled-percent) or a "
                            f"name ({', '.join(split_names(kind))}); default: dhc at {DEFAULT_PERCENT[kind]} %%, "
                            f"the DCA seed's setting")
        p.add_argument("--labeled-percent", type=float, default=None,
                       help=f"labeled percent of the family's published split (default {DEFAULT_PERCENT[kind]})")
        p.add_argument("--unlabeled-testing", action="store_true",
                       help="add the download's unlabeled test scans to imagesTrUnlabeled")
        if kind == "amos":
            p.add_argument("--mri", action="store_true",
                           help="also convert the MRI scans (ids > 500); the published DHC splits hold both, "
                                "without it they are restricted to CT")
        p.add_argument("--raw", default=None, help="nnUNet_raw folder (default: $nnUNet_raw)")
        p.add_argument("--preprocessed", default=None,
                       help="nnUNet_preprocessed folder for splits_final.json (default: $nnUNet_preprocessed)")
        p.add_argument("--overwrite", action="store_true",
                       help="replace datasets of these ids that `nnunetv2-dca convert` made")
        p.add_argument("-np", "--num-workers", type=int, default=4, help="files checked in parallel (default 4)")
        p.set_defaults(func=_cmd_convert, kind=kind)
