"""Every test that starts a subprocess is marked slow, so `make test-fast` (pytest -m "not slow") stays in-process."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
STARTS_A_PROCESS = ("run_cmd(", "subprocess.", "fresh_env(")


def _is_slow_mark(node: ast.expr) -> bool:
    return "slow" in ast.unparse(node)


def test_subprocess_tests_are_marked_slow():
    unmarked = []
    for path in sorted(TESTS.rglob("test_*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        module_slow = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                          and _is_slow_mark(n.value) for n in tree.body)
        if module_slow:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                body = ast.get_source_segment(source, node)
                if any(k in body for k in STARTS_A_PROCESS) and not any(map(_is_slow_mark, node.decorator_list)):
                    unmarked.append(f"{path.relative_to(TESTS)}::{node.name}")
    assert unmarked == []
