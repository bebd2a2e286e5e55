"""Simulated faults while a freshly written folder is moved into place (tests of the --overwrite swaps)."""

from __future__ import annotations

import os


def fail_moving_in(monkeypatch, error: type, marker: str = ".partial-") -> None:
    """Make os.rename/os.replace raise ``error`` when the source's name contains ``marker`` (the temporary dataset
    folder); every other move works, so moving the old folder aside and back still happens for real."""
    for name in ("rename", "replace"):
        real = getattr(os, name)

        def move(src, dst, *args, _real=real, **kwargs):
            if marker in os.path.basename(os.fspath(src)):
                raise error("interrupted while moving the new dataset in (simulated)")
            return _real(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, name, move)
