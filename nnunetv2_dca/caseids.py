"""Case identifiers that are safe to turn into file names.

Why: every writer here builds paths like ``<folder>/<case>_0000<ending>`` or ``<folder>/<case>.b2nd`` from a case id
that comes from outside (a dataset.json key, a file name in a folder listing, a command-line list). An id such as
``../../../file`` would write outside ``nnUNet_raw`` / ``nnUNet_preprocessed``. One check, used by every command
before it writes anything: a case id is a plain file-name stem.
"""

from __future__ import annotations

import ntpath
import os
from typing import Iterable, List


class CaseIdError(ValueError):
    """A case id cannot be used as a file-name stem; ``str()`` names the id, where it came from and the fix."""

    def __init__(self, case_id: object, where: str, reason: str):
        super().__init__(f"case id {case_id!r} in {where} {reason}: a case id becomes part of file names, so it must "
                         f"be a plain name without '/', '\\', '..' or NUL; rename the case there")
        self.case_id, self.where, self.reason = case_id, where, reason


def _problem(case_id: object) -> str:
    """What is wrong with ``case_id`` ('' when nothing)."""
    if not isinstance(case_id, str):
        return f"is a {type(case_id).__name__}, not a string"
    if not case_id:
        return "is empty"
    if "\x00" in case_id:
        return "contains a NUL character"
    if "/" in case_id or "\\" in case_id:
        return "contains a path separator"
    if ".." in case_id or case_id == ".":
        return "contains '..' (or is '.')"
    # no separator left, so only a Windows drive ('C:x') can still make it absolute
    if os.path.isabs(case_id) or ntpath.splitdrive(case_id)[0]:
        return "is an absolute path"
    return ""


def validate_case_id(case_id: object, where: str) -> str:
    """Return ``case_id`` if it is safe as a file-name stem, else raise :class:`CaseIdError` naming ``where`` (the
    file or setting it came from, e.g. ``"Dataset001_X/dataset.json key 'dataset'"`` or ``"--labeled-cases"``)."""
    reason = _problem(case_id)
    if reason:
        raise CaseIdError(case_id, where, reason)
    return case_id  # type: ignore[return-value]


def validate_case_ids(case_ids: Iterable[object], where: str) -> List[str]:
    """:func:`validate_case_id` for each id (in order); the first bad one raises."""
    return [validate_case_id(c, where) for c in case_ids]
