"""Issue 17: the plans <-> network mapping has one home, both directions, and the packages import no circle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from netspec import REQ_IMPORT, tiny_arch_kwargs
from nnunetv2_dca.network.architectures import (DCA_NETWORKS, MOE_NETWORKS, dca_architecture, is_dca, is_moe,
                                                semi_moe_architecture, stock_architecture)

PACKAGE = Path(__file__).resolve().parents[2] / "nnunetv2_dca"


@pytest.mark.parametrize("encoder,stock", [("plain", "PlainConvUNet"), ("resenc", "ResidualEncoderUNet")])
def test_every_direction_of_the_mapping_returns_to_the_stock_network(encoder, stock):
    plan = {"network_class_name": f"dynamic_network_architectures.architectures.unet.{stock}",
            "arch_kwargs": tiny_arch_kwargs(3, encoder), "_kw_requires_import": REQ_IMPORT}
    dca = dca_architecture(plan, [[1], [2]])
    moe = semi_moe_architecture(plan)
    moe_from_dca = semi_moe_architecture(dca)
    assert is_dca(dca["network_class_name"]) and is_moe(moe["network_class_name"])
    assert moe_from_dca == moe  # DCA plans give the same Semi-MoE network as stock plans
    for arch in (dca, moe, moe_from_dca):
        assert stock_architecture(arch) == {**plan, "_kw_requires_import": tuple(REQ_IMPORT)}
    assert stock_architecture(plan) == {**plan, "_kw_requires_import": tuple(REQ_IMPORT)}
    assert set(DCA_NETWORKS) == set(MOE_NETWORKS)


def _module_imports():
    """module -> the nnunetv2_dca modules it imports (module level and inside functions)."""
    edges = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nnunetv2_dca"):
                for alias in node.names:  # "from pkg import module" imports the module
                    sub = f"{node.module}.{alias.name}"
                    edges[module].add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).is_file()
                                      else node.module)
            elif isinstance(node, ast.Import):
                edges[module].update(a.name for a in node.names if a.name.startswith("nnunetv2_dca"))
        edges[module].discard(module)
    return edges


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _cycles(edges):
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in edges.get(node, ()):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in list(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_circle_between_modules_or_stages():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) and not _cycles({"a": {"b", "c"}, "b": {"c"}})
    modules = _module_imports()
    assert _cycles(modules) == []
    stages = defaultdict(set)
    for src, dsts in modules.items():
        stages[_stage(src)].update(_stage(d) for d in dsts if _stage(d) != _stage(src))
    assert _cycles(stages) == []
    assert "planning" not in stages["network"] and "training" not in stages["network"]  # networks stand alone
    assert "nnunetv2_dca.lab.benchmark.run" not in modules["nnunetv2_dca.lab.benchmark.report"]  # report takes results
    assert "nnunetv2_dca.lab.benchmark.report" not in modules["nnunetv2_dca.lab.benchmark.charts"]
