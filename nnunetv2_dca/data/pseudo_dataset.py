"""A raw nnU-Net dataset = a semi-supervised dataset's labeled cases + its unlabeled images with pseudo-labels.

One writer for both recipes that retrain stock nnU-Net on pseudo-labels: the benchmark's offline arm (the
labeled-only model's predictions) and ``nnunetv2-dca distill`` (a DCA model's predictions, optionally with
low-confidence voxels as nnU-Net's ignore label). Images are hard links (copies across filesystems); the
pseudo-labels are copied in; ``pseudo_labels.json`` records where every training case's label came from. The
dataset is built in a hidden sibling folder and moved into place at the end (:func:`folders.replace_folder`), so
an error leaves nothing half-written and an ``overwrite`` deletes the old dataset only once the new one is there; it
replaces only a dataset holding ``pseudo_labels.json`` (one this writer made), never another dataset of the id.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Dict, List, Mapping, Optional, Tuple

from nnunetv2_dca.data.phantom import find_existing_dataset
from nnunetv2_dca.folders import building, clean_interrupted_dataset, link_or_copy

PROVENANCE_FILE = "pseudo_labels.json"


class PseudoDatasetError(ValueError):
    """The source dataset, the pseudo-labels or the target id do not allow the new dataset (names which)."""


def is_pseudo_label_dataset(folder: str) -> bool:
    """A dataset this writer made (``nnunetv2-dca distill``, the benchmark's pseudolabel arm): it holds the
    provenance file. Only such a dataset may be replaced by ``overwrite``."""
    return os.path.isfile(os.path.join(folder, PROVENANCE_FILE))


def unlabeled_cases(source: str, file_ending: str) -> Dict[str, List[str]]:
    """case -> its channel files in ``source/imagesTrUnlabeled`` (``<case>_0000<ending>``, ...)."""
    folder = os.path.join(source, "imagesTrUnlabeled")
    cases: Dict[str, List[str]] = {}
    if os.path.isdir(folder):
        for fname in sorted(os.listdir(folder)):
            m = re.fullmatch(r"(.+)_(\d{4})" + re.escape(file_ending), fname)
            if m:
                cases.setdefault(m.group(1), []).append(fname)
    return cases


def read_source(source: str) -> Tuple[Dict, Dict[str, List[str]]]:
    """(dataset.json, unlabeled case -> channel files) of a semi-supervised dataset; refuses one without any."""
    from nnunetv2_dca.errors import read_dataset_json

    dj = read_dataset_json(os.path.join(source, "dataset.json"), keys=("labels", "file_ending"))
    cases = unlabeled_cases(source, dj["file_ending"])
    if not cases:
        raise PseudoDatasetError(f"{source} has no unlabeled images in imagesTrUnlabeled/ (named "
                                 f"<case>_0000{dj['file_ending']}): nothing to pseudo-label")
    return dj, cases


def write_pseudo_label_dataset(raw: str, source: str, pseudo_labels: str, dataset_id: int, name: str,
                               provenance: Mapping[str, Mapping], description: str, ignore_label: bool = False,
                               overwrite: bool = False, common: Optional[Mapping] = None) -> str:
    """Write ``Dataset<id>_<name>`` under ``raw``; returns its folder.

    ``pseudo_labels`` holds ``<case><ending>`` for every unlabeled case of ``source``; ``provenance`` is recorded
    for each pseudo-labeled case, on top of ``common`` (the labeled ones get ``{"source": "reference label"}``).
    With ``ignore_label``
    the pseudo-labels may hold the value max(label)+1, declared as ``"ignore"`` in dataset.json."""
    if not 1 <= dataset_id <= 999:
        raise PseudoDatasetError(f"dataset id must be in 1..999, got {dataset_id}")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise PseudoDatasetError(f"dataset name {name!r} may only contain letters, digits, '_' and '-'")
    dj, cases = read_source(source)
    ending = dj["file_ending"]
    missing = [c for c in cases if not os.path.isfile(os.path.join(pseudo_labels, c + ending))]
    if missing:
        raise PseudoDatasetError(f"no pseudo-label in {pseudo_labels} for unlabeled image(s) "
                                 f"{', '.join(cases[c][0] for c in missing[:5])} (expected {missing[0]}{ending})")
    clean_interrupted_dataset(raw, dataset_id)  # hidden folders of a killed run of this id
    existing = find_existing_dataset(raw, dataset_id)
    target = os.path.join(raw, f"Dataset{dataset_id:03d}_{name}")
    if existing is not None and not overwrite:
        raise PseudoDatasetError(f"dataset id {dataset_id} already exists: {existing} (pass --overwrite to replace "
                                 f"it, or choose another id)")
    if existing is not None and os.path.abspath(existing) == os.path.abspath(source):
        raise PseudoDatasetError(f"the new dataset id {dataset_id} is the source dataset itself ({source})")
    if existing is not None and not is_pseudo_label_dataset(existing):  # e.g. the user's own dataset of that id
        raise PseudoDatasetError(f"dataset id {dataset_id} is {existing}, which has no {PROVENANCE_FILE}: overwrite "
                                 f"replaces only a pseudo-label dataset, so it is left as it is; choose another id")
    with building(target, also_replace=[existing] if existing else []) as tmp:
        record: Dict[str, Dict] = {}
        for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            src_sub = os.path.join(source, sub)
            if os.path.isdir(src_sub):
                os.makedirs(os.path.join(tmp, sub))
                for fname in sorted(os.listdir(src_sub)):
                    link_or_copy(os.path.join(src_sub, fname), os.path.join(tmp, sub, fname))
                    if sub == "labelsTr" and fname.endswith(ending):
                        record[fname[:-len(ending)]] = {"source": "reference label"}
        for case, files in cases.items():
            if case in record:
                raise PseudoDatasetError(f"unlabeled case {case} of {source} is also a labeled case in labelsTr/")
            for fname in files:
                link_or_copy(os.path.join(source, "imagesTrUnlabeled", fname), os.path.join(tmp, "imagesTr", fname))
            shutil.copy2(os.path.join(pseudo_labels, case + ending), os.path.join(tmp, "labelsTr", case + ending))
            record[case] = {**(common or {}), **provenance.get(case, {}), "source": "pseudo-label"}
        labels = dict(dj["labels"])
        if ignore_label:
            labels["ignore"] = max(v for v in labels.values() if isinstance(v, int)) + 1
        new = {k: v for k, v in dj.items() if k not in ("numUnlabeled", "unlabeled_images")}
        new.update(name=name, labels=labels, numTraining=len(record),
                   description=f"{dj.get('description', '')} + {len(cases)} pseudo-labeled images ({description})")
        with open(os.path.join(tmp, "dataset.json"), "w", encoding="utf-8") as f:
            json.dump(new, f, indent=2)
        with open(os.path.join(tmp, PROVENANCE_FILE), "w", encoding="utf-8") as f:
            json.dump({"source_dataset": os.path.abspath(source), "description": description, "cases": record}, f,
                      indent=2)
    return target
