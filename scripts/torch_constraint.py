"""Print pip constraints that keep the installed torch (and torchvision) exactly as they are.

Used by scripts/setup_env.sh before `pip install -e .`, so no dependency can swap the user's torch build for another.
The pin must name the installed *distribution's* version (importlib.metadata), not ``torch.__version__``: the CUDA
wheels on PyPI report ``2.13.0+cu130`` in ``torch.__version__`` while the distribution is ``2.13.0``, and a
constraint ``torch==2.13.0+cu130`` matches no installable torch (pip: ResolutionImpossible).
"""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Callable, List

PINNED = ("torch", "torchvision")


def constraint_lines(version_of: Callable[[str], str] = metadata.version) -> List[str]:
    """``name==<distribution version>`` for each installed package of PINNED (torch is required)."""
    lines = []
    for name in PINNED:
        try:
            lines.append(f"{name}=={version_of(name)}")
        except metadata.PackageNotFoundError:
            if name == "torch":
                raise
    return lines


if __name__ == "__main__":
    try:
        print("\n".join(constraint_lines()))
    except metadata.PackageNotFoundError:
        sys.exit("setup: torch is importable but has no installed distribution metadata; install torch with pip")
