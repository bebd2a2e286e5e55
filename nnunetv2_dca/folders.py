"""Folder operations: replacing a folder so that an error or Ctrl-C at any point loses neither the old nor the new
content, and hard-linking files into a new dataset."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator, List, Sequence


def _aside_name(path: str) -> str:
    # hidden sibling on the same filesystem, so the renames are atomic and nnU-Net's dataset lookups skip it
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.old-{os.urandom(4).hex()}")


def replace_folder(new: str, target: str, also_replace: Sequence[str] = ()) -> None:
    """Move the folder ``new`` to ``target``.

    The existing ``target`` and the folders in ``also_replace`` (e.g. the same nnU-Net dataset id under another name)
    are first renamed to hidden siblings (``.<name>.old-XXXX``), then ``new`` is renamed to ``target``, and only then
    are the old folders deleted. If anything fails (or Ctrl-C arrives) before ``new`` is in place, the old folders are
    renamed back and ``new`` is left where it was (the caller removes it). ``new`` and ``target`` must be on one
    filesystem (a sibling temporary folder)."""
    old_paths: List[str] = []
    for path in [target, *also_replace]:
        if os.path.lexists(path) and os.path.abspath(path) not in (os.path.abspath(p) for p in old_paths):
            old_paths.append(path)
    moved: List[tuple] = []  # (original, aside)
    try:
        for path in old_paths:
            aside = _aside_name(path)
            os.rename(path, aside)
            moved.append((path, aside))
        os.rename(new, target)
    except BaseException:
        for path, aside in reversed(moved):
            try:
                os.rename(aside, path)
            except OSError as e:  # pragma: no cover - only if the filesystem fails twice in a row
                raise OSError(f"could not move {aside} back to {path} ({e}); the old content is in {aside}") from e
        raise
    for _, aside in moved:
        shutil.rmtree(aside, ignore_errors=True)


def link_or_copy(src: str, dst: str) -> bool:
    """Hard link (True) or, across filesystems / where links are not allowed, a copy (False). Never a symlink;
    os.link follows a symlinked source, so the result is always a regular file."""
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copy2(src, dst)
        return False


@contextlib.contextmanager
def building(target: str, also_replace: Sequence[str] = ()) -> Iterator[str]:
    """``with building(target) as tmp:`` write the new folder into ``tmp`` (a hidden sibling of ``target``); on a
    clean exit it replaces ``target`` (and ``also_replace``) by :func:`replace_folder`, on any error it is deleted
    and the old folders stay as they were."""
    parent, name = os.path.split(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent)
    try:
        yield tmp
        replace_folder(tmp, target, also_replace=also_replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
