"""Snapshots of a folder tree (every file with size, mtime and inode; every folder), for tests of commands that may
write and delete only their own output: compare a snapshot taken before with one taken after."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Dict, Iterable, List, Tuple


def snapshot(root: Path) -> Dict[str, Tuple]:
    """relative path -> ("dir",) or (kind, size, mtime_ns, inode) of everything below ``root`` (links not followed;
    the inode tells a file replaced by a copy with the same size and mtime)."""
    out: Dict[str, Tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                kind = "link" if stat.S_ISLNK(st.st_mode) else "file"
                out[rel] = (kind, st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def changed(before: Dict[str, Tuple], after: Dict[str, Tuple], allowed: Iterable[str] = ()) -> List[str]:
    """Paths added, removed or modified between two snapshots, except those at or below an ``allowed`` prefix
    (relative paths; a prefix ending in '*' matches any name that starts with it)."""
    def is_allowed(path: str) -> bool:
        for prefix in allowed:
            if prefix.endswith("*") and path.startswith(prefix[:-1]):
                return True
            if path == prefix or path.startswith(prefix.rstrip("/") + os.sep):
                return True
        return False

    paths = sorted(set(before) | set(after))
    return [p for p in paths if before.get(p) != after.get(p) and not is_allowed(p)]
