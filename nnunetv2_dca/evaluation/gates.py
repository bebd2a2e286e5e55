"""``nnunetv2-dca gates``: a picture of DCA's DFAM gates for one case.

For one case and a trained DCA model, a PNG with one row of panels: the image slice, one panel per expert with that
expert's DFAM gate weight (softmax over experts, per voxel, in [0, 1], one shared colour scale) over the image and the
outline of the classes that expert owns in the prediction, the prediction, and the reference if one is given. The
title gives, for the whole case, the mean gate weight of every expert inside the voxels predicted as tail classes and
inside the predicted background: the seed's claim ("gives the tail expert higher attention in small organ regions")
can be read from the numbers as well as from the colours.

How the maps are computed
-------------------------
* The model is loaded with nnU-Net's own ``nnUNetPredictor.initialize_from_trained_model_folder`` (one fold, the given
  checkpoint; the network must be a :class:`~nnunetv2_dca.network.dca_unet.DCAUNet`).
* The case is preprocessed with the configuration's own preprocessor (``configuration_manager.preprocessor_class``,
  ``run_case_npy``): transpose, crop to the nonzero region, normalise, resample to the target spacing. A reference
  goes through the same call as a segmentation (nnU-Net's segmentation resampling), so it lies voxel for voxel on the
  image.
* The network's ``all_outputs`` runs on nnU-Net's sliding-window tiles (``compute_steps_for_sliding_window``
  with the predictor's tile step, the image padded to at least the patch size with ``pad_nd_image`` as nnU-Net does;
  2D configurations tile each slice). Tiles are combined with nnU-Net's Gaussian importance weights
  (``compute_gaussian``), for the aggregate logits and the gate maps alike; a weighted mean of softmax weights still
  lies in [0, 1] and sums to 1 over the experts. The prediction is the model's own output: the experts' fused scores
  for the default recipe (``prediction_output="experts"``), D_A's logits otherwise. The gate map is that of the
  full-resolution DFAM stage (``gates[0]``). No test-time mirroring: the prediction can differ slightly from
  ``nnUNetv2_predict``'s. The stitched maps are float32 on the CPU: about (classes + experts + 1) x 4 bytes per
  preprocessed voxel.
* The padding is cropped off again, and the arrays are transposed back to the axis order of the image files
  (nnU-Net's ``transpose_backward``).

**Space of the picture:** nnU-Net's preprocessed space, i.e. the image cropped to its nonzero region and resampled
to the configuration's target spacing, in the axis order of the image array as nnU-Net's reader returns it (for
NIfTI read with SimpleITK: z, y, x). ``--slice`` indexes axis 0 of that array (the axial slice for such CT images);
for 2D images (shape 1 x H x W) the only slice is 0. Slice numbers therefore refer to the preprocessed array, not to
the original file, unless the target spacing equals the file's spacing and nothing was cropped.

Size: one command (maps, numbers per region, its CLI; the picture is drawn by gates_plot.py); the model loading,
preprocessing and sliding-window stitching it shares with other tools live in :mod:`nnunetv2_dca.inference`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_dca.evaluation.gates_plot import GATE_STAGE, fmt_gate, plot_gates, window_ct
from nnunetv2_dca.inference import (ModelInputError, case_name, expand_image_files, load_model, preprocess_case,
                                    preprocessed_spacing, require_dca, stitch_tiles)
from nnunetv2_dca.planning.grouping import group_names

SPACE = ("nnU-Net preprocessed space (cropped to the nonzero region, resampled to the target spacing), axis order of "
         "the image array")


# A setting or input file that makes the gate picture impossible (the message names it): the same class as the
# shared model/case helpers' errors, which most of the gates tool's checks are.
GatesError = ModelInputError


# ----------------------------------------------------------------------------------------------- model and inputs
def resolve_model_folder(model_folder: Optional[str] = None, dataset: Optional[str] = None,
                         trainer: str = "nnUNetTrainerDCA", plans: str = "nnUNetPlansDCA",
                         configuration: str = "3d_fullres") -> str:
    """``-m`` as given, or nnUNet_results/DatasetX/Trainer__Plans__config from ``-d -tr -p -c``; checked to hold a
    trained nnU-Net model (plans.json and dataset.json)."""
    if model_folder is None:
        if dataset is None:
            raise GatesError("give the trained model either as -m MODEL_FOLDER or as -d DATASET [-tr -p -c]")
        results = os.environ.get("nnUNet_results")
        if not results:
            raise GatesError("nnUNet_results is not set: export nnUNet_results=/path/to/nnUNet_results, or give the "
                             "model folder with -m")
        from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

        try:
            name = maybe_convert_to_dataset_name(dataset)
        except RuntimeError as e:
            raise GatesError(f"dataset -d {dataset}: {e}") from None
        model_folder = os.path.join(results, name, f"{trainer}__{plans}__{configuration}")
    if not os.path.isdir(model_folder):
        raise GatesError(f"model folder not found: {model_folder} (a trained model folder looks like "
                         f"nnUNet_results/DatasetXXX_Name/Trainer__Plans__configuration)")
    for f in ("plans.json", "dataset.json"):
        if not os.path.isfile(os.path.join(model_folder, f)):
            raise GatesError(f"{model_folder} is not a trained nnU-Net model folder: {f} is missing")
    return model_folder


def sliding_window_gates(network, data, patch_size: Sequence[int], tile_step_size: float = 0.5,
                         use_gaussian: bool = True, device=None):
    """The model's prediction logits (K x spatial: D_A's, or the experts' fused scores when the network's
    ``prediction_output`` is "experts", as nnUNetv2_predict returns them) and full-resolution gate maps
    (G x spatial) of ``data`` (C x spatial), stitched from nnU-Net's sliding-window tiles
    (:func:`nnunetv2_dca.inference.stitch_tiles`)."""
    import torch

    from nnunetv2_dca.network.fusion import fuse_expert_logits

    net = require_dca(network, "gates")
    device = torch.device("cpu") if device is None else torch.device(device)

    first = (lambda t: t[0] if isinstance(t, (list, tuple)) else t)

    def forward(x):
        out = net.all_outputs(x)
        if net.prediction_output == "experts":  # the model's prediction, not D_A's (a training aid then)
            return fuse_expert_logits([first(e) for e in out.experts], net.class_groups,
                                      net.prediction_fusion), out.gates[0]
        return first(out.aggregate), out.gates[0]

    net.to(device)
    was_training = net.training
    net.eval()
    try:
        logits, gates = stitch_tiles(forward, data, patch_size, tile_step_size, use_gaussian, device)
    finally:
        net.train(was_training)
    return logits, gates


# ------------------------------------------------------------------------------------------------------ numbers
def group_regions(labels: np.ndarray, class_groups: Sequence[Sequence[int]], names: Sequence[str],
                  ignore_label: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Masks: 'background' (label 0) and one per group (its classes); ignore-label voxels are in none."""
    regions = {"background": labels == 0}
    for name, members in zip(names, class_groups):
        regions[name] = np.isin(labels, list(members))
    if ignore_label is not None:
        for k in regions:
            regions[k] &= labels != ignore_label
    return regions


def gate_statistics(gates: np.ndarray, labels: np.ndarray, class_groups: Sequence[Sequence[int]],
                    names: Sequence[str], ignore_label: Optional[int] = None) -> Dict[str, Dict]:
    """Per region (background, then each group's classes in ``labels``): voxel count and the mean gate weight of
    every expert over those voxels (None for an empty region). ``gates``: G x spatial, ``labels``: spatial."""
    gates = np.asarray(gates)
    if gates.shape[1:] != labels.shape:
        raise ValueError(f"gate maps {gates.shape[1:]} and label map {labels.shape} differ in shape")
    stats = {}
    for region, mask in group_regions(labels, class_groups, names, ignore_label).items():
        n = int(mask.sum())
        stats[region] = {"voxels": n, "mean_gate": {e: (float(gates[g][mask].mean()) if n else None)
                                                    for g, e in enumerate(names)}}
    return stats


def choose_slice(prediction: np.ndarray, class_groups: Sequence[Sequence[int]], names: Sequence[str]
                 ) -> Tuple[int, str]:
    """Slice (axis 0) with the most predicted voxels of the last (tail) group; if none, with the most predicted
    foreground; if none, the middle slice. Returns (index, reason for the title)."""
    tail = np.isin(prediction, list(class_groups[-1]))
    axes = tuple(range(1, prediction.ndim))
    if tail.any() and len(class_groups) > 1:
        return int(tail.sum(axes).argmax()), f"most predicted {names[-1]} voxels"
    fg = prediction > 0
    if fg.any():
        return int(fg.sum(axes).argmax()), "most predicted foreground voxels"
    return prediction.shape[0] // 2, "middle slice, nothing predicted"


# ------------------------------------------------------------------------------------------------------ the job
def _is_rgb(channel_names: Mapping[str, str]) -> bool:
    names = [str(v).strip().lower() for _, v in sorted(channel_names.items(), key=lambda kv: int(kv[0]))]
    return names in (["r", "g", "b"], ["red", "green", "blue"])


def compute_gates(predictor, image_files: Sequence[str], reference_file: Optional[str] = None) -> Dict:
    """Preprocess, run, stitch. Arrays in the image files' axis order (transpose_backward applied):
    ``data`` C x spatial, ``gates`` G x spatial, ``prediction`` spatial, ``reference`` spatial or None, ``spacing``."""
    import torch

    net = require_dca(predictor.network, "gates")
    data, reference, props = preprocess_case(predictor, image_files, reference_file)
    spacing_t = preprocessed_spacing(predictor, props)
    logits, gates = sliding_window_gates(predictor.network, torch.from_numpy(data),
                                         predictor.configuration_manager.patch_size, predictor.tile_step_size,
                                         predictor.use_gaussian, predictor.device)
    prediction = predictor.label_manager.convert_logits_to_segmentation(logits)
    prediction = np.asarray(prediction.numpy() if hasattr(prediction, "numpy") else prediction).astype(np.int32)
    back = list(predictor.plans_manager.transpose_backward)
    with_channel = [0, *[b + 1 for b in back]]
    return {
        "data": data.transpose(with_channel),
        "gates": gates.numpy().transpose(with_channel),
        "prediction": prediction.transpose(back),
        "reference": None if reference is None else reference.transpose(back),
        "spacing": [spacing_t[b] for b in back],
        "class_groups": [list(g) for g in net.class_groups],
        "prediction_source": ("(fused experts, the model's output)" if net.prediction_output == "experts"
                              else "(aggregation decoder D_A)"),
    }


def run_gates(image_files: Sequence[str], output: str, model_folder: Optional[str] = None,
              dataset: Optional[str] = None, trainer: str = "nnUNetTrainerDCA", plans: str = "nnUNetPlansDCA",
              configuration: str = "3d_fullres", fold="0", checkpoint: str = "checkpoint_final.pth",
              reference_file: Optional[str] = None, slice_index: Optional[int] = None, device: str = "cpu",
              tile_step_size: float = 0.5, predictor=None) -> Dict:
    """Write the PNG; return the numbers (JSON-ready dict). ``predictor`` skips loading (tests)."""
    if not output.lower().endswith(".png"):
        raise GatesError(f"-o must name a .png file, got {output}")
    if predictor is None:
        folder = resolve_model_folder(model_folder, dataset, trainer, plans, configuration)
        predictor = load_model(folder, fold, checkpoint, device, tile_step_size, tool="gates")
    else:
        folder = model_folder
    dj = predictor.dataset_json
    file_ending = dj.get("file_ending", "")
    channel_names = dj.get("channel_names", dj.get("modality", {}))
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    n_ch = determine_num_input_channels(predictor.plans_manager, predictor.configuration_manager, dj)
    files = expand_image_files(image_files, n_ch, file_ending, channel_names)
    maps = compute_gates(predictor, files, reference_file)

    names = group_names(len(maps["class_groups"]))
    groups = maps["class_groups"]
    pred, ref, gates = maps["prediction"], maps["reference"], maps["gates"]
    ignore = predictor.label_manager.ignore_label
    n_slices = pred.shape[0]
    if slice_index is None:
        slice_index, reason = choose_slice(pred, groups, names)
    else:
        if not -n_slices <= slice_index < n_slices:
            raise GatesError(f"--slice {slice_index} is outside the preprocessed image, which has {n_slices} slices "
                             f"along axis 0 (shape {tuple(pred.shape)}, {SPACE})")
        slice_index, reason = slice_index % n_slices, "chosen with --slice"
    from nnunetv2_dca.evaluation.evaluate import labels_from_dataset_json

    try:
        class_names, _ = labels_from_dataset_json(dj)
    except ValueError:
        class_names = {}
    case = case_name(files[0], file_ending)
    result = {
        "case": case,
        "image_files": [os.path.abspath(f) for f in files],
        "reference_file": os.path.abspath(reference_file) if reference_file else None,
        "model_folder": os.path.abspath(folder) if folder else None,
        "fold": str(fold), "checkpoint": checkpoint,
        "gate_stage": GATE_STAGE,
        "space": SPACE,
        "space_short": "preprocessed space",
        "shape": list(pred.shape),
        "spacing": maps["spacing"],
        "slice_axis": 0,
        "slice": int(slice_index),
        "slice_reason": reason,
        "experts": names,
        "class_groups": {n: g for n, g in zip(names, groups)},
        "channel": str(channel_names.get("0", channel_names.get(0, "channel 0"))),
        "prediction_source": maps["prediction_source"],
        "prediction": gate_statistics(gates, pred, groups, names),
        "reference": None if ref is None else gate_statistics(gates, ref, groups, names, ignore),
        "slice_prediction": gate_statistics(gates[:, slice_index], pred[slice_index], groups, names),
        "output": os.path.abspath(output),
    }
    rgb = n_ch == 3 and _is_rgb(channel_names)
    if rgb:
        image = np.stack([window_ct(maps["data"][c, slice_index]) for c in range(3)], -1)
    else:
        image = maps["data"][0, slice_index]
    sp = maps["spacing"]
    aspect = float(sp[1] / sp[2]) if len(sp) >= 3 and sp[2] > 0 else 1.0
    plot_gates(output, image, gates[:, slice_index], pred[slice_index],
               None if ref is None else ref[slice_index], result, class_names, aspect=aspect, rgb=rgb)
    return result


def format_table(result: Mapping) -> str:
    names = result["experts"]
    lines = [f"case {result['case']}, slice {result['slice']} of axis 0 ({result['slice_reason']}); "
             f"{result['space']}",
             f"mean DFAM gate weight ({result['gate_stage']}) per expert, over the whole case:"]
    for source in ("prediction", "reference"):
        stats = result.get(source)
        if not stats:
            continue
        lines.append(f"  region from the {source}:")
        lines.append("    " + f"{'region':12s} {'voxels':>9} " + " ".join(f"{n:>8s}" for n in names))
        for region, entry in stats.items():
            lines.append("    " + f"{region:12s} {entry['voxels']:>9d} "
                         + " ".join(f"{fmt_gate(entry['mean_gate'][n]):>8s}" for n in names))
    lines.append(f"figure: {result['output']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------- CLI
def _configure(p: argparse.ArgumentParser) -> None:
    model = p.add_argument_group("model (either -m, or -d with -tr/-p/-c as for nnUNetv2_predict)")
    model.add_argument("-m", "--model-folder", default=None,
                       help="trained model folder nnUNet_results/DatasetXXX_Name/Trainer__Plans__configuration "
                            "(as nnUNetv2_predict_from_modelfolder takes)")
    model.add_argument("-d", default=None, help="dataset name or id (with -tr, -p, -c; needs nnUNet_results)")
    model.add_argument("-tr", default="nnUNetTrainerDCA", help="trainer (default: nnUNetTrainerDCA)")
    model.add_argument("-p", default="nnUNetPlansDCA", help="plans identifier (default: nnUNetPlansDCA)")
    model.add_argument("-c", default="3d_fullres", help="configuration (default: 3d_fullres)")
    model.add_argument("-f", default="0", help="fold (default: 0; 'all' for a model trained on fold all)")
    model.add_argument("--checkpoint", "-chk", default="checkpoint_final.pth",
                       help="checkpoint file in the fold folder (default: checkpoint_final.pth)")
    p.add_argument("-i", nargs="+", required=True,
                   help="image file(s) of one case, one per channel (<case>_0000<ending>, _0001, ...); the _0000 "
                        "file alone stands for all channels of the case")
    p.add_argument("-ref", default=None, help="optional reference label file of the same case")
    p.add_argument("-o", required=True, help="output PNG")
    p.add_argument("--slice", type=int, default=None,
                   help="slice index along axis 0 of the preprocessed image (axial for CT NIfTI); default: the "
                        "slice with the most predicted tail voxels, else the most predicted foreground")
    p.add_argument("-device", default="cpu", help="cpu (default), cuda or mps")
    p.add_argument("-step_size", type=float, default=0.5, help="sliding-window tile step, as nnUNetv2_predict "
                                                               "(default 0.5)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON instead of a table")


def run_from_args(args: argparse.Namespace) -> int:
    result = run_gates(args.i, args.o, model_folder=args.model_folder, dataset=args.d, trainer=args.tr,
                       plans=args.p, configuration=args.c, fold=args.f, checkpoint=args.checkpoint,
                       reference_file=args.ref, slice_index=args.slice, device=args.device,
                       tile_step_size=args.step_size)
    if args.json:
        from nnunetv2_dca.evaluation.evaluate import json_ready

        print(json.dumps(json_ready(result)))
    else:
        print(format_table(result))
    return 0


DESCRIPTION = ("PNG of one image slice with each DCA expert's DFAM gate weight as an overlay, next to the prediction "
               "and (if given) the reference; prints the mean gate weight of every expert per predicted group region")


def add_gates_parser(sub) -> None:
    """Register ``gates`` on an argparse subparsers object."""
    p = sub.add_parser("gates", help="picture of the DFAM gate weights of a trained DCA model for one case",
                       description=DESCRIPTION + ". " + SPACE.capitalize() + ".")
    _configure(p)
    p.set_defaults(func=run_from_args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="nnunetv2-dca gates", description=DESCRIPTION)
    _configure(parser)
    try:
        return run_from_args(parser.parse_args(argv))
    except (ValueError, FileNotFoundError) as e:  # as nnunetv2_dca.cli.main reports them
        print(f"nnunetv2-dca gates: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
