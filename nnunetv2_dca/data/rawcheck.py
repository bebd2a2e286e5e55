"""Up-front check of a raw dataset a command is about to hand to the stock nnU-Net commands (``benchmark -d``).

Why: a long run (plan, preprocess, train several arms) must not stop after minutes with a reader's traceback deep in a
subprocess because one label is a text file, has another shape than its image, or holds a class dataset.json does not
list. This reads what nnU-Net's ``--verify_dataset_integrity`` reads, in the calling process, and reports the first
problems in one line naming the files:

* dataset.json (valid JSON object, labels / channel_names / file_ending: :func:`nnunetv2_dca.errors.read_dataset_json`);
* labeled cases (``imagesTr``/``labelsTr`` or the ``"dataset"`` key): at least one; every case has its label and every
  channel file; case ids are plain names (:mod:`nnunetv2_dca.caseids`);
* every image and label file: not cut off (:func:`nnunetv2_dca.imagefile.check_image_file`), readable, the image
  channels on the label's grid (shape; spacing within nnU-Net's tolerance);
* label values: only those dataset.json lists (background, classes, ignore);
* optionally the test cases (``imagesTs`` with ``labelsTs``) the same way, and the unlabeled images
  (:func:`nnunetv2_dca.preprocessing.unlabeled.validate_unlabeled_images`).

Cost: one read of every label and the header of every image (SimpleITK formats; other formats are read fully).
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from nnunetv2_dca.caseids import CaseIdError, validate_case_id
from nnunetv2_dca.errors import read_dataset_json

MAX_SHOWN = 3
_SITK_HEADER_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


class RawDatasetError(ValueError):
    """A raw dataset that the stock commands would fail on (or train on wrongly); ``str()`` names the files."""

    def __init__(self, folder: str, problems: Sequence[str]):
        shown = "; ".join(problems[:MAX_SHOWN])
        more = f" (and {len(problems) - MAX_SHOWN} more)" if len(problems) > MAX_SHOWN else ""
        super().__init__(f"{folder} is not a usable nnU-Net raw dataset: {shown}{more}")
        self.folder, self.problems = folder, list(problems)


def _first_line(e: BaseException) -> str:
    return " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())[:300] or type(e).__name__


def _cases(folder: str, sub: str, ending: str, n_channels: int, problems: List[str]) -> Dict[str, List[str]]:
    """``case -> channel files`` of an images folder (``<case>_XXXX<ending>``), with missing channels reported."""
    path = os.path.join(folder, sub)
    if not os.path.isdir(path):
        return {}
    pattern = re.compile(r"(.+)_(\d{4})" + re.escape(ending))
    by_case: Dict[str, Dict[int, str]] = {}
    for name in sorted(os.listdir(path)):
        m = pattern.fullmatch(name)
        if m:
            by_case.setdefault(m.group(1), {})[int(m.group(2))] = os.path.join(path, name)
    out = {}
    for case, channels in by_case.items():
        try:
            validate_case_id(case, path)
        except CaseIdError as e:
            problems.append(str(e))
            continue
        missing = [c for c in range(n_channels) if c not in channels]
        if missing and not ending.lower().endswith((".png", ".bmp", ".tif")):
            problems.append(f"{path}: case {case!r} lacks channel file(s) "
                            f"{', '.join(f'{case}_{c:04d}{ending}' for c in missing)}")
            continue
        out[case] = [channels[c] for c in sorted(channels)]
    return out


def _geometry(path: str, reader) -> Tuple[Tuple[int, ...], Tuple[float, ...]]:
    """(shape, spacing) of an image or label file in nnU-Net's array axis order; header only where SimpleITK reads
    the format."""
    if path.lower().endswith(_SITK_HEADER_ENDINGS):
        import SimpleITK as sitk

        r = sitk.ImageFileReader()
        r.SetFileName(path)
        r.ReadImageInformation()
        return tuple(reversed(r.GetSize())), tuple(reversed(r.GetSpacing()))
    data, props = reader.read_images([path])
    return tuple(data.shape[1:]), tuple(float(s) for s in props["spacing"])


def _check_pairs(pairs: Mapping[str, Tuple[List[str], str]], reader, known: set, problems: List[str]) -> None:
    from nnunetv2_dca.imagefile import ImageFileError, check_image_file

    for case, (images, label) in pairs.items():
        geometry = {}
        for path in [*images, label]:
            try:
                check_image_file(path)
                geometry[path] = _geometry(path, reader)
            except ImageFileError as e:
                problems.append(f"{path}: {e.reason}")
            except (RuntimeError, OSError, EOFError, ValueError) as e:  # SimpleITK: RuntimeError on a foreign file
                problems.append(f"{path}: cannot be read ({_first_line(e)})")
        if label not in geometry:
            continue
        shape, spacing = geometry[label]
        for image in images:
            if image not in geometry:
                continue
            i_shape, i_spacing = geometry[image]
            if i_shape != shape:
                problems.append(f"case {case!r}: image {os.path.basename(image)} has shape {i_shape}, its label "
                                f"{label} has {shape}")
            elif not np.allclose(i_spacing, spacing, rtol=1e-3, atol=1e-5):
                problems.append(f"case {case!r}: image {os.path.basename(image)} has spacing {i_spacing}, its label "
                                f"{label} has {spacing}")
        try:
            seg, _ = reader.read_seg(label)
        except (RuntimeError, OSError, EOFError, ValueError) as e:
            problems.append(f"{label}: cannot be read as a label map ({_first_line(e)})")
            continue
        values = [int(v) if float(v).is_integer() else v for v in np.unique(np.asarray(seg)).tolist()]
        unknown = [v for v in values if v not in known]
        if unknown:
            problems.append(f"{label}: label value(s) {', '.join(str(v) for v in unknown[:10])} are not in "
                            f"dataset.json 'labels' (known: {', '.join(str(v) for v in sorted(known))})")


def check_raw_dataset(folder: str, test: bool = False, unlabeled: bool = False) -> dict:
    """Check ``folder`` (see the module docstring); returns its dataset.json. ``test``: imagesTs with labelsTs must
    be there and are checked too; ``unlabeled``: imagesTrUnlabeled must hold images and they are checked. Raises
    :class:`RawDatasetError` (first problems, one line) or :class:`~nnunetv2_dca.errors.InputFileError`."""
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    from nnunetv2_dca.imagefile import reader_writer_for

    dj = read_dataset_json(os.path.join(folder, "dataset.json"))
    ending = dj["file_ending"]
    labels = dj["labels"]
    if any(isinstance(v, (list, tuple)) for v in labels.values()):
        raise RawDatasetError(folder, ["region-based labels in dataset.json are not supported here"])
    known = {int(v) for v in labels.values()}
    n_channels = len(dj.get("channel_names", dj.get("modality")))
    problems: List[str] = []
    if "dataset" in dj:
        train = get_filenames_of_train_images_and_targets(folder, dict(dj))
    else:
        train = {c: {"images": files, "label": os.path.join(folder, "labelsTr", c + ending)}
                 for c, files in _cases(folder, "imagesTr", ending, n_channels, problems).items()}
    if not train and not problems:
        problems.append(f"{os.path.join(folder, 'imagesTr')} holds no training cases (<case>_0000{ending}); add the "
                        f"labeled cases")
    pairs: Dict[str, Tuple[List[str], str]] = {}
    for case, files in train.items():
        missing = [f for f in [*files["images"], files["label"]] if not os.path.isfile(f)]
        if missing:
            problems.append(f"case {case!r}: missing {', '.join(missing)}")
        else:
            pairs[case] = (list(files["images"]), files["label"])
    if test:
        test_cases = _cases(folder, "imagesTs", ending, n_channels, problems)
        if not test_cases:
            problems.append(f"{os.path.join(folder, 'imagesTs')} holds no test cases (<case>_0000{ending})")
        for case, images in test_cases.items():
            label = os.path.join(folder, "labelsTs", case + ending)
            if not os.path.isfile(label):
                problems.append(f"test case {case!r}: missing {label}")
            else:
                pairs[f"{case} (test)"] = (images, label)
    if problems:
        raise RawDatasetError(folder, problems)
    first_label = next(iter(pairs.values()))[1]
    reader = reader_writer_for(dj, first_label, "label file")()
    _check_pairs(pairs, reader, known, problems)
    if unlabeled:
        from nnunetv2_dca.preprocessing.unlabeled import (UnlabeledImageError, find_unlabeled_images,
                                                          labeled_case_identifiers, validate_unlabeled_images)

        try:
            cases = find_unlabeled_images(folder, dj)
            if not cases:
                problems.append(f"{os.path.join(folder, 'imagesTrUnlabeled')} holds no unlabeled images "
                                f"(<case>_0000{ending})")
            validate_unlabeled_images(cases, dj, type(reader), labeled_case_identifiers(folder, dj))
        except UnlabeledImageError as e:
            problems.extend(e.problems or [str(e)])
    if problems:
        raise RawDatasetError(folder, problems)
    return dj
