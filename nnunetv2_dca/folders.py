"""Folder operations: replacing a folder so that an error or Ctrl-C at any point loses neither the old nor the new
content, cleaning up after a run killed outright (``kill -9``, power loss), and hard-linking files into a new
dataset.

Names, all hidden siblings of the target (nnU-Net's dataset lookups and ``DatasetXXX_`` prefixes skip them):
``.<name>.partial-<token>`` is a folder being built, ``.<name>.old-<token>`` an old folder moved aside while the new
one (same token) moves in, ``.<name>.deleting-<token>`` a folder being deleted (:func:`remove_folder`). A killed run
leaves only such names, never a half-written or half-deleted ``<name>``; the next run of the same command calls
:func:`clean_interrupted` (or :func:`clean_interrupted_dataset`) for its own target first."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

from nnunetv2_dca.atomic import PARTIAL, pause_point

ASIDE = ".old-"
DELETING = ".deleting-"
# mkdtemp's 8 characters (folders of earlier versions) or 8 hex digits (os.urandom(4).hex())
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<kind>partial|old|deleting)-(?P<token>[a-z0-9_]{8})")


def _token_of(new: str) -> str:
    """The token of a folder made by :func:`building` (its old folders are moved aside under the same token, which
    is how :func:`clean_interrupted` tells an unfinished swap from a finished one), else a fresh one."""
    m = _LEFTOVER.fullmatch(os.path.basename(os.path.abspath(new)))
    return m.group("token") if m and m.group("kind") == "partial" else os.urandom(4).hex()


def _aside_name(path: str, token: str) -> str:
    # hidden sibling on the same filesystem, so the renames are atomic and nnU-Net's dataset lookups skip it
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}{ASIDE}{token}")


def replace_folder(new: str, target: str, also_replace: Sequence[str] = ()) -> None:
    """Move the folder ``new`` to ``target``.

    The existing ``target`` and the folders in ``also_replace`` (e.g. the same nnU-Net dataset id under another name)
    are first renamed to hidden siblings (``.<name>.old-<token>``, the token of ``new``), then ``new`` is renamed to
    ``target``, and only then are the old folders deleted. If anything fails (or Ctrl-C arrives) before ``new`` is in
    place, the old folders are renamed back and ``new`` is left where it was (the caller removes it); a run killed
    outright is put right by :func:`clean_interrupted`. ``new`` and ``target`` must be on one filesystem (a sibling
    temporary folder)."""
    old_paths: List[str] = []
    for path in [target, *also_replace]:
        if os.path.lexists(path) and os.path.abspath(path) not in (os.path.abspath(p) for p in old_paths):
            old_paths.append(path)
    moved: List[tuple] = []  # (original, aside)
    token = _token_of(new)
    try:
        for path in old_paths:
            aside = _aside_name(path, token)
            if os.path.lexists(aside):
                raise FileExistsError(f"{aside} exists already; not moving {path} there")
            os.rename(path, aside)
            moved.append((path, aside))
        pause_point("replacing", target)
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


def remove_folder(path: str) -> None:
    """Delete a folder so that it disappears at once: renamed to the hidden ``.<name>.deleting-<token>`` first (a
    kill -9 during the deletion leaves that name, which :func:`clean_interrupted` deletes, never a half-deleted
    ``<name>``)."""
    parent, name = os.path.split(os.path.abspath(path))
    doomed = os.path.join(parent, f".{name}{DELETING}{os.urandom(4).hex()}")
    os.rename(path, doomed)
    shutil.rmtree(doomed)


def _new_partial(parent: str, name: str) -> str:
    while True:
        tmp = os.path.join(parent, f".{name}{PARTIAL}{os.urandom(4).hex()}")
        try:
            os.mkdir(tmp)  # the usual permissions (umask), as the folder becomes the dataset itself
            return tmp
        except FileExistsError:  # pragma: no cover - a repeated 32-bit token
            continue


@contextlib.contextmanager
def building(target: str, also_replace: Sequence[str] = ()) -> Iterator[str]:
    """``with building(target) as tmp:`` write the new folder into ``tmp`` (a hidden sibling of ``target``,
    ``.<name>.partial-<token>``); on a clean exit it replaces ``target`` (and ``also_replace``) by
    :func:`replace_folder`, on any error it is deleted and the old folders stay as they were. Call
    :func:`clean_interrupted` for the target before, for what a killed run left."""
    parent, name = os.path.split(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = _new_partial(parent, name)
    try:
        yield tmp
        pause_point("building", target)
        replace_folder(tmp, target, also_replace=also_replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_interrupted(parent: str, owns: Callable[[str], bool], tool: str = "nnunetv2-dca") -> List[str]:
    """Put right what a killed :func:`building` / :func:`replace_folder` left in ``parent``, for the target names
    ``owns`` accepts (e.g. one dataset id); every other entry of ``parent`` is left alone. Returns what was done (also
    printed in one line on stderr).

    - a swap that had not finished (its ``.<name>.partial-<token>`` is still there): the old folders moved aside under
      that token are renamed back (where the name is free again), the unfinished new folder is deleted;
    - a swap that had finished (no partial folder of its token): the old folders moved aside are deleted, provided a
      folder the target names cover is in place; if none is (a swap of an earlier version, whose tokens differed), they
      are renamed back instead - an old folder is never deleted while nothing replaces it;
    - a folder whose :func:`remove_folder` was cut short (``.<name>.deleting-<token>``): deleted."""
    if not os.path.isdir(parent):
        return []
    groups: Dict[str, Dict[str, List[Tuple[str, str]]]] = {}
    done: List[str] = []
    for entry in sorted(os.listdir(parent)):
        m = _LEFTOVER.fullmatch(entry)
        path = os.path.join(parent, entry)
        if m is None or not owns(m.group("name")) or os.path.islink(path) or not os.path.isdir(path):
            continue
        if m.group("kind") == "deleting":
            shutil.rmtree(path)
            done.append(f"removed {entry} (its deletion had been cut short)")
            continue
        groups.setdefault(m.group("token"), {"partial": [], "old": []})[m.group("kind")].append((m.group("name"),
                                                                                                 path))

    def restore(asides: List[Tuple[str, str]]) -> None:
        for name, aside in asides:
            if os.path.lexists(os.path.join(parent, name)):
                done.append(f"left {aside} (an earlier {name}; {name} exists too: remove one of them yourself)")
            else:
                os.rename(aside, os.path.join(parent, name))
                done.append(f"restored {name} from {os.path.basename(aside)}")

    # unfinished swaps first: their old folders go back before the finished ones look for a folder in place
    for token, group in sorted(groups.items(), key=lambda item: not item[1]["partial"]):
        if group["partial"]:
            restore(group["old"])
            for _, partial in group["partial"]:
                shutil.rmtree(partial)
                done.append(f"removed the unfinished {os.path.basename(partial)}")
            continue
        in_place = [e for e in os.listdir(parent) if not e.startswith(".") and owns(e)
                    and os.path.isdir(os.path.join(parent, e))]
        if in_place:
            for _, aside in group["old"]:
                shutil.rmtree(aside)
                done.append(f"removed {os.path.basename(aside)} (replaced by {', '.join(sorted(in_place))})")
        else:
            restore(group["old"])
    if done:
        print(f"{tool}: cleaned up after an interrupted run in {parent}: {'; '.join(done)}", file=sys.stderr,
              flush=True)
    return done


def dataset_prefix(dataset_id: int) -> str:
    """``DatasetXXX_``: how nnU-Net names the folders of a dataset id."""
    return f"Dataset{int(dataset_id):03d}_"


def dataset_folders(base: str, dataset_id: int) -> List[str]:
    """Names of the ``DatasetXXX_*`` folders of one id directly under ``base`` (sorted; [] without ``base``). Not
    nnU-Net's ``find_candidate_datasets``: that one searches the nnUNet_* folders fixed when nnunetv2 is imported,
    ours any folder (the benchmark's own raw folder, a ``--raw`` argument)."""
    if not base or not os.path.isdir(base):
        return []
    prefix = dataset_prefix(dataset_id)
    return sorted(d for d in os.listdir(base) if d.startswith(prefix) and os.path.isdir(os.path.join(base, d)))


def clean_interrupted_dataset(raw: str, dataset_id: int, tool: str = "nnunetv2-dca") -> List[str]:
    """:func:`clean_interrupted` for the folders of one dataset id (``DatasetXXX_*``) under ``raw``."""
    prefix = dataset_prefix(dataset_id)
    return clean_interrupted(raw, lambda name: name.startswith(prefix), tool)
