"""nnunetv2_dca.lab.benchmark.data: the per-site test-label folders of a domain-shift run."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nnunetv2_dca.lab.benchmark.data import site_reference_folders


def test_site_reference_folders_link_each_test_label_under_its_site(tmp_path: Path):
    full, semi, out = tmp_path / "full", tmp_path / "semi", tmp_path / "out"
    full.mkdir()
    (semi / "labelsTs").mkdir(parents=True)
    cases = {"phantom_0004": {"site": 0}, "phantom_0005": {"site": 1}, "phantom_0006": {"site": 0}}
    (full / "phantom.json").write_text(json.dumps({"cases": cases}))
    for case in cases:
        (semi / "labelsTs" / f"{case}.nii.gz").write_bytes(case.encode())
    folders = site_reference_folders(str(full), str(semi), str(out), ".nii.gz")
    assert list(folders) == [0, 1]
    assert sorted(os.listdir(folders[0])) == ["phantom_0004.nii.gz", "phantom_0006.nii.gz"]
    assert os.listdir(folders[1]) == ["phantom_0005.nii.gz"]
    linked = Path(folders[1]) / "phantom_0005.nii.gz"
    assert linked.read_bytes() == b"phantom_0005"
    assert os.path.samefile(linked, semi / "labelsTs" / "phantom_0005.nii.gz")  # a hard link, not a copy
    assert site_reference_folders(str(full), str(semi), str(out), ".nii.gz") == folders  # a second call reuses them
