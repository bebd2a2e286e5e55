"""Counting host reads of tensors (``.item()``, ``float(t)``, ``.cpu()``, ...) in a block: on a GPU each one waits
for the device, so a training step should have exactly one."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List

import torch

READS = ("item", "cpu", "numpy", "tolist", "__float__", "__int__", "__bool__")


@contextmanager
def count_host_reads(monkeypatch) -> Iterator[List[str]]:
    """The names of the read methods called on any tensor inside the block, in order (patches undone after)."""
    calls: List[str] = []
    with monkeypatch.context() as m:
        for name in READS:
            original = getattr(torch.Tensor, name)

            def wrapper(self, *args, _original=original, _name=name, **kwargs):
                calls.append(_name)
                return _original(self, *args, **kwargs)

            m.setattr(torch.Tensor, name, wrapper)
        yield calls
