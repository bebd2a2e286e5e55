"""Files written so that a crash never leaves a half-written one that a later run would load: the content goes to a
temporary file in the target's folder, which then replaces the target (``os.replace`` is atomic on one
filesystem).

The temporary file is hidden and named after its target, ``.<name>.partial-XXXXXXXX<suffix>``: a run killed with
``kill -9`` (no ``finally`` runs) leaves only such a file, never a short ``<name>``, and the next write of the same
target removes it (:func:`clean_partial_files`). Nothing else in the folder is touched."""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

PARTIAL = ".partial-"  # hidden temporary files and folders of a target: .<name>.partial-XXXXXXXX...
TEST_PAUSE_ENV = "nnUNetDCA_test_pause"


def pause_point(point: str, path: str) -> None:
    """Test-only hook for the kill -9 tests (tests/test_interrupted_runs.py, docs/testing.md). With
    ``nnUNetDCA_test_pause=<point>[:<pattern>]`` set, a writer that reaches ``point`` for a target whose name matches
    the fnmatch ``pattern`` (default: any) prints ``nnUNetDCA_test_pause: <point> <path>`` on stderr and sleeps, so
    that the test can kill it there. Points: ``writing`` (a file's temporary copy is complete, the target not yet
    replaced), ``building`` (a folder is built in its hidden sibling, not yet moved in), ``replacing`` (the old
    folders are moved aside, the new one not yet in place). Unset: nothing happens."""
    spec = os.environ.get(TEST_PAUSE_ENV)
    if not spec:
        return
    wanted, _, pattern = spec.partition(":")
    if wanted == point and fnmatch.fnmatchcase(os.path.basename(os.path.abspath(path)), pattern or "*"):
        print(f"{TEST_PAUSE_ENV}: {point} {os.path.abspath(path)}", file=sys.stderr, flush=True)
        time.sleep(600)


def _partial_prefix(path: str) -> str:
    return "." + os.path.basename(os.path.abspath(path)) + PARTIAL


def clean_partial_files(path: str) -> List[str]:
    """Remove the temporary files a killed write of ``path`` left next to it (``.<name>.partial-*``, regular files
    only); returns their paths."""
    folder = os.path.dirname(os.path.abspath(path))
    prefix = _partial_prefix(path)
    removed: List[str] = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in entries:
        leftover = os.path.join(folder, entry)
        if entry.startswith(prefix) and os.path.isfile(leftover) and not os.path.islink(leftover):
            try:
                os.remove(leftover)
                removed.append(leftover)
            except FileNotFoundError:
                pass
    return removed


def _normal_permissions(tmp: str) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions


@contextmanager
def atomic_output(path: str, suffix: str = ".tmp") -> Iterator[str]:
    """Yields a temporary path next to ``path``; moves it onto ``path`` if the block succeeds, removes it if not."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    clean_partial_files(path)  # of an earlier write of this target that was killed
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=_partial_prefix(path), dir=folder)
    os.close(fd)
    try:
        yield tmp
        _normal_permissions(tmp)
        pause_point("writing", path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str, text: str) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def save_figure_atomic(fig, path: str, dpi: int = 100) -> str:
    """Save a matplotlib figure without ever leaving a half-written PNG; the figure is closed."""
    import matplotlib.pyplot as plt

    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return path


def numpy_to_builtin(obj: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays (nnU-Net's fingerprints and plans hold them)."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json_atomic(obj: Any, path: str, indent: int = 2, default: Optional[Callable[[Any], Any]] = None) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, default=default) + "\n")


def _write_text_file(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())  # the data is on disk before any old file is replaced


def atomic_file_set(contents: Mapping[str, str]) -> None:
    """Write several text files as one set: {path: text}. Every text goes to a temporary file next to its target
    first (where a full disk or a quota fails); only when all are written do they replace the targets. If anything
    fails, no target is changed (targets already replaced are restored from hard-link backups where the filesystem
    allows them) and no temporary file remains."""
    tmps: Dict[str, str] = {}
    backups: Dict[str, str] = {}
    replaced: List[str] = []
    try:
        for path, text in contents.items():
            folder = os.path.dirname(os.path.abspath(path))
            clean_partial_files(path)  # of an earlier write of this set that was killed
            fd, tmps[path] = tempfile.mkstemp(suffix=".tmp", prefix=_partial_prefix(path), dir=folder)
            os.close(fd)
            _write_text_file(tmps[path], text)
        for path in tmps:
            pause_point("writing", path)
        for path, tmp in tmps.items():
            _normal_permissions(tmp)
            if os.path.exists(path):
                backup = tmp + ".old"
                try:
                    os.link(path, backup)  # no copy: a second name for the old file, to undo a half-done swap
                    backups[path] = backup
                except OSError:
                    pass
        for path, tmp in tmps.items():
            os.replace(tmp, path)
            replaced.append(path)
    except BaseException:
        for path in replaced:  # renames rarely fail, but a half-swapped set must not stay behind
            if path in backups:
                try:
                    os.replace(backups.pop(path), path)
                except OSError:
                    pass
        raise
    finally:
        for leftover in list(tmps.values()) + list(backups.values()):
            if os.path.exists(leftover):
                os.remove(leftover)
