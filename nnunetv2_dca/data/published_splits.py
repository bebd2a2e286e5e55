"""Published case lists of the Synapse/BTCV and AMOS benchmarks: the one home of every split this package knows.

Why data files: a split is a fact about a paper's protocol, not a choice of ours. Each ``splits/<name>.json`` holds
the lists exactly as published (train / validation (their ``eval.txt``) / test / labeled / unlabeled) and names where
they came from: repository, commit, date and the path of every list. ``nnunetv2-dca convert`` (``--split``) and
``nnunetv2-dca split`` (``--preset``) both read them from here; nothing else in the package holds a case list.

Entries are written as published: ``"0002"`` for Synapse (= ``img0002`` of the RawData download), ``"amos_0078"``
for AMOS. ``test_from`` says where the test cases live in the download: ``"training"`` (Synapse: labeled training
scans held out) or ``"validation"`` (AMOS: the official validation set, ``imagesVa``/``labelsVa``).

Light module (json only): the command-line parser imports it to list the names.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

SPLITS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "splits")
DATASETS = ("btcv", "amos")
_LISTS = ("train", "validation", "test", "labeled", "unlabeled")


@dataclass(frozen=True)
class PublishedSplit:
    """One published split; ``labeled``/``unlabeled`` are empty for a fully supervised split."""

    name: str
    dataset: str  # "btcv" | "amos"
    family: str  # "dhc", "skcdf", "genericssl", "transunet"
    labeled_percent: Optional[int]
    train: Tuple[str, ...]
    validation: Tuple[str, ...]
    test: Tuple[str, ...]
    labeled: Tuple[str, ...]
    unlabeled: Tuple[str, ...]
    test_from: str  # "training" | "validation"
    description: str = ""
    aliases: Tuple[str, ...] = ()
    source: Dict[str, object] = field(default_factory=dict, compare=False)
    used_by: Tuple[str, ...] = ()
    notes: str = ""

    @property
    def semi_supervised(self) -> bool:
        return bool(self.labeled)

    def provenance(self) -> str:
        """``repository@commit`` (short), for one-line summaries."""
        return f"{self.source.get('repository', '?')}@{str(self.source.get('commit', '?'))[:7]}"


def _check(split: PublishedSplit, path: str) -> None:
    """The invariants every shipped file must hold (a broken file is a packaging bug, named here)."""
    sets = {k: set(getattr(split, k)) for k in _LISTS}
    problems: List[str] = []
    if split.dataset not in DATASETS:
        problems.append(f"dataset {split.dataset!r} not in {DATASETS}")
    if split.test_from not in ("training", "validation"):
        problems.append(f"test_from {split.test_from!r}")
    for k in _LISTS:
        if len(sets[k]) != len(getattr(split, k)):
            problems.append(f"repeated entries in {k}")
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test"), ("labeled", "unlabeled")):
        if sets[a] & sets[b]:
            problems.append(f"{a} and {b} overlap: {sorted(sets[a] & sets[b])[:3]}")
    if split.labeled and sets["labeled"] | sets["unlabeled"] != sets["train"]:
        problems.append("labeled + unlabeled differ from train")
    if not split.train or not split.test:
        problems.append("empty train or test list")
    if problems:
        raise ValueError(f"{path}: not a valid published split: {'; '.join(problems)}")


def _load(path: str) -> PublishedSplit:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    split = PublishedSplit(
        name=data["name"], dataset=data["dataset"], family=data["family"], labeled_percent=data["labeled_percent"],
        **{k: tuple(data[k]) for k in _LISTS}, test_from=data["test_from"], description=data.get("description", ""),
        aliases=tuple(data.get("aliases", ())), source=dict(data.get("source", {})),
        used_by=tuple(data.get("used_by", ())), notes=data.get("notes", ""))
    if os.path.basename(path) != split.name + ".json":
        raise ValueError(f"{path}: file name and 'name' ({split.name}) differ")
    _check(split, path)
    return split


@lru_cache(maxsize=1)
def published_splits() -> Dict[str, PublishedSplit]:
    """name -> split, for every ``splits/*.json`` (aliases not included; see :func:`split_names`)."""
    out: Dict[str, PublishedSplit] = {}
    for fname in sorted(os.listdir(SPLITS_DIR)):
        if fname.endswith(".json"):
            split = _load(os.path.join(SPLITS_DIR, fname))
            out[split.name] = split
    return out


def split_names(dataset: Optional[str] = None, aliases: bool = True) -> List[str]:
    """Names (and aliases) of the shipped splits, optionally of one dataset."""
    names: List[str] = []
    for split in published_splits().values():
        if dataset is None or split.dataset == dataset:
            names.append(split.name)
            names += list(split.aliases) if aliases else []
    return sorted(names)


def get_split(name: str, dataset: Optional[str] = None) -> PublishedSplit:
    """The split called ``name`` (or with that alias); a ValueError naming the choices otherwise."""
    for split in published_splits().values():
        if name == split.name or name in split.aliases:
            if dataset is not None and split.dataset != dataset:
                raise ValueError(f"split {name!r} is a {split.dataset.upper()} split, not {dataset.upper()}; choose "
                                 f"one of {', '.join(split_names(dataset, aliases=False))}")
            return split
    raise ValueError(f"unknown split {name!r}; choose one of {', '.join(split_names(dataset, aliases=False))}")


def find_split(dataset: str, family: str, labeled_percent: Optional[float]) -> PublishedSplit:
    """The ``family``'s split of ``dataset`` for ``labeled_percent`` (None: its only split, or its semi-supervised
    one when there is exactly one). Never a made-up list: a missing combination is an error naming what exists."""
    mine = [s for s in published_splits().values() if s.dataset == dataset and s.family == family]
    if not mine:
        families = sorted({s.family for s in published_splits().values() if s.dataset == dataset})
        raise ValueError(f"no published {dataset.upper()} split of {family!r}; families: {', '.join(families)}")
    if labeled_percent is None:
        if len(mine) == 1:
            return mine[0]
        raise ValueError(f"{family} publishes several {dataset.upper()} splits ("
                         f"{', '.join(s.name for s in mine)}): give --labeled-percent or the full --split name")
    hits = [s for s in mine if s.labeled_percent is not None and float(s.labeled_percent) == float(labeled_percent)]
    if not hits:
        have = sorted(s.labeled_percent for s in mine if s.labeled_percent is not None)
        raise ValueError(f"{family} publishes no {labeled_percent:g} % labeled {dataset.upper()} split (published: "
                         f"{', '.join(f'{p} %' for p in have) or 'none, fully supervised only'}); for a random "
                         f"draw use `nnunetv2-dca split --labeled-fraction`")
    return hits[0]
