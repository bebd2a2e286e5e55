"""``check_image_file``: NIfTI voxel data shorter than the header says (compressed or not) and cut-off gzip streams
are refused naming the file and the byte counts; intact files and non-NIfTI files pass."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_dca.imagefile import ImageFileError, check_image_file

ARRAY = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)


def _nifti_bytes(tmp_path: Path, arr: np.ndarray = ARRAY) -> bytes:
    f = tmp_path / "src.nii"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(f))
    return f.read_bytes()


def test_intact_files_pass(tmp_path: Path):
    for name in ("a.nii", "a.nii.gz"):
        sitk.WriteImage(sitk.GetImageFromArray(ARRAY), str(tmp_path / name))
        check_image_file(str(tmp_path / name))
    sitk.WriteImage(sitk.GetImageFromArray(ARRAY.astype(np.uint8)[0]), str(tmp_path / "a.png"))
    check_image_file(str(tmp_path / "a.png"))  # not NIfTI: nothing checked
    # zlib (and so ITK) reads uncompressed content under a .gz name; it is checked as an uncompressed NIfTI
    (tmp_path / "plain.nii.gz").write_bytes(_nifti_bytes(tmp_path))
    check_image_file(str(tmp_path / "plain.nii.gz"))


@pytest.mark.parametrize("compressed", [True, False])
def test_short_voxel_data_is_refused_with_byte_counts(tmp_path: Path, compressed: bool):
    raw = _nifti_bytes(tmp_path)
    expected = len(raw)
    assert expected == 352 + ARRAY.nbytes  # SimpleITK's vox_offset for NIfTI-1 is 352
    short = raw[:-20]
    f = tmp_path / ("short.nii.gz" if compressed else "short.nii")
    f.write_bytes(gzip.compress(short) if compressed else short)
    # the defect: SimpleITK reads it without error and fills the missing voxels with 0
    read = sitk.GetArrayFromImage(sitk.ReadImage(str(f)))
    assert read.shape == ARRAY.shape and not np.array_equal(read, ARRAY)
    with pytest.raises(ValueError) as info:
        check_image_file(str(f))
    msg = str(info.value)
    assert str(f) in msg and str(expected) in msg and str(expected - 20) in msg, msg
    assert isinstance(info.value, ImageFileError) and info.value.path == str(f)


def test_cut_off_gzip_stream_is_refused(tmp_path: Path):
    big = np.random.default_rng(0).integers(0, 1000, (20, 40, 40)).astype(np.int16)  # compresses poorly: long stream
    f = tmp_path / "cut.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(big), str(f))
    b = f.read_bytes()
    f.write_bytes(b[: len(b) // 2])
    with pytest.raises(ImageFileError, match=r"cut\.nii\.gz: gzip stream is cut off.*header says 64352 bytes"):
        check_image_file(str(f))


def test_nifti2_and_big_endian_headers(tmp_path: Path):
    nib = pytest.importorskip("nibabel")  # only to write NIfTI-2 / big-endian test files; the check does not use it
    arr = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    for cls, header_cls in ((nib.Nifti1Image, nib.Nifti1Header), (nib.Nifti2Image, nib.Nifti2Header)):
        for endian in "<>":
            img = cls(arr, np.eye(4), header_cls(endianness=endian))
            f = tmp_path / f"{cls.__name__}{endian == '>'}.nii"
            nib.save(img, str(f))
            assert f.read_bytes()[:4] == (540 if cls is nib.Nifti2Image else 348).to_bytes(
                4, "big" if endian == ">" else "little")
            check_image_file(str(f))
            full = f.read_bytes()
            f.write_bytes(full[:-4])
            with pytest.raises(ImageFileError, match=f"header says {len(full)} bytes .* file has {len(full) - 4}"):
                check_image_file(str(f))


def test_cut_off_header_and_analyze_pairs(tmp_path: Path):
    raw = _nifti_bytes(tmp_path)
    f = tmp_path / "head.nii"
    f.write_bytes(raw[:200])
    with pytest.raises(ImageFileError, match="header is cut off: expected 348 header bytes, found 200"):
        check_image_file(str(f))
    # an Analyze/NIfTI pair header (.hdr, magic ni1) keeps its voxels in the .img file: not checked here
    pair = bytearray(raw[:348])
    pair[344:348] = b"ni1\x00"
    (tmp_path / "x.hdr").write_bytes(bytes(pair))
    check_image_file(str(tmp_path / "x.hdr"))
