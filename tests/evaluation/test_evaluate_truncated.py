"""``nnunetv2-dca evaluate`` refuses truncated references and predictions, naming the file, instead of scoring the
zeros SimpleITK fills in: a ``.nii.gz`` with a complete gzip stream but short voxel data, a cut-off gzip stream, and
a short uncompressed ``.nii`` read with SimpleITKIO (dataset.json ``overwrite_image_reader_writer``). With nnU-Net's
default reader for ``.nii`` (NibabelIO) a short file raised an OSError, i.e. a traceback from the command; it gets the
same clear error now."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_dca.cli import main
from nnunetv2_dca.evaluation.evaluate import evaluate_folders

SHAPE = (12, 20, 22)  # array order (z, y, x)
LABELS = {"background": 0, "liver": 1, "spleen": 2}


def _case(seed: int):
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[2:10, 3:15, 3:15] = 1
    ref[4:7, 15:19, 15:20] = 2
    ref[10:12, 12:20, 2:20] = 2  # labels in the last voxels: the ones a truncated file loses
    pred = ref.copy()
    pred[2 + seed, 3:15, 3:15] = 0
    return ref, pred


def _folders(tmp_path: Path, ending: str, reader: Optional[str] = None):
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    for i, name in enumerate(("case_a", "case_b")):
        for folder, arr in zip((ref_dir, pred_dir), _case(i)):
            img = sitk.GetImageFromArray(arr)
            img.SetSpacing((0.8, 0.8, 3.0))
            sitk.WriteImage(img, str(folder / f"{name}{ending}"))
    dj = {"labels": LABELS, "file_ending": ending, "channel_names": {"0": "CT"}, "numTraining": 2}
    if reader:
        dj["overwrite_image_reader_writer"] = reader
    dj_file = tmp_path / "dataset.json"
    dj_file.write_text(json.dumps(dj))
    return ref_dir, pred_dir, dj_file


def _short_data_in_complete_stream(f: Path) -> None:
    data = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(data[:-600]))


def _cut_off_stream(f: Path) -> None:
    b = f.read_bytes()
    f.write_bytes(b[: len(b) * 2 // 3])


def _short_file(f: Path) -> None:
    f.write_bytes(f.read_bytes()[:-600])


CASES = {
    # (file ending, dataset.json reader override, how the file is damaged, words the error must hold)
    "nii.gz short data": (".nii.gz", None, _short_data_in_complete_stream, ["truncated NIfTI-1", "header says"]),
    "nii.gz cut-off stream": (".nii.gz", None, _cut_off_stream, ["gzip stream is cut off"]),
    "nii short, SimpleITKIO": (".nii", "SimpleITKIO", _short_file, ["truncated NIfTI-1", "header says"]),
    "nii short, default reader": (".nii", None, _short_file, ["truncated NIfTI-1", "header says"]),
}


@pytest.mark.parametrize("side", ["reference", "prediction"])
@pytest.mark.parametrize("case", list(CASES))
def test_truncated_file_is_refused_naming_it(tmp_path: Path, case: str, side: str, capsys):
    ending, reader, damage, words = CASES[case]
    ref_dir, pred_dir, dj = _folders(tmp_path, ending, reader)
    intact = evaluate_folders(str(ref_dir), str(pred_dir), str(dj), write=False)
    bad = (ref_dir if side == "reference" else pred_dir) / f"case_b{ending}"
    damage(bad)
    with pytest.raises(ValueError) as info:
        evaluate_folders(str(ref_dir), str(pred_dir), str(dj), write=False)
    msg = str(info.value)
    assert str(bad) in msg and all(w in msg for w in words), msg

    # the command: an error naming the file, exit code 2, no outputs
    rc = main(["evaluate", "-ref", str(ref_dir), "-pred", str(pred_dir), "-djfile", str(dj)])
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err, err
    assert not list(pred_dir.glob("evaluation*"))
    assert intact["n_cases"] == 2  # the intact folders were evaluated normally


def test_simpleitk_zero_fills_what_is_refused(tmp_path: Path):
    """Why the check is needed: without it SimpleITK returns the damaged file with zeros in place of the missing
    voxels, and the metrics change silently."""
    ref_dir, pred_dir, dj = _folders(tmp_path, ".nii.gz")
    f = pred_dir / "case_b.nii.gz"
    before = sitk.GetArrayFromImage(sitk.ReadImage(str(f)))
    _short_data_in_complete_stream(f)
    after = sitk.GetArrayFromImage(sitk.ReadImage(str(f)))
    assert after.shape == before.shape and not np.array_equal(after, before)
