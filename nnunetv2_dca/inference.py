"""Inference helpers shared by the measuring and picture tools (benchmark timing, GPU check, gates, pseudo-label
scoring): nnU-Net's own predictor loaded from a model folder as ``nnUNetv2_predict`` loads it, a case preprocessed
as nnU-Net preprocesses it for inference, and nnU-Net's sliding-window tiling with Gaussian stitching for outputs
its predictor does not return (gates, expert logits)."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import statistics
import sys
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np


class ModelInputError(ValueError):
    """A model folder, checkpoint or input file that cannot be used; the message names it."""




def time_network_inference(model_dir: str, images_folder: str, file_ending: str, device: str, tta: bool,
                           fold: str = "all") -> float:
    """Seconds per case of nnU-Net's sliding-window prediction (``predict_logits_from_preprocessed_data``, what
    ``nnUNetv2_predict`` runs per case) on already preprocessed test cases: start-up, model loading, preprocessing
    and export are left out, so the number compares the networks, not the process start."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.utils import create_lists_from_splitted_dataset_folder

    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=tta,
                                perform_everything_on_device=device != "cpu", device=torch.device(device),
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(model_dir, (fold,), "checkpoint_final.pth")
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    cases = create_lists_from_splitted_dataset_folder(images_folder, file_ending)
    seconds = []
    for files in cases:
        data, _, _ = preprocessor.run_case(files, None, predictor.plans_manager, predictor.configuration_manager,
                                           predictor.dataset_json)
        data = torch.from_numpy(data)
        t0 = time.perf_counter()
        predictor.predict_logits_from_preprocessed_data(data)
        seconds.append(time.perf_counter() - t0)
    return statistics.fmean(seconds) if seconds else float("nan")


def require_dca(network, tool: str = "this tool"):
    """The DCAUNet inside ``network`` (torch.compile / DDP wrappers removed), else a ModelInputError naming ``tool``."""
    from nnunetv2_dca.network.dca_unet import DCAUNet

    net = network
    for attr in ("_orig_mod", "module"):
        net = getattr(net, attr, net)
    if not isinstance(net, DCAUNet):
        raise ModelInputError(f"{tool} needs a DCA model: this model's network is {type(net).__name__}, which has no DFAM "
                         f"gates (train with -tr nnUNetTrainerDCA and DCA plans, -pl nnUNetPlannerDCA)")
    return net


def _load_checkpoint_head(ckpt: str) -> dict:
    """The checkpoint's dict, memory-mapped (its tensors are not read): cheap even for a large file."""
    import pickle

    import torch

    fix = "the file is damaged or not a checkpoint written by nnUNetv2_train; copy it again or pick another -chk"
    try:
        try:
            data = torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)
        except RuntimeError as e:
            if "mmap can only be used" not in str(e):
                raise
            data = torch.load(ckpt, map_location="cpu", weights_only=False)  # legacy (non-zip) format
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError) as e:
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
        raise ModelInputError(f"checkpoint {ckpt} cannot be loaded ({type(e).__name__}: {first[:200]}); {fix}") \
            from None
    if not isinstance(data, dict) or not isinstance(data.get("trainer_name"), str) or \
            not isinstance(data.get("init_args"), dict) or "network_weights" not in data:
        raise ModelInputError(f"checkpoint {ckpt} lacks nnU-Net's keys (trainer_name, init_args, network_weights); "
                              f"{fix}")
    return data


def check_model_folder(model_folder: str, ckpt: str) -> None:
    """What nnU-Net's ``initialize_from_trained_model_folder`` reads, checked first so that a damaged or foreign file
    ends in one line naming it: dataset.json and plans.json (JSON objects with nnU-Net's keys), the checkpoint
    (loadable, nnU-Net's keys, a configuration of plans.json) and its trainer class (findable by name)."""
    from nnunetv2_dca.discovery import find_registered_class
    from nnunetv2_dca.errors import read_dataset_json, read_json

    fix = "copy the model folder (nnUNetv2_train's output) again"
    read_dataset_json(os.path.join(model_folder, "dataset.json"))
    plans = read_json(os.path.join(model_folder, "plans.json"), "plans.json of the model", fix)
    configurations = plans.get("configurations")
    if not isinstance(configurations, dict):
        raise ModelInputError(f"{model_folder}/plans.json has no 'configurations' object; {fix}")
    data = _load_checkpoint_head(ckpt)
    configuration = data["init_args"].get("configuration")
    if configuration not in configurations:
        raise ModelInputError(f"checkpoint {ckpt} was trained with configuration {configuration!r}, which "
                              f"{model_folder}/plans.json does not have ({', '.join(sorted(configurations))}); {fix}")
    trainer = data["trainer_name"]
    if find_registered_class(trainer) is None:  # not ours: nnU-Net's own search (its trainer tree, nnUNet_extTrainer)
        from nnunetv2.inference.predict_from_raw_data import recursive_find_trainer_class_by_name

        try:
            with contextlib.redirect_stdout(io.StringIO()):
                recursive_find_trainer_class_by_name(trainer)
        except (ImportError, RuntimeError, AssertionError) as e:  # not found / a module it cannot import here
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
            raise ModelInputError(f"checkpoint {ckpt} names the trainer class {trainer!r}, which neither nnunetv2-dca "
                                  f"nor nnU-Net can provide ({type(e).__name__}: {first[:160]}): install the package "
                                  f"that defines it, or use a model trained with -tr nnUNetTrainerDCA") from None


def load_model(model_folder: str, fold="0", checkpoint: str = "checkpoint_final.pth", device: str = "cpu",
               tile_step_size: float = 0.5, dca_only: bool = True, tool: str = "this tool"):
    """nnU-Net's predictor for one fold of a trained model; with ``dca_only`` (default) ``predictor.network`` is
    checked to be a DCAUNet."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    fold = str(fold)
    ckpt = os.path.join(model_folder, f"fold_{fold}", checkpoint)
    if not os.path.isfile(ckpt):
        folds = sorted(d for d in os.listdir(model_folder) if d.startswith("fold_"))
        raise ModelInputError(f"checkpoint not found: {ckpt} (fold -f {fold}, --checkpoint {checkpoint}; folds in the "
                         f"model folder: {', '.join(folds) or 'none'})")
    if device not in ("cpu", "cuda", "mps"):
        raise ModelInputError(f"-device must be cpu, cuda or mps, got {device!r}")
    check_model_folder(model_folder, ckpt)
    with contextlib.redirect_stdout(sys.stderr):  # nnU-Net's notes must not mix with the numbers on stdout
        predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=False,
                                    perform_everything_on_device=device != "cpu", device=torch.device(device),
                                    verbose=False, verbose_preprocessing=False, allow_tqdm=False)
        try:
            predictor.initialize_from_trained_model_folder(model_folder, (fold if fold == "all" else int(fold),),
                                                           checkpoint)
        except RuntimeError as e:  # torch's load_state_dict: weights of another network than plans.json builds
            if not str(e).startswith("Error(s) in loading state_dict"):
                raise
            raise ModelInputError(f"checkpoint {ckpt} does not fit the network that {model_folder}/plans.json "
                                  f"builds ({str(e).splitlines()[0]}): checkpoint and plans come from different "
                                  f"trainings; copy the whole model folder of one training") from None
    if dca_only:
        require_dca(predictor.network, tool)
    return predictor


def expand_image_files(image_files: Sequence[str], num_channels: int, file_ending: str,
                       channel_names: Mapping[str, str]) -> List[str]:
    """The case's channel files in order. One ``<case>_0000<ending>`` file stands for all channels of the case."""
    files = [str(f) for f in image_files]
    if len(files) == 1 and num_channels > 1:
        m = re.fullmatch(r"(.*)_0000" + re.escape(file_ending), files[0])
        if m:
            files = [f"{m.group(1)}_{c:04d}{file_ending}" for c in range(num_channels)]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise ModelInputError(f"image file(s) not found: {', '.join(missing)}")
    wrong = [f for f in files if not f.endswith(file_ending)]
    if wrong:
        raise ModelInputError(f"image file(s) {', '.join(wrong)} do not end in {file_ending!r}, the file_ending of the "
                         f"model's dataset.json")
    if len(files) != num_channels:
        names = ", ".join(f"{k}: {v}" for k, v in channel_names.items())
        raise ModelInputError(f"the model expects {num_channels} channel file(s) per case ({names}; named "
                         f"<case>_0000{file_ending}, <case>_0001{file_ending}, ...), got {len(files)}: "
                         f"{', '.join(files)}")
    return files


def case_name(image_file: str, file_ending: str) -> str:
    base = os.path.basename(image_file)
    if base.endswith(file_ending):
        base = base[: -len(file_ending)]
    return re.sub(r"_\d{4}$", "", base)


def preprocess_case(predictor, image_files: Sequence[str], reference_file: Optional[str] = None
                    ) -> Tuple[np.ndarray, Optional[np.ndarray], Dict]:
    """(data C x spatial float32, reference spatial int or None, properties), preprocessed as nnU-Net does for
    inference (the reference as a segmentation through the same call). Arrays in nnU-Net's transposed order."""
    from nnunetv2_dca.imagefile import check_image_file

    pm = predictor.plans_manager
    rw = pm.image_reader_writer_class()
    try:
        data, props = rw.read_images(list(image_files))
    except Exception as e:  # nnU-Net's readers raise plain exceptions on channel mismatches
        first = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())
        raise ModelInputError(f"cannot read the image files {', '.join(image_files)}: {first}") from None
    seg = None
    if reference_file is not None:
        if not os.path.isfile(reference_file):
            raise ModelInputError(f"reference file not found: {reference_file}")
        try:
            check_image_file(reference_file)
            seg, _ = rw.read_seg(reference_file)
        except (RuntimeError, OSError, EOFError, ValueError) as e:  # SimpleITK: RuntimeError on a foreign file
            text = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip()) or type(e).__name__
            raise ModelInputError(f"cannot read the reference file {reference_file}: {text}") from None
        if tuple(seg.shape[1:]) != tuple(data.shape[1:]):
            raise ModelInputError(f"reference {reference_file} has shape {tuple(seg.shape[1:])}, the image "
                             f"{image_files[0]} has {tuple(data.shape[1:])}: they must be the same case on the same "
                             f"grid")
    cm = predictor.configuration_manager
    preprocessor = cm.preprocessor_class(verbose=False)
    data, seg_pp, props = preprocessor.run_case_npy(data, seg, props, pm, cm, predictor.dataset_json)
    reference = None
    if reference_file is not None:
        reference = np.asarray(seg_pp[0]).astype(np.int32)
        reference[reference < 0] = 0  # outside the nonzero region: background, as nnU-Net's training treats it
    return np.asarray(data, dtype=np.float32), reference, props


def preprocessed_spacing(predictor, props: Mapping) -> List[float]:
    """Target spacing in transposed order (for 2D configurations the first axis keeps the original spacing)."""
    target = list(predictor.configuration_manager.spacing)
    original = [props["spacing"][i] for i in predictor.plans_manager.transpose_forward]
    if len(target) < len(original):
        target = [original[0]] + target
    return [float(s) for s in target]


# ------------------------------------------------------------------------------------------------ sliding window
def tile_slicers(image_size: Sequence[int], patch_size: Sequence[int], tile_step_size: float):
    """nnU-Net's tiles (as ``nnUNetPredictor._internal_get_sliding_window_slicers``): index tuples into the
    C x spatial array. A 2D patch on a 3D array (2D configuration) tiles every slice of axis 0 separately."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    patch_size = [int(p) for p in patch_size]
    slicers = []
    if len(patch_size) < len(image_size):
        steps = compute_steps_for_sliding_window(tuple(image_size[1:]), tuple(patch_size), tile_step_size)
        for d in range(image_size[0]):
            for sx in steps[0]:
                for sy in steps[1]:
                    slicers.append((slice(None), d, slice(sx, sx + patch_size[0]), slice(sy, sy + patch_size[1])))
    else:
        steps = compute_steps_for_sliding_window(tuple(image_size), tuple(patch_size), tile_step_size)
        for start in itertools.product(*steps):
            slicers.append((slice(None), *[slice(s, s + p) for s, p in zip(start, patch_size)]))
    return slicers


def stitch_tiles(forward: Callable, data, patch_size: Sequence[int], tile_step_size: float = 0.5,
                 use_gaussian: bool = True, device=None) -> List:
    """Run ``forward`` (a 1 x C x patch tensor -> a sequence of 1 x K_i x patch tensors) on nnU-Net's sliding-window
    tiles of ``data`` (C x spatial) and stitch each output with Gaussian (or, ``use_gaussian=False``, plain)
    averaging, as ``nnUNetPredictor`` does for its logits. Float32 CPU tensors K_i x spatial, cropped back to the size
    of ``data``. No gradients."""
    import torch
    from acvl_utils.cropping_and_padding.padding import pad_nd_image
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    device = torch.device("cpu") if device is None else torch.device(device)
    data = torch.as_tensor(data, dtype=torch.float32)
    padded, revert = pad_nd_image(data, list(patch_size), "constant", {"value": 0}, True, None)
    spatial = padded.shape[1:]
    sums: Optional[List] = None
    weight_sum = torch.zeros(spatial, dtype=torch.float32)
    weight = compute_gaussian(tuple(int(p) for p in patch_size), sigma_scale=1. / 8, value_scaling_factor=10,
                              dtype=torch.float32, device=torch.device("cpu")) if use_gaussian \
        else torch.ones(tuple(int(p) for p in patch_size))
    with torch.no_grad():
        for sl in tile_slicers(spatial, patch_size, tile_step_size):
            outputs = forward(padded[sl][None].to(device))
            if sums is None:
                sums = [torch.zeros((o.shape[1], *spatial), dtype=torch.float32) for o in outputs]
            for acc, o in zip(sums, outputs):
                acc[sl] += o[0].float().cpu() * weight
            weight_sum[sl[1:]] += weight
    keep = (slice(None), *revert[1:])
    return [(acc / weight_sum)[keep] for acc in sums or []]
