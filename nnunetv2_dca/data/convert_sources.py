"""The two downloads ``nnunetv2-dca convert`` reads, and the checks every file passes before anything is written.

- **BTCV / Synapse** (``RawData.zip`` of https://www.synapse.org/#!Synapse:syn3193805): ``RawData/Training/img/
  img00XX.nii.gz`` with ``RawData/Training/label/label00XX.nii.gz`` (30 CTs, labels 0..13 in BTCV order) and
  ``RawData/Testing/img/`` (20 CTs without labels). SOURCE may be the folder holding ``RawData`` or ``RawData`` itself.
- **AMOS 2022** (https://zenodo.org/record/7262581): ``imagesTr``/``labelsTr`` (240: 200 CT + 40 MRI),
  ``imagesVa``/``labelsVa`` (120), ``imagesTs`` (unlabeled), ``dataset.json`` (the 15 organ names). Ids above 500 are
  MRI scans; CT only unless ``mri=True``.

Checks (why: SimpleITK zero-fills a cut-off file, and a wrong label or a label on another grid trains silently):
every file is complete (:func:`nnunetv2_dca.imagefile.check_image_file`), 3D, every labeled image has its label and
every label its image, a label has the image's shape and affine (spacing, orientation, origin; nibabel headers, which
also read the AMOS scans whose direction cosines SimpleITK refuses), and its values are integers in 0..K. Each problem
is a :class:`ConvertError` whose message starts with the file.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from nnunetv2_dca.data.published_splits import PublishedSplit

AMOS_MAX_CT_ID = 500  # AMOS 2022: ids <= 500 are CT scans, the others MRI
_BTCV_IMG = re.compile(r"img(\d{4})\.nii\.gz")
_BTCV_LABEL = re.compile(r"label(\d{4})\.nii\.gz")
_AMOS_FILE = re.compile(r"(amos_\d{4})\.nii\.gz")


RECORD = "convert.json"  # the converter's record in the datasets it writes (also its marker for --overwrite)


class ConvertError(ValueError):
    """A problem with the download or the arguments; ``str()`` is one line, starting with the file when there is
    one."""


@dataclass
class Download:
    """What a download holds: labeled pools (case -> (image, label)), unlabeled scans (case -> image)."""

    kind: str  # "btcv" | "amos"
    root: str
    labels: Dict[str, int]  # nnU-Net's dataset.json "labels"
    channel: str  # dataset.json channel_names["0"]
    training: Dict[str, Tuple[str, str]]  # BTCV Training, AMOS imagesTr
    validation: Dict[str, Tuple[str, str]] = field(default_factory=dict)  # AMOS imagesVa/labelsVa
    testing: Dict[str, str] = field(default_factory=dict)  # BTCV Testing/img, AMOS imagesTs (no labels)
    excluded: Dict[str, str] = field(default_factory=dict)  # case -> why it is not converted (MRI when CT only)
    reader: Optional[str] = None  # dataset.json overwrite_image_reader_writer
    pool_dirs: Dict[str, str] = field(default_factory=dict)  # "training"/"validation" -> image folder

    def entry_to_case(self, entry: str) -> str:
        """A published list entry as a case id here (``"0002"`` -> ``img0002`` for BTCV; AMOS ids are unchanged)."""
        return f"img{entry}" if self.kind == "btcv" else entry


def _listing(folder: str, pattern: "re.Pattern[str]", expected: str) -> Dict[str, str]:
    """number/id -> path of the NIfTI files in ``folder`` named like ``pattern``; another .nii/.nii.gz name is an
    error (a renamed or stray scan would otherwise be skipped silently), other files are ignored."""
    out: Dict[str, str] = {}
    for fname in sorted(os.listdir(folder)):
        m = pattern.fullmatch(fname)
        if m:
            out[m.group(1)] = os.path.join(folder, fname)
        elif fname.endswith((".nii", ".nii.gz")) and not fname.startswith("."):
            raise ConvertError(f"{os.path.join(folder, fname)}: unexpected file name (expected {expected})")
    return out


def _pair(images: Dict[str, str], labels: Dict[str, str], case_of: Callable[[str], str], label_dir: str,
          label_name: Callable[[str], str]) -> Dict[str, Tuple[str, str]]:
    """Images matched to labels; an image without label or a label without image is an error naming the file."""
    for key, img in images.items():
        if key not in labels:
            raise ConvertError(f"{img}: no label for this image (expected {os.path.join(label_dir, label_name(key))})")
    for key, lab in labels.items():
        if key not in images:
            raise ConvertError(f"{lab}: a label without its image")
    return {case_of(k): (images[k], labels[k]) for k in sorted(images)}


def _need_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise ConvertError(f"{path}: missing ({what})")
    return path


def read_btcv(source: str) -> Download:
    """The Synapse RawData layout under ``source`` (or ``source`` being RawData)."""
    root = os.path.join(source, "RawData") if os.path.isdir(os.path.join(source, "RawData")) else source
    train = os.path.join(root, "Training")
    if not os.path.isdir(os.path.join(train, "img")):
        raise ConvertError(f"{source}: not the BTCV/Synapse download (expected RawData/Training/img/img00XX.nii.gz "
                           f"and RawData/Training/label/label00XX.nii.gz)")
    img_dir, lab_dir = os.path.join(train, "img"), _need_dir(os.path.join(train, "label"), "BTCV training labels")
    images = _listing(img_dir, _BTCV_IMG, "img00XX.nii.gz")
    labels = _listing(lab_dir, _BTCV_LABEL, "label00XX.nii.gz")
    if not images:
        raise ConvertError(f"{img_dir}: no img00XX.nii.gz files")
    training = _pair(images, labels, lambda n: f"img{n}", lab_dir, lambda n: f"label{n}.nii.gz")
    testing_dir = os.path.join(root, "Testing", "img")
    testing = {f"img{n}": p for n, p in (_listing(testing_dir, _BTCV_IMG, "img00XX.nii.gz").items()
                                         if os.path.isdir(testing_dir) else [])}
    clash = sorted(set(testing) & set(training))
    if clash:
        raise ConvertError(f"{testing_dir}: {clash[0]} is also a training case")
    from nnunetv2_dca.data.phantom import SYNAPSE_LABELS  # the 13 organs in BTCV order, one definition

    return Download("btcv", root, dict(SYNAPSE_LABELS), "CT", training, testing=testing, pool_dirs={"training": img_dir})


def _amos_labels(path: str) -> Dict[str, int]:
    """nnU-Net labels from the AMOS dataset.json ({"0": "background", "1": "spleen", ...}); 15 organs expected."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: missing (the AMOS download's dataset.json names the 15 organs)")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)["labels"]
        labels = {str(name): int(value) for value, name in raw.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConvertError(f"{path}: no readable 'labels' mapping ({type(e).__name__}: {e})") from None
    if sorted(labels.values()) != list(range(16)) or len(labels) != 16:
        raise ConvertError(f"{path}: expected labels 0..15 (background + 15 organs) with distinct names, got "
                           f"{sorted(labels.values())}")
    return {name: value for name, value in sorted(labels.items(), key=lambda kv: kv[1])}


def read_amos(source: str, mri: bool = False) -> Download:
    """The AMOS 2022 layout under ``source``; MRI scans (ids > 500) are excluded unless ``mri``."""
    labels = _amos_labels(os.path.join(source, "dataset.json"))
    pools: Dict[str, Dict[str, Tuple[str, str]]] = {}
    for images, targets in (("imagesTr", "labelsTr"), ("imagesVa", "labelsVa")):
        img_dir = _need_dir(os.path.join(source, images), "AMOS 2022 download")
        lab_dir = _need_dir(os.path.join(source, targets), "AMOS 2022 download")
        pools[images] = _pair(_listing(img_dir, _AMOS_FILE, "amos_XXXX.nii.gz"),
                              _listing(lab_dir, _AMOS_FILE, "amos_XXXX.nii.gz"), lambda c: c, lab_dir,
                              lambda c: f"{c}.nii.gz")
    ts_dir = os.path.join(source, "imagesTs")
    testing = _listing(ts_dir, _AMOS_FILE, "amos_XXXX.nii.gz") if os.path.isdir(ts_dir) else {}
    seen: Dict[str, str] = {}
    for pool, cases in (("imagesTr", pools["imagesTr"]), ("imagesVa", pools["imagesVa"]), ("imagesTs", testing)):
        for case in cases:
            if case in seen:
                raise ConvertError(f"{os.path.join(source, pool, case + '.nii.gz')}: {case} is also in {seen[case]}")
            seen[case] = pool
    excluded = {} if mri else {c: "MRI scan (id > 500); add --mri to convert it" for c in seen
                               if int(c.split("_")[1]) > AMOS_MAX_CT_ID}

    def keep(d: Dict) -> Dict:
        return {c: v for c, v in d.items() if c not in excluded}

    # mixed CT + MRI: nnU-Net's z-score normalisation per image (its own Dataset219 uses the same channel name)
    return Download("amos", source, labels, "either_CT_or_MR" if mri else "CT", keep(pools["imagesTr"]),
                    keep(pools["imagesVa"]), keep(testing), excluded, reader="NibabelIOWithReorient",
                    pool_dirs={"training": os.path.join(source, "imagesTr"),
                               "validation": os.path.join(source, "imagesVa")})


# ------------------------------------------------------------------------------------------------------- checks


def _header(path: str) -> Tuple[Tuple[int, ...], "object"]:
    import nibabel as nib

    try:
        img = nib.load(path)
    except Exception as e:  # nibabel raises its own ImageFileError and others for a broken header
        raise ConvertError(f"{path}: not a readable NIfTI file ({type(e).__name__}: {e})") from None
    shape = tuple(int(s) for s in img.shape)
    if len(shape) != 3:
        raise ConvertError(f"{path}: a 3D volume was expected, the file holds shape {shape}")
    return shape, img


def _check_label_values(path: str, img: "object", max_label: int) -> None:
    import numpy as np

    try:
        arr = np.asanyarray(img.dataobj)
    except Exception as e:
        raise ConvertError(f"{path}: voxel data unreadable ({type(e).__name__}: {e})") from None
    if np.issubdtype(arr.dtype, np.floating) and not np.array_equal(arr, np.round(arr)):
        raise ConvertError(f"{path}: label values are not whole numbers")
    bad = arr[(arr < 0) | (arr > max_label)]
    if bad.size:
        values = sorted({int(v) for v in np.unique(bad)[:5]})
        raise ConvertError(f"{path}: label value{'s' if len(values) > 1 else ''} "
                           f"{', '.join(map(str, values))} outside 0..{max_label} ({bad.size} voxels)")


def _check_geometry(image: str, image_img: "object", label: str, label_img: "object") -> None:
    import numpy as np

    a, b = np.asarray(image_img.affine, float), np.asarray(label_img.affine, float)
    if np.allclose(a, b, rtol=1e-5, atol=1e-3):
        return
    sa, sb = np.linalg.norm(a[:3, :3], axis=0), np.linalg.norm(b[:3, :3], axis=0)
    if not np.allclose(sa, sb, rtol=1e-5, atol=1e-4):
        what = f"spacing {_mm(sb)} mm vs the image's {_mm(sa)}"
    elif not np.allclose(a[:3, 3], b[:3, 3], atol=1e-3):
        what = f"origin {_mm(b[:3, 3])} vs the image's {_mm(a[:3, 3])}"
    else:
        what = "orientation (direction cosines)"
    raise ConvertError(f"{label}: geometry differs from its image {image}: {what}")


def _mm(values: "object") -> str:
    return " x ".join(f"{float(v):.4g}" for v in values)  # type: ignore[union-attr]


def check_case(image: str, label: Optional[str], max_label: int) -> None:
    """All checks of one case (label None: an unlabeled scan); the first problem raises :class:`ConvertError`."""
    from nnunetv2_dca.imagefile import ImageFileError, check_image_file

    for path in (image, label) if label else (image,):
        try:
            check_image_file(path)  # first: a cut-off file would otherwise pass the header checks
        except ImageFileError as e:
            raise ConvertError(str(e)) from None
        except OSError as e:
            raise ConvertError(f"{path}: cannot be read ({e.strerror or e})") from None
    shape, image_img = _header(image)
    if label is None:
        return
    label_shape, label_img = _header(label)
    if label_shape != shape:
        raise ConvertError(f"{label}: shape {label_shape} differs from its image's {shape} ({image})")
    _check_geometry(image, image_img, label, label_img)
    _check_label_values(label, label_img, max_label)


def check_cases(cases: Sequence[Tuple[str, Optional[str]]], max_label: int, workers: int = 4) -> None:
    """:func:`check_case` for every (image, label) pair, ``workers`` at a time (decompression releases the GIL). All
    are checked; the first problem in input order is raised, with the number of others."""
    def one(pair: Tuple[str, Optional[str]]) -> Optional[str]:
        try:
            check_case(pair[0], pair[1], max_label)
            return None
        except ConvertError as e:
            return str(e)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        problems: List[str] = [p for p in pool.map(one, cases) if p]
    if problems:
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise ConvertError(problems[0] + more)


# ----------------------------------------------------------------------------------------------- case roles


@dataclass
class Plan:
    """Every converted case's role (case ids of the download: img0002, amos_0078)."""

    train: List[str]  # base imagesTr, without the validation cases
    validation: List[str]
    test: List[str]  # base imagesTs + labelsTs
    labeled: List[str] = field(default_factory=list)  # twin imagesTr (with validation)
    unlabeled: List[str] = field(default_factory=list)  # twin imagesTrUnlabeled
    testing: List[str] = field(default_factory=list)  # unlabeled test scans -> imagesTrUnlabeled (both)
    left_out: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


def _cases(download: Download, split: "PublishedSplit", role: str, pool: str, dropped: List[str]) -> List[str]:
    """The split's ``role`` list as case ids of ``pool``; a case missing from the download is an error naming the
    file it expected, an excluded one (MRI when CT only) goes to ``dropped``."""
    have = download.training if pool == "training" else download.validation
    out: List[str] = []
    for entry in getattr(split, role):
        case = download.entry_to_case(entry)
        if case in download.excluded:
            dropped.append(case)
        elif case not in have:
            expected = os.path.join(download.pool_dirs.get(pool, download.root), case + ".nii.gz")
            raise ConvertError(f"{expected}: missing ({split.name} lists {entry} among its {role} cases)")
        else:
            out.append(case)
    return sorted(out)


def make_plan(download: Download, split: "Optional[PublishedSplit]", unlabeled_testing: bool) -> Plan:
    """Assign every case of the download a role; nothing is invented beyond the published lists."""
    if split is None:
        plan = Plan(sorted(download.training), [], sorted(download.validation))
    else:
        dropped: List[str] = []
        test_pool = "training" if split.test_from == "training" else "validation"
        plan = Plan(_cases(download, split, "train", "training", dropped),
                    _cases(download, split, "validation", "training", dropped),
                    _cases(download, split, "test", test_pool, dropped),
                    _cases(download, split, "labeled", "training", []), _cases(download, split, "unlabeled",
                                                                                 "training", []))
        if split.semi_supervised and not plan.labeled:
            raise ConvertError(f"{split.name}: none of its labeled cases is converted ({', '.join(split.labeled)}); "
                               f"they are MRI scans: add --mri")
        if dropped:
            labeled_mri = [e for e in split.labeled if download.entry_to_case(e) in dropped]
            plan.notes.append(f"{split.name} restricted to CT: {len(dropped)} MRI cases of its lists left out"
                              + (f", {len(labeled_mri)} of its {len(split.labeled)} labeled cases among them "
                                 f"({', '.join(labeled_mri)})" if labeled_mri else "")
                              + "; add --mri for the published split as it is")
        listed = set(plan.train) | set(plan.validation) | set(plan.test)
        for pool in (download.training, download.validation):
            plan.left_out.update({c: f"not in {split.name}" for c in pool if c not in listed})
        if plan.left_out:
            plan.notes.append(f"{len(plan.left_out)} labeled cases of the download are in none of {split.name}'s "
                              f"lists and were left out (see {RECORD})")
    plan.left_out.update(download.excluded)
    if unlabeled_testing:
        plan.testing = sorted(download.testing)
    else:
        plan.left_out.update({c: "unlabeled test scan (add --unlabeled-testing)" for c in download.testing})
    return plan
