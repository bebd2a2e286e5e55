"""The package's layout rules (docs/layout.md), read from the source: the method path (what nnUNetv2_train and
nnUNetv2_predict run) imports nothing of the lab wing, one module starts subprocesses, no private name crosses a
module boundary (imported or called), no module over 450 lines and no function over 80."""

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


def _private_defs(path: Path) -> set:
    """Names of the private functions and methods a file defines."""
    return {node.name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_")
            and not node.name.startswith("__")}


# third-party privates we use, each with a comment at the call saying why (nnU-Net's own code does the same)
THIRD_PARTY_PRIVATES = {"_orig_mod", "_finish", "_do_i_compile", "_dynamo", "_pool", "_SubParsersAction"}


def test_no_private_attribute_crosses_a_module():
    """``other._name`` where ``_name`` is not defined in this module: a public name in disguise (issue 28), unless
    it is one of the third-party privates listed above. ``self._name`` / ``cls._name`` stay free."""
    offenders = []
    for p in _sources(PACKAGE, REPO / "trainers", REPO / "planners"):
        own = _private_defs(p)
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.attr not in own and node.attr not in THIRD_PARTY_PRIVATES
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                offenders.append(f"{p.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 80  # issue 28: past these, split (docs/layout.md)


def test_no_module_or_function_is_past_the_size_limits():
    too_long = []
    for p in _sources(PACKAGE, REPO / "trainers", REPO / "planners"):
        text = p.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{p.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{p.relative_to(REPO)}:{node.lineno}: {node.name} {length} lines")
    assert too_long == []
