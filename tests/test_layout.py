"""The package's layout rules (docs/layout.md), read from the source: the method path (what nnUNetv2_train and
nnUNetv2_predict run) imports nothing of the lab wing, one module starts subprocesses, no private name crosses a
module boundary."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "nnunetv2_dca"
METHOD_PATH = [PACKAGE / d for d in ("planning", "preprocessing", "network", "training")] + [REPO / "trainers",
                                                                                              REPO / "planners"]


def _imports(path: Path) -> Iterator[Tuple[str, ast.AST]]:
    """Every imported module name of a file (function-level imports included), with its node."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node
            for alias in node.names:  # "from nnunetv2_dca import lab"
                yield f"{node.module}.{alias.name}", node


def _sources(*roots: Path):
    for root in roots:
        yield from sorted(root.rglob("*.py"))


def test_method_path_imports_nothing_of_the_lab():
    offenders = [f"{p.relative_to(REPO)}: {name}" for p in _sources(*METHOD_PATH) for name, _ in _imports(p)
                 if name == "nnunetv2_dca.lab" or name.startswith("nnunetv2_dca.lab.")]
    assert offenders == []


def test_one_module_starts_subprocesses():
    users = sorted({str(p.relative_to(REPO)) for p in _sources(PACKAGE, REPO / "trainers", REPO / "planners")
                    for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "subprocess"})
    assert users == ["nnunetv2_dca/commands.py"]


def test_no_private_name_is_imported_from_another_module():
    offenders = [f"{p.relative_to(REPO)}: {node.module}.{alias.name}"
                 for p in _sources(PACKAGE, REPO / "trainers", REPO / "planners")
                 for name, node in _imports(p)
                 if isinstance(node, ast.ImportFrom) and name == node.module and node.module.startswith("nnunetv2_dca")
                 for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert offenders == []
