"""Choosing the labeled cases of ``nnunetv2-dca split`` (:mod:`nnunetv2_dca.data.split`), exactly one mode:

- ``labeled_fraction=f`` in (0, 1): ``n = max(1, floor(f * N + 0.5))`` (round half up) of the ``N`` training cases,
  drawn with ``numpy.random.default_rng(seed).permutation(N)[:n]`` over the *sorted* identifiers, so the same
  dataset, fraction and seed give the same cases on every machine;
- ``labeled_cases=[...]``: exact identifiers;
- ``preset=...``: the published protocol-B case lists in :data:`PRESETS`, read from the split files of
  :mod:`nnunetv2_dca.data.published_splits` (their one home, with their sources). A preset entry (``"0002"``,
  ``"amos_0078"``) matches the training case whose identifier ends in the same integer (``img0002``,
  ``case_0002`` and ``BTCV_0002`` all match ``0002``), because every conversion of these datasets names cases
  differently; an entry matching no case or several cases is an error.

Size: the selection rules only (no file is read or written here); split.py reads the source and writes the dataset.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from nnunetv2_dca.caseids import validate_case_ids
from nnunetv2_dca.data.published_splits import PublishedSplit, published_splits


@dataclass(frozen=True)
class Preset:
    """A published case list. Entries are matched against training identifiers by their trailing integer."""

    labeled: Tuple[str, ...]
    validation: Tuple[str, ...] = ()
    test: Tuple[str, ...] = ()  # training cases that become test cases (imagesTs/labelsTs)
    # True: the protocol's test set is the source's imagesTs/labelsTs, so labelsTs must exist (AMOS: the official
    # validation set, which nnU-Net's own AMOS converter merges into imagesTr - that layout must be refused)
    test_from_source_labels: bool = False
    description: str = ""
    name: str = ""


def preset_from_published(split: PublishedSplit) -> Preset:
    """The ``--preset`` view of a published split: its labeled and validation (``eval``) cases; its test cases are
    training cases to move (Synapse) or the source's own imagesTs + labelsTs (AMOS: the official validation set)."""
    from_training = split.test_from == "training"
    return Preset(split.labeled, split.validation, split.test if from_training else (),
                  test_from_source_labels=not from_training, description=split.description, name=split.name)


# The published semi-supervised lists (nnunetv2_dca/data/splits/*.json, one home for every case list), by name and
# by alias (synapse-20 = dhc-synapse-20, ...).
PRESETS: Dict[str, Preset] = {
    key: preset_from_published(split) for split in published_splits().values() if split.semi_supervised
    for key in (split.name, *split.aliases)
}

_TRAILING_INT = re.compile(r"(\d+)$")


def labeling_mode(labeled_fraction: Optional[float], labeled_cases: Optional[Sequence[str]],
                  preset: Optional[Union[str, Preset]]) -> Tuple[str, Optional[Preset], Optional[str]]:
    """The one mode given (``"fraction"``, ``"cases"`` or ``"preset"``), with the preset's case lists and name
    (both None outside preset mode)."""
    modes = [m for m, v in (("fraction", labeled_fraction), ("cases", labeled_cases), ("preset", preset))
             if v is not None]
    if len(modes) != 1:
        raise ValueError("give exactly one of --labeled-fraction, --labeled-cases, --preset")
    mode = modes[0]
    if mode == "fraction" and not (0.0 < labeled_fraction < 1.0):
        raise ValueError(f"--labeled-fraction must be in (0, 1), got {labeled_fraction}")
    preset_spec: Optional[Preset] = None
    if mode == "preset":
        if isinstance(preset, str) and preset not in PRESETS:
            raise ValueError(f"unknown --preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
        # a Preset object: a published split adapted by the caller (nnunetv2-dca convert)
        preset_spec = PRESETS[preset] if isinstance(preset, str) else preset
        preset = preset if isinstance(preset, str) else (preset_spec.name or "custom")
    return mode, preset_spec, preset


def fraction_to_count(fraction: float, n_cases: int) -> int:
    """``max(1, round half up(fraction * n_cases))``; the epsilon keeps 0.1 * 25 = 2.5000000000000004 and
    0.3 * 5 = 1.4999999999999998 on the intended side of .5."""
    return max(1, int(math.floor(fraction * n_cases + 0.5 + 1e-9)))


def choose_fraction(identifiers: Sequence[str], fraction: float, seed: int) -> List[str]:
    """Deterministic draw from the sorted identifiers (independent of directory listing order)."""
    import numpy as np

    ids = sorted(identifiers)
    n = fraction_to_count(fraction, len(ids))
    order = np.random.default_rng(seed).permutation(len(ids))[:n]
    return sorted(ids[i] for i in order)


def _trailing_int(identifier: str) -> Optional[int]:
    m = _TRAILING_INT.search(identifier)
    return int(m.group(1)) if m else None


def match_preset_entries(entries: Sequence[str], identifiers: Sequence[str], preset: str, role: str,
                         dataset: str) -> List[str]:
    """Map preset entries to training identifiers by trailing integer; exactly one match per entry."""
    by_number: Dict[int, List[str]] = {}
    for ident in sorted(identifiers):
        num = _trailing_int(ident)
        if num is not None:
            by_number.setdefault(num, []).append(ident)
    examples = ", ".join(sorted(identifiers)[:5]) + (", ..." if len(identifiers) > 5 else "")
    out = []
    for entry in entries:
        num = _trailing_int(entry)
        hits = by_number.get(num, []) if num is not None else []
        if len(hits) != 1:
            what = "matches no training case" if not hits else f"matches several training cases ({', '.join(hits)})"
            raise ValueError(f"--preset {preset}: {role} entry {entry!r} {what} of {dataset} (a case matches when "
                             f"its identifier ends in the number {num}; identifiers look like: {examples})")
        out.append(hits[0])
    return out


def explicit_labeled_cases(labeled_cases: Union[str, Sequence[str]], train: Mapping[str, object],
                           dataset: str) -> List[str]:
    """``--labeled-cases``: a comma-separated string or a list, every entry one of the ``train`` identifiers of
    ``dataset`` (order kept, repeats dropped)."""
    if isinstance(labeled_cases, str):
        labeled_cases = labeled_cases.split(",")
    labeled = list(dict.fromkeys(c.strip() for c in labeled_cases if c.strip()))  # keep order, drop repeats
    if not labeled:
        raise ValueError("--labeled-cases is empty")
    validate_case_ids(labeled, "--labeled-cases")
    unknown = [c for c in labeled if c not in train]
    if unknown:
        ids = sorted(train)
        raise ValueError(f"--labeled-cases: {', '.join(unknown)} not among the training cases of "
                         f"{dataset} (identifiers look like: {', '.join(ids[:5])}"
                         f"{', ...' if len(ids) > 5 else ''})")
    return labeled


def preset_cases(p: Preset, preset: str, identifiers: Sequence[str], dataset: str,
                 has_test_labels: bool) -> Tuple[List[str], List[str], List[str]]:
    """The preset's labeled, validation and test cases among the training ``identifiers`` of ``dataset``;
    ``has_test_labels``: whether the source has labelsTs files."""
    labeled = match_preset_entries(p.labeled, identifiers, preset, "labeled", dataset)
    validation = match_preset_entries(p.validation, identifiers, preset, "validation", dataset)
    test_from_train = match_preset_entries(p.test, identifiers, preset, "test", dataset)
    if p.test_from_source_labels and not has_test_labels:
        raise ValueError(f"--preset {preset}: the protocol's test set is the official validation set, expected "
                         f"with labels in {dataset}/imagesTs + labelsTs; {dataset} has no labelsTs "
                         f"(nnU-Net's own AMOS converter merges the validation cases into imagesTr, which would "
                         f"put test cases among the unlabeled images)")
    return labeled, validation, test_from_train
