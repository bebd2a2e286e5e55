"""``nnunetv2_dca.folders.replace_folder``: old folders are moved aside, deleted only once the new one is in place,
and moved back when anything fails before that."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nnunetv2_dca.folders import replace_folder


def _folder(path: Path, content: str) -> Path:
    path.mkdir()
    (path / "f.txt").write_text(content)
    return path


def test_replaces_target_and_other_names(tmp_path: Path):
    new = _folder(tmp_path / ".new.partial-1", "new")
    target = _folder(tmp_path / "Dataset001_A", "old")
    other = _folder(tmp_path / "Dataset001_B", "other")
    replace_folder(str(new), str(target), also_replace=[str(other), str(target)])
    assert sorted(os.listdir(tmp_path)) == ["Dataset001_A"]
    assert (target / "f.txt").read_text() == "new"
    # nothing to replace: a plain move
    replace_folder(str(_folder(tmp_path / ".n2", "n2")), str(tmp_path / "fresh"))
    assert (tmp_path / "fresh" / "f.txt").read_text() == "n2"


@pytest.mark.parametrize("fail_on", ["moving the new folder in", "moving the second old folder aside"])
def test_failure_restores_every_old_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on: str):
    new = _folder(tmp_path / ".new.partial-1", "new")
    target = _folder(tmp_path / "Dataset001_A", "old")
    other = _folder(tmp_path / "Dataset001_B", "other")
    real = os.rename

    def rename(src, dst):
        if fail_on == "moving the new folder in" and os.fspath(src) == str(new):
            raise KeyboardInterrupt
        if fail_on == "moving the second old folder aside" and os.fspath(src) == str(other):
            raise OSError("simulated")
        return real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises((KeyboardInterrupt, OSError)):
        replace_folder(str(new), str(target), also_replace=[str(other)])
    # the old folders are back under their names; the new one is left for the caller to remove
    assert sorted(os.listdir(tmp_path)) == [".new.partial-1", "Dataset001_A", "Dataset001_B"]
    assert (target / "f.txt").read_text() == "old" and (other / "f.txt").read_text() == "other"
