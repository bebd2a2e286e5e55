"""``nnunetv2-dca distill``: DCA's gain from unlabeled images, shipped as a plain nnU-Net model.

nnU-Net's own answer to unlabeled images is the offline recipe: predict them with a trained model, then retrain
nnU-Net on labeled + pseudo-labeled images. Here the teacher is a trained DCA model: every unlabeled image of its
dataset is predicted with the stock ``nnUNetPredictor`` (the DCA model's prediction: the experts' fused scores with
the default recipe, D_A with ``prediction_output="aggregate"``), optionally keeping only voxels whose top softmax
probability reaches ``--threshold`` (the rest become nnU-Net's ignore label, which its loss skips). The result is
a new raw dataset (labeled cases + pseudo-labeled ones, :mod:`nnunetv2_dca.data.pseudo_dataset`), planned and
preprocessed with a stock planner, ready for the stock ``nnUNetv2_train``; the student predicts at nnU-Net's cost (no experts, no D_A). When to use which: README.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional

from nnunetv2_dca.commands import run_command
from nnunetv2_dca.data.phantom import find_existing_dataset
from nnunetv2_dca.data.pseudo_dataset import (PROVENANCE_FILE, PseudoDatasetError, is_pseudo_label_dataset,
                                              read_source, write_pseudo_label_dataset)
from nnunetv2_dca.folders import clean_interrupted_dataset, remove_folder

# stock planners -> the plans identifier they write (nnunetv2/experiment_planning/...; ResEnc presets)
STOCK_PLANS = {"ExperimentPlanner": "nnUNetPlans", "nnUNetPlannerResEncM": "nnUNetResEncUNetMPlans",
               "nnUNetPlannerResEncL": "nnUNetResEncUNetLPlans", "nnUNetPlannerResEncXL": "nnUNetResEncUNetXLPlans"}


class DistillError(ValueError):
    """The model, the dataset or a setting does not allow distillation (the message names which)."""


@dataclass
class DistillConfig:
    model_folder: str                 # nnUNet_results/DatasetXXX_Name/Trainer__Plans__configuration
    out_id: int
    fold: str = "0"
    checkpoint: str = "checkpoint_final.pth"
    name: Optional[str] = None        # default: <source name>Distilled
    threshold: Optional[float] = None
    overwrite: bool = False
    plan: bool = True
    planner: str = "ExperimentPlanner"
    plans_name: Optional[str] = None  # default: STOCK_PLANS[planner]
    train: bool = False
    train_fold: str = "all"
    device: str = "cpu"
    num_processes: int = 1            # nnUNetPredictor's preprocessing / export workers


def parse_model_folder(model_folder: str) -> Dict[str, str]:
    """``.../DatasetXXX_Name/Trainer__Plans__configuration`` -> its parts (what nnU-Net names it)."""
    folder = os.path.abspath(model_folder.rstrip("/"))
    parts = os.path.basename(folder).split("__")
    dataset = os.path.basename(os.path.dirname(folder))
    m = re.fullmatch(r"Dataset(\d{3})_.+", dataset)
    if len(parts) != 3 or m is None:
        raise DistillError(f"{model_folder} is not an nnU-Net model folder (expected nnUNet_results/DatasetXXX_Name/"
                           f"<trainer>__<plans>__<configuration>)")
    return {"dataset": dataset, "dataset_id": m.group(1), "trainer": parts[0], "plans": parts[1],
            "configuration": parts[2], "folder": folder}


def confidence_filter(seg, probabilities, threshold: float, ignore_value: int):
    """``seg`` with every voxel whose top class probability is below ``threshold`` set to ``ignore_value``; returns
    (new seg, fraction of voxels ignored). ``probabilities``: (classes, *seg.shape)."""
    import numpy as np

    top = np.asarray(probabilities).max(axis=0)
    if top.shape != seg.shape:
        raise DistillError(f"probabilities of shape {top.shape} do not match the segmentation {seg.shape}")
    low = top < threshold
    out = np.where(low, ignore_value, seg).astype(seg.dtype)
    return out, float(low.mean()) if low.size else 0.0


def distill(cfg: DistillConfig) -> Dict:
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise DistillError("nnUNet_raw is not set (the source dataset is read and the new one written there)")
    if cfg.threshold is not None and not 0.0 < cfg.threshold <= 1.0:
        raise DistillError(f"--threshold must be in (0, 1], got {cfg.threshold}")
    if not 1 <= cfg.out_id <= 999:  # before the predictions, which take minutes
        raise DistillError(f"--out-id must be a dataset id in 1..999 (nnU-Net uses three digits), got {cfg.out_id}")
    if cfg.name is not None and not re.fullmatch(r"[A-Za-z0-9_\-]+", cfg.name):
        raise DistillError(f"--name {cfg.name!r} may only contain letters, digits, '_' and '-'")
    if cfg.plan and cfg.plans_name is None and cfg.planner not in STOCK_PLANS:
        raise DistillError(f"-pl {cfg.planner}: pass its plans identifier with -p (known: "
                           f"{', '.join(f'{k} -> {v}' for k, v in STOCK_PLANS.items())})")
    model = parse_model_folder(cfg.model_folder)
    if not os.path.isdir(model["folder"]):
        raise DistillError(f"model folder not found: {cfg.model_folder}")
    source = find_existing_dataset(raw, int(model["dataset_id"]))
    if source is None:
        raise DistillError(f"the model's dataset {model['dataset']} is not in nnUNet_raw ({raw})")
    from nnunetv2_dca.preprocessing.unlabeled import UnlabeledImageError, validate_unlabeled_images

    try:
        dj, cases = read_source(source)
        # nnU-Net's predictor would stop with a reader's traceback on the first unreadable image, after minutes
        folder = os.path.join(source, "imagesTrUnlabeled")
        validate_unlabeled_images({c: [os.path.join(folder, f) for f in files] for c, files in cases.items()}, dj)
    except (PseudoDatasetError, UnlabeledImageError) as e:
        raise DistillError(str(e)) from None
    ending = dj["file_ending"]
    clean_interrupted(raw, cfg.out_id)
    stale = check_target(source, cfg.out_id, cfg.overwrite)
    name = cfg.name or os.path.basename(source).split("_", 1)[1] + "Distilled"

    from nnunetv2_dca.inference import ModelInputError, load_model

    try:
        predictor = load_model(model["folder"], cfg.fold, cfg.checkpoint, cfg.device, tool="nnunetv2-dca distill")
    except ModelInputError as e:
        raise DistillError(str(e)) from None
    tmp = tempfile.mkdtemp(prefix=_SCRATCH.format(id=cfg.out_id), dir=raw)  # the predictions; removed below
    try:
        predictor.predict_from_files(os.path.join(source, "imagesTrUnlabeled"), tmp,
                                     save_probabilities=cfg.threshold is not None, overwrite=True,
                                     num_processes_preprocessing=cfg.num_processes,
                                     num_processes_segmentation_export=cfg.num_processes)
        common = {"model": model["folder"], "fold": cfg.fold, "checkpoint": cfg.checkpoint,
                  "prediction": "the DCA model's output (its trainer's prediction_output: fused experts or D_A), nnUNetPredictor",
                  "threshold": cfg.threshold}
        provenance: Dict[str, Dict] = {}
        if cfg.threshold is not None:
            provenance = _apply_threshold(predictor, tmp, list(cases), ending, cfg.threshold)
        target = write_pseudo_label_dataset(raw, source, tmp, cfg.out_id, name, provenance,
                                            description=f"distilled from the DCA model {model['folder']}",
                                            ignore_label=cfg.threshold is not None, overwrite=cfg.overwrite,
                                            common=common)
    except PseudoDatasetError as e:
        raise DistillError(str(e)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _drop_stale_preprocessed(stale, target)
    plans_name = cfg.plans_name or STOCK_PLANS.get(cfg.planner, "nnUNetPlans")
    train_cmd = ["nnUNetv2_train", str(cfg.out_id), model["configuration"], cfg.train_fold, "-tr", "nnUNetTrainer",
                 "-p", plans_name]
    plan_cmd = ["nnUNetv2_plan_and_preprocess", "-d", str(cfg.out_id), "-c", model["configuration"], "-pl",
                cfg.planner] + (["-overwrite_plans_name", cfg.plans_name] if cfg.plans_name else [])
    result = {"dataset": target, "dataset_id": cfg.out_id, "n_pseudo_labeled": len(cases),
              "n_labeled": len([c for c in os.listdir(os.path.join(source, "labelsTr")) if c.endswith(ending)]),
              "threshold": cfg.threshold, "plan_command": shlex.join(plan_cmd), "train_command": shlex.join(train_cmd)}
    if cfg.threshold is not None:
        result["ignored_voxel_fraction"] = {c: p["ignored_voxel_fraction"] for c, p in provenance.items()}
    if cfg.plan:
        _run(plan_cmd, planning=True)
    if cfg.train:
        if not cfg.plan:
            raise DistillError("--train needs the planning step (drop --no-plan)")
        _run(train_cmd)
    return result


def _apply_threshold(predictor, folder: str, cases: List[str], ending: str, threshold: float) -> Dict[str, Dict]:
    """Low-confidence voxels of each written pseudo-label -> the ignore label (max label + 1); npz files removed."""
    import numpy as np

    rw = predictor.plans_manager.image_reader_writer_class()
    ignore_value = max(predictor.label_manager.all_labels) + 1
    out: Dict[str, Dict] = {}
    for case in cases:
        seg_file = os.path.join(folder, case + ending)
        seg, props = rw.read_seg(seg_file)
        with np.load(os.path.join(folder, case + ".npz")) as z:
            probs = z["probabilities"]
        filtered, fraction = confidence_filter(seg[0], probs, threshold, ignore_value)
        rw.write_seg(filtered, seg_file, props)
        out[case] = {"ignored_voxel_fraction": fraction, "ignore_label": int(ignore_value)}
        for extra in (case + ".npz", case + ".pkl"):
            if os.path.exists(os.path.join(folder, extra)):
                os.remove(os.path.join(folder, extra))
    return out


_SCRATCH = ".distill-{id:03d}-"  # hidden folder of the teacher's predictions in nnUNet_raw (+ mkdtemp's 8 characters)


def clean_interrupted(raw: str, out_id: int) -> List[str]:
    """What a distill of ``out_id`` killed outright left: its hidden prediction folder in nnUNet_raw, the hidden
    build/aside folders of the dataset (:func:`nnunetv2_dca.folders.clean_interrupted_dataset`: an unfinished swap is
    undone) and a cut-short deletion of its stale preprocessed data. Prediction folders of earlier versions
    (``.distill-XXXXXXXX``, no id in the name) are named in one line, not deleted: they may belong to another id."""
    tool = "nnunetv2-dca distill"
    done = clean_interrupted_dataset(raw, out_id, tool=tool)
    pre = os.environ.get("nnUNet_preprocessed")
    if pre:
        done += clean_interrupted_dataset(pre, out_id, tool=tool)
    mine = re.compile(re.escape(_SCRATCH.format(id=out_id)) + r"[a-z0-9_]{8}")
    legacy = re.compile(r"\.distill-[a-z0-9_]{8}")
    old: List[str] = []
    for entry in sorted(os.listdir(raw)):
        path = os.path.join(raw, entry)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        if mine.fullmatch(entry):
            shutil.rmtree(path)
            done.append(path)
            print(f"{tool}: removed {path}, the predictions of an interrupted run for id {out_id}", file=sys.stderr,
                  flush=True)
        elif legacy.fullmatch(entry):
            old.append(path)
    if old:
        print(f"{tool}: note: {', '.join(old)}: predictions left by an interrupted distill of an earlier version "
              f"(any id); remove them yourself once no distill is running", file=sys.stderr, flush=True)
    return done


def id_folders(dataset_id: int) -> Dict[str, List[str]]:
    """nnUNet_raw / _preprocessed / _results -> their folders of the id (nnU-Net resolves an id by the
    ``DatasetXXX_`` prefix in all three)."""
    prefix = f"Dataset{dataset_id:03d}_"
    found: Dict[str, List[str]] = {}
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        base = os.environ.get(key)
        names = sorted(os.listdir(base)) if base and os.path.isdir(base) else []
        found[key] = [os.path.join(base, d) for d in names if d.startswith(prefix)
                      and os.path.isdir(os.path.join(base, d))]
    return found


def check_target(source: str, out_id: int, overwrite: bool) -> List[str]:
    """Refuse an id taken in nnUNet_raw, _preprocessed or _results, unless ``overwrite`` and the id is a dataset
    distill wrote (``pseudo_labels.json`` in nnUNet_raw) with every other folder of the id under the same name.
    Returns the id's nnUNet_preprocessed folders, stale once the dataset is replaced."""
    folders = id_folders(out_id)
    raw = folders["nnUNet_raw"]
    if any(os.path.abspath(f) == os.path.abspath(source) for f in raw):
        raise DistillError(f"--out-id {out_id} is the model's own dataset ({source})")
    taken = [f for found in folders.values() for f in found]
    if not taken:
        return []
    if not overwrite:
        raise DistillError(f"dataset id {out_id} already exists: {', '.join(taken)} (pass --overwrite to replace a "
                           f"dataset distill wrote, or choose another --out-id)")
    # the provenance file tells a dataset distill wrote from the user's own: only that one may be replaced
    if len(raw) != 1 or not is_pseudo_label_dataset(raw[0]):
        raise DistillError(f"--overwrite replaces only a dataset distill wrote ({PROVENANCE_FILE} in nnUNet_raw); id "
                           f"{out_id} is {', '.join(taken)}, left as it is: choose another --out-id")
    foreign = [f for f in taken if os.path.basename(f) != os.path.basename(raw[0])]
    if foreign:
        raise DistillError(f"--overwrite: {', '.join(foreign)} holds id {out_id} under another name than the "
                           f"distilled dataset {raw[0]}, left as it is: remove it yourself or choose another --out-id")
    return folders["nnUNet_preprocessed"]


def _drop_stale_preprocessed(folders: List[str], target: str) -> None:
    """A replaced dataset's old fingerprint, plans and preprocessed data must not outlive it (``folders``: the
    replaced dataset's own, from :func:`check_target`)."""
    for folder in folders:
        print(f"removing {folder}: preprocessed data of the dataset {target} replaced", flush=True)
        remove_folder(folder)  # gone at once; a kill -9 leaves a hidden .deleting- folder for the next run


def _run(cmd: List[str], planning: bool = False) -> None:
    env = dict(os.environ)
    if planning:  # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA): the CPU training knobs break it
        for key in ("nnUNet_n_proc_DA", "nnUNet_def_n_proc"):
            env.pop(key, None)
    run_command(cmd, env, passthrough=True, error=DistillError)
