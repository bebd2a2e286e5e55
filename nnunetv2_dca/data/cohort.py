"""``nnunetv2-dca cohort``: a cohort of real anatomy from the one real labeled CT available offline.

The shared TotalSegmentator example (patient P1, abdominal CT at 3 mm, 117-class labels) is the only real multi-organ
volume here. Each case of the cohort is P1 under a random smooth deformation (an affine part: scale, rotation about
the cranio-caudal axis, shift; plus a low-frequency displacement field) and a random scanner-like intensity change
(gain, offset, correlated noise), labels remapped to the 13 Synapse organs and warped with the image. It is one
patient's anatomy in many shapes, not a population: a test of real organ shapes, contrasts and the real 250:1 liver
to adrenal imbalance, not of inter-patient variability. Each case depends only on (seed, index), like the phantom.

``variability="varied"`` (issue 26) widens what a case draws: a larger affine and displacement (which also moves
the craniocaudal coverage), a contrast phase per case (each organ's HU moved by the phantom's per-organ arterial and
portal-venous enhancement, :data:`nnunetv2_dca.data.phantom_variation.PHASE_HU`, added to the source, which is a
native scan; unlabeled vessels, bowel and muscles enhance too, from TotalSegmentator's other classes), noise of
a softer or sharper texture, more noise, and an absent gallbladder in 20 % of cases. ``classic`` (the default)
draws exactly what it drew before, so earlier cohorts stay bit-identical.

Output: a fully labeled nnU-Net raw dataset (imagesTr/labelsTr + imagesTs/labelsTs), built in a hidden sibling
folder and moved into place at the end; ``nnunetv2-dca split`` turns it into the semi-supervised one.
"""

from __future__ import annotations

import os
import re
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_dca.data.phantom import SYNAPSE_LABELS, smooth, smooth_field, find_existing_dataset
from nnunetv2_dca.folders import building, clean_interrupted_dataset
from nnunetv2_dca.imagefile import ImageFileError, check_image_file

COHORT_VERSION = 1  # bump when the output for a given seed changes
CT_FILE, SEG_FILE, MAP_FILE = "example_ct.nii.gz", "example_seg_fast_force_split.nii.gz", "synapse13_map.json"

class CohortVariation(NamedTuple):
    scale: float  # +- per axis
    rotation_deg: float  # +- about the cranio-caudal axis
    shift_mm: float
    deform_mm: float  # amplitude of the smooth displacement
    noise_hu: Tuple[float, float]
    appearance: bool  # the draws of _vary_appearance: contrast phase, noise texture, absent gallbladder


COHORT_VARIATIONS: Dict[str, CohortVariation] = {
    "classic": CohortVariation(0.08, 6.0, 6.0, 5.0, (5.0, 20.0), appearance=False),
    "varied": CohortVariation(0.15, 12.0, 15.0, 9.0, (5.0, 30.0), appearance=True),
}
# TotalSegmentator (v2 "total" task) classes outside the 13 organs that enhance like one of them: heart, iliac
# arteries like the aorta; superior vena cava, iliac veins like the IVC; small bowel, duodenum, colon like the stomach
ENHANCES_LIKE: Dict[int, str] = {51: "aorta", 65: "aorta", 66: "aorta", 62: "inferior_vena_cava",
                                 67: "inferior_vena_cava", 68: "inferior_vena_cava", 18: "stomach", 19: "stomach",
                                 20: "stomach"}
MUSCLE_IDS = tuple(range(80, 90))  # gluteal muscles, autochthon, iliopsoas
MUSCLE_ENHANCEMENT = (10.0, 15.0)  # HU at full arterial / portal-venous weight (muscle enhances little)


class CohortError(ValueError):
    """The source folder or a setting does not allow the cohort (the message names the file or setting)."""


def _check_complete(path: str) -> None:
    # SimpleITK reads a cut-off .nii.gz without error, zero-filling the rest: the cohort would be built from it
    try:
        check_image_file(path)
    except ImageFileError as e:
        reason = " ".join(e.reason.split())
        raise CohortError(f"source file {path} is incomplete ({reason}); copy it again from its origin") from None


def load_source(source: str, spacing: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray, Tuple[float, ...]]:
    """(HU image zyx float32, Synapse-13 labels zyx uint8, spacing zyx) of P1, cropped to the body's labeled
    region plus a margin, optionally resampled to an isotropic ``spacing`` (mm)."""
    image, labels, _, sp = read_source(source, spacing)
    return image, labels, sp


def read_source(source: str, spacing: Optional[float] = None
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Tuple[float, ...]]:
    """:func:`load_source` plus the contrast enhancement map (2 x zyx float32: HU at full arterial / full
    portal-venous weight) from all of TotalSegmentator's classes, so that unlabeled vessels and bowel enhance with
    the labeled ones (``varied`` cases; no label edge becomes an intensity edge that real scans do not have)."""
    import SimpleITK as sitk
    from scipy import ndimage

    paths = {name: os.path.join(source, name) for name in (CT_FILE, SEG_FILE, MAP_FILE)}
    for name, path in paths.items():
        if not os.path.isfile(path):
            raise CohortError(f"--source {source}: {name} not found (expected the TotalSegmentator example files: "
                              f"{', '.join(paths)})")
        if name != MAP_FILE:
            _check_complete(path)
    images = {}
    for name in (CT_FILE, SEG_FILE):
        try:
            images[name] = sitk.ReadImage(paths[name])
        except RuntimeError as e:  # SimpleITK on a file that is not an image it knows
            text = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())
            raise CohortError(f"source file {paths[name]} cannot be read as an image ({text[-200:]}); copy it again "
                              f"from its origin") from None
    ct, seg = images[CT_FILE], images[SEG_FILE]
    if ct.GetSize() != seg.GetSize():
        raise CohortError(f"{paths[SEG_FILE]} has size {seg.GetSize()}, the CT {ct.GetSize()}")
    from nnunetv2_dca.errors import read_json

    fix = 'expected {"from_total_ct": {"<TotalSegmentator id>": <Synapse id>, ...}}; copy it again from its origin'
    spec = read_json(paths[MAP_FILE], "label map", fix).get("from_total_ct")
    try:
        mapping = {int(k): int(v) for k, v in spec.items()}
    except (AttributeError, TypeError, ValueError):
        raise CohortError(f"label map {paths[MAP_FILE]} has no valid 'from_total_ct' object; {fix}") from None
    image = sitk.GetArrayFromImage(ct).astype(np.float32)
    total = sitk.GetArrayFromImage(seg)
    lut = np.zeros(int(total.max()) + 1, dtype=np.uint8)
    for k, v in mapping.items():
        if k < lut.size:
            lut[k] = v
    labels = lut[total]
    sp = tuple(float(s) for s in ct.GetSpacing()[::-1])
    # crop to the organs (+ 15 mm) in-plane and along z: less background to train on, the same anatomy
    fg = np.argwhere(labels > 0)
    if not len(fg):
        raise CohortError(f"{paths[SEG_FILE]} holds none of the organs that {paths[MAP_FILE]} maps: nothing to "
                          f"build cases from; check both files")
    margin = [int(np.ceil(15 / s)) for s in sp]
    lo = np.maximum(fg.min(0) - margin, 0)
    hi = np.minimum(fg.max(0) + margin + 1, labels.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    image, labels = image[box], labels[box]
    enhancement = _enhancement_map(total[box], mapping)  # on the crop only
    if spacing is not None and spacing > 0:
        zoom = [s / spacing for s in sp]
        image = ndimage.zoom(image, zoom, order=1)
        labels = ndimage.zoom(labels, zoom, order=0)
        enhancement = np.stack([ndimage.zoom(e, zoom, order=1) for e in enhancement])
        sp = (float(spacing),) * 3
    return image, labels, enhancement, sp


def _enhancement_map(total: np.ndarray, mapping: Dict[int, int]) -> np.ndarray:
    """Arterial and portal-venous enhancement (HU) per voxel from the TotalSegmentator classes: the 13 organs as in
    the phantom (:data:`~nnunetv2_dca.data.phantom_variation.PHASE_HU`), the unlabeled vessels, bowel and muscles
    as the organs they behave like (:data:`ENHANCES_LIKE`, :data:`MUSCLE_ENHANCEMENT`)."""
    from nnunetv2_dca.data.phantom_variation import PHASE_HU

    names = {v: k for k, v in SYNAPSE_LABELS.items()}
    per_class = {k: PHASE_HU[names[v]][1:] for k, v in mapping.items() if v in names and v}
    per_class.update({k: PHASE_HU[organ][1:] for k, organ in ENHANCES_LIKE.items()})
    per_class.update({k: MUSCLE_ENHANCEMENT for k in MUSCLE_IDS})
    lut = np.zeros((2, max(int(total.max()), max(per_class)) + 1), dtype=np.float32)
    for k, (arterial, venous) in per_class.items():
        lut[:, k] = (arterial, venous)
    return lut[:, total]


def deform_case(image: np.ndarray, labels: np.ndarray, spacing: Tuple[float, ...], seed: int, index: int,
                variability: str = "classic", enhancement: Optional[np.ndarray] = None
                ) -> Tuple[np.ndarray, np.ndarray, Dict[str, object]]:
    """One cohort case: P1 warped by a random affine + smooth displacement, with a random intensity change
    (``varied``: also a contrast phase from ``enhancement`` (:func:`read_source`), a noise kernel and an absent
    gallbladder, see the module docstring)."""
    from scipy import ndimage

    var = cohort_variation(variability)
    if var.appearance and enhancement is None:
        raise ValueError(f"variability {variability!r} needs the enhancement map of read_source")
    rng = np.random.default_rng([seed, index, 41])
    shape = image.shape
    grids = [((np.arange(n) - (n - 1) / 2) * s).astype(np.float32) for n, s in zip(shape, spacing)]
    z, y, x = np.meshgrid(*grids, indexing="ij")
    scale = rng.uniform(1 - var.scale, 1 + var.scale, 3)
    angle = np.deg2rad(rng.uniform(-var.rotation_deg, var.rotation_deg))
    shift = rng.uniform(-var.shift_mm, var.shift_mm, 3)
    c, s = np.cos(angle), np.sin(angle)
    # output position -> source position (mm): inverse rotation about z and scale, shift, smooth displacement
    xs = (c * x + s * y) / scale[2] + shift[2]
    ys = (-s * x + c * y) / scale[1] + shift[1]
    zs = z / scale[0] + shift[0]
    coords = (x, y, z)
    for arr in (zs, ys, xs):
        arr += smooth_field(rng, coords, var.deform_mm, (80, 200))
    idx = [(a + (n - 1) / 2 * sp) / sp for a, n, sp in zip((zs, ys, xs), shape, spacing)]
    warped = ndimage.map_coordinates(image, idx, order=1, mode="constant", cval=-1024.0).astype(np.float32)
    warped_labels = ndimage.map_coordinates(labels, idx, order=0, mode="constant", cval=0).astype(np.uint8)
    gain, offset, noise = rng.uniform(0.92, 1.08), rng.uniform(-25, 25), rng.uniform(*var.noise_hu)
    body = warped > -500
    info = {"scale_zyx": [float(v) for v in scale], "rotation_deg": float(np.rad2deg(angle)),
            "shift_zyx_mm": [float(v) for v in shift], "gain": float(gain), "offset_hu": float(offset),
            "noise_hu": float(noise)}
    blur = 1
    if var.appearance:  # classic skips this branch, so it consumes the same random numbers as before
        enhanced = [ndimage.map_coordinates(e, idx, order=1, mode="constant", cval=0.0) for e in enhancement]
        warped, warped_labels, blur, extra = _vary_appearance(rng, warped, warped_labels, enhanced)
        info.update(extra)
    out = warped * gain + offset * body + smooth(rng.normal(0, 1, shape).astype(np.float32), blur) * noise * 1.6
    out = np.clip(np.rint(out), -1024, 3071).astype(np.int16)
    return out, warped_labels, info


def cohort_variation(variability: str) -> CohortVariation:
    if variability not in COHORT_VARIATIONS:
        raise CohortError(f"unknown --variability {variability!r}; choose one of {', '.join(COHORT_VARIATIONS)}")
    return COHORT_VARIATIONS[variability]


def _vary_appearance(rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, enhanced: Sequence[np.ndarray]
                     ) -> Tuple[np.ndarray, np.ndarray, int, Dict[str, object]]:
    """A varied case's contrast phase (the warped enhancement maps weighted by two draws, smoothed so borders stay
    partial-volume; P1 itself is native), an absent gallbladder (its voxels become fat, its label background) and
    a noise kernel (noise smoothed 1 or 2 passes)."""
    from nnunetv2_dca.data.phantom_variation import VARIED

    arterial, venous = float(rng.uniform(*VARIED.arterial)), float(rng.uniform(*VARIED.venous))
    image = image + smooth((arterial * enhanced[0] + venous * enhanced[1]).astype(np.float32), 1)
    gallbladder = bool(rng.uniform() >= VARIED.gallbladder_absent)
    if not gallbladder:
        gb = labels == SYNAPSE_LABELS["gallbladder"]
        image = np.where(gb, -90.0, image).astype(np.float32)
        labels = np.where(gb, 0, labels).astype(np.uint8)
    blur = int(rng.integers(1, 3))
    return image, labels, blur, {"arterial": arterial, "venous": venous, "gallbladder": gallbladder,
                                 "noise_smoothing": blur}


def write_cohort_dataset(raw_dir: str, dataset_id: int, source: str, train: int = 20, test: int = 6, seed: int = 0,
                         spacing: Optional[float] = None, name: str = "CohortP1", overwrite: bool = False,
                         variability: str = "classic") -> str:
    """Write ``Dataset<id>_<name>`` (train labeled + test cases) under ``raw_dir`` atomically; returns its path."""
    cohort_variation(variability)  # an unknown name fails before anything is read or written
    if not 1 <= dataset_id <= 999:
        raise CohortError(f"dataset id must be in 1..999, got {dataset_id}")
    if train < 1 or test < 0:
        raise CohortError(f"--train must be >= 1 and --test >= 0, got {train} and {test}")
    if spacing is not None and not 1.0 <= spacing <= 10.0:
        raise CohortError(f"--spacing must be within 1..10 mm, got {spacing}")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise CohortError(f"dataset name {name!r} may only contain letters, digits, '_' and '-'")
    clean_interrupted_dataset(raw_dir, dataset_id)  # hidden folders of a killed run of this id
    existing = find_existing_dataset(raw_dir, dataset_id)
    if existing is not None and not overwrite:
        raise FileExistsError(f"dataset id {dataset_id} already exists in nnUNet_raw: {existing} "
                              f"(use --overwrite to replace it, or pick another -d)")
    if existing is not None and not os.path.isfile(os.path.join(existing, "cohort.json")):
        # e.g. the user's own dataset under that id: --overwrite replaces only a cohort this command made
        raise FileExistsError(f"dataset id {dataset_id} in nnUNet_raw is {existing}, not a cohort this command "
                              f"wrote (no cohort.json): --overwrite replaces only a cohort, so it is left as it is; "
                              f"pick another -d")
    image, labels, enhancement, sp = read_source(source, spacing)
    from nnunetv2_dca.atomic import write_json_atomic
    from nnunetv2_dca.data.phantom import write_nifti

    os.makedirs(raw_dir, exist_ok=True)
    target = os.path.join(raw_dir, f"Dataset{dataset_id:03d}_{name}")
    with building(target, also_replace=[existing] if existing is not None else []) as tmp:
        cases: Dict[str, Dict] = {}
        for split_dir, lab_dir, count, start in (("imagesTr", "labelsTr", train, 0), ("imagesTs", "labelsTs", test,
                                                                                     train)):
            os.makedirs(os.path.join(tmp, split_dir))
            os.makedirs(os.path.join(tmp, lab_dir))
            for i in range(start, start + count):
                case = f"cohort_{i:04d}"
                img, lab, info = deform_case(image, labels, sp, seed, i, variability, enhancement)
                write_nifti(img, sp, os.path.join(tmp, split_dir, f"{case}_0000.nii.gz"))
                write_nifti(lab, sp, os.path.join(tmp, lab_dir, f"{case}.nii.gz"))
                cases[case] = dict(info, split=split_dir, voxels={k: int((lab == v).sum())
                                                                   for k, v in SYNAPSE_LABELS.items() if v})
        write_json_atomic({"name": name, "description": "Deformed, intensity-varied copies of one real abdominal CT "
                                                  "(TotalSegmentator example P1, labels remapped to the 13 Synapse "
                                                  "organs), generated by nnunetv2-dca cohort",
                     "channel_names": {"0": "CT"}, "labels": SYNAPSE_LABELS, "numTraining": train,
                     "file_ending": ".nii.gz", "licence": "Apache-2.0 (derived from the TotalSegmentator examples)",
                     "numTest": test}, os.path.join(tmp, "dataset.json"))
        write_json_atomic({"generator": "nnunetv2-dca cohort", "cohort_version": COHORT_VERSION, "seed": seed,
                           "source": os.path.abspath(source), "spacing": list(sp), "variability": variability,
                           "cases": cases}, os.path.join(tmp, "cohort.json"))
    return target
