"""Only job: ship ``nnunetv2_dca.pth`` into site-packages (everything else is declared in pyproject.toml).

The .pth line ``import nnunetv2_dca._hook`` makes nnU-Net's name lookups find our classes in every process, see
nnunetv2_dca/_hook.py. The file is listed in the wheel's RECORD, so ``pip uninstall`` removes it and leaves a stock
nnU-Net. Regular wheels get it through build_py; PEP 660 editable wheels (``pip install -e .``) do not run build_py
into the wheel, so the editable strategy is wrapped to add the same file.
"""

import os
from typing import Any

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "nnunetv2_dca.pth"
PTH_TEXT = "import nnunetv2_dca._hook\n"  # .pth lines starting with "import" are executed by site.py


class build_py_with_pth(build_py):
    def run(self) -> None:
        super().run()
        self.mkpath(self.build_lib)
        with open(os.path.join(self.build_lib, PTH), "w", encoding="utf-8") as f:
            f.write(PTH_TEXT)

    def get_outputs(self, include_bytecode: bool = True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH)]


class _StrategyWithPth:
    """Delegates to setuptools' editable strategy and adds our .pth to the editable wheel."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, wheel: Any, files: Any, mapping: Any) -> None:
        self._inner(wheel, files, mapping)
        wheel.writestr(PTH, PTH_TEXT)

    def __enter__(self) -> "_StrategyWithPth":
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._inner.__exit__(*exc)


class editable_wheel_with_pth(editable_wheel):
    def _select_strategy(self, *args: Any, **kwargs: Any) -> Any:
        select = getattr(super(), "_select_strategy", None)
        if select is None:  # fail the build loudly rather than install without discovery
            raise RuntimeError("this setuptools has no editable_wheel._select_strategy; "
                               "pin the setuptools version in pyproject.toml [build-system]")
        return _StrategyWithPth(select(*args, **kwargs))


def _packages() -> list:
    """nnunetv2_dca.* from nnunetv2_dca/, plus trainers/ and planners/ mapped to nnunetv2_dca.trainers/.planners."""
    packages = find_packages(include=["nnunetv2_dca", "nnunetv2_dca.*"])
    for folder in ("trainers", "planners"):
        packages += [f"nnunetv2_dca.{folder}"] + [f"nnunetv2_dca.{folder}.{p}" for p in find_packages(folder)]
    return packages


setup(packages=_packages(), cmdclass={"build_py": build_py_with_pth, "editable_wheel": editable_wheel_with_pth})
