"""Finding and validating the unlabeled images of a raw dataset, for ``DCAPreprocessor``
(:mod:`nnunetv2_dca.preprocessing.unlabeled`), the raw-dataset check and distillation.

Raw convention
--------------
``nnUNet_raw/DatasetXXX_Name/imagesTrUnlabeled/`` holds unlabeled training images named like ``imagesTr``
(``<case>_0000<file_ending>``, ``<case>_0001<file_ending>``, ... one file per entry of ``channel_names``), without
labels. Optionally, ``dataset.json`` may list further unlabeled images stored elsewhere::

    "unlabeled_images": {"case_a": ["/abs/path/case_a_0000.nii.gz"], "case_b": ["relative/to/raw/dataset/b.nii.gz"]}

(one list per case, files in channel order; relative paths are relative to the raw dataset folder, environment
variables are expanded, as nnU-Net does for its own ``"dataset"`` key). The unlabeled images are read from the
*raw* ``dataset.json`` (the source of truth for raw files); ``file_ending`` and ``channel_names`` come from there too.
Hidden files (name starting with ``.``, e.g. ``.DS_Store``) in ``imagesTrUnlabeled`` are ignored.

:func:`find_unlabeled_images` checks the file *names*, :func:`validate_unlabeled_images` their contents; both collect
every problem and raise one :class:`UnlabeledImageError` naming the files/cases.

Size: the raw side of the unlabeled images only (no plans, nothing written); the preprocessing and its settings stamp
are in :mod:`nnunetv2_dca.preprocessing.unlabeled`.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json

from nnunetv2_dca.caseids import CaseIdError, validate_case_id
from nnunetv2_dca.imagefile import ImageFileError, check_image_file

UNLABELED_IMAGES_FOLDER = "imagesTrUnlabeled"
DATASET_JSON_KEY = "unlabeled_images"
MAX_LISTED_PROBLEMS = 25
CHANNELS_KEY = "channels"


class UnlabeledImageError(ValueError):
    """An unlabeled image (or case) cannot be used; the message names the offending files/cases."""

    def __init__(self, message: str, problems: Sequence[str] = ()):
        super().__init__(message)
        self.problems = list(problems)


def _raise_problems(what: str, problems: List[str]) -> None:
    if not problems:
        return
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    lines = "\n".join(f"  - {p}" for p in shown) + (f"\n  ... and {more} more" if more > 0 else "")
    raise UnlabeledImageError(f"{what} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n{lines}",
                              problems)


# file endings of nnU-Net's NaturalImage2DIO, where one file may hold several channels (RGB / RGBA)
MULTI_CHANNEL_ENDINGS = (".png", ".bmp", ".tif")


def _num_channels(dataset_json: Mapping) -> int:
    # same rule as nnU-Net's verify_dataset_integrity (old dataset.json files use "modality")
    key = "channel_names" if "channel_names" in dataset_json else "modality"
    return len(dataset_json[key])


def _resolve(raw_dataset_folder: str, path: str) -> str:
    # as nnU-Net's get_filenames_of_train_images_and_targets does for the "dataset" key
    path = os.path.expandvars(path)
    return path if os.path.isabs(path) else os.path.abspath(os.path.join(raw_dataset_folder, path))


def _case_id_ok(case: str, where: str, problems: List[str]) -> bool:
    # the id names the preprocessed files (<folder>/<case>.b2nd): one that is a path would be written elsewhere
    try:
        validate_case_id(case, where)
        return True
    except CaseIdError as e:
        problems.append(str(e))
        return False


def _channel_files(folder: str, file_ending: str, problems: List[str]) -> Dict[str, Dict[int, str]]:
    """``{case: {channel: path}}`` of the image files in ``folder`` (imagesTrUnlabeled); a file whose name does not
    fit ``<case>_XXXX<file_ending>`` (or a sub-folder) is a problem."""
    pattern = re.compile(r"(?P<case>.+)_(?P<channel>\d{4})" + re.escape(file_ending))
    by_case: Dict[str, Dict[int, str]] = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            problems.append(f"{path}: is a folder; {UNLABELED_IMAGES_FOLDER} must only hold image files "
                            f"(<case>_0000{file_ending}, ...)")
            continue
        if not name.endswith(file_ending):
            problems.append(f"{path}: file name does not end with the dataset's file_ending {file_ending!r} "
                            f"(dataset.json); remove or convert it")
            continue
        m = pattern.fullmatch(name)
        if m is None:
            problems.append(f"{path}: file name lacks the 4-digit channel suffix "
                            f"(expected <case>_0000{file_ending})")
            continue
        by_case.setdefault(m.group("case"), {})[int(m.group("channel"))] = path
    return by_case


def _folder_cases(folder: str, file_ending: str, n_channels: int, problems: List[str]) -> Dict[str, List[str]]:
    """The cases of ``folder`` (imagesTrUnlabeled) whose ids are safe and whose channel files are complete."""
    expected = set(range(n_channels))
    cases: Dict[str, List[str]] = {}
    by_case = _channel_files(folder, file_ending, problems)
    # nnU-Net's natural-image reader keeps RGB(A) in one file: <case>_0000.png holds 3 or 4 of the
    # channel_names entries. For those formats fewer (contiguous) files are fine here; the channel count is then
    # checked on the content by validate_unlabeled_images, as nnU-Net's own dataset check does.
    multi_channel_files = file_ending.lower() in MULTI_CHANNEL_ENDINGS
    for case, channels in sorted(by_case.items()):
        if not _case_id_ok(case, folder, problems):
            continue
        required = set(range(max(channels) + 1)) if multi_channel_files and channels else expected
        missing = sorted(required - set(channels))
        extra = sorted(set(channels) - expected)
        if missing:
            names = ", ".join(f"{case}_{c:04d}{file_ending}" for c in missing)
            problems.append(f"case {case!r} in {folder}: missing channel file(s) {names} (dataset.json "
                            f"channel_names has {n_channels} channel(s): _0000.._{n_channels - 1:04d})")
        if extra:
            names = ", ".join(os.path.basename(channels[c]) for c in extra)
            problems.append(f"case {case!r} in {folder}: unexpected channel file(s) {names} (dataset.json "
                            f"channel_names has {n_channels} channel(s): _0000.._{n_channels - 1:04d})")
        if not missing and not extra:
            cases[case] = [channels[c] for c in sorted(channels)]
    return cases


def _listed_case_files(raw_dataset_folder: str, case: str, files: Sequence[str], file_ending: str,
                       n_channels: int, problems: List[str]) -> Optional[List[str]]:
    """The resolved files of one case of the dataset.json key, or None when they are not usable."""
    resolved = [_resolve(raw_dataset_folder, f) for f in files]
    bad = False
    if len(resolved) != n_channels and not (file_ending.lower() in MULTI_CHANNEL_ENDINGS
                                            and 1 <= len(resolved) < n_channels):
        problems.append(f'dataset.json "{DATASET_JSON_KEY}" case {case!r}: {len(resolved)} file(s) '
                        f"{resolved} but dataset.json channel_names has {n_channels} channel(s)")
        bad = True
    for f in resolved:
        if not f.endswith(file_ending):
            problems.append(f"{f} (dataset.json \"{DATASET_JSON_KEY}\", case {case!r}): file name does not "
                            f"end with the dataset's file_ending {file_ending!r}")
            bad = True
        elif not os.path.isfile(f):
            problems.append(f"{f} (dataset.json \"{DATASET_JSON_KEY}\", case {case!r}): file not found")
            bad = True
    return None if bad else resolved


def _listed_cases(raw_dataset_folder: str, listed: object, folder: str, folder_cases: Mapping[str, List[str]],
                  file_ending: str, n_channels: int, problems: List[str]) -> Dict[str, List[str]]:
    """The usable cases of the dataset.json key ``listed``; a case also in ``folder_cases`` is a problem."""
    cases: Dict[str, List[str]] = {}
    if not isinstance(listed, Mapping):
        problems.append(f'dataset.json key "{DATASET_JSON_KEY}" must map case ids to lists of files, '
                        f"got {type(listed).__name__}")
        listed = {}
    for case, files in sorted(listed.items()):
        if isinstance(files, str) or not isinstance(files, Sequence) or \
                not all(isinstance(f, str) for f in files):
            problems.append(f'dataset.json "{DATASET_JSON_KEY}" case {case!r}: expected a list of file paths '
                            f"(one per channel), got {files!r}")
            continue
        if not _case_id_ok(case, f'{raw_dataset_folder}/dataset.json "{DATASET_JSON_KEY}"', problems):
            continue
        if case in folder_cases:
            problems.append(f'case {case!r} is both in {folder} and in dataset.json "{DATASET_JSON_KEY}"')
            continue
        resolved = _listed_case_files(raw_dataset_folder, case, files, file_ending, n_channels, problems)
        if resolved is not None:
            cases[case] = resolved
    return cases


def find_unlabeled_images(raw_dataset_folder: str, dataset_json: Optional[Mapping] = None) -> Dict[str, List[str]]:
    """Unlabeled cases of a raw dataset: ``{case_id: [channel 0 file, channel 1 file, ...]}``, sorted by case id.

    Sources: ``<raw>/imagesTrUnlabeled`` and the optional ``"unlabeled_images"`` key of ``dataset.json`` (see the
    module docstring). Checks the file *names* (ending, channel suffix, complete channels, no extra channel, no case
    listed twice, listed files exist, case ids safe as file names: :mod:`nnunetv2_dca.caseids`) and raises
    :class:`UnlabeledImageError` naming every offending file/case. Contents are checked by
    :func:`validate_unlabeled_images`. Returns ``{}`` if there are no unlabeled images."""
    raw_dataset_folder = os.fspath(raw_dataset_folder)
    if dataset_json is None:
        dataset_json = load_json(os.path.join(raw_dataset_folder, "dataset.json"))
    file_ending = dataset_json["file_ending"]
    n_channels = _num_channels(dataset_json)
    problems: List[str] = []
    cases: Dict[str, List[str]] = {}
    folder = os.path.join(raw_dataset_folder, UNLABELED_IMAGES_FOLDER)
    if os.path.isdir(folder):
        cases.update(_folder_cases(folder, file_ending, n_channels, problems))
    listed = dataset_json.get(DATASET_JSON_KEY)
    if listed is not None:
        cases.update(_listed_cases(raw_dataset_folder, listed, folder, cases, file_ending, n_channels, problems))
    _raise_problems(f"unlabeled images of {raw_dataset_folder} are not usable", problems)
    return dict(sorted(cases.items()))


def labeled_case_identifiers(raw_dataset_folder: str, dataset_json: Optional[Mapping] = None) -> List[str]:
    """Identifiers of the labeled training cases, as nnU-Net names them (``"dataset"`` key or ``imagesTr``)."""
    raw_dataset_folder = os.fspath(raw_dataset_folder)
    if dataset_json is None:
        dataset_json = load_json(os.path.join(raw_dataset_folder, "dataset.json"))
    if "dataset" in dataset_json:
        return sorted(dataset_json["dataset"])
    folder = os.path.join(raw_dataset_folder, "imagesTr")
    if not os.path.isdir(folder):
        return []
    pattern = re.compile(r"(.+)_\d{4}" + re.escape(dataset_json["file_ending"]))
    return sorted({m.group(1) for m in map(pattern.fullmatch, os.listdir(folder)) if m is not None})


def _default_reader_writer(dataset_json: Mapping, example_file: Optional[str] = None):
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    return determine_reader_writer_from_dataset_json(dict(dataset_json), example_file, verbose=False)


def _geometry(path: str, reader_writer_class) -> Dict[str, tuple]:
    """Shape/spacing (+origin/direction for SimpleITK files) of one image file, raising if it cannot be read.
    First :func:`~nnunetv2_dca.imagefile.check_image_file` (SimpleITK silently zero-fills a cut-off gzip stream and
    NIfTI voxel data shorter than the header says); then SimpleITK-readable files: header only (cheap); other
    readers: a full read with nnU-Net's reader class."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    check_image_file(path)
    if reader_writer_class is not None and issubclass(reader_writer_class, SimpleITKIO):
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
        return {"shape": tuple(reader.GetSize()) + (reader.GetNumberOfComponents(),),
                "spacing": tuple(reader.GetSpacing()), "origin": tuple(reader.GetOrigin()),
                "direction": tuple(reader.GetDirection()), CHANNELS_KEY: (1,)}
    data, props = reader_writer_class().read_images([path])
    # nnU-Net's readers return (channels, *spatial); an RGB PNG is 3 channels
    return {"shape": tuple(data.shape[1:]), "spacing": tuple(props["spacing"]),
            CHANNELS_KEY: (int(data.shape[0]),)}


def _same(key: str, a: tuple, b: tuple) -> bool:
    if key == CHANNELS_KEY:
        return True  # files of one case may hold different numbers of channels; the sum is checked
    if key == "shape":
        return a == b
    # nnU-Net's readers compare geometry with np.allclose as well (BaseReaderWriter._check_all_same)
    return len(a) == len(b) and bool(np.allclose(a, b))


def validate_unlabeled_images(cases: Mapping[str, Sequence[str]], dataset_json: Mapping,
                              reader_writer_class=None, labeled_identifiers: Iterable[str] = (),
                              num_threads: int = 1) -> None:
    """Content checks of :func:`find_unlabeled_images`' result; raises one :class:`UnlabeledImageError` listing
    every problem: case id equal to a labeled case id, unreadable (or truncated: gzip stream or NIfTI voxel data)
    files, channels of a case whose shape/spacing (SimpleITK files: also origin/direction) differ.
    ``reader_writer_class``: nnU-Net's reader class (the plans' ``image_reader_writer``); default: the one nnU-Net
    picks for ``dataset.json``'s file ending.
    ``num_threads``: files checked in parallel (header reads and decompression release the GIL)."""
    problems: List[str] = []
    collisions = sorted(set(cases) & set(labeled_identifiers))
    if collisions:
        problems.append(f"unlabeled case id(s) {', '.join(repr(c) for c in collisions)} equal labeled training "
                        f"case id(s) (imagesTr); rename the unlabeled files "
                        f"({', '.join(os.path.basename(cases[c][0]) for c in collisions)}, ...)")
    if reader_writer_class is None and cases:
        reader_writer_class = _default_reader_writer(dataset_json)
    n_channels = _num_channels(dataset_json) if ("channel_names" in dataset_json or "modality" in dataset_json) \
        else None

    def check(path: str) -> Tuple[Optional[dict], Optional[str]]:
        try:
            return _geometry(path, reader_writer_class), None
        except ImageFileError as e:  # its reason holds the byte counts: not cut to 300 characters
            return None, f"{path}: cannot be read: {e.reason}"
        except Exception as e:  # noqa: BLE001 - any reader failure means the file is unusable
            msg = " ".join(str(e).split())
            return None, (f"{path}: cannot be read with {reader_writer_class.__name__} "
                          f"({type(e).__name__}: {msg[:300]})")

    all_files = [f for files in cases.values() for f in files]
    with ThreadPoolExecutor(max_workers=max(1, int(num_threads))) as pool:
        checked = dict(zip(all_files, pool.map(check, all_files)))
    for case, files in cases.items():
        problems.extend(checked[f][1] for f in files if checked[f][1] is not None)
        geometries = [(f, checked[f][0]) for f in files if checked[f][0] is not None]
        if len(geometries) != len(files):
            continue
        if n_channels is not None:
            found = sum(g[CHANNELS_KEY][0] for _, g in geometries)
            if found != n_channels:
                problems.append(f"case {case!r}: its file(s) {', '.join(os.path.basename(f) for f in files)} hold "
                                f"{found} channel(s), dataset.json channel_names has {n_channels} "
                                f"({os.path.dirname(files[0])})")
        if len(geometries) < 2:
            continue
        ref_file, ref = geometries[0]
        for f, g in geometries[1:]:
            for key in ref:
                if not _same(key, ref[key], g[key]):
                    problems.append(f"case {case!r}: channels differ in {key}: {os.path.basename(ref_file)} has "
                                    f"{ref[key]}, {os.path.basename(f)} has {g[key]} ({os.path.dirname(f)})")
    _raise_problems("unlabeled images are not usable", problems)
