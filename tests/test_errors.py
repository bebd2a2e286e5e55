"""nnunetv2_dca.errors: which exceptions are input errors (one line) and which keep their traceback; the JSON reader
of user files; the hook for the stock nnUNetv2_* commands. The commands end to end: tests/test_bad_inputs.py."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from nnunetv2_dca import errors as E
from nnunetv2_dca.caseids import CaseIdError, validate_case_id


def _raise(fn):
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - the test inspects whatever was raised
        return e
    raise AssertionError("nothing raised")


def test_own_errors_and_own_value_errors_are_input_but_library_errors_are_bugs():
    from nnunetv2_dca.data.phantom import write_phantom_dataset

    assert E.is_input_error(_raise(lambda: validate_case_id("../x", "--labeled-cases")))  # our class
    # a plain ValueError raised by the package's own code is a deliberate message ...
    assert E.is_input_error(_raise(lambda: write_phantom_dataset("/nonexistent", 0)))
    # ... one raised outside it (here: this test's frame, like numpy's below) is not
    assert not E.is_input_error(_raise(lambda: int("x")))
    # thrown inside numpy's Python code and not wrapped: no file named, so a bug (or a missing check)
    assert not E.is_input_error(_raise(lambda: np.concatenate([np.zeros((2, 2)), np.zeros((3, 3))], axis=5)))
    assert not E.is_input_error(_raise(lambda: [][1]))  # IndexError: never input
    assert E.is_input_error(FileNotFoundError(2, "No such file", "x"))  # names the path
    assert not E.is_input_error(FileNotFoundError(2, "No such file", "x"), stock_command=True)  # nnU-Net's own


def test_own_error_wrapping_an_unexpected_library_error_keeps_its_traceback():
    def wrapped(cause):
        def fn():
            try:
                raise cause
            except BaseException as e:
                raise CaseIdError("a", "here", "is odd") from e
        return _raise(fn)

    assert not E.is_input_error(wrapped(KeyError("k")))  # a crash inside a reader: report it
    assert E.is_input_error(wrapped(EOFError("cut off")))  # a cut-off file: input
    assert E.is_input_error(wrapped(OSError("disk full")))


def test_one_line_joins_multi_line_messages():
    assert E.one_line(ValueError("problems (2):\n  - a\n  - b\n")) == "problems (2): - a - b"
    assert E.one_line(ValueError("")) == "ValueError"


@pytest.mark.parametrize("content, expect, fragment", [
    ('{"a": ', dict, "is not valid JSON (Expecting value at line 1, column 7)"),
    ("[1]", dict, "holds a JSON list, expected an object"),
    ("{}", list, "holds a JSON dict, expected a list"),
])
def test_read_json_names_the_file_and_the_fix(tmp_path, content, expect, fragment):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(E.InputFileError, match="fix it") as info:
        E.read_json(str(path), "thing", "fix it", expect=expect)
    assert str(path) in str(info.value) and fragment in str(info.value)
    with pytest.raises(FileNotFoundError, match="thing not found: .*nope.json; fix it"):
        E.read_json(str(tmp_path / "nope.json"), "thing", "fix it")
    with pytest.raises(E.InputFileError, match="is a folder"):
        E.read_json(str(tmp_path), "thing")


@pytest.mark.parametrize("change, fragment", [
    ({"labels": ["background"]}, "has no 'labels' object"),
    ({"labels": {"background": 0, "liver": "1"}}, "label 'liver' has value '1'"),
    ({"file_ending": "nii.gz"}, "no valid 'file_ending'"),
    ({"channel_names": None}, "no 'channel_names' object"),
])
def test_dataset_json_keys_are_checked(tmp_path, change, fragment):
    dj = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": [1, 2]},
          "file_ending": ".nii.gz", "numTraining": 1}
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(dj))
    assert E.read_dataset_json(str(path)) == dj
    path.write_text(json.dumps({**dj, **change}))
    with pytest.raises(E.InputFileError, match=fragment):
        E.read_dataset_json(str(path))


def test_stock_command_hook_shortens_only_our_errors(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(sys, "argv", ["/venv/bin/nnUNetv2_preprocess", "-d", "1"])
    monkeypatch.setattr(sys, "excepthook", lambda *a: seen.append(a[1]))
    assert E.install_stock_command_hook() and E.install_stock_command_hook()  # idempotent
    ours = _raise(lambda: validate_case_id("a/b", "imagesTrUnlabeled"))
    sys.excepthook(type(ours), ours, ours.__traceback__)
    err = capsys.readouterr().err
    assert err.startswith("nnUNetv2_preprocess: error: case id 'a/b' in imagesTrUnlabeled") and err.count("\n") == 1
    theirs = _raise(lambda: {}["k"])
    sys.excepthook(type(theirs), theirs, theirs.__traceback__)
    assert seen == [theirs]  # handed to the previous hook: the full traceback
    monkeypatch.setattr(sys, "argv", ["/venv/bin/python", "x.py"])
    assert not E.install_stock_command_hook()  # other programs are left alone
