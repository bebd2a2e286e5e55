"""Synthetic nnU-Net raw datasets: an abdominal-CT phantom (3D) and an H&E gland phantom (2D RGB).

Why: the project's demo and tests must run offline on a laptop CPU, yet exercise the problem DCA targets: 13
abdominal organs whose volumes span more than two orders of magnitude (liver ~200x an adrenal gland, tail organs
< 1 % of the foreground, see ``../shared/data/totalsegmentator-examples/README.md`` for real counts), with
unlabeled images and optional scanner/stain shifts (``sites``) for domain-shift experiments.

Each case depends only on (seed, case index, site), so adding cases never changes existing ones. The whole dataset
is written into a temporary folder next to the target and moved into place at the end: an interrupted or failed
run leaves nothing half-written under ``nnUNet_raw``, and with ``--overwrite`` the old dataset is only deleted once
the new one is in place (:func:`nnunetv2_dca.folders.replace_folder`); ``--overwrite`` replaces only a phantom this
writer made, never another dataset of the id.

Geometry (3D): organs are ellipsoids and tubes placed in a body ellipse in millimetres, with per-case jitter of
position, size and orientation and a smooth random deformation of space; target volumes follow the real CT (P1) in
the shared examples. Intensities are portal-venous-like HU per organ on fat/muscle/bone/bowel background, plus
correlated noise. A site shifts gain, offset, noise and sharpness like a different scanner.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_dca.atomic import write_json_atomic
from nnunetv2_dca.data.phantom_variation import Variation, draw_appearance, organ_hu, radii_factor, variation
from nnunetv2_dca.folders import building, clean_interrupted_dataset, dataset_folders

# The 13 Synapse/BTCV organs, ids as in the Synapse benchmark (and shared/data/.../synapse13_map.json).
SYNAPSE_LABELS: Dict[str, int] = {
    "background": 0, "spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "esophagus": 5,
    "liver": 6, "stomach": 7, "aorta": 8, "inferior_vena_cava": 9, "portal_and_splenic_vein": 10,
    "pancreas": 11, "adrenal_gland_right": 12, "adrenal_gland_left": 13,
}
GLAND_LABELS: Dict[str, int] = {"background": 0, "gland": 1, "lumen": 2, "lymphocyte": 3}

GENERATOR_VERSION = 1  # bump when the output for a given seed changes


@dataclass(frozen=True)
class CTSize:
    shape_zyx: Tuple[int, int, int]
    spacing_zyx: Tuple[float, float, float]  # mm


CT_SIZES: Dict[str, CTSize] = {
    # 320 x 320 x 160 mm field of view in both; 'small' is what CPU tests and the demo use.
    "small": CTSize((32, 64, 64), (5.0, 5.0, 5.0)),
    "medium": CTSize((64, 128, 128), (2.5, 2.5, 2.5)),
}
GLAND_SIZES: Dict[str, int] = {"small": 128, "medium": 256}


@dataclass(frozen=True)
class Organ:
    label: str
    kind: str  # "ellipsoid" or "tube" (tube: axis along z, centre drifts linearly with z)
    center: Tuple[float, float, float]  # x (patient left +), y (posterior +), z (cranial +), mm
    radii: Tuple[float, float, float]  # ellipsoid semi-axes x, y, z; tube: x, y and half-length in z
    hu: float
    rot_deg: float = 0.0  # rotation about z
    drift: Tuple[float, float] = (0.0, 0.0)  # tube centre shift per mm of z (x, y)


# Painted in this order: later organs overwrite earlier ones, so the small ones are never hidden. Volumes (mm^3,
# before FOV clipping) follow P1: liver ~1.2 L, spleen ~250 mL, kidneys ~140-190 mL ... adrenals ~5 mL.
ORGANS: Tuple[Organ, ...] = (
    Organ("liver", "ellipsoid", (-62, -5, 20), (78, 66, 62), 105, rot_deg=-12),
    Organ("spleen", "ellipsoid", (88, 38, 30), (30, 46, 44), 115, rot_deg=25),
    Organ("stomach", "ellipsoid", (50, -32, 28), (36, 28, 34), 35, rot_deg=-20),
    Organ("kidney_right", "ellipsoid", (-58, 58, -22), (30, 27, 54), 170, rot_deg=15),
    Organ("kidney_left", "ellipsoid", (58, 58, -12), (28, 25, 48), 170, rot_deg=-15),
    Organ("gallbladder", "ellipsoid", (-42, -52, -18), (16, 16, 32), 8, rot_deg=20),
    Organ("pancreas", "ellipsoid", (12, 14, -6), (56, 11, 10), 95, rot_deg=-15),
    Organ("inferior_vena_cava", "tube", (-24, 36, 0), (12, 9, 80), 125, drift=(0.02, 0.0)),
    Organ("aorta", "tube", (12, 42, 0), (11, 11, 80), 175, drift=(-0.02, 0.02)),
    Organ("portal_and_splenic_vein", "ellipsoid", (0, 8, 2), (70, 9, 9), 150, rot_deg=8),
    Organ("esophagus", "tube", (16, 40, 55), (7, 7, 25), 45, drift=(0.15, -0.2)),
    Organ("adrenal_gland_right", "ellipsoid", (-36, 52, 42), (10, 5, 24), 60, rot_deg=30),
    Organ("adrenal_gland_left", "ellipsoid", (36, 50, 36), (10, 6, 22), 60, rot_deg=-30),
)


@dataclass(frozen=True)
class Site:
    """One 'scanner' (3D) or 'lab' (2D): a fixed appearance shift shared by all its cases."""

    gain: float
    offset: float
    noise: float  # multiplier of the base noise level
    blur: int  # extra smoothing passes (softer reconstruction kernel / defocus)
    stain: Tuple[float, ...]  # 2D only: perturbation of the H and E stain vectors (6 numbers) and 2 intensities


def make_sites(k: int, seed: int) -> List[Site]:
    """Site 0 is the reference appearance; sites 1..k-1 are drawn from ``seed`` (deterministic)."""
    if k < 1:
        raise ValueError(f"--sites must be >= 1, got {k}")
    sites = [Site(1.0, 0.0, 1.0, 0, (0.0,) * 8)]
    rng = np.random.default_rng([seed, 7_000_003])
    for _ in range(1, k):
        sites.append(Site(
            gain=float(rng.uniform(0.8, 1.2)), offset=float(rng.uniform(-60, 60)),
            noise=float(rng.uniform(0.5, 2.0)), blur=int(rng.integers(0, 3)),
            stain=tuple(float(v) for v in np.concatenate([rng.normal(0, 0.12, 6), rng.uniform(0.7, 1.3, 2)])),
        ))
    return sites


# ----------------------------------------------------------------------------------------------------------- 3D CT


def smooth(a: np.ndarray, passes: int = 1) -> np.ndarray:
    """Cheap separable [1,2,1]/4 smoothing along every axis (correlated noise, partial-volume edges)."""
    for _ in range(passes):
        for ax in range(a.ndim):
            a = 0.5 * a + 0.25 * (np.roll(a, 1, axis=ax) + np.roll(a, -1, axis=ax))
    return a


def smooth_field(rng: np.random.Generator, coords: Sequence[np.ndarray], amplitude: float,
                  wavelength: Tuple[float, float], n: int = 3) -> np.ndarray:
    """Sum of ``n`` random low-frequency plane waves: a smooth, cheap random field over the grid (in mm)."""
    field = np.zeros(np.broadcast_shapes(*[c.shape for c in coords]), dtype=np.float32)
    for _ in range(n):
        direction = rng.normal(size=len(coords))
        direction /= np.linalg.norm(direction) + 1e-12
        k = 2 * np.pi / rng.uniform(*wavelength)
        phase = rng.uniform(0, 2 * np.pi)
        arg = sum(k * d * c for d, c in zip(direction, coords)) + phase
        field += np.sin(arg).astype(np.float32)
    return field * (amplitude / np.sqrt(n))


def generate_ct_case(seed: int, index: int, size: str = "small", site: Optional[Site] = None,
                     variability: str = "classic") -> Tuple[np.ndarray, np.ndarray, Tuple[float, float, float]]:
    """One abdominal CT phantom: (image int16 HU zyx, labels uint8 zyx, spacing zyx in mm). ``variability``: how
    much cases differ (:mod:`nnunetv2_dca.data.phantom_variation`)."""
    if size not in CT_SIZES:
        raise ValueError(f"unknown --size {size!r}; choose one of {sorted(CT_SIZES)}")
    var = variation(variability)
    site = site or make_sites(1, seed)[0]
    cfg = CT_SIZES[size]
    rng = np.random.default_rng([seed, index])
    nz, ny, nx = cfg.shape_zyx
    sz, sy, sx = cfg.spacing_zyx
    z = ((np.arange(nz) - (nz - 1) / 2) * sz).astype(np.float32)[:, None, None]
    y = ((np.arange(ny) - (ny - 1) / 2) * sy).astype(np.float32)[None, :, None]
    x = ((np.arange(nx) - (nx - 1) / 2) * sx).astype(np.float32)[None, None, :]

    # patient-level variation: body size, a smooth deformation of space, a shift of the whole abdomen in z
    body_scale = rng.uniform(*var.body_scale)
    z_shift = rng.uniform(-var.z_shift_mm, var.z_shift_mm)
    dx, dy, dz = (smooth_field(rng, (x, y, z), var.deform_mm, var.deform_wavelength_mm) for _ in range(3))
    xd, yd, zd = x + dx, y + dy, z + dz + z_shift

    bx, by = 148 * body_scale, 108 * body_scale
    rbody = np.sqrt((xd / bx) ** 2 + (yd / by) ** 2)  # 1 at the skin
    image = np.full((nz, ny, nx), -1000.0, dtype=np.float32)
    inside = rbody <= 1.0
    # bowel/mesenteric fat texture fills the abdomen: -110 (fat) .. +40 (bowel wall), smooth blobs
    texture = smooth_field(rng, (x, y, z), 1.0, (25, 60), n=6)
    look = draw_appearance(rng, var)  # None (no draw) for classic and thick_tail
    visceral = np.where(texture > (0.15 if look is None else look.bowel_threshold), 30.0, -105.0)
    image = np.where(inside, visceral, image)
    image = np.where(inside & (rbody > 0.80), 55.0, image)  # abdominal wall muscle
    image = np.where(inside & (rbody > 0.87), -105.0, image)  # subcutaneous fat
    # spine: vertebral body + canal, posterior; ribs as a broken ring in the upper abdomen
    rspine = np.sqrt((xd / 20) ** 2 + ((yd - 0.66 * by) / 18) ** 2)
    image = np.where(np.broadcast_to(rspine <= 1.0, image.shape), 500.0, image)
    rcanal = np.sqrt((xd / 7) ** 2 + ((yd - 0.66 * by - 24) / 7) ** 2)
    image = np.where(np.broadcast_to(rcanal <= 1.0, image.shape), 20.0, image)
    theta = np.arctan2(yd, xd)
    ribs = (rbody > 0.78) & (rbody < 0.84) & (np.sin(9 * theta + zd / 12) > 0.55) & (zd > 0)
    image = np.where(ribs, 650.0, image)

    labels = np.zeros((nz, ny, nx), dtype=np.uint8)
    for organ in ORGANS:
        mask = _organ_mask(organ, rng, xd, yd, zd, body_scale, var, radii_factor(organ.label, var)) & inside
        if organ.label == "gallbladder" and look is not None and not look.gallbladder:
            continue  # cholecystectomy: the organ is absent from image and labels
        labels[mask] = SYNAPSE_LABELS[organ.label]
        image = np.where(mask, organ_hu(organ.label, organ.hu, look) + rng.normal(0, var.hu_sd), image)
    # stomach: an air/fluid pocket in the upper part of the lumen (image only; the label stays stomach)
    stomach = labels == SYNAPSE_LABELS["stomach"]
    if stomach.any():
        top = np.quantile(np.broadcast_to(yd, labels.shape)[stomach], 0.3)
        image = np.where(stomach & (yd < top) & (rng.uniform() < 0.7), -600.0, image)

    blur, noise_level, gain, offset = site.blur, site.noise, site.gain, site.offset
    if look is not None:  # the case's own scanner settings on top of its site's
        blur, noise_level = blur + look.blur, noise_level * look.noise
        gain, offset = gain * look.gain, offset + look.offset
    image = smooth(image, 1 + blur)  # partial volume, reconstruction kernel
    noise = smooth(rng.normal(0, 1, image.shape).astype(np.float32), 1)
    image = image + noise * (22.0 * noise_level)
    image = image * gain + offset * inside
    image = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
    return image, labels, cfg.spacing_zyx


def _organ_mask(organ: Organ, rng: np.random.Generator, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                body_scale: float, var: Variation, radii_factor: Tuple[float, float, float]) -> np.ndarray:
    cx, cy, cz = (np.asarray(organ.center) * body_scale + rng.normal(0, var.center_sd_mm)).tolist()
    rx, ry, rz = (np.asarray(organ.radii) * np.asarray(radii_factor) * body_scale
                  * rng.uniform(*var.radii, 3)).tolist()
    if organ.kind == "tube":
        px = x - (cx + organ.drift[0] * (z - cz))
        py = y - (cy + organ.drift[1] * (z - cz))
        return ((px / rx) ** 2 + (py / ry) ** 2 <= 1.0) & (np.abs(z - cz) <= rz)
    a = np.deg2rad(organ.rot_deg + rng.normal(0, var.rot_sd_deg))
    px, py, pz = x - cx, y - cy, z - cz
    u = np.cos(a) * px + np.sin(a) * py
    v = -np.sin(a) * px + np.cos(a) * py
    return (u / rx) ** 2 + (v / ry) ** 2 + (pz / rz) ** 2 <= 1.0


# ----------------------------------------------------------------------------------------------------- 2D H&E glands

# Optical densities of haematoxylin and eosin (Ruifrok & Johnston), rows: stain, columns: RGB
_HE_OD = np.array([[0.650, 0.704, 0.286], [0.072, 0.990, 0.105]], dtype=np.float32)


def generate_gland_case(seed: int, index: int, size: str = "small", site: Optional[Site] = None
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """One H&E-like tile: (RGB uint8 HxWx3, labels uint8 HxW) with glands, lumina and (rare) lymphocytes."""
    if size not in GLAND_SIZES:
        raise ValueError(f"unknown --size {size!r}; choose one of {sorted(GLAND_SIZES)}")
    site = site or make_sites(1, seed)[0]
    n = GLAND_SIZES[size]
    s = n / 128.0
    rng = np.random.default_rng([seed, index, 2])
    yy = np.arange(n, dtype=np.float32)[:, None]
    xx = np.arange(n, dtype=np.float32)[None, :]
    labels = np.zeros((n, n), dtype=np.uint8)
    conc_h = 0.15 + 0.08 * smooth_field(rng, (xx, yy), 1.0, (10 * s, 30 * s), n=4)  # stroma
    conc_e = 0.75 + 0.15 * smooth_field(rng, (xx, yy), 1.0, (15 * s, 60 * s), n=4)

    for _ in range(int(rng.integers(3, 7))):
        cx, cy = rng.uniform(0.15 * n, 0.85 * n, 2)
        a, b = rng.uniform(12 * s, 26 * s, 2)
        rot = rng.uniform(0, np.pi)
        u = np.cos(rot) * (xx - cx) + np.sin(rot) * (yy - cy)
        v = -np.sin(rot) * (xx - cx) + np.cos(rot) * (yy - cy)
        ang = np.arctan2(v, u)
        wobble = 1 + 0.12 * np.sin(3 * ang + rng.uniform(0, 6.3)) + 0.06 * np.sin(5 * ang + rng.uniform(0, 6.3))
        r = np.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble
        gland = r <= 1.0
        lumen = r <= rng.uniform(0.45, 0.65)
        labels[gland & (labels == 0)] = GLAND_LABELS["gland"]
        labels[lumen] = GLAND_LABELS["lumen"]
    epi = labels == GLAND_LABELS["gland"]
    lum = labels == GLAND_LABELS["lumen"]
    # epithelium: purple cytoplasm with a dotted band of nuclei; lumen: nearly empty
    nuclei = smooth_field(rng, (xx, yy), 1.0, (3 * s, 5 * s), n=8) > 0.35
    conc_h = np.where(epi, 0.45 + 0.6 * nuclei, conc_h)
    conc_e = np.where(epi, 0.45, conc_e)
    conc_h = np.where(lum, 0.04, conc_h)
    conc_e = np.where(lum, 0.08, conc_e)
    # lymphocytes: small, very dark round cells in the stroma (the tail class)
    for _ in range(int(rng.integers(4, 10))):
        cx, cy = rng.uniform(0, n, 2)
        rad = rng.uniform(1.8, 2.8) * s
        cell = ((xx - cx) ** 2 + (yy - cy) ** 2 <= rad ** 2) & (labels == 0)
        labels[cell] = GLAND_LABELS["lymphocyte"]
        conc_h = np.where(cell, 1.6, conc_h)
        conc_e = np.where(cell, 0.2, conc_e)

    stains = _HE_OD + np.asarray(site.stain[:6], dtype=np.float32).reshape(2, 3) * 0.5
    stains = np.clip(stains, 0.01, None)
    stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    h_gain, e_gain = (site.stain[6], site.stain[7]) if any(site.stain) else (1.0, 1.0)
    conc_h = smooth(conc_h, 1 + site.blur) * h_gain
    conc_e = smooth(conc_e, 1 + site.blur) * e_gain
    od = conc_h[..., None] * stains[0] + conc_e[..., None] * stains[1]
    rgb = 255.0 * np.exp(-od) * site.gain + rng.normal(0, 3.0 * site.noise, (n, n, 3))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), labels


# ------------------------------------------------------------------------------------------------- dataset writer


def find_existing_dataset(raw_dir: str, dataset_id: int) -> Optional[str]:
    hits = dataset_folders(raw_dir, dataset_id)
    return os.path.join(raw_dir, hits[0]) if hits else None


def is_phantom_dataset(folder: str) -> bool:
    """A dataset :func:`write_phantom_dataset` made: its phantom.json, and no split.json (``nnunetv2-dca split``
    carries phantom.json into the datasets it makes)."""
    try:
        with open(os.path.join(folder, "phantom.json"), encoding="utf-8") as f:
            generator = json.load(f).get("generator")
    except (OSError, ValueError, AttributeError):
        return False
    return generator == "nnunetv2-dca phantom" and not os.path.exists(os.path.join(folder, "split.json"))


def _check_phantom_args(dataset_id: int, name: Optional[str], labeled: int, unlabeled: int, test: int, size: str,
                        dim: int, variability: str) -> str:
    """The argument refusals of :func:`write_phantom_dataset`, before anything is written; returns the name."""
    if not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset id must be in 1..999 (nnU-Net uses three digits), got {dataset_id}")
    if dim not in (2, 3):
        raise ValueError(f"--dim must be 2 or 3, got {dim}")
    variation(variability)  # an unknown name fails here
    if dim == 2 and variability != "classic":
        raise ValueError(f"--variability {variability} applies to the 3D CT phantom only (--dim 3)")
    sizes = CT_SIZES if dim == 3 else GLAND_SIZES
    if size not in sizes:
        raise ValueError(f"unknown --size {size!r}; choose one of {sorted(sizes)}")
    for flag, value, minimum in (("--labeled", labeled, 1), ("--unlabeled", unlabeled, 0), ("--test", test, 0)):
        if value < minimum:
            raise ValueError(f"{flag} must be >= {minimum}, got {value}")
    name = name or ("AbdomenPhantom" if dim == 3 else "GlandPhantom")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise ValueError(f"dataset name {name!r} may only contain letters, digits, '_' and '-'")
    return name


def write_phantom_dataset(raw_dir: str, dataset_id: int, name: Optional[str] = None, labeled: int = 8,
                          unlabeled: int = 16, test: int = 4, seed: int = 0, size: str = "small", sites: int = 1,
                          dim: int = 3, overwrite: bool = False, variability: str = "classic") -> str:
    """Write ``DatasetXXX_Name`` under ``raw_dir`` atomically; returns its path. ``variability`` (3D only): one of
    :data:`nnunetv2_dca.data.phantom_variation.VARIABILITIES`."""
    name = _check_phantom_args(dataset_id, name, labeled, unlabeled, test, size, dim, variability)
    site_list = make_sites(sites, seed)
    target = os.path.join(raw_dir, f"Dataset{dataset_id:03d}_{name}")
    clean_interrupted_dataset(raw_dir, dataset_id)  # hidden folders of a killed run of this id
    existing = find_existing_dataset(raw_dir, dataset_id)
    if existing is not None and not overwrite:
        raise FileExistsError(f"dataset id {dataset_id} already exists in nnUNet_raw: {existing} "
                              f"(use --overwrite to replace it, or pick another -d)")
    if existing is not None and not is_phantom_dataset(existing):  # e.g. the user's own data under that id
        raise FileExistsError(f"dataset id {dataset_id} in nnUNet_raw is {existing}, not a phantom this command "
                              f"wrote (no phantom.json, or a split's split.json): --overwrite replaces only a phantom, "
                              f"so it is left as it is; pick another -d")
    os.makedirs(raw_dir, exist_ok=True)

    # the old dataset is moved aside, not deleted, until the new one is in place: an error or Ctrl-C in between
    # leaves it as it was
    with building(target, also_replace=[existing] if existing is not None else []) as tmp:
        ending = ".nii.gz" if dim == 3 else ".png"
        splits = (("imagesTr", "labelsTr", labeled), ("imagesTrUnlabeled", None, unlabeled),
                  ("imagesTs", "labelsTs", test))
        meta_cases: Dict[str, Dict[str, object]] = {}
        index = 0
        for img_dir, lab_dir, count in splits:
            os.makedirs(os.path.join(tmp, img_dir))
            if lab_dir:
                os.makedirs(os.path.join(tmp, lab_dir))
            for i in range(count):
                case = f"phantom_{index:04d}"
                site_id = index % sites
                if dim == 3:
                    img, lab, spacing = generate_ct_case(seed, index, size, site_list[site_id], variability)
                    write_nifti(img, spacing, os.path.join(tmp, img_dir, f"{case}_0000{ending}"))
                    if lab_dir:
                        write_nifti(lab, spacing, os.path.join(tmp, lab_dir, case + ending))
                else:
                    img, lab = generate_gland_case(seed, index, size, site_list[site_id])
                    _write_png(img, os.path.join(tmp, img_dir, f"{case}_0000{ending}"))
                    if lab_dir:
                        _write_png(lab, os.path.join(tmp, lab_dir, case + ending))
                meta_cases[case] = {"split": img_dir, "site": site_id}
                index += 1
        labels = SYNAPSE_LABELS if dim == 3 else GLAND_LABELS
        dataset_json = {
            "name": name,
            "description": ("Synthetic abdominal CT phantom with the 13 Synapse/BTCV organs" if dim == 3 else
                            "Synthetic H&E gland phantom (RGB)") + ", generated by nnunetv2-dca phantom",
            "channel_names": {"0": "CT"} if dim == 3 else {"0": "R", "1": "G", "2": "B"},
            "labels": labels,
            "numTraining": labeled,
            "file_ending": ending,
            "licence": "CC0 (synthetic)",
            # not read by nnU-Net; nnunetv2-dca's planner preprocesses this folder for the unlabeled stream
            "numUnlabeled": unlabeled,
            "numTest": test,
        }
        write_json_atomic(dataset_json, os.path.join(tmp, "dataset.json"))
        write_json_atomic({"generator": "nnunetv2-dca phantom", "generator_version": GENERATOR_VERSION, "seed": seed,
                           "size": size, "dim": dim, "variability": variability,
                           "sites": [s.__dict__ for s in site_list], "cases": meta_cases},
                          os.path.join(tmp, "phantom.json"))
    return target


def write_nifti(arr: np.ndarray, spacing_zyx: Tuple[float, float, float], path: str) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    sitk.WriteImage(img, path, useCompression=True)


def _write_png(arr: np.ndarray, path: str) -> None:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(arr, isVector=arr.ndim == 3), path)
