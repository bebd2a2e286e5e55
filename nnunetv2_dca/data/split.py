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

Choosing the labeled cases (exactly one mode):

- ``labeled_fraction=f`` in (0, 1): ``n = max(1, floor(f * N + 0.5))`` (round half up) of the ``N`` training cases,
  drawn with ``numpy.random.default_rng(seed).permutation(N)[:n]`` over the *sorted* identifiers, so the same
  dataset, fraction and seed give the same cases on every machine;
- ``labeled_cases=[...]``: exact identifiers;
- ``preset=...``: the published protocol-B case lists in :data:`PRESETS`, read from the split files of
  :mod:`nnunetv2_dca.data.published_splits` (their one home, with their sources). A preset entry (``"0002"``,
  ``"amos_0078"``) matches the training case whose identifier ends in the same integer (``img0002``,
  ``case_0002`` and ``BTCV_0002`` all match ``0002``), because every conversion of these datasets names cases
  differently; an entry matching no case or several cases is an error.

If a preset defines validation cases, ``nnUNet_preprocessed/Dataset{OUT}_{name}/splits_final.json`` is written with
one fold, ``[{"train": labeled, "val": validation}]``, so ``nnUNetv2_train OUT CONFIG 0`` trains on exactly the
labeled cases and validates on the protocol's validation cases (use fold 0). Without validation cases no split file
is written and nnU-Net makes its usual 5-fold split of the labeled cases.

The dataset is built in a temporary folder next to the target and moved into place at the end: a failed run leaves
nothing half-written under ``nnUNet_raw``, and with ``--overwrite`` the old dataset is only deleted once the new one is
in place (:func:`nnunetv2_dca.folders.building`); the hidden folders of a run killed outright are cleaned (an
unfinished swap undone) by the next run for the same id.

Size: one command's whole job (case selection, presets, the new raw dataset with its record, the safe swap);
the file operations it shares live in :mod:`nnunetv2_dca.folders`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

from nnunetv2_dca import __version__
from nnunetv2_dca.atomic import write_json_atomic
from nnunetv2_dca.caseids import validate_case_ids
from nnunetv2_dca.data.published_splits import PublishedSplit, published_splits
from nnunetv2_dca.folders import building, clean_interrupted_dataset, dataset_folders, link_or_copy


@dataclass(frozen=True)
class Preset:
    """A published case list. Entries are matched against training identifiers by their trailing integer."""

    labeled: Tuple[str, ...]
    validation: Tuple[str, ...] = ()
    test: Tuple[str, ...] = ()  # training cases that become test cases (imagesTs/labelsTs)
    # True: the protocol's test set is the source's imagesTs/labelsTs, so labelsTs must exist (AMOS: the official
    # validation set, which nnU-Net's own AMOS converter merges into imagesTr - that layout must be refused)
    test_from_source_labels: bool = False
    description: str = ""
    name: str = ""


def preset_from_published(split: PublishedSplit) -> Preset:
    """The ``--preset`` view of a published split: its labeled and validation (``eval``) cases; its test cases are
    training cases to move (Synapse) or the source's own imagesTs + labelsTs (AMOS: the official validation set)."""
    from_training = split.test_from == "training"
    return Preset(split.labeled, split.validation, split.test if from_training else (),
                  test_from_source_labels=not from_training, description=split.description, name=split.name)


# The published semi-supervised lists (nnunetv2_dca/data/splits/*.json, one home for every case list), by name and
# by alias (synapse-20 = dhc-synapse-20, ...).
PRESETS: Dict[str, Preset] = {
    key: preset_from_published(split) for split in published_splits().values() if split.semi_supervised
    for key in (split.name, *split.aliases)
}

RECORD_FILE = "split.json"
_NAME_RE = re.compile(r"[A-Za-z0-9_\-]+")
_TRAILING_INT = re.compile(r"(\d+)$")


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


# --------------------------------------------------------------------------------------------------- selection


def fraction_to_count(fraction: float, n_cases: int) -> int:
    """``max(1, round half up(fraction * n_cases))``; the epsilon keeps 0.1 * 25 = 2.5000000000000004 and
    0.3 * 5 = 1.4999999999999998 on the intended side of .5."""
    return max(1, int(math.floor(fraction * n_cases + 0.5 + 1e-9)))


def choose_fraction(identifiers: Sequence[str], fraction: float, seed: int) -> List[str]:
    """Deterministic draw from the sorted identifiers (independent of directory listing order)."""
    import numpy as np

    ids = sorted(identifiers)
    n = fraction_to_count(fraction, len(ids))
    order = np.random.default_rng(seed).permutation(len(ids))[:n]
    return sorted(ids[i] for i in order)


def _trailing_int(identifier: str) -> Optional[int]:
    m = _TRAILING_INT.search(identifier)
    return int(m.group(1)) if m else None


def match_preset_entries(entries: Sequence[str], identifiers: Sequence[str], preset: str, role: str,
                         dataset: str) -> List[str]:
    """Map preset entries to training identifiers by trailing integer; exactly one match per entry."""
    by_number: Dict[int, List[str]] = {}
    for ident in sorted(identifiers):
        num = _trailing_int(ident)
        if num is not None:
            by_number.setdefault(num, []).append(ident)
    examples = ", ".join(sorted(identifiers)[:5]) + (", ..." if len(identifiers) > 5 else "")
    out = []
    for entry in entries:
        num = _trailing_int(entry)
        hits = by_number.get(num, []) if num is not None else []
        if len(hits) != 1:
            what = "matches no training case" if not hits else f"matches several training cases ({', '.join(hits)})"
            raise ValueError(f"--preset {preset}: {role} entry {entry!r} {what} of {dataset} (a case matches when "
                             f"its identifier ends in the number {num}; identifiers look like: {examples})")
        out.append(hits[0])
    return out


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


# ---------------------------------------------------------------------------------------------------- writing


def _default_name(source_name: str, mode: str, fraction: Optional[float], seed: int, n_cases: int,
                  preset: Optional[str]) -> str:
    if mode == "fraction":
        pct = f"{fraction * 100:g}".replace(".", "p")
        return f"{source_name}_L{pct}s{seed}"
    if mode == "preset":
        return f"{source_name}_{preset.replace('-', '')}"
    return f"{source_name}_L{n_cases}c"



def make_semi_supervised_split(raw_dir: str, source_id: int, out_id: int, *,
                               labeled_fraction: Optional[float] = None,
                               labeled_cases: Optional[Sequence[str]] = None,
                               preset: Optional[Union[str, Preset]] = None,
                               seed: int = 0, name: Optional[str] = None, preprocessed_dir: Optional[str] = None,
                               overwrite: bool = False) -> SplitResult:
    """Write ``Dataset{out_id:03d}_{name}`` under ``raw_dir`` (see the module docstring); the source is only read."""
    # ---- arguments
    modes = [m for m, v in (("fraction", labeled_fraction), ("cases", labeled_cases), ("preset", preset))
             if v is not None]
    if len(modes) != 1:
        raise ValueError("give exactly one of --labeled-fraction, --labeled-cases, --preset")
    mode = modes[0]
    if mode == "fraction" and not (0.0 < labeled_fraction < 1.0):
        raise ValueError(f"--labeled-fraction must be in (0, 1), got {labeled_fraction}")
    preset_spec: Optional[Preset] = None
    if mode == "preset":
        if isinstance(preset, str) and preset not in PRESETS:
            raise ValueError(f"unknown --preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
        # a Preset object: a published split adapted by the caller (nnunetv2-dca convert)
        preset_spec = PRESETS[preset] if isinstance(preset, str) else preset
        preset = preset if isinstance(preset, str) else (preset_spec.name or "custom")
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    for flag, value in (("-d", source_id), ("--out-id", out_id)):
        if not 1 <= value <= 999:
            raise ValueError(f"{flag} must be a dataset id in 1..999 (nnU-Net uses three digits), got {value}")
    if out_id == source_id:
        raise ValueError(f"--out-id {out_id} is the source dataset's id; the source is never modified, pick a new id")

    # ---- source
    found = dataset_folders(raw_dir, source_id)
    if not found:
        raise FileNotFoundError(f"no dataset with id {source_id} (Dataset{source_id:03d}_*) in nnUNet_raw={raw_dir}")
    if len(found) > 1:
        raise ValueError(f"dataset id {source_id} is ambiguous in nnUNet_raw: {', '.join(found)}")
    source_folder = found[0]
    source = os.path.join(raw_dir, source_folder)
    source_name = source_folder[len(f"Dataset{source_id:03d}_"):]
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
    ids = sorted(train)

    # ---- selection
    validation: List[str] = []
    test_from_train: List[str] = []
    if mode == "fraction":
        labeled = choose_fraction(ids, labeled_fraction, seed)
    elif mode == "cases":
        if isinstance(labeled_cases, str):
            labeled_cases = labeled_cases.split(",")
        labeled = list(dict.fromkeys(c.strip() for c in labeled_cases if c.strip()))  # keep order, drop repeats
        if not labeled:
            raise ValueError("--labeled-cases is empty")
        validate_case_ids(labeled, "--labeled-cases")
        unknown = [c for c in labeled if c not in train]
        if unknown:
            raise ValueError(f"--labeled-cases: {', '.join(unknown)} not among the training cases of "
                             f"{source_folder} (identifiers look like: {', '.join(ids[:5])}"
                             f"{', ...' if len(ids) > 5 else ''})")
    else:
        p = preset_spec
        labeled = match_preset_entries(p.labeled, ids, preset, "labeled", source_folder)
        validation = match_preset_entries(p.validation, ids, preset, "validation", source_folder)
        test_from_train = match_preset_entries(p.test, ids, preset, "test", source_folder)
        if p.test_from_source_labels and not test_labels_source:
            raise ValueError(f"--preset {preset}: the protocol's test set is the official validation set, expected "
                             f"with labels in {source_folder}/imagesTs + labelsTs; {source_folder} has no labelsTs "
                             f"(nnU-Net's own AMOS converter merges the validation cases into imagesTr, which would "
                             f"put test cases among the unlabeled images)")
    chosen = set(labeled) | set(validation) | set(test_from_train)
    unlabeled_from_train = [i for i in ids if i not in chosen]
    for what, other in (("imagesTrUnlabeled", unlabeled_source), ("imagesTs", test_source)):
        clash = sorted(set(other) & set(train))
        if clash:
            raise ValueError(f"{source_folder}: {', '.join(clash[:5])} appear both in the training set and in "
                             f"{what}; identifiers must be unique")
    if not unlabeled_from_train and not unlabeled_source:
        raise ValueError(f"{source_folder}: the split keeps all {len(ids)} training cases labeled and there are no "
                         f"other unlabeled images; choose fewer labeled cases")
    for case in labeled + validation + test_from_train:
        if not os.path.isfile(train[case]["label"]):
            raise FileNotFoundError(f"{source_folder}: case {case} has no label file {train[case]['label']}")

    # ---- target
    name = name or _default_name(source_name, mode, labeled_fraction, seed, len(labeled), preset)
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"dataset name {name!r} (--name) may only contain letters, digits, '_' and '-'")
    target_folder = f"Dataset{out_id:03d}_{name}"
    target = os.path.join(raw_dir, target_folder)
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
    splits: Optional[List[Dict[str, List[str]]]] = \
        [{"train": sorted(labeled), "val": sorted(validation)}] if validation else None
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

    # ---- record
    test_ids = sorted(set(test_source) | set(test_from_train))
    record: Dict[str, object] = {
        "tool": "nnunetv2-dca split",
        "version": __version__,
        "source_dataset": source_folder,
        "source_id": source_id,
        "dataset": target_folder,
        "mode": mode,
        "preset": preset,
        "labeled_fraction": labeled_fraction,
        "seed": seed if mode == "fraction" else None,
        "labeled": sorted(labeled),
        "validation": sorted(validation),
        "unlabeled": sorted(set(unlabeled_from_train) | set(unlabeled_source)),
        "unlabeled_from_source": sorted(unlabeled_source),  # already unlabeled in the source's imagesTrUnlabeled
        "test": test_ids,
        "test_from_training": sorted(test_from_train),
        "test_labels": bool(test_labels_source or test_from_train),
        "splits_final": splits_file if splits else None,
    }

    # ---- build in a temporary folder, move into place (folders.building: the old dataset(s) moved aside, deleted only
    # once the new one is in place, restored on error or Ctrl-C; what a killed run leaves is cleaned above)
    result = SplitResult(path=target, record=record, splits_file=splits_file if splits else None)
    wrote_splits = False
    try:
        with building(target, also_replace=existing) as tmp:
            def put(src: str, sub: str, dst_name: str) -> None:
                ok = link_or_copy(src, os.path.join(tmp, sub, dst_name))
                result.linked += ok
                result.copied += not ok

            def put_images(files: Sequence[str], case: str, sub: str) -> None:
                # standard names {case}_{channel:04d}{ending}; 'dataset'-key sources may use other file names
                for ch, src in enumerate(files):
                    put(src, sub, f"{case}_{ch:04d}{ending}")

            for sub in ("imagesTr", "labelsTr", "imagesTrUnlabeled", "imagesTs"):
                os.makedirs(os.path.join(tmp, sub))
            if record["test_labels"]:
                os.makedirs(os.path.join(tmp, "labelsTs"))
            for case in sorted(labeled) + sorted(validation):
                put_images(train[case]["images"], case, "imagesTr")
                put(train[case]["label"], "labelsTr", case + ending)
            for case in unlabeled_from_train:
                put_images(train[case]["images"], case, "imagesTrUnlabeled")  # the label is deliberately left behind
            for case, files in unlabeled_source.items():
                for src in files:
                    put(src, "imagesTrUnlabeled", os.path.basename(src))
            for case in test_from_train:
                put_images(train[case]["images"], case, "imagesTs")
                put(train[case]["label"], "labelsTs", case + ending)
            for case, files in test_source.items():
                for src in files:
                    put(src, "imagesTs", os.path.basename(src))
            for fname in test_labels_source:
                put(os.path.join(labels_ts, fname), "labelsTs", fname)
            for fname in sorted(os.listdir(source)):
                src = os.path.join(source, fname)
                if os.path.isfile(src) and fname not in ("dataset.json", RECORD_FILE):
                    put(src, "", fname)

            new_json = copy.deepcopy(dataset_json)
            new_json.pop("dataset", None)
            new_json["numTraining"] = len(labeled) + len(validation)
            new_json["numUnlabeled"] = len(record["unlabeled"])
            new_json["numTest"] = len(test_ids)
            new_json["semi_supervised_split"] = RECORD_FILE
            write_json_atomic(new_json, os.path.join(tmp, "dataset.json"))
            write_json_atomic(record, os.path.join(tmp, RECORD_FILE))

            if splits_file and (splits or old_splits is not None):
                os.makedirs(os.path.dirname(splits_file), exist_ok=True)
                if splits:
                    write_json_atomic(splits, splits_file)
                else:
                    os.remove(splits_file)  # stale split of an earlier --overwrite'd dataset
                    result.notes.append(f"removed stale {splits_file}")
                wrote_splits = True
    except BaseException:
        if wrote_splits and splits_file:
            # put back what was there before this run
            if old_splits is not None:
                with open(splits_file, "wb") as f:
                    f.write(old_splits)
            elif os.path.isfile(splits_file):
                os.remove(splits_file)
        raise
    if result.copied:
        result.notes.append(f"{result.copied} files were copied (hard links not possible: other filesystem?)")
    return result
