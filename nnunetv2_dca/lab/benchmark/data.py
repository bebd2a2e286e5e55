"""The benchmark's data: its own nnU-Net folders (user datasets hard-linked in), the shared plans of every arm, the
phantom's labeled split and the offline pseudo-label dataset."""

from __future__ import annotations

import json
import os
import shutil
from typing import Dict, List, Optional

from nnunetv2_dca.atomic import write_json_atomic
from nnunetv2_dca.lab.benchmark.arms import PLANS_DCA, PLANS_STOCK
from nnunetv2_dca.folders import dataset_folders, link_or_copy


def link_tree(src: str, dst: str) -> None:
    """Copy a folder as hard links (plain copies across filesystems)."""

    shutil.copytree(src, dst, copy_function=link_or_copy)


def find_dataset(raw: str, dataset_id: int) -> str:
    found = dataset_folders(raw, dataset_id)
    if len(found) != 1:
        raise FileNotFoundError(f"expected one Dataset{dataset_id:03d}_* in {raw}, found {found or 'none'}")
    return os.path.join(raw, found[0])


def bench_class_groups(preprocessed_dataset: str, dataset_json: Dict, configuration: str) -> List[List[int]]:
    """The class groups of a benchmark run's DCA plans (what every arm's pseudo-labels and test Dice are summarised
    by, the baseline's included)."""
    from nnunetv2_dca.planning.class_groups import plans_class_groups
    from nnunetv2_dca.planning.labels import foreground_classes

    plans_file = os.path.join(preprocessed_dataset, f"{PLANS_DCA}.json")
    with open(plans_file, encoding="utf-8") as f:
        plans = json.load(f)
    return plans_class_groups(plans, 1 + len(foreground_classes(dataset_json)), configuration, plans_file)[0]


def scale_width(arch_kwargs: dict, width: int) -> None:
    """Scale features_per_stage so the first stage has ``width`` features (the planned stage ratios, incl. the cap
    on the deepest stages, are kept)."""
    features = list(arch_kwargs["features_per_stage"])
    arch_kwargs["features_per_stage"] = [max(1, round(f * width / features[0])) for f in features]


def write_bench_plans(preprocessed_dataset: str, plans_name: str, configuration: str, width: Optional[int],
                      batch_size: Optional[int] = None) -> Dict[str, str]:
    """``nnUNetPlansBenchDCA`` / ``nnUNetPlansBenchStock`` next to the planned DCA plans (same data identifier, so
    the preprocessed data are shared), optionally at another width and (labeled) batch size, the same for both.
    Returns plans name -> file."""
    from nnunetv2_dca.network.architectures import is_dca, stock_architecture

    with open(os.path.join(preprocessed_dataset, plans_name + ".json"), encoding="utf-8") as f:
        plans = json.load(f)
    if configuration not in plans["configurations"]:
        raise ValueError(f"configuration {configuration!r} is not in {plans_name} "
                         f"(has {sorted(plans['configurations'])})")
    arch = plans["configurations"][configuration]["architecture"]
    if not is_dca(arch["network_class_name"]):
        raise ValueError(f"{plans_name} is not a DCA plan ({arch['network_class_name']}); use a DCA planner")
    files = {}
    for name, architecture in ((PLANS_DCA, json.loads(json.dumps(arch))), (PLANS_STOCK, stock_architecture(arch))):
        architecture = dict(architecture)
        architecture["arch_kwargs"] = dict(architecture["arch_kwargs"])
        architecture["_kw_requires_import"] = list(architecture["_kw_requires_import"])
        if width is not None:
            scale_width(architecture["arch_kwargs"], width)
        derived = json.loads(json.dumps(plans))
        derived["plans_name"] = name
        derived["configurations"] = {configuration: dict(plans["configurations"][configuration],
                                                         architecture=architecture)}
        if batch_size is not None:
            derived["configurations"][configuration]["batch_size"] = int(batch_size)
        derived["configurations"][configuration].pop("inherits_from", None)
        path = os.path.join(preprocessed_dataset, name + ".json")
        write_json_atomic(derived, path)
        files[name] = path
    return files


def labeled_phantom_cases(n_train: int, n_labeled: int, sites: int) -> List[str]:
    """The phantom's first ``n_labeled`` training cases of site 0 (the phantom puts case i on site i % sites)."""
    site0 = [i for i in range(n_train) if i % sites == 0]
    if len(site0) < n_labeled:
        raise ValueError(f"--sites {sites}: {n_train} training cases hold {len(site0)} of site 0, fewer than the "
                         f"{n_labeled} labeled ones asked for; raise --phantom-unlabeled")
    return [f"phantom_{i:04d}" for i in site0[:n_labeled]]


def write_phantom_groups(pre_dataset_folder: str) -> str:
    """The phantom's anatomical class groups as the dataset's dca_groups.json in its nnUNet_preprocessed folder
    (before planning), so the planner takes them instead of the log-gap rule: for every phantom but the classic one,
    whose labeled volumes move the rule's cliffs (varied, moderate) or shrink them (thick_tail)."""
    from nnunetv2_dca.data.phantom import SYNAPSE_LABELS
    from nnunetv2_dca.data.phantom_variation import ANATOMICAL_GROUPS
    from nnunetv2_dca.planning.grouping import GROUPS_FILE

    os.makedirs(pre_dataset_folder, exist_ok=True)
    groups = [[SYNAPSE_LABELS[name] for name in group] for group in ANATOMICAL_GROUPS]
    path = os.path.join(pre_dataset_folder, GROUPS_FILE)
    write_json_atomic({"groups": groups}, path)
    return path


def make_pseudo_label_dataset(raw: str, semi_folder: str, pseudo_labels: str, dataset_id: int) -> str:
    """Raw dataset ``Dataset<id>_<semi name>PL`` = the semi dataset's labeled cases + its unlabeled images with
    ``pseudo_labels`` (the labeled-only baseline's predictions) as labels; replaces an earlier one."""
    from nnunetv2_dca.data.pseudo_dataset import write_pseudo_label_dataset

    return write_pseudo_label_dataset(
        raw, semi_folder, pseudo_labels, dataset_id, os.path.basename(semi_folder).split("_", 1)[1] + "PL",
        provenance={}, common={"model": "benchmark arm baseline"},
        description="offline pseudo-labels of the labeled-only nnU-Net, nnunetv2-dca benchmark",
        overwrite=True)


def site_reference_folders(full_dataset: str, semi: str, out: str, file_ending: str) -> Dict[int, str]:
    """Test labels per phantom site (hard links under OUT/test_sites/site_<k>), from the phantom's phantom.json."""
    with open(os.path.join(full_dataset, "phantom.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    folders: Dict[int, str] = {}
    for fname in sorted(os.listdir(os.path.join(semi, "labelsTs"))):
        site = int(cases[fname[:-len(file_ending)]]["site"])
        folder = os.path.join(out, "test_sites", f"site_{site}")
        os.makedirs(folder, exist_ok=True)
        if not os.path.exists(os.path.join(folder, fname)):
            link_or_copy(os.path.join(semi, "labelsTs", fname), os.path.join(folder, fname))
        folders[site] = folder
    return dict(sorted(folders.items()))
