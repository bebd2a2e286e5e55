"""Start-up hook that lets nnU-Net's name lookups find the classes registered by nnunetv2-dca (and plug-ins).

``nnunetv2_dca.pth`` (installed into site-packages next to the package) imports this module when the interpreter
starts, so the hook is active in every process: the stock console scripts and the worker processes nnU-Net spawns.

Why a hook: nnU-Net resolves planners, fingerprint extractors, preprocessors, normalisers and trainers by class name
with ``recursive_find_python_class``, which only walks nnU-Net's own package folders (trainers additionally fall
back to ``nnUNet_extTrainer``, but only *after* the recursive walk, which on CPU-only torch crashes while importing
``primus`` -> timm -> torchvision). We wrap that one function so that a registered name resolves first and an
unregistered name goes to nnU-Net unchanged. Nothing is written into nnU-Net's installed files.

Cost at start-up: one meta-path finder, no imports. The wrapping happens when nnU-Net itself imports
``nnunetv2.utilities.find_class_by_name``, i.e. before any other nnU-Net module can bind the function with
``from ... import recursive_find_python_class``.
"""

from __future__ import annotations

import sys
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, Optional, Sequence

TARGET_MODULE = "nnunetv2.utilities.find_class_by_name"


class _PatchingLoader(Loader):
    """Runs the real loader, then wraps the lookup function of the freshly executed module."""

    def __init__(self, wrapped: Loader) -> None:
        self._wrapped = wrapped

    def create_module(self, spec: ModuleSpec) -> Optional[ModuleType]:
        return self._wrapped.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._wrapped.exec_module(module)
        from nnunetv2_dca.discovery import patch_find_class_module

        patch_find_class_module(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... for inspect/tracebacks
        return getattr(self._wrapped, name)


class DiscoveryFinder(MetaPathFinder):
    """Intercepts exactly one module name; every other import is left to the normal finders."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None
                  ) -> Optional[ModuleSpec]:
        if fullname != TARGET_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, DiscoveryFinder):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader)
        return spec


def install() -> None:
    """Idempotent; also patches the module in place if nnU-Net was imported before the hook (e.g. ``python -S``)."""
    if not any(isinstance(f, DiscoveryFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, DiscoveryFinder())
    module = sys.modules.get(TARGET_MODULE)
    if module is not None:
        from nnunetv2_dca.discovery import patch_find_class_module

        patch_find_class_module(module)


install()
