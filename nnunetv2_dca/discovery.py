"""Registry of classes that nnU-Net looks up by name (planners, preprocessors, trainers, ...).

A class becomes visible to the stock nnU-Net commands by an entry point in the group ``nnunetv2_dca.classes``
whose *name* is the class name nnU-Net is asked for (``-tr``, ``-pl``, ``-fpe``, ``preprocessor_name`` and
``normalization_schemes`` in the plans) and whose value is ``module:Class``. nnunetv2-dca registers its own classes
in ``pyproject.toml``; another package (or a test) can register more the same way.

Rules:
- A registered name never falls through to nnU-Net's recursive folder search (which imports every module in
  nnU-Net's trainer tree, including ``primus`` -> timm -> torchvision).
- An unregistered name goes to nnU-Net unchanged, so stock names (``nnUNetTrainer``, ``ExperimentPlanner``)
  still resolve to nnU-Net's classes. Registered names must therefore not shadow stock names (tested for ours).
- Two distributions registering one name with different targets is an error naming both.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Callable, Dict, Optional

from nnunetv2_dca import ENTRY_POINT_GROUP, SUPPORTED_NNUNETV2


class DiscoveryError(RuntimeError):
    """A registered class could not be resolved (bad entry point, import error, name clash)."""


@functools.lru_cache(maxsize=1)
def registered_entry_points() -> Dict[str, EntryPoint]:
    """Class name -> entry point, over all installed distributions (cached per process)."""
    found: Dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            raise DiscoveryError(
                f"class name {ep.name!r} is registered twice in entry-point group {ENTRY_POINT_GROUP!r}: "
                f"{other.value!r} ({_dist_name(other)}) and {ep.value!r} ({_dist_name(ep)}). "
                f"Uninstall one of the two distributions."
            )
        found[ep.name] = ep
    return found


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"distribution {dist.name}" if dist is not None else "unknown distribution"


def find_registered_class(class_name: str) -> Optional[type]:
    """The registered class for ``class_name``, or None if the name is not registered."""
    ep = registered_entry_points().get(class_name)
    if ep is None:
        return None
    try:
        obj = ep.load()
    except Exception as e:  # surface the entry point, not just a bare ImportError deep in nnU-Net
        raise DiscoveryError(
            f"class {class_name!r} is registered as {ep.value!r} ({_dist_name(ep)}) but could not be loaded: "
            f"{type(e).__name__}: {e}"
        ) from e
    if not isinstance(obj, type):
        raise DiscoveryError(f"entry point {class_name!r} = {ep.value!r} is not a class but {type(obj).__name__}")
    # a stock nnUNetv2_* command now runs one of our classes: our input errors end in one line there, too
    from nnunetv2_dca.errors import install_stock_command_hook

    install_stock_command_hook()
    return obj


def wrap_lookup(original: Callable[..., Optional[type]]) -> Callable[..., Optional[type]]:
    """Wrap nnU-Net's ``recursive_find_python_class``: registered names first, everything else unchanged."""
    if getattr(original, "__nnunetv2_dca_wrapped__", False):
        return original

    @functools.wraps(original)
    def recursive_find_python_class(folder: str, class_name: str, current_module: Optional[str], *args, **kwargs):
        cls = find_registered_class(class_name)
        if cls is not None:
            return cls
        return original(folder, class_name, current_module, *args, **kwargs)

    recursive_find_python_class.__nnunetv2_dca_wrapped__ = True  # type: ignore[attr-defined]
    return recursive_find_python_class


def _nnunetv2_version() -> str:
    try:
        from importlib.metadata import version

        return version("nnunetv2")
    except Exception:  # metadata missing (e.g. a source tree on sys.path)
        return "unknown"


def patch_find_class_module(module: ModuleType) -> None:
    """Replace the lookup in ``nnunetv2.utilities.find_class_by_name`` (idempotent).

    Raises ImportError naming nnunetv2's version when the function is missing: an AttributeError here (inside the
    module's import) would reach the user as Python's misleading "partially initialized module ... circular import".
    """
    original = getattr(module, "recursive_find_python_class", None)
    if not callable(original):
        raise ImportError(
            f"nnunetv2-dca: {module.__name__} has no function recursive_find_python_class in the installed "
            f"nnunetv2 {_nnunetv2_version()}; nnunetv2-dca supports nnunetv2{SUPPORTED_NNUNETV2}. Install a "
            f"supported release (pip install 'nnunetv2{SUPPORTED_NNUNETV2}') or uninstall nnunetv2-dca "
            f"(pip uninstall nnunetv2-dca) to use this nnU-Net without it.")
    module.recursive_find_python_class = wrap_lookup(original)


def hook_active() -> bool:
    """True if nnU-Net's lookup is wrapped in this process (i.e. the .pth start-up hook ran)."""
    from nnunetv2.utilities import find_class_by_name

    return bool(getattr(find_class_by_name.recursive_find_python_class, "__nnunetv2_dca_wrapped__", False))
