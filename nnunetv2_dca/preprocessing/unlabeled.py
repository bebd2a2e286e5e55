"""``DCAPreprocessor``: nnU-Net's ``DefaultPreprocessor`` plus the unlabeled images of a dataset.

Raw convention: ``imagesTrUnlabeled/`` and the optional ``"unlabeled_images"`` key of ``dataset.json``, found and
validated by :mod:`nnunetv2_dca.preprocessing.unlabeled_files` (its module docstring).

What ``run`` does (``nnUNetv2_preprocess`` / ``nnUNetv2_plan_and_preprocess`` call it once per configuration)
-----------------------------------------------------------------------------------------------------------
1. Finds and validates every unlabeled image *before anything is written* (also before the labeled step, so a
   bad unlabeled file fails fast and leaves the previous preprocessed output untouched):
   file ending, channel files complete (no missing, no extra channel index), every file readable (gzip files
   also decompressed once, NIfTI voxel data checked against the header's size: SimpleITK silently zero-fills a
   truncated ``.nii.gz`` or ``.nii``, see :mod:`nnunetv2_dca.imagefile`), the channels of a
   case share shape and spacing (and origin/direction for files SimpleITK reads), no case identifier shared with a
   labeled training case. All problems are collected and raised together as one :class:`UnlabeledImageError`
   naming the files/cases.
2. ``super().run(...)``: the labeled cases, exactly as nnU-Net does it (nothing changed).
3. Preprocesses the unlabeled cases with the same plans/configuration into
   ``nnUNet_preprocessed/DatasetXXX_Name/<data_identifier>_unlabeled`` (:func:`unlabeled_folder`), atomically: the
   cases are written into a temporary sibling folder ``<data_identifier>_unlabeled.tmp-XXXX`` that replaces the
   target only when every case succeeded; on any error (or Ctrl-C) the temporary folder is removed and a previous
   target folder is left as it was. ``num_processes`` is honoured like nnU-Net (spawned pool if > 1, in-process
   loop if 1), with a tqdm progress bar.

If there are no unlabeled images (no ``imagesTrUnlabeled`` folder, an empty one, no ``"unlabeled_images"`` key), a
note says where it looked and the step is skipped; a stale ``_unlabeled`` folder of an earlier run is removed so that
a trainer never pairs it with labeled data preprocessed under other plans. (The DCA trainer raises its own error
when it needs unlabeled data and finds none.)

On-disk format of an unlabeled case
-----------------------------------
Exactly nnU-Net 2.8's format for a preprocessed case (``nnUNetDatasetBlosc2.save_case`` with the same blosc2
chunk/block parameters as ``DefaultPreprocessor.run_case_save``): ``<case>.b2nd`` (float32 data), ``<case>_seg.b2nd``
(int16) and ``<case>.pkl`` (properties). The folder also holds ``dca/unlabeled_stamp.json`` (:func:`unlabeled_stamp`):
the plans' preprocessing settings and the case ids it was made with. Re-planning (e.g. another spacing) rewrites the
labeled folder first; if the unlabeled step then fails, the old unlabeled folder stays, and the semi-supervised
trainers compare its stamp with their plans and refuse it (:func:`unlabeled_stamp_problem`) instead of training on
unlabeled data at the old settings. The folder is built in a hidden sibling and swapped in whole
(:func:`nnunetv2_dca.folders.building`): a run killed outright leaves only hidden ``.<name>.partial-*`` /
``.<name>.old-*`` siblings, which the next run removes (an unfinished swap undone), never a stamp next to a partial set
of cases. Load the folder with nnU-Net's own classes::

    folder = unlabeled_folder(join(nnUNet_preprocessed, dataset_name), configuration_manager.data_identifier)
    dataset = infer_dataset_class(folder)(folder)          # -> nnUNetDatasetBlosc2
    data, seg, _, properties = dataset.load_case(case_id)
    loader = nnUNetDataLoader(dataset, ..., oversample_foreground_percent=0.0)  # random crops

The ``_seg`` array is what nnU-Net's ``run_case(image_files, seg_file=None, ...)`` returns for an image without a
label (the same thing nnU-Net computes for inference cases): the nonzero mask from ``crop_to_nonzero``, i.e. ``0``
inside the image's nonzero region and ``-1`` outside it, resampled like a segmentation. It is **not** ground truth:
``0`` means "no label", not "background". We keep nnU-Net's array rather than writing zeros because (a) it is what
nnU-Net itself produces for an unlabeled image, (b) it keeps the nonzero-region information (-1 = outside the
cropped body, which nnU-Net's training transforms map to 0 like for labeled cases) and (c) it has the shape and
dtype nnU-Net's data loader and transforms expect. Trainers must never use it as a supervision target.

``properties`` are those of ``run_case`` plus ``class_locations``, which nnU-Net's ``nnUNetDataLoader`` reads for
every case: it has the same keys as for labeled cases (foreground labels or regions, plus the
``(-1, *all_labels)`` key when the dataset has an ignore label) with *empty* lists. With empty locations the loader
falls back to random crops, so even ``oversample_foreground_percent > 0`` cannot oversample a class that was never
annotated.

Size: one stage, nnU-Net's preprocessing of the unlabeled images: the settings stamp the trainers check and the
preprocessor subclass that writes it, kept together so the stamp's fields and their writer cannot drift apart; the
finding/validation of the raw files is in :mod:`nnunetv2_dca.preprocessing.unlabeled_files`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
from time import sleep
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params, nnUNetDatasetBlosc2
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from tqdm import tqdm

from nnunetv2_dca.atomic import numpy_to_builtin, write_json_atomic
from nnunetv2_dca.caseids import validate_case_ids
from nnunetv2_dca.folders import building, clean_interrupted, remove_folder
# the raw side (finding/validating the files) lives in unlabeled_files; its names are also imported from here
from nnunetv2_dca.preprocessing.unlabeled_files import (DATASET_JSON_KEY, UNLABELED_IMAGES_FOLDER,
                                                        UnlabeledImageError, find_unlabeled_images,
                                                        labeled_case_identifiers, validate_unlabeled_images)

UNLABELED_SUFFIX = "_unlabeled"


# ---------------------------------------------------------------------------------------------------------------------
# helpers for the trainer and the planner
# ---------------------------------------------------------------------------------------------------------------------

def unlabeled_folder(preprocessed_dataset_folder: str, data_identifier: str) -> str:
    """``nnUNet_preprocessed/DatasetXXX_Name/<data_identifier>_unlabeled``: where the unlabeled cases of a
    configuration are (sibling of nnU-Net's labeled ``<data_identifier>`` folder)."""
    return os.path.join(os.fspath(preprocessed_dataset_folder), data_identifier + UNLABELED_SUFFIX)


# In a subfolder: nnU-Net's infer_dataset_class() refuses a case folder holding a file ending other than the cases'
# (.b2nd/.npz + .pkl/.npy); subfolders are not listed, and it still moves with the folder's atomic swap.
STAMP_DIR = "dca"
STAMP_FILE = os.path.join(STAMP_DIR, "unlabeled_stamp.json")
STAMP_VERSION = 1
MAX_LISTED_CASES = 5


def unlabeled_stamp(plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                    case_ids: Iterable[str]) -> dict:
    """What the unlabeled folder of a configuration was preprocessed from: written by :class:`DCAPreprocessor` into
    the folder (:data:`STAMP_FILE`) and recomputed by the semi-supervised trainer from its own plans, so that one
    function defines both sides.

    ``settings`` are the plans' values that change a preprocessed case: target spacing, axis transposition,
    normalization schemes, mask-for-norm, data/seg resampling functions and their kwargs, the foreground intensity
    properties (CT normalization) and the image reader. Patch size, batch size and network only change how the case
    is stored or used, not its content, and are left out. ``case_ids``: the unlabeled cases the folder holds.
    ``plans_name`` and ``data_identifier`` are informative (not compared: the folder's name already carries the
    data identifier)."""
    cfg = configuration_manager.configuration
    settings = {
        "spacing": configuration_manager.spacing,
        "transpose_forward": plans_manager.transpose_forward,
        "normalization_schemes": configuration_manager.normalization_schemes,
        "use_mask_for_norm": configuration_manager.use_mask_for_norm,
        "resampling_fn_data": cfg.get("resampling_fn_data"),
        "resampling_fn_data_kwargs": cfg.get("resampling_fn_data_kwargs"),
        "resampling_fn_seg": cfg.get("resampling_fn_seg"),
        "resampling_fn_seg_kwargs": cfg.get("resampling_fn_seg_kwargs"),
        "foreground_intensity_properties_per_channel": plans_manager.foreground_intensity_properties_per_channel,
        "image_reader_writer": plans_manager.plans.get("image_reader_writer"),
    }
    stamp = {"stamp_version": STAMP_VERSION, "plans_name": plans_manager.plans.get("plans_name"),
             "data_identifier": configuration_manager.data_identifier, "settings": settings,
             "case_ids": sorted(case_ids)}
    # a JSON round trip: tuples become lists, so a stamp read back from disk compares equal to a fresh one
    return json.loads(json.dumps(stamp, default=numpy_to_builtin))  # numpy values of hand-made plans as JSON


def _listed(names: Sequence[str]) -> str:
    more = len(names) - MAX_LISTED_CASES
    return ", ".join(names[:MAX_LISTED_CASES]) + (f" and {more} more" if more > 0 else "")


def stamp_differences(found: Mapping, expected: Mapping) -> List[str]:
    """What differs between a stamp read from a folder and the one the plans give now (``[]``: nothing)."""
    if found.get("stamp_version") != expected.get("stamp_version"):
        return [f"stamp format version {found.get('stamp_version')!r}, expected {expected.get('stamp_version')!r}"]
    differences = []
    f_settings, e_settings = found.get("settings") or {}, expected.get("settings") or {}
    for key in sorted(set(f_settings) | set(e_settings)):
        if f_settings.get(key) != e_settings.get(key):
            differences.append(f"{key}: folder {f_settings.get(key)!r}, plans now {e_settings.get(key)!r}")
    f_cases, e_cases = set(found.get("case_ids") or ()), set(expected.get("case_ids") or ())
    if f_cases - e_cases:
        differences.append(f"cases preprocessed but missing from the folder: {_listed(sorted(f_cases - e_cases))}")
    if e_cases - f_cases:
        differences.append(f"cases in the folder that were not preprocessed with it: "
                           f"{_listed(sorted(e_cases - f_cases))}")
    return differences


def clean_interrupted_unlabeled(target: str) -> List[str]:
    """What a killed DCAPreprocessor left next to ``target`` (``<data_identifier>_unlabeled``): its hidden
    build / aside / deletion folders (:func:`nnunetv2_dca.folders.clean_interrupted`: an unfinished swap is undone),
    and the ``<name>.tmp-XXXXXXXX`` build folders of earlier versions. Nothing else is touched."""
    parent, name = os.path.split(os.path.abspath(target))
    done = clean_interrupted(parent, lambda n: n == name, tool="DCAPreprocessor")
    legacy = re.compile(re.escape(name) + r"\.tmp-[a-z0-9_]{8}")
    for entry in sorted(os.listdir(parent)) if os.path.isdir(parent) else []:
        path = os.path.join(parent, entry)
        if legacy.fullmatch(entry) and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
            done.append(path)
            print(f"DCAPreprocessor: removed {path}, the unfinished folder of an interrupted run", flush=True)
    return done


def write_unlabeled_stamp(folder: str, stamp: Mapping) -> None:
    write_json_atomic(stamp, os.path.join(folder, STAMP_FILE))  # creates dca/


def unlabeled_stamp_problem(folder: str, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                            case_ids: Iterable[str]) -> Optional[str]:
    """``None`` if ``folder``'s stamp matches what these plans/configuration would write for ``case_ids`` (the cases
    the folder holds), else a sentence naming the folder and what differs.

    A folder without a stamp (written by nnunetv2-dca before stamps existed, or by hand) is a problem, too: nothing
    says which settings it was made with, and preprocessing again is cheap compared with training on data at another
    spacing. The caller refuses it with the command that rebuilds it."""
    path = os.path.join(os.fspath(folder), STAMP_FILE)
    if not os.path.isfile(path):
        return (f"{folder} has no {STAMP_FILE} (written by an older nnunetv2-dca, or not by DCAPreprocessor), so "
                f"nothing says it was preprocessed with the current plans")
    try:
        found = load_json(path)
        if not isinstance(found, dict):
            raise ValueError(f"expected a JSON object, got {type(found).__name__}")
    except ValueError as e:
        return f"{path} cannot be read ({type(e).__name__}: {e})"
    differences = stamp_differences(found, unlabeled_stamp(plans_manager, configuration_manager, case_ids))
    if not differences:
        return None
    return (f"{folder} was preprocessed with other settings than plans {plans_manager.plans.get('plans_name')!r} now "
            f"give for {configuration_manager.data_identifier!r} (were the labeled data preprocessed again and the "
            f"unlabeled step failed or was interrupted?): " + "; ".join(differences))


# ---------------------------------------------------------------------------------------------------------------------
# the preprocessor
# ---------------------------------------------------------------------------------------------------------------------

def empty_class_locations(plans_manager: PlansManager, dataset_json: Mapping) -> Dict[Union[int, tuple], list]:
    """``class_locations`` for a case without annotation: the keys nnU-Net uses for labeled cases, empty lists."""
    label_manager = plans_manager.get_label_manager(dict(dataset_json))
    keys = list(label_manager.foreground_regions if label_manager.has_regions else label_manager.foreground_labels)
    if label_manager.has_ignore_label:
        keys.append([-1] + label_manager.all_labels)
    return {(tuple(int(i) for i in k) if isinstance(k, (tuple, list)) else int(k)): [] for k in keys}


def _preprocess_unlabeled_case(preprocessor: DefaultPreprocessor, case: str, output_filename_truncated: str,
                               image_files: List[str], plans_manager: PlansManager,
                               configuration_manager: ConfigurationManager, dataset_json: dict) -> None:
    """``DefaultPreprocessor.run_case_save`` for an image without label (see the module docstring)."""
    try:
        data, seg, properties = preprocessor.run_case(image_files, None, plans_manager, configuration_manager,
                                                      dataset_json)
        properties["class_locations"] = empty_class_locations(plans_manager, dataset_json)
        # from here on identical to DefaultPreprocessor.run_case_save
        data = data.astype(np.float32, copy=False)
        seg = seg.astype(np.int16, copy=False)
        block_size_data, chunk_size_data = comp_blosc2_params(data.shape, tuple(configuration_manager.patch_size),
                                                              data.itemsize)
        block_size_seg, chunk_size_seg = comp_blosc2_params(seg.shape, tuple(configuration_manager.patch_size),
                                                            seg.itemsize)
        nnUNetDatasetBlosc2.save_case(data, seg, properties, output_filename_truncated,
                                      chunks=chunk_size_data, blocks=block_size_data,
                                      chunks_seg=chunk_size_seg, blocks_seg=block_size_seg)
    except Exception as e:  # noqa: BLE001 - name the case whatever went wrong (e.g. disk full)
        msg = " ".join(str(e).split())
        raise UnlabeledImageError(f"unlabeled case {case!r} ({', '.join(image_files)}) could not be preprocessed: "
                                  f"{type(e).__name__}: {msg[:500]}") from e


_DEAD_WORKER = ("A background worker of the unlabeled preprocessing died (look for an error message above; without "
                "one, running out of RAM is likely: use fewer processes, e.g. -np 1).")


class DCAPreprocessor(DefaultPreprocessor):
    """nnU-Net's ``DefaultPreprocessor`` that also preprocesses ``imagesTrUnlabeled`` (see the module docstring).
    Labeled preprocessing and inference (``run_case``) are nnU-Net's, unchanged."""

    def run(self, dataset_name_or_id: Union[int, str], configuration_name: str, plans_identifier: str,
            num_processes: int):
        dataset_name = maybe_convert_to_dataset_name(dataset_name_or_id)
        raw_folder = os.path.join(nnUNet_raw, dataset_name)
        raw_json_file = os.path.join(raw_folder, "dataset.json")
        # validate before anything is written (the labeled step below deletes and rewrites its own folder first)
        cases: Dict[str, List[str]] = {}
        if os.path.isfile(raw_json_file):
            from nnunetv2_dca.errors import read_dataset_json

            raw_json = read_dataset_json(raw_json_file)  # the "unlabeled_images" key is read from the raw file
            plans_file = os.path.join(nnUNet_preprocessed, dataset_name, plans_identifier + ".json")
            reader_writer_class = PlansManager(plans_file).image_reader_writer_class \
                if os.path.isfile(plans_file) else None
            cases = find_unlabeled_images(raw_folder, raw_json)
            validate_unlabeled_images(cases, raw_json, reader_writer_class,
                                      labeled_case_identifiers(raw_folder, raw_json), num_threads=num_processes)

        super().run(dataset_name_or_id, configuration_name, plans_identifier, num_processes)

        plans_manager = PlansManager(os.path.join(nnUNet_preprocessed, dataset_name, plans_identifier + ".json"))
        configuration_manager = plans_manager.get_configuration(configuration_name)
        dataset_json = load_json(os.path.join(nnUNet_preprocessed, dataset_name, "dataset.json"))
        target = unlabeled_folder(os.path.join(nnUNet_preprocessed, dataset_name),
                                  configuration_manager.data_identifier)
        if not cases:
            print(f"DCAPreprocessor: no unlabeled images found in {os.path.join(raw_folder, UNLABELED_IMAGES_FOLDER)}"
                  f" (nor under the dataset.json key \"{DATASET_JSON_KEY}\"); skipping the unlabeled preprocessing. "
                  f"To add some, put them there named like imagesTr (<case>_0000{dataset_json['file_ending']}, one "
                  f"file per channel, no labels) and run nnUNetv2_preprocess again.", flush=True)
            clean_interrupted_unlabeled(target)
            if os.path.isdir(target):
                remove_folder(target)
                print(f"DCAPreprocessor: removed the stale {target} of an earlier run.", flush=True)
            return
        self.preprocess_unlabeled(cases, target, plans_manager, configuration_manager, dataset_json, num_processes)

    def preprocess_unlabeled(self, cases: Mapping[str, Sequence[str]], target: str, plans_manager: PlansManager,
                             configuration_manager: ConfigurationManager, dataset_json: dict,
                             num_processes: int) -> None:
        """Preprocess ``cases`` into ``target`` atomically (temporary sibling folder, swapped in on success), with
        the :func:`unlabeled_stamp` of these plans in :data:`STAMP_FILE`."""
        # callers other than run() may pass ids that find_unlabeled_images never saw: refuse before writing
        validate_case_ids(cases, "the unlabeled cases given to DCAPreprocessor.preprocess_unlabeled")
        parent = os.path.dirname(target)
        os.makedirs(parent, exist_ok=True)
        print(f"DCAPreprocessor: preprocessing {len(cases)} unlabeled case(s) into {target} "
              f"({num_processes} process(es))", flush=True)
        clean_interrupted_unlabeled(target)
        with building(target) as tmp:  # hidden sibling, swapped in on success (folders.building)
            jobs = [(case, os.path.join(tmp, case), list(files)) for case, files in cases.items()]
            with tqdm(desc="Preprocessing unlabeled cases", total=len(jobs),
                      disable=not getattr(self, "show_progress_bar", True)) as pbar:
                if num_processes <= 1:
                    for case, out, files in jobs:
                        _preprocess_unlabeled_case(self, case, out, files, plans_manager, configuration_manager,
                                                   dataset_json)
                        pbar.update()
                else:
                    self._run_pool(jobs, num_processes, plans_manager, configuration_manager, dataset_json, pbar)
            # inside the temporary folder: the stamp only ever sits next to a complete set of cases
            write_unlabeled_stamp(tmp, unlabeled_stamp(plans_manager, configuration_manager, cases))
        print(f"DCAPreprocessor: {len(cases)} unlabeled case(s) written to {target}", flush=True)

    def _run_pool(self, jobs, num_processes, plans_manager, configuration_manager, dataset_json, pbar) -> None:
        # the same pattern as DefaultPreprocessor.run: spawn context, and watch the workers so that a worker killed
        # by the OS (out of RAM) raises instead of hanging forever
        with multiprocessing.get_context("spawn").Pool(num_processes) as pool:
            workers = list(pool._pool)
            results = [pool.starmap_async(_preprocess_unlabeled_case,
                                          ((self, case, out, files, plans_manager, configuration_manager,
                                            dataset_json),)) for case, out, files in jobs]
            remaining = list(range(len(results)))
            while remaining:
                if not all(w.is_alive() for w in workers):
                    raise RuntimeError(_DEAD_WORKER)
                done = [i for i in remaining if results[i].ready()]
                for i in done:
                    results[i].get()  # re-raises the worker's error (an UnlabeledImageError naming the case)
                    pbar.update()
                remaining = [i for i in remaining if i not in done]
                if remaining:
                    sleep(0.1)
