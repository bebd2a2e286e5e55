"""``nnunetv2-dca split``: turn a fully labeled nnU-Net raw dataset into a semi-supervised one.

Why a new dataset instead of editing the source: the labeled-only baseline (stock nnU-Net) and DCA must train on
exactly the same labeled cases, and the fully labeled source must stay usable (e.g. for the fully supervised upper
bound). So the split is materialised once, as a NEW raw dataset ``Dataset{OUT_ID:03d}_{name}`` under
``nnUNet_raw``, and both methods are pointed at that dataset id:

- ``imagesTr/`` + ``labelsTr/``: the labeled cases (plus, for a preset, its validation cases);
- ``imagesTrUnlabeled/``: the images of every other training case (their labels are never written), plus any images
  the source already had in ``imagesTrUnlabeled/``;
- ``imagesTs/`` (+ ``labelsTs/`` when there are test labels): the source's test cases, plus, for a preset with a test
  list, those training cases (image and label);
- ``dataset.json``: the source's, with ``numTraining`` (and the informational ``numUnlabeled``/``numTest``) updated,
  a ``"dataset"`` key dropped (the files now sit in the standard folders) and ``"semi_supervised_split":
  "split.json"`` added;
- ``split.json``: the record (source, mode, seed, labeled / validation / unlabeled / test identifiers, tool version).

Other top-level files of the source (e.g. ``phantom.json``) are carried over; other sub-folders are not.

Files are hard links when the source lies on the same filesystem (no extra disk space), otherwise copies. Never
symlinks: nnU-Net and several readers resolve paths and file types in ways that make symlinked raw data confusing,
and a hard link is an ordinary file to every tool. Caveat of hard links: editing a file *in place* in either dataset
changes both (nnU-Net never does; deleting or replacing a file does not affect the other dataset).

Choosing the labeled cases (exactly one mode: ``labeled_fraction``, ``labeled_cases`` or ``preset``): see
:mod:`nnunetv2_dca.data.split_cases`.

If a preset defines validation cases, ``nnUNet_preprocessed/Dataset{OUT}_{name}/splits_final.json`` is written with
one fold, ``[{"train": labeled, "val": validation}]``, so ``nnUNetv2_train OUT CONFIG 0`` trains on exactly the
labeled cases and validates on the protocol's validation cases (use fold 0). Without validation cases no split file
is written and nnU-Net makes its usual 5-fold split of the labeled cases.

The dataset is built in a temporary folder next to the target and moved into place at the end: a failed run leaves
nothing half-written under ``nnUNet_raw``, and with ``--overwrite`` the old dataset is only deleted once the new one is
in place (:func:`nnunetv2_dca.folders.building`); the hidden folders of a run killed outright are cleaned (an
unfinished swap undone) by the next run for the same id.

Size: one command's whole job (reading the source, the new raw dataset with its record, the safe swap) as a
sequence of steps (:func:`make_semi_supervised_split`); the selection rules and presets live in
:mod:`nnunetv2_dca.data.split_cases`, the file operations it shares in :mod:`nnunetv2_dca.folders`.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

from nnunetv2_dca import __version__
from nnunetv2_dca.atomic import write_json_atomic
from nnunetv2_dca.caseids import validate_case_ids
from nnunetv2_dca.data.split_cases import Preset, choose_fraction, explicit_labeled_cases, labeling_mode, preset_cases
# re-exported: cli, convert and the tests import these from here
from nnunetv2_dca.data.split_cases import PRESETS, fraction_to_count, match_preset_entries  # noqa: F401
from nnunetv2_dca.data.split_cases import preset_from_published  # noqa: F401
from nnunetv2_dca.folders import building, clean_interrupted_dataset, dataset_folders, link_or_copy

RECORD_FILE = "split.json"
_NAME_RE = re.compile(r"[A-Za-z0-9_\-]+")


@dataclass
class SplitResult:
    """What was written; ``record`` is the content of split.json."""

    path: str
    record: Dict[str, object]
    splits_file: Optional[str] = None
    linked: int = 0
    copied: int = 0
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        r = self.record
        lines = [
            f"wrote {self.path} from {r['source_dataset']} ({self._mode_text()})",
            f"  labeled:    {len(r['labeled'])} (imagesTr + labelsTr)"
            + (f" + {len(r['validation'])} validation" if r["validation"] else ""),
            f"  unlabeled:  {len(r['unlabeled'])} (imagesTrUnlabeled, labels withheld)",
            f"  test:       {len(r['test'])} (imagesTs" + (" + labelsTs)" if r["test_labels"] else ")"),
            f"  files:      {self.linked} hard links, {self.copied} copies; record: "
            f"{os.path.join(self.path, RECORD_FILE)}",
        ]
        if self.splits_file:
            lines.append(f"  splits:     {self.splits_file} (one fold: train with fold 0)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _mode_text(self) -> str:
        r = self.record
        if r["mode"] == "fraction":
            return f"labeled fraction {r['labeled_fraction']}, seed {r['seed']}"
        if r["mode"] == "preset":
            return f"preset {r['preset']}"
        return "explicit labeled cases"


# ------------------------------------------------------------------------------------------------ source reading


def _images_in(folder: str, file_ending: str) -> Dict[str, List[str]]:
    """identifier -> channel files of an nnU-Net image folder ({} when the folder does not exist)."""
    from nnunetv2.utilities.utils import create_paths_fn, get_identifiers_from_splitted_dataset_folder

    if not os.path.isdir(folder):
        return {}
    # create_paths_fn is the matcher nnU-Net uses ({id}_XXXX{ending}), called directly to avoid its 12-process pool
    files = sorted(f for f in os.listdir(folder) if f.endswith(file_ending))
    return {str(i): create_paths_fn(folder, files, file_ending, str(i))
            for i in get_identifiers_from_splitted_dataset_folder(folder, file_ending)}


def _training_cases(source: str, dataset_json: dict) -> Dict[str, Dict[str, object]]:
    """identifier -> {"images": [...], "label": path}, exactly as nnU-Net sees the training set."""
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    if "dataset" in dataset_json:
        # nnU-Net rewrites the paths inside the dict it is given: hand it a copy
        cases = get_filenames_of_train_images_and_targets(source, copy.deepcopy(dataset_json))
        return {str(k): {"images": list(v["images"]), "label": v["label"]} for k, v in cases.items()}
    ending = dataset_json["file_ending"]
    images = _images_in(os.path.join(source, "imagesTr"), ending)
    return {k: {"images": v, "label": os.path.join(source, "labelsTr", k + ending)} for k, v in images.items()}


# ----------------------------------------------------------------------------------------------- the steps


@dataclass
class _Source:
    """The source raw dataset as read (it is never written)."""

    folder: str  # Dataset{id:03d}_{name}
    path: str
    name: str
    dataset_json: dict
    train: Dict[str, Dict[str, object]]  # identifier -> {"images": [...], "label": path}
    unlabeled: Dict[str, List[str]]  # its imagesTrUnlabeled
    test: Dict[str, List[str]]  # its imagesTs
    labels_ts: str
    test_labels: List[str]  # file names in labelsTs

    @property
    def ending(self) -> str:
        return self.dataset_json["file_ending"]


@dataclass
class _Selection:
    """Where each training case goes."""

    labeled: List[str]
    validation: List[str]
    test_from_train: List[str]
    unlabeled_from_train: List[str]


@dataclass
class _Target:
    """The new dataset's folder and its nnUNet_preprocessed split file."""

    folder: str
    path: str
    existing: List[str]  # folders of that id, replaced once the new one is in place
    splits: Optional[List[Dict[str, List[str]]]]  # splits_final.json content; None: nnU-Net's own 5 folds
    splits_file: Optional[str]
    old_splits: Optional[bytes]  # what splits_file held before this run (restored on failure)


def _check_arguments(labeled_fraction: Optional[float], labeled_cases: Optional[Sequence[str]],
                     preset: Optional[Union[str, Preset]], seed: int, source_id: int,
                     out_id: int) -> Tuple[str, Optional[Preset], Optional[str]]:
    """The mode, the preset's case lists and the preset's name (both None outside preset mode)
    (:func:`~nnunetv2_dca.data.split_cases.labeling_mode`); then the seed and the dataset ids."""
    mode, preset_spec, preset_name = labeling_mode(labeled_fraction, labeled_cases, preset)
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    for flag, value in (("-d", source_id), ("--out-id", out_id)):
        if not 1 <= value <= 999:
            raise ValueError(f"{flag} must be a dataset id in 1..999 (nnU-Net uses three digits), got {value}")
    if out_id == source_id:
        raise ValueError(f"--out-id {out_id} is the source dataset's id; the source is never modified, pick a new id")
    return mode, preset_spec, preset_name


def _read_source(raw_dir: str, source_id: int) -> _Source:
    """Find dataset ``source_id`` under ``raw_dir`` and read its cases; checks its case ids."""
    found = dataset_folders(raw_dir, source_id)
    if not found:
        raise FileNotFoundError(f"no dataset with id {source_id} (Dataset{source_id:03d}_*) in nnUNet_raw={raw_dir}")
    if len(found) > 1:
        raise ValueError(f"dataset id {source_id} is ambiguous in nnUNet_raw: {', '.join(found)}")
    source_folder = found[0]
    source = os.path.join(raw_dir, source_folder)
    json_path = os.path.join(source, "dataset.json")
    if not os.path.isfile(json_path):
        raise FileNotFoundError(f"{source_folder} has no dataset.json")
    from nnunetv2_dca.errors import read_dataset_json

    dataset_json = read_dataset_json(json_path)  # one line naming the file when it is not nnU-Net's dataset.json
    ending: str = dataset_json["file_ending"]
    train = _training_cases(source, dataset_json)
    if not train:
        raise ValueError(f"{source_folder} has no training cases (imagesTr/*_0000{ending})")
    unlabeled_source = _images_in(os.path.join(source, "imagesTrUnlabeled"), ending)
    test_source = _images_in(os.path.join(source, "imagesTs"), ending)
    # case ids become file names below: none may lead out of the new dataset (checked before anything is written)
    validate_case_ids(train, f"{source_folder}/dataset.json key 'dataset'" if "dataset" in dataset_json
                      else f"{source_folder}/imagesTr")
    validate_case_ids(unlabeled_source, f"{source_folder}/imagesTrUnlabeled")
    validate_case_ids(test_source, f"{source_folder}/imagesTs")
    labels_ts = os.path.join(source, "labelsTs")
    test_labels_source = sorted(f for f in os.listdir(labels_ts) if f.endswith(ending)) \
        if os.path.isdir(labels_ts) else []
    return _Source(folder=source_folder, path=source, name=source_folder[len(f"Dataset{source_id:03d}_"):],
                   dataset_json=dataset_json, train=train, unlabeled=unlabeled_source, test=test_source,
                   labels_ts=labels_ts, test_labels=test_labels_source)


def _choose_cases(src: _Source, mode: str, labeled_fraction: Optional[float],
                  labeled_cases: Optional[Sequence[str]], preset_spec: Optional[Preset], preset: Optional[str],
                  seed: int) -> _Selection:
    """Pick the labeled (validation, test) cases by ``mode``; the other training cases become unlabeled."""
    ids = sorted(src.train)
    validation: List[str] = []
    test_from_train: List[str] = []
    if mode == "fraction":
        labeled = choose_fraction(ids, labeled_fraction, seed)
    elif mode == "cases":
        labeled = explicit_labeled_cases(labeled_cases, src.train, src.folder)
    else:
        labeled, validation, test_from_train = preset_cases(preset_spec, preset, ids, src.folder,
                                                            bool(src.test_labels))
    chosen = set(labeled) | set(validation) | set(test_from_train)
    unlabeled_from_train = [i for i in ids if i not in chosen]
    for what, other in (("imagesTrUnlabeled", src.unlabeled), ("imagesTs", src.test)):
        clash = sorted(set(other) & set(src.train))
        if clash:
            raise ValueError(f"{src.folder}: {', '.join(clash[:5])} appear both in the training set and in "
                             f"{what}; identifiers must be unique")
    if not unlabeled_from_train and not src.unlabeled:
        raise ValueError(f"{src.folder}: the split keeps all {len(ids)} training cases labeled and there are no "
                         f"other unlabeled images; choose fewer labeled cases")
    for case in labeled + validation + test_from_train:
        if not os.path.isfile(src.train[case]["label"]):
            raise FileNotFoundError(f"{src.folder}: case {case} has no label file {src.train[case]['label']}")
    return _Selection(labeled, validation, test_from_train, unlabeled_from_train)


def _default_name(source_name: str, mode: str, fraction: Optional[float], seed: int, n_cases: int,
                  preset: Optional[str]) -> str:
    if mode == "fraction":
        pct = f"{fraction * 100:g}".replace(".", "p")
        return f"{source_name}_L{pct}s{seed}"
    if mode == "preset":
        return f"{source_name}_{preset.replace('-', '')}"
    return f"{source_name}_L{n_cases}c"


def _check_target_folder(raw_dir: str, out_id: int, name: str, preprocessed_dir: Optional[str],
                         overwrite: bool) -> Tuple[str, List[str]]:
    """The new dataset's folder name and the folders of ``out_id`` it replaces (only splits this command made)."""
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"dataset name {name!r} (--name) may only contain letters, digits, '_' and '-'")
    target_folder = f"Dataset{out_id:03d}_{name}"
    clean_interrupted_dataset(raw_dir, out_id)  # hidden folders of a killed run of this id
    existing = [os.path.join(raw_dir, d) for d in dataset_folders(raw_dir, out_id)]
    if existing and not overwrite:
        raise FileExistsError(f"dataset id {out_id} already exists in nnUNet_raw: {', '.join(existing)} "
                              f"(use --overwrite to replace it, or pick another --out-id)")
    foreign = [e for e in existing if not os.path.isfile(os.path.join(e, RECORD_FILE))]
    if foreign:  # e.g. the user's own dataset under that id: --overwrite replaces only a split this command made
        raise FileExistsError(f"dataset id {out_id} in nnUNet_raw is {', '.join(foreign)}, not a dataset "
                              f"`nnunetv2-dca split` made (no {RECORD_FILE}): --overwrite replaces only such a "
                              f"dataset, so it is left as it is; pick another --out-id")
    other_prep = [d for d in dataset_folders(preprocessed_dir, out_id) if d != target_folder]
    if other_prep:
        # nnU-Net refuses an id that maps to two names across raw/preprocessed/results
        raise FileExistsError(f"nnUNet_preprocessed already holds {', '.join(other_prep)} for id {out_id}; nnU-Net "
                              f"would refuse the id with two names. Remove that folder or pick another --out-id")
    return target_folder, existing


def _check_target(raw_dir: str, out_id: int, name: str, preprocessed_dir: Optional[str], overwrite: bool,
                  sel: _Selection, preset: Optional[str]) -> _Target:
    """Refuse a target that would replace what this command did not make; read the split file it replaces."""
    target_folder, existing = _check_target_folder(raw_dir, out_id, name, preprocessed_dir, overwrite)
    splits: Optional[List[Dict[str, List[str]]]] = \
        [{"train": sorted(sel.labeled), "val": sorted(sel.validation)}] if sel.validation else None
    splits_file: Optional[str] = None
    old_splits: Optional[bytes] = None
    if preprocessed_dir:
        splits_file = os.path.join(preprocessed_dir, target_folder, "splits_final.json")
        if os.path.isfile(splits_file):
            with open(splits_file, "rb") as f:
                old_splits = f.read()
            try:
                same = json.loads(old_splits) == splits
            except ValueError:
                same = False
            if not same and not overwrite:
                why = ("it differs from the preset's split" if splits else
                       "nnU-Net would use it instead of making its own 5-fold split of the labeled cases")
                raise FileExistsError(f"{splits_file} already exists and {why} (use --overwrite to replace it)")
    elif splits:
        raise ValueError(f"--preset {preset} defines validation cases, written to nnUNet_preprocessed/"
                         f"{target_folder}/splits_final.json: set nnUNet_preprocessed (or pass --preprocessed)")
    return _Target(folder=target_folder, path=os.path.join(raw_dir, target_folder), existing=existing,
                   splits=splits, splits_file=splits_file, old_splits=old_splits)


def _split_record(src: _Source, source_id: int, target: _Target, sel: _Selection, mode: str,
                  preset: Optional[str], labeled_fraction: Optional[float], seed: int) -> Dict[str, object]:
    """The content of split.json."""
    return {
        "tool": "nnunetv2-dca split",
        "version": __version__,
        "source_dataset": src.folder,
        "source_id": source_id,
        "dataset": target.folder,
        "mode": mode,
        "preset": preset,
        "labeled_fraction": labeled_fraction,
        "seed": seed if mode == "fraction" else None,
        "labeled": sorted(sel.labeled),
        "validation": sorted(sel.validation),
        "unlabeled": sorted(set(sel.unlabeled_from_train) | set(src.unlabeled)),
        "unlabeled_from_source": sorted(src.unlabeled),  # already unlabeled in the source's imagesTrUnlabeled
        "test": sorted(set(src.test) | set(sel.test_from_train)),
        "test_from_training": sorted(sel.test_from_train),
        "test_labels": bool(src.test_labels or sel.test_from_train),
        "splits_final": target.splits_file if target.splits else None,
    }


def _put_files(tmp: str, src: _Source, sel: _Selection, record: Dict[str, object], result: SplitResult) -> None:
    """Hard-link (or copy) every image and label of the new dataset into ``tmp``; counts them in ``result``."""
    ending = src.ending

    def put(source_file: str, sub: str, dst_name: str) -> None:
        ok = link_or_copy(source_file, os.path.join(tmp, sub, dst_name))
        result.linked += ok
        result.copied += not ok

    def put_images(files: Sequence[str], case: str, sub: str) -> None:
        # standard names {case}_{channel:04d}{ending}; 'dataset'-key sources may use other file names
        for ch, source_file in enumerate(files):
            put(source_file, sub, f"{case}_{ch:04d}{ending}")

    for sub in ("imagesTr", "labelsTr", "imagesTrUnlabeled", "imagesTs"):
        os.makedirs(os.path.join(tmp, sub))
    if record["test_labels"]:
        os.makedirs(os.path.join(tmp, "labelsTs"))
    for case in sorted(sel.labeled) + sorted(sel.validation):
        put_images(src.train[case]["images"], case, "imagesTr")
        put(src.train[case]["label"], "labelsTr", case + ending)
    for case in sel.unlabeled_from_train:
        put_images(src.train[case]["images"], case, "imagesTrUnlabeled")  # the label is deliberately left behind
    for case, files in src.unlabeled.items():
        for source_file in files:
            put(source_file, "imagesTrUnlabeled", os.path.basename(source_file))
    for case in sel.test_from_train:
        put_images(src.train[case]["images"], case, "imagesTs")
        put(src.train[case]["label"], "labelsTs", case + ending)
    for case, files in src.test.items():
        for source_file in files:
            put(source_file, "imagesTs", os.path.basename(source_file))
    for fname in src.test_labels:
        put(os.path.join(src.labels_ts, fname), "labelsTs", fname)
    for fname in sorted(os.listdir(src.path)):
        source_file = os.path.join(src.path, fname)
        if os.path.isfile(source_file) and fname not in ("dataset.json", RECORD_FILE):
            put(source_file, "", fname)


def _write_json_files(tmp: str, src: _Source, sel: _Selection, record: Dict[str, object]) -> None:
    """The new dataset.json (the source's, counts updated) and split.json."""
    new_json = copy.deepcopy(src.dataset_json)
    new_json.pop("dataset", None)
    new_json["numTraining"] = len(sel.labeled) + len(sel.validation)
    new_json["numUnlabeled"] = len(record["unlabeled"])
    new_json["numTest"] = len(record["test"])
    new_json["semi_supervised_split"] = RECORD_FILE
    write_json_atomic(new_json, os.path.join(tmp, "dataset.json"))
    write_json_atomic(record, os.path.join(tmp, RECORD_FILE))


def _write_splits(target: _Target, result: SplitResult) -> bool:
    """Write (or remove a stale) splits_final.json; True when the file was touched."""
    if not (target.splits_file and (target.splits or target.old_splits is not None)):
        return False
    os.makedirs(os.path.dirname(target.splits_file), exist_ok=True)
    if target.splits:
        write_json_atomic(target.splits, target.splits_file)
    else:
        os.remove(target.splits_file)  # stale split of an earlier --overwrite'd dataset
        result.notes.append(f"removed stale {target.splits_file}")
    return True


def _write_dataset(src: _Source, sel: _Selection, target: _Target, record: Dict[str, object]) -> SplitResult:
    """Build in a temporary folder, move into place (folders.building: the old dataset(s) moved aside, deleted only
    once the new one is in place, restored on error or Ctrl-C; what a killed run leaves is cleaned beforehand)."""
    result = SplitResult(path=target.path, record=record, splits_file=target.splits_file if target.splits else None)
    wrote_splits = False
    try:
        with building(target.path, also_replace=target.existing) as tmp:
            _put_files(tmp, src, sel, record, result)
            _write_json_files(tmp, src, sel, record)
            wrote_splits = _write_splits(target, result)
    except BaseException:
        if wrote_splits and target.splits_file:
            # put back what was there before this run
            if target.old_splits is not None:
                with open(target.splits_file, "wb") as f:
                    f.write(target.old_splits)
            elif os.path.isfile(target.splits_file):
                os.remove(target.splits_file)
        raise
    if result.copied:
        result.notes.append(f"{result.copied} files were copied (hard links not possible: other filesystem?)")
    return result


def make_semi_supervised_split(raw_dir: str, source_id: int, out_id: int, *,
                               labeled_fraction: Optional[float] = None,
                               labeled_cases: Optional[Sequence[str]] = None,
                               preset: Optional[Union[str, Preset]] = None,
                               seed: int = 0, name: Optional[str] = None, preprocessed_dir: Optional[str] = None,
                               overwrite: bool = False) -> SplitResult:
    """Write ``Dataset{out_id:03d}_{name}`` under ``raw_dir`` (see the module docstring); the source is only read.
    Every check runs before anything is written."""
    mode, preset_spec, preset_name = _check_arguments(labeled_fraction, labeled_cases, preset, seed, source_id,
                                                      out_id)
    src = _read_source(raw_dir, source_id)
    sel = _choose_cases(src, mode, labeled_fraction, labeled_cases, preset_spec, preset_name, seed)
    name = name or _default_name(src.name, mode, labeled_fraction, seed, len(sel.labeled), preset_name)
    target = _check_target(raw_dir, out_id, name, preprocessed_dir, overwrite, sel, preset_name)
    record = _split_record(src, source_id, target, sel, mode, preset_name, labeled_fraction, seed)
    return _write_dataset(src, sel, target, record)
