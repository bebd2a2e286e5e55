"""nnunetv2_dca.inference: input checks of the shared model / case helpers (the sliding-window stitching is tested
through the gates and pseudo-label tools that use it)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nnunetv2_dca.inference import ModelInputError, case_name, expand_image_files, preprocess_case


def write_nifti(path: Path, shape, value=0):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.full(shape, value, dtype=np.int16))
    img.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(img, str(path))
    return str(path)


def test_image_files_are_checked_and_expanded(tmp_path):
    a0 = write_nifti(tmp_path / "case_0000.nii.gz", (2, 3, 4))
    a1 = write_nifti(tmp_path / "case_0001.nii.gz", (2, 3, 4))
    names = {"0": "T1", "1": "T2"}
    assert expand_image_files([a0], 2, ".nii.gz", names) == [a0, a1]  # _0000 stands for the case
    assert expand_image_files([a0], 1, ".nii.gz", {"0": "CT"}) == [a0]
    with pytest.raises(ModelInputError, match=r"expects 1 channel file\(s\).*0: CT.*got 2"):
        expand_image_files([a0, a1], 1, ".nii.gz", {"0": "CT"})
    with pytest.raises(ModelInputError, match="not found: .*case_0002.nii.gz"):
        expand_image_files([a0], 3, ".nii.gz", {"0": "a", "1": "b", "2": "c"})
    with pytest.raises(ModelInputError, match="do not end in '.png'"):
        expand_image_files([a0], 1, ".png", {"0": "R"})
    assert case_name(a0, ".nii.gz") == "case"


def test_reference_shape_mismatch_names_both_files(tmp_path):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    image = write_nifti(tmp_path / "case_0000.nii.gz", (2, 3, 4))
    ref = write_nifti(tmp_path / "case.nii.gz", (2, 3, 5))
    predictor = SimpleNamespace(plans_manager=SimpleNamespace(image_reader_writer_class=SimpleITKIO))
    with pytest.raises(ModelInputError, match=r"reference .*case.nii.gz has shape \(2, 3, 5\), the image .*"
                                           r"case_0000.nii.gz has \(2, 3, 4\)"):
        preprocess_case(predictor, [image], ref)
    with pytest.raises(ModelInputError, match="reference file not found: .*nope.nii.gz"):
        preprocess_case(predictor, [image], str(tmp_path / "nope.nii.gz"))
