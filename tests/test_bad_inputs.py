"""Probe suite: every command that reads user input, fed each kind of bad input that applies to it, must end in ONE
line naming the file, id or setting (``<command>: error: ...``), exit != 0, print no traceback, and leave the tree
around it untouched (tests/treesnap.py over the whole nnU-Net base, before vs after). Rules: nnunetv2_dca/errors.py,
docs/what-commands-write.md.

All cases share one module-scoped world (about 20 s to build): a small 2D-planned phantom (``Dataset701_Good``), a
model folder with untrained DCA weights for its plans (gates, distill: no training anywhere), broken copies of the
dataset under their own ids, and broken files. Every case fails before any training, prediction or preprocessing
starts; the whole module takes about 2-3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import pytest

from conftest import BIN, fresh_env, run_cmd
from treesnap import changed, snapshot

GOOD = 701
GOOD_NAME = "Dataset701_Good"
PLANS = "nnUNetPlansDCA_CPU"
MODEL_DIR = f"nnUNetTrainerDCA__{PLANS}__2d"
ENDING = ".nii.gz"
# what the last line of a refused command looks like: "<command>: error: ..." (gpu-check: "<command>: ...")
LAST_LINE = re.compile(r"^(nnunetv2-dca [\w-]+|nnUNetv2_\w+): ")

# broken copies of the good dataset: id -> name (what is broken is made in _break)
VARIANTS = {702: "BadJson", 703: "JsonList", 704: "NoJson", 705: "NoEnding", 706: "NoLabels", 707: "Empty",
            708: "TextLabel", 709: "LabelValue", 710: "ShapeMismatch", 711: "TextUnlabeled", 712: "MissingLabel",
            713: "TruncLabel", 714: "NoUnlabeled", 715: "TextImage", 722: "UnlNoSuffix", 723: "UnlCollide",
            724: "UnlTrunc", 726: "UnlListedBad", 730: "Groups", 731: "PlansBad",
            732: "FingerprintBad"}


@dataclass
class World:
    root: Path
    env: dict
    cwd: Path
    files: Path

    def ds(self, dataset_id: int) -> Path:
        name = GOOD_NAME if dataset_id == GOOD else f"Dataset{dataset_id}_{VARIANTS[dataset_id]}"
        return self.root / "nnUNet_raw" / name

    def pre(self, dataset_id: int) -> Path:
        return self.root / "nnUNet_preprocessed" / self.ds(dataset_id).name

    @property
    def model(self) -> Path:
        return self.root / "nnUNet_results" / GOOD_NAME / MODEL_DIR


# ------------------------------------------------------------------------------------------------------ the world
def _nifti(path: Path, array: np.ndarray, spacing=(5.0, 5.0, 5.0)) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def _read(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a cut-off gzip stream (SimpleITK would zero-fill it)


def _text(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not an image\n")


def _break(w: World, dataset_id: int) -> None:
    """Copy the good dataset under ``dataset_id`` and break it as its name says."""
    ds = w.ds(dataset_id)
    shutil.copytree(w.ds(GOOD), ds)
    os.remove(ds / "phantom.json")  # not a phantom: phantom --overwrite must leave it alone
    name, dj_file = VARIANTS[dataset_id], ds / "dataset.json"
    dj = json.loads(dj_file.read_text())
    if name == "BadJson":
        dj_file.write_text('{"name": "x", "labels": {')
    elif name == "JsonList":
        dj_file.write_text("[1, 2]")
    elif name == "NoJson":
        dj_file.unlink()
    elif name == "NoEnding":
        dj.pop("file_ending")
        dj_file.write_text(json.dumps(dj))
    elif name == "NoLabels":
        dj["labels"] = ["background", "liver"]
        dj_file.write_text(json.dumps(dj))
    elif name == "Empty":
        for sub in ("imagesTr", "labelsTr"):
            shutil.rmtree(ds / sub)
            (ds / sub).mkdir()
    elif name == "TextLabel":
        _text(ds / "labelsTr" / f"phantom_0000{ENDING}")
    elif name == "LabelValue":
        label = _read(ds / "labelsTr" / f"phantom_0001{ENDING}")
        label[0, 0, 0] = 20  # dataset.json has 0..13
        _nifti(ds / "labelsTr" / f"phantom_0001{ENDING}", label)
    elif name == "ShapeMismatch":
        label = _read(ds / "labelsTr" / f"phantom_0001{ENDING}")
        _nifti(ds / "labelsTr" / f"phantom_0001{ENDING}", np.ascontiguousarray(label[:, :40, :40]))
    elif name in ("TextUnlabeled",):
        _text(ds / "imagesTrUnlabeled" / f"phantom_0002_0000{ENDING}")
    elif name == "MissingLabel":
        os.remove(ds / "labelsTr" / f"phantom_0001{ENDING}")
    elif name == "TruncLabel":
        _truncate(ds / "labelsTr" / f"phantom_0001{ENDING}")
    elif name == "NoUnlabeled":
        shutil.rmtree(ds / "imagesTrUnlabeled")
    elif name == "TextImage":
        _text(ds / "imagesTr" / f"phantom_0000_0000{ENDING}")
    elif name == "UnlNoSuffix":
        os.rename(ds / "imagesTrUnlabeled" / f"phantom_0002_0000{ENDING}", ds / "imagesTrUnlabeled" / f"extra{ENDING}")
    elif name == "UnlCollide":  # an unlabeled image named like a labeled case
        shutil.copy(ds / "imagesTrUnlabeled" / f"phantom_0002_0000{ENDING}",
                    ds / "imagesTrUnlabeled" / f"phantom_0000_0000{ENDING}")
    elif name == "UnlTrunc":
        _truncate(ds / "imagesTrUnlabeled" / f"phantom_0002_0000{ENDING}")
    elif name == "UnlListedBad":
        dj["unlabeled_images"] = ["a_0000.nii.gz"]
        dj_file.write_text(json.dumps(dj))
    # "Groups": a good copy whose nnUNet_preprocessed/dca_groups.json the planner cases break; "PlansBad",
    # "FingerprintBad": good copies whose nnUNet_preprocessed files are broken (world fixture)


def _preprocessed_copy(w: World, dataset_id: int) -> None:
    """nnUNet_preprocessed of the good dataset under another id: dataset.json, fingerprint (without class counts,
    as nnU-Net's stock extractor writes it, so the DCA planner counts the labels itself) and the plans."""
    src, dst = w.pre(GOOD), w.pre(dataset_id)
    dst.mkdir(parents=True)
    shutil.copy(w.ds(GOOD) / "dataset.json", dst / "dataset.json")
    fingerprint = json.loads((src / "dataset_fingerprint.json").read_text())
    fingerprint.pop("class_voxel_counts", None)
    (dst / "dataset_fingerprint.json").write_text(json.dumps(fingerprint))
    plans = json.loads((src / f"{PLANS}.json").read_text())
    plans["dataset_name"] = dst.name
    (dst / f"{PLANS}.json").write_text(json.dumps(plans))


def _model_folder(plans_file: Path, dataset_json: Path, folder: Path) -> None:
    """A DCA model folder with untrained weights for the plans (what gates/distill load; no training needed)."""
    import torch
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_dca.trainers.dca import nnUNetTrainerDCA

    (folder / "fold_0").mkdir(parents=True)
    shutil.copy(plans_file, folder / "plans.json")
    shutil.copy(dataset_json, folder / "dataset.json")
    pm = PlansManager(str(folder / "plans.json"))
    cm = pm.get_configuration("2d")
    dj = json.loads(dataset_json.read_text())
    net = nnUNetTrainerDCA.build_network_architecture(pm, cm, determine_num_input_channels(pm, cm, dj),
                                                      pm.get_label_manager(dj).num_segmentation_heads,
                                                      enable_deep_supervision=False)
    torch.save({"trainer_name": "nnUNetTrainerDCA", "init_args": {"configuration": "2d"},
                "network_weights": net.state_dict(), "inference_allowed_mirroring_axes": (0, 1)},
               folder / "fold_0" / "checkpoint_final.pth")


def _model_variant(w: World, name: str, change: Callable[[Path], None], parent: Optional[Path] = None) -> Path:
    folder = (parent or (w.files / "models")) / name
    shutil.copytree(w.model, folder, copy_function=os.link)  # hard links: the variant replaces what it changes
    change(folder)
    return folder


def _replace(path: Path, text: str) -> None:
    path.unlink()
    path.write_text(text)


def _checkpoint_with(**changes) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        import torch

        ckpt = folder / "fold_0" / "checkpoint_final.pth"
        data = torch.load(ckpt, map_location="cpu", weights_only=False)
        data.update(changes)
        ckpt.unlink()
        torch.save(data, ckpt)
    return change


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    root = tmp_path_factory.mktemp("bad_inputs")
    env = fresh_env(root)
    w = World(root=root, env=env, cwd=root / "cwd", files=root / "files")
    w.cwd.mkdir()
    w.files.mkdir()
    write_phantom_dataset(env["nnUNet_raw"], GOOD, name="Good", labeled=2, unlabeled=1, test=1, seed=1)
    run_cmd([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", str(GOOD), "-pl", "nnUNetPlannerDCA_CPU", "-c", "2d",
             "-np", "1", "-npfp", "1", "--no_pp"], env)
    _model_folder(w.pre(GOOD) / f"{PLANS}.json", w.ds(GOOD) / "dataset.json", w.model)
    for dataset_id in VARIANTS:
        _break(w, dataset_id)
    for dataset_id in (708, 709, 711, 722, 723, 724, 726, 730, 731, 732):  # planner / preprocessor cases
        _preprocessed_copy(w, dataset_id)
    (w.pre(731) / f"{PLANS}.json").write_text("{")
    (w.pre(732) / "dataset_fingerprint.json").write_text("[")
    # distill reads the model's dataset: the model copied under datasets with broken data
    for dataset_id in (702, 711, 714):
        target = w.root / "nnUNet_results" / w.ds(dataset_id).name
        target.mkdir(parents=True)
        shutil.copytree(w.model, target / MODEL_DIR, copy_function=os.link)

    f = w.files
    (f / "bad.json").write_text('{"labels": {')
    (f / "list.json").write_text("[1, 2]")
    (f / "notplans.json").write_text('{"name": "x"}')
    (f / "empty").mkdir()
    (f / "afile").write_text("a file where a folder belongs\n")
    _text(f / f"text_0000{ENDING}")
    (f / "foreign").mkdir()
    (f / "foreign" / "mine.txt").write_text("the user's own file\n")
    # plans with a dataset.json next to them (cost --plans-file): broken class groups, broken dataset.json
    for sub, groups in (("groups", [[6], [1, 2]]), ("djbad", None)):
        (f / sub).mkdir()
        plans = json.loads((w.pre(GOOD) / f"{PLANS}.json").read_text())
        if groups is not None:
            plans["configurations"]["2d"]["architecture"]["arch_kwargs"]["class_groups"] = groups
        (f / sub / "plans.json").write_text(json.dumps(plans))
        if sub == "djbad":
            (f / sub / "dataset.json").write_text("{")
        else:
            shutil.copy(w.ds(GOOD) / "dataset.json", f / sub / "dataset.json")
    # evaluate: reference folder = the test label; predictions broken in one way each
    ref = w.ds(GOOD) / "labelsTs"
    test_label = next(ref.iterdir())
    for sub in ("pred_text", "pred_shape", "pred_trunc", "ref_text"):
        (f / sub).mkdir()
        shutil.copy(test_label, f / sub / test_label.name)
    _text(f / "pred_text" / test_label.name)
    _text(f / "ref_text" / test_label.name)
    label = _read(test_label)
    _nifti(f / "pred_shape" / test_label.name, np.ascontiguousarray(label[:, :40, :40]))
    _truncate(f / "pred_trunc" / test_label.name)
    # gates: model folders broken in one way each
    _model_variant(w, "ckpt_text", lambda d: _replace(d / "fold_0" / "checkpoint_final.pth", "not a checkpoint"))
    _model_variant(w, "plans_bad", lambda d: _replace(d / "plans.json", "{"))
    _model_variant(w, "trainer_nope", _checkpoint_with(trainer_name="nnUNetTrainerNope"))
    _model_variant(w, "weights_other", _checkpoint_with(network_weights={}))
    # distill: a DCA-named model folder of the good dataset with a damaged checkpoint
    _model_variant(w, "nnUNetTrainerDCA_supAgg__nnUNetPlansDCA_CPU__2d",
                   lambda d: _replace(d / "fold_0" / "checkpoint_final.pth", "not a checkpoint"),
                   parent=w.root / "nnUNet_results" / GOOD_NAME)
    # convert: a BTCV download whose first image is a text file, an AMOS download with a broken dataset.json
    for sub in ("img", "label"):
        _text(f / "btcv" / "RawData" / "Training" / sub / f"{sub}0001.nii.gz")
    (f / "amos").mkdir()
    (f / "amos" / "dataset.json").write_text("{")
    # cohort: source folders
    source = f / "cohort"
    for sub in ("text", "map_bad", "map_shape", "size", "trunc"):
        (source / sub).mkdir(parents=True)
        ct = np.full((6, 8, 8), -100, np.int16)
        seg = np.zeros((6, 8, 8), np.uint8)
        seg[2:4, 2:6, 2:6] = 5  # TotalSegmentator liver
        _nifti(source / sub / "example_ct.nii.gz", ct)
        _nifti(source / sub / "example_seg_fast_force_split.nii.gz", seg if sub != "size" else seg[:, :4, :4].copy())
        (source / sub / "synapse13_map.json").write_text(json.dumps({"from_total_ct": {"5": 6}}))
    _text(source / "text" / "example_ct.nii.gz")
    (source / "map_bad" / "synapse13_map.json").write_text('{"from_total_ct": {"5": ')
    (source / "map_shape" / "synapse13_map.json").write_text('{"from_total_ct": [5, 6]}')
    _truncate(source / "trunc" / "example_ct.nii.gz")
    return w


# -------------------------------------------------------------------------------------------------------- cases
Arg = Union[str, Callable[[World], str]]


@dataclass
class Case:
    id: str
    argv: Sequence[Arg]          # argv[0]: a console script in BIN
    culprit: Arg                 # must appear in the last line
    setup: Optional[Callable[[World], None]] = None
    allowed: Sequence[str] = field(default_factory=tuple)  # relative paths the command may change (none so far)
    timeout: int = 120


def _ds(dataset_id: int, *parts: str) -> Callable[[World], str]:
    return lambda w: str(w.ds(dataset_id).joinpath(*parts))


def _file(*parts: str) -> Callable[[World], str]:
    return lambda w: str(w.files.joinpath(*parts))


def _model(*parts: str) -> Callable[[World], str]:
    return lambda w: str(w.model.joinpath(*parts))


def _groups_file(content: str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        (w.pre(730) / "dca_groups.json").write_text(content)
    return setup


TEST_IMAGE = _ds(GOOD, "imagesTs", f"phantom_0003_0000{ENDING}")
TEST_LABEL = _ds(GOOD, "labelsTs", f"phantom_0003{ENDING}")
DJ = _ds(GOOD, "dataset.json")
CLI = "nnunetv2-dca"


def _cases() -> List[Case]:
    c: List[Case] = []
    add = c.append
    # phantom (writes a dataset; its input is its settings and the target id)
    add(Case("phantom-id-0", [CLI, "phantom", "-d", "0"], "got 0"))
    add(Case("phantom-bad-name", [CLI, "phantom", "-d", "790", "--name", "a/b"], "'a/b'"))
    add(Case("phantom-id-taken-by-other-data", [CLI, "phantom", "-d", "702", "--overwrite"], "Dataset702_BadJson"))
    add(Case("phantom-raw-is-a-file", [CLI, "phantom", "-d", "790", "--raw", _file("afile")], "afile"))
    # cohort (reads the TotalSegmentator example files)
    add(Case("cohort-source-missing", [CLI, "cohort", "-d", "791", "--source", _file("empty")], "example_ct.nii.gz"))
    add(Case("cohort-ct-is-text", [CLI, "cohort", "-d", "791", "--source", _file("cohort", "text")],
             "text/example_ct.nii.gz"))
    add(Case("cohort-ct-truncated", [CLI, "cohort", "-d", "791", "--source", _file("cohort", "trunc")],
             "trunc/example_ct.nii.gz"))
    add(Case("cohort-ct-seg-size-differ", [CLI, "cohort", "-d", "791", "--source", _file("cohort", "size")],
             "example_seg_fast_force_split.nii.gz"))
    add(Case("cohort-map-not-json", [CLI, "cohort", "-d", "791", "--source", _file("cohort", "map_bad")],
             "map_bad/synapse13_map.json"))
    add(Case("cohort-map-wrong-shape", [CLI, "cohort", "-d", "791", "--source", _file("cohort", "map_shape")],
             "map_shape/synapse13_map.json"))
    add(Case("cohort-id-taken", [CLI, "cohort", "-d", str(GOOD), "--source", _file("cohort", "size")], "701"))
    # convert (reads an official download; its own file checks: tests/data/test_convert.py)
    add(Case("convert-source-missing", [CLI, "convert", "btcv", _file("nope"), "-d", "794"], "nope"))
    add(Case("convert-btcv-image-is-text", [CLI, "convert", "btcv", _file("btcv"), "-d", "794"], "btcv/RawData"))
    add(Case("convert-amos-dataset-json-not-json", [CLI, "convert", "amos", _file("amos"), "-d", "794"],
             "amos/dataset.json"))
    # split (reads dataset.json and the file names; links the files, reads no image)
    split = [CLI, "split", "--out-id", "792", "--labeled-fraction", "0.5", "-d"]
    add(Case("split-unknown-id", split + ["799"], "799"))
    add(Case("split-dataset-json-not-json", split + ["702"], "Dataset702_BadJson/dataset.json"))
    add(Case("split-dataset-json-list", split + ["703"], "Dataset703_JsonList/dataset.json"))
    add(Case("split-dataset-json-missing", split + ["704"], "Dataset704_NoJson"))
    add(Case("split-no-file-ending", split + ["705"], "file_ending"))
    add(Case("split-empty-imagesTr", split + ["707"], "Dataset707_Empty"))
    add(Case("split-missing-label", [CLI, "split", "-d", "712", "--out-id", "792", "--labeled-cases", "phantom_0001"],
             "phantom_0001"))
    add(Case("split-unknown-labeled-case", [CLI, "split", "-d", str(GOOD), "--out-id", "792", "--labeled-cases",
                                            "nope_0009"], "nope_0009"))
    add(Case("split-path-as-case-id", [CLI, "split", "-d", str(GOOD), "--out-id", "792", "--labeled-cases",
                                       "../../x"], "../../x"))
    add(Case("split-out-id-taken", [CLI, "split", "-d", str(GOOD), "--out-id", "702", "--labeled-fraction", "0.5"],
             "702"))
    # groups (reads dataset.json, the labels or the fingerprint, the plans, --groups)
    groups = [CLI, "groups", "-d"]
    add(Case("groups-unknown-id", groups + ["799"], "799"))
    add(Case("groups-dataset-json-not-json", groups + ["702"], "Dataset702_BadJson/dataset.json"))
    add(Case("groups-dataset-json-list", groups + ["703"], "Dataset703_JsonList/dataset.json"))
    add(Case("groups-no-labels", groups + ["706"], "Dataset706_NoLabels/dataset.json"))
    add(Case("groups-empty-folders", groups + ["707"], "Dataset707_Empty"))
    add(Case("groups-label-is-text", groups + ["708"], f"Dataset708_TextLabel/labelsTr/phantom_0000{ENDING}"))
    add(Case("groups-label-value-not-in-dataset-json", groups + ["709"],
             f"Dataset709_LabelValue/labelsTr/phantom_0001{ENDING}"))
    add(Case("groups-label-missing", groups + ["712"], "phantom_0001"))
    add(Case("groups-label-truncated", groups + ["713"], f"Dataset713_TruncLabel/labelsTr/phantom_0001{ENDING}"))
    add(Case("groups-groups-file-not-json", groups + [str(GOOD), "--groups", _file("bad.json")], "bad.json"))
    add(Case("groups-groups-file-wrong-shape", groups + [str(GOOD), "--groups", _file("list.json")], "list.json"))
    add(Case("groups-groups-miss-classes", groups + [str(GOOD), "--groups", "6;1,2"], "--groups"))
    add(Case("groups-groups-unparsable", groups + [str(GOOD), "--groups", "6;a"], "--groups"))
    add(Case("groups-num-groups-0", groups + [str(GOOD), "--num-groups", "0"], "--num-groups"))
    add(Case("groups-too-many-groups", groups + [str(GOOD), "--num-groups", "40"], "40 groups"))
    add(Case("groups-plans-not-json", groups + ["731", "--plans", PLANS], f"Dataset731_PlansBad/{PLANS}.json"))
    add(Case("groups-fingerprint-not-json", groups + ["732"], "Dataset732_FingerprintBad/dataset_fingerprint.json"))
    # cost (reads a plans file and the dataset.json next to it)
    cost = [CLI, "cost", "--plans-file"]
    add(Case("cost-unknown-id", [CLI, "cost", "-d", "799"], "799"))
    add(Case("cost-plans-not-json", cost + [_file("bad.json")], "bad.json"))
    add(Case("cost-plans-list", cost + [_file("list.json")], "list.json"))
    add(Case("cost-not-plans", cost + [_file("notplans.json")], "notplans.json"))
    add(Case("cost-unknown-configuration", [CLI, "cost", "-d", str(GOOD), "-p", PLANS, "-c", "4d"], "'4d'"))
    add(Case("cost-bad-class-groups", cost + [_file("groups", "plans.json"), "-c", "2d"], "groups/plans.json"))
    add(Case("cost-dataset-json-not-json", cost + [_file("djbad", "plans.json"), "-c", "2d"],
             "djbad/dataset.json"))
    # evaluate (reads two folders of label files, dataset.json, plans)
    ev = [CLI, "evaluate", "-djfile", DJ, "-ref", _ds(GOOD, "labelsTs"), "-pred"]
    add(Case("evaluate-pred-empty", ev + [_file("empty")], "empty"))
    add(Case("evaluate-pred-is-text", ev + [_file("pred_text")], f"pred_text/phantom_0003{ENDING}"))
    add(Case("evaluate-ref-is-text", [CLI, "evaluate", "-djfile", DJ, "-ref", _file("ref_text"), "-pred",
                                      _ds(GOOD, "labelsTs")], f"ref_text/phantom_0003{ENDING}"))
    add(Case("evaluate-pred-truncated", ev + [_file("pred_trunc")], f"pred_trunc/phantom_0003{ENDING}"))
    add(Case("evaluate-pred-shape-differs", ev + [_file("pred_shape")], f"pred_shape/phantom_0003{ENDING}"))
    same = [CLI, "evaluate", "-ref", _ds(GOOD, "labelsTs"), "-pred", _ds(GOOD, "labelsTs")]
    add(Case("evaluate-dataset-json-not-json", same + ["-djfile", _file("bad.json")], "bad.json"))
    add(Case("evaluate-dataset-json-list", same + ["-djfile", _file("list.json")], "list.json"))
    add(Case("evaluate-dataset-json-no-labels", same + ["-djfile", _ds(706, "dataset.json")],
             "Dataset706_NoLabels/dataset.json"))
    add(Case("evaluate-plans-list", same + ["-djfile", DJ, "-pfile", _file("list.json")], "list.json"))
    add(Case("evaluate-plans-bad-class-groups", same + ["-djfile", DJ, "-pfile", _file("groups", "plans.json")],
             "groups/plans.json"))
    # gates (reads a model folder, image files, a reference)
    gates = [CLI, "gates", "-o", _file("out.png"), "-i", TEST_IMAGE, "-m"]
    add(Case("gates-unknown-id", [CLI, "gates", "-d", "799", "-i", TEST_IMAGE, "-o", _file("out.png")], "799"))
    add(Case("gates-unknown-trainer-folder", [CLI, "gates", "-d", str(GOOD), "-tr", "nnUNetTrainerNope", "-p", PLANS,
                                              "-c", "2d", "-i", TEST_IMAGE, "-o", _file("out.png")],
             "nnUNetTrainerNope"))
    add(Case("gates-model-missing", gates + [_file("models", "nope")], "nope"))
    add(Case("gates-checkpoint-not-a-checkpoint", gates + [_file("models", "ckpt_text")],
             "ckpt_text/fold_0/checkpoint_final.pth"))
    add(Case("gates-model-plans-not-json", gates + [_file("models", "plans_bad")], "plans_bad/plans.json"))
    add(Case("gates-checkpoint-unknown-trainer", gates + [_file("models", "trainer_nope")], "nnUNetTrainerNope"))
    add(Case("gates-checkpoint-other-network", gates + [_file("models", "weights_other")],
             "weights_other/fold_0/checkpoint_final.pth"))
    add(Case("gates-image-is-text", [CLI, "gates", "-o", _file("out.png"), "-m", _model(), "-i",
                                     _file(f"text_0000{ENDING}")], f"text_0000{ENDING}"))
    add(Case("gates-reference-is-text", gates + [_model(), "-ref", _file("pred_text", f"phantom_0003{ENDING}")],
             f"pred_text/phantom_0003{ENDING}"))
    # distill (reads the model folder and its dataset's unlabeled images)
    def distill(model: Callable[[World], str], out_id: str = "793") -> List[Arg]:
        return [CLI, "distill", "--no-plan", "--out-id", out_id, "-m", model]

    def results(dataset_id: int, folder: str = MODEL_DIR) -> Callable[[World], str]:
        return lambda w: str(w.root / "nnUNet_results" / w.ds(dataset_id).name / folder)

    add(Case("distill-model-missing", distill(_file("models", "nope")), "nope"))
    add(Case("distill-out-id-0", distill(_model(), "0"), "--out-id"))
    add(Case("distill-out-id-taken", distill(_model(), "702"), "702"))
    add(Case("distill-unknown-planner", [CLI, "distill", "--out-id", "793", "-m", _model(), "-pl", "nnUNetPlannerNope"],
             "nnUNetPlannerNope"))
    add(Case("distill-threshold-out-of-range", distill(_model()) + ["--threshold", "2"], "--threshold"))
    add(Case("distill-dataset-json-not-json", distill(results(702)), "Dataset702_BadJson/dataset.json"))
    add(Case("distill-unlabeled-is-text", distill(results(711)),
             f"Dataset711_TextUnlabeled/imagesTrUnlabeled/phantom_0002_0000{ENDING}"))
    add(Case("distill-no-unlabeled-images", distill(results(714)), "Dataset714_NoUnlabeled"))
    add(Case("distill-checkpoint-not-a-checkpoint",
             distill(results(GOOD, "nnUNetTrainerDCA_supAgg__nnUNetPlansDCA_CPU__2d")), "checkpoint_final.pth"))
    # benchmark (settings; with -d a raw dataset read before anything is written)
    bench = [CLI, "benchmark", "--out", _file("bench")]
    add(Case("benchmark-unknown-arm", bench + ["--arms", "baseline,nope"], "nope"))
    add(Case("benchmark-no-baseline", bench + ["--arms", "dca"], "baseline"))
    add(Case("benchmark-unknown-planner", bench + ["--planner", "nnUNetPlannerNope"], "nnUNetPlannerNope"))
    add(Case("benchmark-unknown-configuration", bench + ["-c", "4d"], "4d"))
    add(Case("benchmark-repeated-seeds", bench + ["--seeds", "0,0"], "--seeds"))
    add(Case("benchmark-out-is-a-file", [CLI, "benchmark", "--out", _file("afile")], "afile"))
    add(Case("benchmark-out-foreign-folder", [CLI, "benchmark", "--out", _file("foreign")], "foreign"))
    bench_d = bench + ["--full-dataset", str(GOOD), "-d"]
    add(Case("benchmark-unknown-dataset", bench_d + ["799"], "799"))
    add(Case("benchmark-empty-dataset", bench_d + ["707"], "Dataset707_Empty/imagesTr"))
    add(Case("benchmark-label-is-text", bench_d + ["708"], f"Dataset708_TextLabel/labelsTr/phantom_0000{ENDING}"))
    add(Case("benchmark-shape-mismatch", bench_d + ["710"], f"Dataset710_ShapeMismatch/labelsTr/phantom_0001{ENDING}"))
    add(Case("benchmark-unlabeled-is-text", bench_d + ["711"],
             f"Dataset711_TextUnlabeled/imagesTrUnlabeled/phantom_0002_0000{ENDING}"))
    add(Case("benchmark-image-is-text", bench_d + ["715"], f"Dataset715_TextImage/imagesTr/phantom_0000_0000{ENDING}"))
    add(Case("benchmark-unknown-full-dataset", bench + ["-d", str(GOOD), "--full-dataset", "799"], "799"))
    # gpu-check and demo (settings and their output folder)
    add(Case("gpu-check-steps-0", [CLI, "gpu-check", "--size", "tiny", "-device", "cpu", "--steps", "0", "--out",
                                   _file("gpu")], "--steps"))
    add(Case("gpu-check-out-is-a-file", [CLI, "gpu-check", "--size", "tiny", "-device", "cpu", "--out",
                                         _file("afile")], "afile"))
    add(Case("demo-id-0", [CLI, "demo", "-d", "0", "--out", _file("demo")], "-d"))
    add(Case("demo-out-is-a-file", [CLI, "demo", "--out", _file("afile")], "afile"))
    # the stock commands with our planner (class groups file, label counts) and preprocessor (unlabeled images)
    plan = ["nnUNetv2_plan_experiment", "-pl", "nnUNetPlannerDCA_CPU", "-d"]
    groups_json = lambda w: str(w.pre(730) / "dca_groups.json")  # noqa: E731
    add(Case("planner-groups-file-not-json", plan + ["730"], "dca_groups.json", _groups_file('{"groups": [[6], [1')))
    add(Case("planner-groups-file-list", plan + ["730"], "dca_groups.json", _groups_file("[[6]]")))
    add(Case("planner-groups-file-missing-classes", plan + ["730"], groups_json,
             _groups_file('{"groups": [[6], [1, 2]]}')))
    add(Case("planner-label-value-not-in-dataset-json", plan + ["709"],
             f"Dataset709_LabelValue/labelsTr/phantom_0001{ENDING}"))
    add(Case("planner-label-is-text", plan + ["708"], f"Dataset708_TextLabel/labelsTr/phantom_0000{ENDING}"))
    pp = ["nnUNetv2_preprocess", "-plans_name", PLANS, "-c", "2d", "-np", "1", "-d"]
    add(Case("preprocess-unlabeled-is-text", pp + ["711"], f"imagesTrUnlabeled/phantom_0002_0000{ENDING}"))
    add(Case("preprocess-unlabeled-truncated", pp + ["724"], f"imagesTrUnlabeled/phantom_0002_0000{ENDING}"))
    add(Case("preprocess-unlabeled-no-channel-suffix", pp + ["722"], f"imagesTrUnlabeled/extra{ENDING}"))
    add(Case("preprocess-unlabeled-id-of-labeled-case", pp + ["723"], "phantom_0000"))
    add(Case("preprocess-unlabeled-listed-not-a-mapping", pp + ["726"], "unlabeled_images"))
    return c


CASES = _cases()


def _arg(w: World, a: Arg) -> str:
    return a(w) if callable(a) else a


@pytest.mark.slow  # starts a subprocess per case
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_ends_in_one_line_and_touches_nothing(world: World, case: Case):
    if case.setup is not None:
        case.setup(world)
    argv = [_arg(world, a) for a in case.argv]
    argv[0] = str(BIN / argv[0])
    before = snapshot(world.root)
    proc = run_cmd(argv, world.env, cwd=world.cwd, check=False, timeout=case.timeout)
    after = snapshot(world.root)
    out = proc.stdout
    shown = f"$ {' '.join(argv)}\n{out[-3000:]}"
    assert proc.returncode != 0, shown
    assert "Traceback" not in out, shown
    last = [line for line in out.splitlines() if line.strip()][-1]
    assert LAST_LINE.match(last), shown
    culprit = _arg(world, case.culprit)
    assert culprit in last, f"{culprit!r} not named in the last line:\n{shown}"
    assert changed(before, after, case.allowed) == [], shown


def test_every_command_that_reads_input_is_probed():
    """A new subcommand must get its cases here (or be listed as reading no user input)."""
    from nnunetv2_dca.cli import build_parser

    parser = build_parser()
    commands = set(next(a for a in parser._actions if a.dest == "command").choices)
    probed = {c.argv[1] for c in CASES if c.argv[0] == CLI}
    no_user_files: set = set()  # every subcommand reads user input
    assert commands - probed - no_user_files == set()
