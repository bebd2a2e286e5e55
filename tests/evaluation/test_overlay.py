"""The demo's overlay picture: slice choice and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_dca.evaluation.overlay import best_slice, plot_overlay


def _write(path: Path, arr: np.ndarray) -> str:
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    return str(path)


def test_best_slice_prefers_more_classes_then_more_foreground():
    ref = np.zeros((4, 5, 5), dtype=np.uint8)
    ref[0, :4, :4] = 1          # one class, 16 voxels
    ref[2, 0, 0], ref[2, 1, 1] = 1, 2  # two classes, 2 voxels
    ref[3, 0, :2], ref[3, 1, 1] = 1, 2  # two classes, 3 voxels
    assert best_slice(ref) == 3


def test_overlay_writes_png_and_names_classes(tmp_path: Path):
    img = np.random.default_rng(0).normal(size=(3, 16, 16)).astype(np.float32)
    ref = np.zeros((3, 16, 16), dtype=np.uint8)
    ref[1, 2:8, 2:8], ref[1, 10:12, 10:12] = 6, 13
    pred = ref.copy()
    pred[1, 10:12, 10:12] = 0
    out = plot_overlay(_write(tmp_path / "i.nii.gz", img), _write(tmp_path / "r.nii.gz", ref),
                       _write(tmp_path / "p.nii.gz", pred), str(tmp_path / "o.png"),
                       {"background": 0, "liver": 6, "adrenal_gland_left": 13}, dice={"liver": 0.91})
    assert out["slice"] == 1 and out["classes"] == ["liver", "adrenal_gland_left"]
    assert (tmp_path / "o.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="shapes differ"):
        plot_overlay(str(tmp_path / "i.nii.gz"), str(tmp_path / "r.nii.gz"),
                     _write(tmp_path / "q.nii.gz", pred[:2]), str(tmp_path / "x.png"), {"liver": 6})
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        plot_overlay(str(tmp_path / "missing.nii.gz"), str(tmp_path / "r.nii.gz"), str(tmp_path / "p.nii.gz"),
                     str(tmp_path / "y.png"), {})
