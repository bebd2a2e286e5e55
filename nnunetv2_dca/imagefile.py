"""Integrity check of an image file before it is read: catches files that a reader would silently zero-fill.

Why: SimpleITK (and so nnU-Net's ``SimpleITKIO``) reads a ``.nii.gz`` whose gzip stream is cut off, a ``.nii.gz`` whose
stream is complete but holds fewer voxel bytes than the header announces, and a short uncompressed ``.nii`` without
any error, filling the missing voxels with 0. Preprocessing would then train on, and evaluation would score, an image
that is partly made up.

:func:`check_image_file` reads the NIfTI-1/NIfTI-2 header with ``struct`` (no nibabel) and compares
``vox_offset + prod(dim[1..dim[0]]) * bytes per voxel`` with the data really there: the decompressed stream length for
gzip-compressed files, the file size for uncompressed ones. Compression is recognised by the gzip magic bytes, not the
name (zlib, and so ITK, reads uncompressed content under a ``.gz`` name transparently). Any gzip-compressed file also
has its whole stream decompressed once (a cut-off or corrupt stream is an error, as before for ``*.gz``). Files that
are not single-file NIfTI (PNG, TIFF, NRRD, MHA, Analyze/NIfTI pairs) are not looked into further; their reader
decides.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from typing import Optional, Tuple

GZIP_MAGIC = b"\x1f\x8b"
NIFTI1_HEADER_SIZE = 348
NIFTI2_HEADER_SIZE = 540
NIFTI2_MAGIC = b"n+2\x00\r\n\x1a\n"
_CHUNK = 1 << 22

# NIfTI datatype code -> bytes per voxel (nifti1.h / nifti2.h). nifti_io sizes the data from the datatype, not from
# bitpix; bitpix is only the fallback for codes not listed here.
_DATATYPE_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8,
                   1536: 16, 1792: 16, 2048: 32, 2304: 4}


class ImageFileError(ValueError):
    """An image file is cut off or corrupt; ``str()`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _expected_nifti_bytes(path: str, head: bytes) -> Optional[Tuple[int, str]]:
    """``(vox_offset + voxel bytes, "NIfTI-1"/"NIfTI-2")`` from the first bytes of a file, or None if ``head`` does not
    start a single-file NIfTI (then nothing is checked). Raises :class:`ImageFileError` for a NIfTI header that is
    itself cut off or inconsistent."""
    if len(head) < 4:
        return None
    for endian in "<>":
        sizeof_hdr = struct.unpack(endian + "i", head[:4])[0]
        if sizeof_hdr in (NIFTI1_HEADER_SIZE, NIFTI2_HEADER_SIZE):
            break
    else:
        return None
    if len(head) < sizeof_hdr:
        # the magic may be missing too, so only a file named like NIfTI (or carrying the NIfTI-2 magic) is refused
        if os.path.basename(path).lower().endswith((".nii", ".nii.gz")) or head[4:12] == NIFTI2_MAGIC:
            raise ImageFileError(path, f"NIfTI header is cut off: expected {sizeof_hdr} header bytes, found "
                                       f"{len(head)}")
        return None
    if sizeof_hdr == NIFTI1_HEADER_SIZE:
        if head[344:348] != b"n+1\x00":
            return None  # Analyze 7.5 or a .hdr/.img pair: voxels live in another file
        version = "NIfTI-1"
        dims = struct.unpack(endian + "8h", head[40:56])
        datatype, bitpix = struct.unpack(endian + "2h", head[70:74])
        vox_offset = struct.unpack(endian + "f", head[108:112])[0]
        if not math.isfinite(vox_offset):
            raise ImageFileError(path, f"invalid NIfTI-1 header: vox_offset = {vox_offset}")
    else:
        if head[4:12] != NIFTI2_MAGIC:
            return None
        version = "NIfTI-2"
        datatype, bitpix = struct.unpack(endian + "2h", head[12:16])
        dims = struct.unpack(endian + "8q", head[16:80])
        vox_offset = struct.unpack(endian + "q", head[168:176])[0]
    ndim = dims[0]
    if not 1 <= ndim <= 7 or any(d < 0 for d in dims[1:ndim + 1]):
        raise ImageFileError(path, f"invalid {version} header: dim = {list(dims)}")
    per_voxel = _DATATYPE_BYTES.get(datatype)
    if per_voxel is None:
        if bitpix <= 0 or bitpix % 8:
            return None  # e.g. DT_BINARY: size not in whole bytes per voxel, leave it to the reader
        per_voxel = bitpix // 8
    n_voxels = 1
    for d in dims[1:ndim + 1]:
        n_voxels *= int(d)
    # nifti_io (ITK, SimpleITK) reads a vox_offset that points into the header as "right after the header"
    return max(int(vox_offset), sizeof_hdr) + n_voxels * per_voxel, version


def check_image_file(path: str) -> None:
    """Raise :class:`ImageFileError` (a ``ValueError``) naming ``path`` if it is a NIfTI file with fewer voxel bytes
    than its header says (message: expected vs found byte count), or a gzip file whose stream is cut off or corrupt.
    Other files: no check. Cost: one pass of decompression for gzip files, a header read for the others."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        head = fh.read(NIFTI2_HEADER_SIZE)
    if head[:2] != GZIP_MAGIC:
        info = _expected_nifti_bytes(path, head)
        if info is not None:
            expected, version = info
            found = os.path.getsize(path)
            if found < expected:
                raise ImageFileError(path, f"truncated {version} file: header says {expected} bytes (vox_offset + "
                                           f"voxel data), the file has {found}")
        return

    found = 0
    info = None
    try:
        with gzip.open(path, "rb") as fh:
            head = fh.read(NIFTI2_HEADER_SIZE)
            found = len(head)
            info = _expected_nifti_bytes(path, head)
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                found += len(chunk)
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        said = f"; header says {info[0]} bytes ({info[1]}), {found} could be decompressed" if info else ""
        raise ImageFileError(path, f"gzip stream is cut off or corrupt ({type(e).__name__}: {e}){said}") from e
    if info is not None and found < info[0]:
        raise ImageFileError(path, f"truncated {info[1]} file: header says {info[0]} bytes (vox_offset + voxel "
                                   f"data), the decompressed stream has {found}")


def reader_writer_for(dataset_json: dict, example_file: str, what: str = "file"):
    """nnU-Net's reader/writer class for a dataset (``determine_reader_writer_from_dataset_json`` with an example
    file, as nnU-Net's own commands pick it), quietly: nnU-Net prints a full traceback for every reader that fails on
    the example, so a damaged or foreign ``example_file`` would fill the screen before the real error. Raises
    :class:`ImageFileError` naming ``example_file`` (``what`` says which file it is) when no reader can read it."""
    import contextlib
    import io

    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    check_image_file(example_file)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return determine_reader_writer_from_dataset_json(dict(dataset_json), example_file, verbose=False)
        except RuntimeError:  # nnU-Net: "Unable to determine a reader for file ending ..."
            pass
    raise ImageFileError(example_file, f"no nnU-Net reader can read this {what} (file_ending "
                                       f"{dataset_json.get('file_ending')!r}): not an image, or damaged; replace it")
