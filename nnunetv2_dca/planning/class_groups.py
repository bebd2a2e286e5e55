"""The one place that reads a plans' class groups.

Stored copy: ``configurations[c].architecture.arch_kwargs.class_groups`` (expert channel order, head first). The
network, the trainer and the predictor build from it, and it is what docs/planning.md invites users to edit, so every
reader (trainer, ``evaluate``, ``groups``, benchmark report) goes through :func:`plans_class_groups` or
:func:`validate_groups`. The planner's ``plans["dca"]`` section keeps counts and provenance of the grouping
(``planned_class_groups``), never read as groups. Names follow from the number of groups (:func:`group_names`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from nnunetv2_dca.network.dca_unet import validate_class_groups
from nnunetv2_dca.planning.grouping import group_names


class ClassGroupsError(ValueError):
    """A plans file holds class groups that no DCA network can be built from."""


def validate_groups(raw: Any, num_classes: int, where: str) -> List[List[int]]:
    """``raw`` as int class ids, every foreground class 1..num_classes-1 exactly once (the network's own rule);
    the error names ``where`` (plans file and configuration)."""
    try:
        return validate_class_groups(raw, num_classes)
    except ValueError as e:
        raise ClassGroupsError(f"{where}: {e}. Edit arch_kwargs.class_groups there (head group first) or re-plan "
                               f"with -pl nnUNetPlannerDCA") from None


def _arch_kwargs(plans: Mapping, configuration: str) -> Dict:
    """arch_kwargs of one configuration, following nnU-Net's ``inherits_from``."""
    configs = plans.get("configurations") or {}
    seen: List[str] = []
    while configuration in configs and configuration not in seen:
        seen.append(configuration)
        conf = configs[configuration]
        if "architecture" in conf:
            return dict(conf["architecture"].get("arch_kwargs") or {})
        configuration = conf.get("inherits_from")
    return {}


def plans_class_groups(plans: Mapping, num_classes: int, configuration: Optional[str] = None,
                       plans_file: str = "plans") -> Tuple[Optional[List[List[int]]], Optional[List[str]]]:
    """(groups, names) of ``configuration``; without one, of all configurations that have groups (they must agree).

    (None, None) when no configuration has class groups (not DCA plans). Invalid groups raise ClassGroupsError
    naming ``plans_file`` and the configuration.
    """
    configs = plans.get("configurations") or {}
    if configuration is not None and configuration not in configs:
        raise ClassGroupsError(f"{plans_file} has no configuration {configuration!r} (has {sorted(configs)})")
    found: Dict[str, List[List[int]]] = {}
    for c in [configuration] if configuration is not None else list(configs):
        raw = _arch_kwargs(plans, c).get("class_groups")
        if raw is not None:
            found[c] = validate_groups(raw, num_classes, f"{plans_file}, configuration {c!r}")
    if not found:
        return None, None
    if len({repr(g) for g in found.values()}) > 1:
        raise ClassGroupsError(f"{plans_file}: the configurations have different class_groups "
                               f"({'; '.join(f'{c}: {g}' for c, g in found.items())}); name the configuration (-c)")
    groups = next(iter(found.values()))
    return groups, group_names(len(groups))
