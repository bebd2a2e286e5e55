"""Bad input ends in one line: the project's input errors, how they are printed, and the JSON files users hand in.

Rule (docs/what-commands-write.md): a command refused because of its input prints ONE line, ``<command>: error:
<what is wrong with which file, id or setting, and the fix>``, and exits != 0 (``nnunetv2-dca``: 2; the stock
``nnUNetv2_*`` commands: 1). A genuine bug keeps its traceback. Which exceptions are "input" errors:

* the project's own error classes (defined in a module of ``nnunetv2_dca``, e.g. :class:`InputFileError`,
  ``UnlabeledImageError``, ``CaseIdError``, ``GroupingError``), unless they wrap an unexpected exception of another
  library (``raise OurError(...) from e`` with ``e`` neither ours nor about the input, :data:`INPUT_CAUSES`: a reader
  that crashed on a file that passed every check is a bug to report, so its traceback stays);
* a plain ``ValueError`` raised by the project's own code (``raise ValueError("--seeds is empty")``), but not one
  raised inside numpy, torch or nnU-Net and left unwrapped: such an error does not name the input, so it is either a
  bug or an input check that is still missing, and both need the traceback (in ``nnunetv2-dca`` a JSON decoding
  error is always input);
* ``OSError``s about a path (not found, exists, is a directory, permission): their message names the path (in the
  stock commands only those the project's code raised).

:func:`install_stock_command_hook` applies the same rule to the stock ``nnUNetv2_*`` commands (they run our planner,
preprocessor and trainers): only our own errors are shortened there, everything else is nnU-Net's own output.

No heavy imports here: the start-up hook's discovery module imports this one.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from types import TracebackType
from typing import Any, Mapping, Optional, Sequence, Tuple, Type

PACKAGE = "nnunetv2_dca"
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

# OSErrors about a path given by the user: the message names it ([Errno 2] No such file or directory: 'x')
PATH_ERRORS: Tuple[Type[BaseException], ...] = (FileNotFoundError, FileExistsError, NotADirectoryError,
                                                 IsADirectoryError, PermissionError)


class InputFileError(ValueError):
    """A file the user handed in (dataset.json, plans, split file, dca_groups.json, fingerprint, checkpoint, image)
    cannot be used; ``str()`` names the file, what is wrong and the fix."""

    def __init__(self, message: str, path: Optional[str] = None):
        super().__init__(message)
        self.path = path


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (readers' multi-line messages and problem lists joined by spaces)."""
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text or type(error).__name__


def is_own_class(error: BaseException) -> bool:
    """True for exceptions whose class the project defines (one of its deliberate, message-carrying errors)."""
    return any(cls.__module__.split(".")[0] == PACKAGE for cls in type(error).__mro__)


def _raised_in_package(error: BaseException) -> bool:
    """True if the innermost frame of ``error``'s traceback is the project's code (a deliberate ``raise``, or a C
    function such as ``open``/``int`` called from it), False if it came out of another library's Python code."""
    tb: Optional[TracebackType] = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = os.path.abspath(tb.tb_frame.f_code.co_filename)
    return filename.startswith(PACKAGE_DIR + os.sep)


# causes that are about the input, not a bug: a file system error, a cut-off or corrupt compressed stream, bad JSON
INPUT_CAUSES: Tuple[Type[BaseException], ...] = (OSError, EOFError, zlib.error, json.JSONDecodeError,
                                                 UnicodeDecodeError)


def _wraps_foreign_error(error: BaseException) -> bool:
    cause = error.__cause__
    return cause is not None and not is_own_class(cause) and not isinstance(cause, INPUT_CAUSES)


def is_input_error(error: BaseException, stock_command: bool = False) -> bool:
    """Whether ``error`` reports bad input (print one line) rather than a bug (keep the traceback); see the module
    docstring. ``stock_command``: inside a stock ``nnUNetv2_*`` command, where only what the project's code raised
    is shortened (nnU-Net's own errors stay as nnU-Net prints them)."""
    if is_own_class(error):
        return not _wraps_foreign_error(error)
    if isinstance(error, PATH_ERRORS):
        return _raised_in_package(error) if stock_command else True
    if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)) and not stock_command:
        return True  # always about an input file (read_json names it; an unnamed one is still better than a trace)
    if isinstance(error, ValueError):
        return _raised_in_package(error)
    return False


# ----------------------------------------------------------------------------------------------------- JSON input
def read_json(path: str, what: str, fix: str = "", expect: type = dict) -> Any:
    """The content of a JSON file the user handed in, or one line naming the file: :class:`InputFileError` for a
    file that is not valid JSON or holds something else than ``expect`` (``dict``: an object; ``list``; ``None``:
    anything), ``FileNotFoundError`` for a missing one. ``what`` says what the file is ("dataset.json", "plans
    file"), ``fix`` how to repair it (appended after '; ')."""
    path = os.fspath(path)
    tail = f"; {fix}" if fix else ""
    if os.path.isdir(path):
        raise InputFileError(f"{what} {path} is a folder, not a JSON file{tail}", path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}{tail}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise InputFileError(f"{what} {path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}){tail}",
                             path) from None
    except UnicodeDecodeError as e:
        raise InputFileError(f"{what} {path} is not a UTF-8 text file ({e.reason} at byte {e.start}){tail}",
                             path) from None
    if expect is not None and not isinstance(data, expect):
        shape = {dict: "an object {...}", list: "a list [...]"}.get(expect, expect.__name__)
        raise InputFileError(f"{what} {path} holds a JSON {type(data).__name__}, expected {shape}{tail}", path)
    return data


DATASET_JSON_KEYS = ("labels", "file_ending", "channel_names")


def check_dataset_json(dataset_json: Mapping, path: str, keys: Sequence[str] = DATASET_JSON_KEYS) -> Mapping:
    """The keys of nnU-Net's dataset.json that the project's commands read (``keys``), with one line naming ``path``
    and the key when one is missing or of the wrong type: ``labels`` (name -> int, or list of ints for a region),
    ``file_ending`` (a string starting with '.'), ``channel_names`` (or the old ``modality``) as an object."""
    if not isinstance(dataset_json, Mapping):
        raise InputFileError(f"dataset.json {path} holds a JSON {type(dataset_json).__name__}, expected an object "
                             f"{{...}} with nnU-Net's keys (labels, channel_names, file_ending, numTraining)", path)
    labels = dataset_json.get("labels")
    if "labels" in keys:
        if not isinstance(labels, Mapping) or not labels:
            raise InputFileError(f"dataset.json {path} has no 'labels' object (expected e.g. {{\"background\": 0, "
                                 f"\"liver\": 1}}); add the label names and values", path)
        for name, value in labels.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise InputFileError(f"dataset.json {path}: label {name!r} has value {value!r}, expected an integer "
                                     f"(or a list of integers for a region)", path)
    ending = dataset_json.get("file_ending")
    if "file_ending" in keys and (not isinstance(ending, str) or not ending.startswith(".")):
        raise InputFileError(f"dataset.json {path} has no valid 'file_ending' (got {ending!r}; expected e.g. "
                             f"\".nii.gz\"); add the ending of the image files", path)
    channels = dataset_json.get("channel_names", dataset_json.get("modality"))
    if "channel_names" in keys and (not isinstance(channels, Mapping) or not channels):
        raise InputFileError(f"dataset.json {path} has no 'channel_names' object (expected e.g. {{\"0\": \"CT\"}}); "
                             f"add one entry per image channel", path)
    return dataset_json


def read_dataset_json(path: str, keys: Sequence[str] = DATASET_JSON_KEYS) -> dict:
    """:func:`read_json` + :func:`check_dataset_json` (of ``keys``) for a dataset.json."""
    return dict(check_dataset_json(read_json(path, "dataset.json", "fix the file (nnU-Net's dataset.json format)"),
                                   path, keys))


# ---------------------------------------------------------------------------------- stock nnUNetv2_* commands
def _one_line_hook(previous):
    def hook(exc_type, exc, tb):
        if exc is not None and is_input_error(exc, stock_command=True):
            prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
            print(f"{prog}: error: {one_line(exc)}", file=sys.stderr, flush=True)
            return
        previous(exc_type, exc, tb)

    hook.__nnunetv2_dca_one_line__ = True  # type: ignore[attr-defined]
    return hook


def install_stock_command_hook() -> bool:
    """In a stock ``nnUNetv2_*`` console script: an uncaught input error of the project (see the module docstring)
    ends in one line instead of a traceback (exit status 1, as for any uncaught exception). Other exceptions and other
    programs are left alone. Idempotent; returns whether the hook is (now) active."""
    prog = os.path.basename(sys.argv[0]) if getattr(sys, "argv", None) else ""
    if not prog.startswith("nnUNetv2_"):
        return False
    if not getattr(sys.excepthook, "__nnunetv2_dca_one_line__", False):
        sys.excepthook = _one_line_hook(sys.excepthook)
    return True
