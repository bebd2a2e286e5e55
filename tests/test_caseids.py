"""The one check that a case id is safe as a file-name stem (issue 27: ids that are paths wrote outside nnUNet_raw
and nnUNet_preprocessed). Its callers' regression tests: tests/data/test_split.py, tests/preprocessing/
test_unlabeled.py."""

from __future__ import annotations

import pytest

from nnunetv2_dca.caseids import CaseIdError, validate_case_id, validate_case_ids


@pytest.mark.parametrize("case_id", ["phantom_0000", "img0002", "amos_0078", "BTCV-01", "case.v2", "a b", "é"])
def test_plain_names_pass(case_id: str):
    assert validate_case_id(case_id, "somewhere") == case_id


@pytest.mark.parametrize("case_id, reason", [
    ("../../../file.txt", "path separator"),
    ("a/b", "path separator"),
    ("..\\evil", "path separator"),
    ("/etc/passwd", "path separator"),
    ("..", "'..'"),
    ("a..b", "'..'"),
    (".", "'..'"),
    ("", "is empty"),
    ("a\x00b", "NUL"),
    ("C:evil", "absolute path"),
    (7, "not a string"),
])
def test_unsafe_ids_are_refused_naming_id_and_source(case_id, reason: str):
    with pytest.raises(CaseIdError) as info:
        validate_case_id(case_id, "Dataset001_X/dataset.json key 'dataset'")
    msg = str(info.value)
    assert isinstance(info.value, ValueError)  # the CLI prints ValueErrors as one line
    assert repr(case_id) in msg and "Dataset001_X/dataset.json key 'dataset'" in msg and reason in msg, msg
    assert "rename" in msg and "\n" not in msg


def test_many_ids_stop_at_the_first_bad_one():
    assert validate_case_ids(["a", "b"], "x") == ["a", "b"]
    with pytest.raises(CaseIdError, match="'../b' in --labeled-cases"):
        validate_case_ids(["a", "../b", "/c"], "--labeled-cases")
