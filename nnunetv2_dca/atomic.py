"""Files written so that a crash never leaves a half-written one that a later run would load: the content goes to a
temporary file in the target's folder, which then replaces the target (``os.replace`` is atomic on one
filesystem)."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional


@contextmanager
def atomic_output(path: str, suffix: str = ".tmp") -> Iterator[str]:
    """Yields a temporary path next to ``path``; moves it onto ``path`` if the block succeeds, removes it if not."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str, text: str) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def write_json_atomic(obj: Any, path: str, indent: int = 2, default: Optional[Callable[[Any], Any]] = None) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, default=default) + "\n")
