"""``nnunetv2-dca evaluate`` on small NIfTI folders: outputs, spacing from the files, protocol B, ignore label,
class groups from plans, and the errors (missing predictions, shape/spacing mismatch, regions). Size: one command's
cases share the folder-writing helpers at the top; splitting them would duplicate those helpers."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_dca.cli import main
from nnunetv2_dca.evaluation.evaluate import evaluate_folders, markdown_table
from nnunetv2_dca.evaluation.metrics import assd_hd95

from evaluation.test_metrics import brute_distances  # independent KD-tree reference

SHAPE = (12, 20, 22)  # array order (z, y, x)
LABELS = {"background": 0, "liver": 1, "spleen": 2, "adrenal": 3, "ignore": 4}


def write_seg(path: Path, arr: np.ndarray, spacing_xyz=(1.0, 1.0, 1.0)) -> None:
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.SetSpacing(tuple(float(s) for s in spacing_xyz))
    sitk.WriteImage(img, str(path))


def write_json(path: Path, content) -> Path:
    path.write_text(json.dumps(content))
    return path


def strict_json(path: Path) -> dict:
    def refuse(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def case_a():
    ref = np.zeros(SHAPE, dtype=np.uint8)
    pred = np.zeros(SHAPE, dtype=np.uint8)
    ref[2:8, 3:15, 3:15] = 1
    pred[3:9, 3:15, 4:15] = 1  # liver shifted along z, trimmed along x
    ref[4:7, 15:19, 15:20] = 2
    pred[4:7, 16:19, 15:20] = 2
    ref[9:11, 2:4, 18:20] = 3  # adrenal missed by the prediction
    return ref, pred


def case_b():
    ref = np.zeros(SHAPE, dtype=np.uint8)
    pred = np.zeros(SHAPE, dtype=np.uint8)
    ref[1:10, 2:12, 2:12] = 1
    pred[1:10, 2:12, 2:12] = 1
    ref[5:8, 14:18, 14:18] = 2
    pred[5:8, 14:18, 15:19] = 2
    return ref, pred  # adrenal in neither


@pytest.fixture()
def folders(tmp_path: Path):
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    spacing_xyz = (0.8, 0.8, 3.0)  # array spacing (z, y, x) = (3.0, 0.8, 0.8)
    for name, (ref, pred) in (("case_a", case_a()), ("case_b", case_b())):
        write_seg(ref_dir / f"{name}.nii.gz", ref, spacing_xyz)
        write_seg(pred_dir / f"{name}.nii.gz", pred, spacing_xyz)
    dj = write_json(tmp_path / "dataset.json", {"labels": LABELS, "file_ending": ".nii.gz",
                                                "channel_names": {"0": "CT"}, "numTraining": 2})
    plans = write_json(tmp_path / "plans.json", {"plans_name": "nnUNetPlansDCA", "configurations": {
        "3d_fullres": {"architecture": {"arch_kwargs": {"class_groups": [[1], [2], [3]]}}}}})
    return tmp_path, ref_dir, pred_dir, dj, plans


def test_cli_writes_json_csv_markdown_into_the_prediction_folder(folders, capsys):
    tmp, ref_dir, pred_dir, dj, plans = folders
    rc = main(["evaluate", "-ref", str(ref_dir), "-pred", str(pred_dir), "-djfile", str(dj), "-pfile", str(plans)])
    out = capsys.readouterr().out
    assert rc == 0
    for ext in ("json", "csv", "md"):
        assert (pred_dir / f"evaluation.{ext}").is_file()
    result = strict_json(pred_dir / "evaluation.json")
    assert out.strip() == (pred_dir / "evaluation.md").read_text().strip()
    assert "| **head** |" in out and "| **tail** |" in out and "| **mean** |" in out

    assert [e["case"] for e in result["metric_per_case"]] == ["case_a", "case_b"]
    first = result["metric_per_case"][0]
    assert first["reference_file"].endswith("ref/case_a.nii.gz")
    assert first["prediction_file"].endswith("pred/case_a.nii.gz")
    assert set(first["metrics"]) == {"1", "2", "3"}
    assert set(result["mean"]) == {"1", "2", "3"}
    assert result["groups"] == {"head": [1], "medium": [2], "tail": [3]}

    # adrenal: missed in case_a (Dice 0, distances undefined = null), absent from both in case_b (all undefined,
    # not scored there: an absent organ is no perfect score)
    a3 = first["metrics"]["3"]
    assert (a3["Dice"], a3["ASD"], a3["HD95"], a3["empty"]) == (0.0, None, None, "prediction")
    b3 = result["metric_per_case"][1]["metrics"]["3"]
    assert (b3["Dice"], b3["ASD"], b3["HD95"], b3["empty"]) == (None, None, None, "both")
    assert result["mean"]["3"]["Dice"] == 0.0 and result["mean"]["3"]["n"] == 1
    assert result["mean"]["3"]["ASD"] is None and result["mean"]["3"]["n_undefined"] == 1
    assert result["group_mean"]["tail"]["Dice"] == 0.0
    assert result["group_mean"]["head"]["Dice"] == pytest.approx(result["mean"]["1"]["Dice"])
    fg = np.mean([result["mean"][k]["Dice"] for k in ("1", "2", "3")])
    assert result["foreground_mean"]["Dice"] == pytest.approx(fg)

    with open(pred_dir / "evaluation.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3
    row = next(r for r in rows if r["case"] == "case_a" and r["class_id"] == "3")
    assert (row["class_name"], row["group"], row["ASD"], row["HD95"], row["empty"]) == \
           ("adrenal", "tail", "", "", "prediction")
    row = next(r for r in rows if r["case"] == "case_a" and r["class_id"] == "1")
    assert float(row["Dice"]) == pytest.approx(first["metrics"]["1"]["Dice"])


def test_distances_use_the_file_spacing_in_array_axis_order(folders):
    tmp, ref_dir, pred_dir, dj, _ = folders
    result = evaluate_folders(str(ref_dir), str(pred_dir), str(dj), write=False)
    entry = result["metric_per_case"][0]
    assert entry["spacing"] == pytest.approx([3.0, 0.8, 0.8])
    ref, pred = case_a()
    d_pr, d_rp = brute_distances(pred == 1, ref == 1, (3.0, 0.8, 0.8))
    pooled = np.concatenate([d_pr, d_rp])
    liver = entry["metrics"]["1"]
    assert liver["ASD"] == pytest.approx(pooled.mean())
    assert liver["HD95"] == pytest.approx(np.percentile(pooled, 95))
    assert liver["Dice"] == pytest.approx(2 * (5 * 12 * 11) / (6 * 12 * 12 + 6 * 12 * 11))
    iso = assd_hd95(pred == 1, ref == 1, (1.0, 1.0, 1.0))
    assert liver["ASD"] != pytest.approx(iso[0])  # the anisotropic spacing really changed the answer


def test_protocol_b_ignores_spacing_and_writes_its_own_files(folders, tmp_path_factory):
    tmp, ref_dir, pred_dir, dj, plans = folders
    iso = tmp_path_factory.mktemp("iso")
    (iso / "ref").mkdir()
    (iso / "pred").mkdir()
    for name, (ref, pred) in (("case_a", case_a()), ("case_b", case_b())):
        write_seg(iso / "ref" / f"{name}.nii.gz", ref)
        write_seg(iso / "pred" / f"{name}.nii.gz", pred)
    b_aniso = evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(plans), protocol_b=True)
    b_iso = evaluate_folders(str(iso / "ref"), str(iso / "pred"), str(dj), str(plans), protocol_b=True)
    mm_aniso = evaluate_folders(str(ref_dir), str(pred_dir), str(dj), write=False)
    mm_iso = evaluate_folders(str(iso / "ref"), str(iso / "pred"), str(dj), write=False)
    assert b_aniso["mean"] == b_iso["mean"]
    assert mm_aniso["mean"]["1"]["ASD"] != pytest.approx(mm_iso["mean"]["1"]["ASD"])
    assert b_aniso["metric_names"] == ["Dice", "ASD"] and b_aniso["resize_shape_zyx"] == [80, 160, 160]
    adrenal = b_aniso["metric_per_case"][0]["metrics"]["3"]
    assert (adrenal["Dice"], adrenal["ASD"]) == (0.0, 128.0)
    assert b_aniso["metric_per_case"][0]["metrics"]["1"]["n_ref"] > int((case_a()[0] == 1).sum())  # resized
    for ext in ("json", "csv", "md"):
        assert (pred_dir / f"evaluation_protocol_b.{ext}").is_file()
    assert not (pred_dir / "evaluation.json").exists()
    assert strict_json(pred_dir / "evaluation_protocol_b.json")["protocol"] == "B"


def test_ignore_label_in_the_reference_is_excluded(tmp_path: Path, folders):
    _, _, _, dj, _ = folders
    ref = np.zeros(SHAPE, dtype=np.uint8)
    ref[2:6, 2:8, 2:8] = 1
    ref[8:11, 10:16, 10:16] = 4  # ignore
    pred = (ref == 1).astype(np.uint8)
    pred[8:11, 10:16, 10:16] = 2  # whatever is predicted there does not count
    (tmp_path / "r").mkdir()
    (tmp_path / "p").mkdir()
    write_seg(tmp_path / "r" / "x.nii.gz", ref)
    write_seg(tmp_path / "p" / "x.nii.gz", pred)
    result = evaluate_folders(str(tmp_path / "r"), str(tmp_path / "p"), str(dj), write=False)
    m = result["metric_per_case"][0]["metrics"]
    assert (m["1"]["Dice"], m["1"]["ASD"], m["2"]["empty"]) == (1.0, 0.0, "both")
    assert math.isnan(m["2"]["Dice"])  # class 2 was only predicted on ignored voxels: absent on both sides
    assert result["ignore_label"] == 4 and "4" not in m


def test_cli_options_output_folder_and_json(folders, capsys):
    tmp, ref_dir, pred_dir, dj, plans = folders
    out_dir = tmp / "out"
    rc = main(["evaluate", "-ref", str(ref_dir), "-pred", str(pred_dir), "-djfile", str(dj), "-o", str(out_dir),
               "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == strict_json(out_dir / "evaluation.json")
    assert printed["group_mean"] is None and printed["protocol"] == "default"
    assert not (pred_dir / "evaluation.json").exists()


def test_missing_prediction_files_are_named(folders, capsys):
    tmp, ref_dir, pred_dir, dj, _ = folders
    (pred_dir / "case_b.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="case_b.nii.gz"):
        evaluate_folders(str(ref_dir), str(pred_dir), str(dj), write=False)
    rc = main(["evaluate", "-ref", str(ref_dir), "-pred", str(pred_dir), "-djfile", str(dj)])
    err = capsys.readouterr().err
    assert rc == 2 and "case_b.nii.gz" in err and "1 of 2" in err


def test_shape_and_spacing_mismatch_are_errors_naming_the_file(folders):
    tmp, ref_dir, pred_dir, dj, _ = folders
    write_seg(pred_dir / "case_b.nii.gz", np.zeros((12, 20, 21), np.uint8), (0.8, 0.8, 3.0))
    with pytest.raises(ValueError, match=r"case_b.*shape"):
        evaluate_folders(str(ref_dir), str(pred_dir), str(dj), write=False)
    write_seg(pred_dir / "case_b.nii.gz", case_b()[1], (0.8, 0.8, 2.5))
    with pytest.raises(ValueError, match=r"case_b.*spacing"):
        evaluate_folders(str(ref_dir), str(pred_dir), str(dj), write=False)
    # protocol B resizes each side and ignores spacing, so neither is an error there
    evaluate_folders(str(ref_dir), str(pred_dir), str(dj), protocol_b=True, write=False)


def test_regions_refused_and_plans_checked(folders, capsys):
    tmp, ref_dir, pred_dir, dj, _ = folders
    regions = write_json(tmp / "regions.json", {"labels": {"background": 0, "whole": [1, 2], "core": 2},
                                                "regions_class_order": [1, 2], "file_ending": ".nii.gz"})
    with pytest.raises(ValueError, match="not supported"):
        evaluate_folders(str(ref_dir), str(pred_dir), str(regions), write=False)
    def dca_plans(groups):
        return {"configurations": {"3d_fullres": {"architecture": {"arch_kwargs": {"class_groups": groups}}}}}

    bad_plans = write_json(tmp / "bad_plans.json", dca_plans([[1], [2, 7]]))
    with pytest.raises(ValueError, match=r"bad_plans.json, configuration '3d_fullres'.*unknown \[7\]"):
        evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(bad_plans), write=False)
    stock = write_json(tmp / "stock_plans.json", {"plans_name": "nnUNetPlans"})
    result = evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(stock), write=False)
    assert result["group_mean"] is None and "no configuration with arch_kwargs.class_groups" in capsys.readouterr().err
    no_names = write_json(tmp / "no_names.json", dca_plans([[1], [2, 3]]))
    result = evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(no_names), write=False)
    assert list(result["group_mean"]) == ["head", "tail"]
    assert not math.isnan(result["group_mean"]["tail"]["Dice"])


# ----------------------------------------------------------------------------- absent classes (issue 19)
def _independent_scores(ref: np.ndarray, pred: np.ndarray, c: int, spacing) -> dict:
    """Dice / ASD / HD95 of class c straight from the definitions: numpy counts and the KD-tree brute force; NaN
    where undefined (Dice: both empty; distances: either empty)."""
    r, p = ref == c, pred == c
    if not r.any() and not p.any():
        return {"Dice": math.nan, "ASD": math.nan, "HD95": math.nan}
    d = 2.0 * np.logical_and(r, p).sum() / (r.sum() + p.sum())
    if not r.any() or not p.any():
        return {"Dice": d, "ASD": math.nan, "HD95": math.nan}
    pooled = np.concatenate(brute_distances(p, r, spacing))
    return {"Dice": d, "ASD": pooled.mean(), "HD95": np.percentile(pooled, 95)}


def _nanmean(values) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _approx_or_none(got, want) -> None:
    if math.isnan(want):
        assert got is None or math.isnan(got)
    else:
        assert got == pytest.approx(want)


ABSENT_LABELS = {"background": 0, "liver": 1, "spleen": 2, "kidney": 3, "adrenal": 4}


def absent_cases():
    """kidney (3) missing from case_2's reference (and prediction); adrenal (4) in no reference, but predicted
    (a false positive) in case_3."""
    cases = {}
    for k, name in enumerate(("case_1", "case_2", "case_3")):
        ref = np.zeros(SHAPE, dtype=np.uint8)
        pred = np.zeros(SHAPE, dtype=np.uint8)
        ref[1:7, 2:12, 2:12] = 1
        pred[1 + k % 2:7, 2:12, 2 + k:12] = 1
        ref[7:11, 13:19, 3:9] = 2
        pred[7:11, 14:19, 3:9 + k] = 2
        if name != "case_2":
            ref[2:5, 14:18, 14:20] = 3
            pred[2:5, 14:18, 15 - k:20] = 3
        if name == "case_3":
            pred[8:10, 2:4, 18:21] = 4
        cases[name] = (ref, pred)
    return cases


def test_absent_classes_are_not_scored_and_every_mean_matches_an_independent_computation(tmp_path: Path, capsys):
    ref_dir, pred_dir = tmp_path / "ref", tmp_path / "pred"
    ref_dir.mkdir()
    pred_dir.mkdir()
    spacing_xyz, spacing = (0.8, 0.8, 3.0), (3.0, 0.8, 0.8)
    cases = absent_cases()
    for name, (ref, pred) in cases.items():
        write_seg(ref_dir / f"{name}.nii.gz", ref, spacing_xyz)
        write_seg(pred_dir / f"{name}.nii.gz", pred, spacing_xyz)
    dj = write_json(tmp_path / "dataset.json", {"labels": ABSENT_LABELS, "file_ending": ".nii.gz",
                                                "channel_names": {"0": "CT"}, "numTraining": 3})
    plans = write_json(tmp_path / "plans.json", {"plans_name": "nnUNetPlansDCA", "configurations": {
        "3d_fullres": {"architecture": {"arch_kwargs": {"class_groups": [[1, 2], [3, 4]]}}}}})
    rc = main(["evaluate", "-ref", str(ref_dir), "-pred", str(pred_dir), "-djfile", str(dj), "-pfile", str(plans)])
    out = capsys.readouterr().out
    assert rc == 0
    result = strict_json(pred_dir / "evaluation.json")

    metrics = ("Dice", "ASD", "HD95")
    want = {name: {c: _independent_scores(ref, pred, c, spacing) for c in (1, 2, 3, 4)}
            for name, (ref, pred) in cases.items()}
    # scored classes: those with reference voxels in at least one case
    scored = [c for c in (1, 2, 3, 4) if any((ref == c).any() for ref, _ in cases.values())]
    assert scored == [1, 2, 3]
    class_mean = {c: {m: _nanmean([want[n][c][m] for n in cases]) for m in metrics} for c in (1, 2, 3, 4)}

    for entry in result["metric_per_case"]:
        for c in (1, 2, 3, 4):
            for m in metrics:
                _approx_or_none(entry["metrics"][str(c)][m], want[entry["case"]][c][m])
        for m in metrics:  # a case's mean: over the scored classes defined in that case
            _approx_or_none(entry["mean"][m], _nanmean([want[entry["case"]][c][m] for c in scored]))
    for c in (1, 2, 3, 4):
        got = result["mean"][str(c)]
        for m in metrics:
            _approx_or_none(got[m], class_mean[c][m])
        assert got["n"] == sum(not math.isnan(want[n][c]["Dice"]) for n in cases)
        assert got["scored"] is (c in scored)
    assert [result["mean"][k]["n"] for k in ("1", "2", "3", "4")] == [3, 3, 2, 1]
    # the adrenal false positive is Dice 0 in its row but stays out of the tail group and the overall mean
    assert result["mean"]["4"]["Dice"] == 0.0
    assert result["classes_not_scored"] == [4]
    for group, members in (("head", [1, 2]), ("tail", [3, 4])):
        used = [c for c in members if c in scored]
        assert result["group_mean"][group]["classes_scored"] == used
        for m in metrics:
            _approx_or_none(result["group_mean"][group][m], _nanmean([class_mean[c][m] for c in used]))
    for m in metrics:
        _approx_or_none(result["foreground_mean"][m], _nanmean([class_mean[c][m] for c in scored]))
    assert result["group_mean"]["tail"]["Dice"] == pytest.approx(class_mean[3]["Dice"])

    # the Markdown says so next to the table
    md = (pred_dir / "evaluation.md").read_text()
    assert out.strip() == md.strip()
    assert "| 4 | adrenal | tail |" in md and "| not scored |" in md
    assert "**Not scored**: 4 (adrenal)" in md and "left out of the group means" in md
    assert "| 3 | kidney | tail |" in md and "| 2/3 |" in md
    assert "| **tail** | classes 3, 4 (4 not scored) |" in md and "3 of 4 classes" in md

    # protocol B keeps the published convention: absent on both sides = Dice 1, every class in every mean
    b = evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(plans), protocol_b=True, write=False)
    assert [b["metric_per_case"][i]["metrics"]["4"]["Dice"] for i in range(3)] == [1.0, 1.0, 0.0]
    assert b["metric_per_case"][1]["metrics"]["3"]["Dice"] == 1.0
    assert b["mean"]["4"]["Dice"] == pytest.approx(2 / 3)
    assert b["classes_not_scored"] == [] and b["classes_without_reference"] == [4]
    assert b["foreground_mean"]["Dice"] == pytest.approx(np.mean([b["mean"][k]["Dice"] for k in "1234"]))
    assert b["group_mean"]["tail"]["Dice"] == pytest.approx((b["mean"]["3"]["Dice"] + 2 / 3) / 2)
    assert "No reference voxels in any case: 4 (adrenal)" in markdown_table(b)


# ----------------------------------------------------------------------------- outputs written as one set
def _file_bytes(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failed_write_leaves_the_previous_files_unchanged_and_no_temporary_file(folders, monkeypatch, capsys):
    import errno

    import nnunetv2_dca.atomic as atomic

    tmp, ref_dir, pred_dir, dj, plans = folders
    out_dir = tmp / "out"
    evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(plans), output_folder=str(out_dir))
    old = _file_bytes(out_dir)
    assert sorted(old) == ["evaluation.csv", "evaluation.json", "evaluation.md"]
    write_seg(pred_dir / "case_b.nii.gz", case_a()[1], (0.8, 0.8, 3.0))  # the next run has other numbers

    real_write, calls = atomic._write_text_file, []

    def disk_full_on_second(path, text):
        calls.append(path)
        if len(calls) == 2:
            real_write(path, text[: len(text) // 2])  # half written, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, text)

    monkeypatch.setattr(atomic, "_write_text_file", disk_full_on_second)
    with pytest.raises(OSError, match=f"{out_dir}.*No space left on device") as info:
        evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(plans), output_folder=str(out_dir))
    assert info.value.errno == errno.ENOSPC
    assert len(calls) == 2
    assert _file_bytes(out_dir) == old  # all three old files as they were, nothing else in the folder

    calls.clear()
    rc = main(["evaluate", "-ref", str(ref_dir), "-pred", str(pred_dir), "-djfile", str(dj), "-o", str(out_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and str(out_dir) in err and "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.strip()] == [ln for ln in err.splitlines() if "error:" in ln]
    assert _file_bytes(out_dir) == old

    monkeypatch.setattr(atomic, "_write_text_file", real_write)
    evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(plans), output_folder=str(out_dir))
    new = _file_bytes(out_dir)
    assert sorted(new) == sorted(old) and all(new[k] != old[k] for k in old)  # the run itself did change them


def test_a_failed_swap_is_rolled_back(tmp_path: Path, monkeypatch):
    import nnunetv2_dca.atomic as atomic

    paths = {str(tmp_path / f"f{i}.txt"): f"new {i}\n" for i in range(3)}
    for i, p in enumerate(paths):
        Path(p).write_text(f"old {i}\n")
    real_replace, calls = os.replace, []

    def fail_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", fail_second)
    with pytest.raises(OSError, match="rename failed"):
        atomic.atomic_file_set(paths)
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {f"f{i}.txt": f"old {i}\n" for i in range(3)}
    atomic.atomic_file_set(paths)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {f"f{i}.txt": f"new {i}\n" for i in range(3)}


# ----------------------------------------------------------------------------- bad inputs name the file
def test_negative_labels_name_the_file(folders, capsys):
    tmp, ref_dir, pred_dir, dj, _ = folders
    bad = case_b()[1].astype(np.int16)
    bad[0, 0, :3] = -1
    img = sitk.GetImageFromArray(bad)
    img.SetSpacing((0.8, 0.8, 3.0))
    sitk.WriteImage(img, str(pred_dir / "case_b.nii.gz"))
    with pytest.raises(ValueError, match=r"prediction .*pred/case_b\.nii\.gz holds negative label values.*3 voxels"):
        evaluate_folders(str(ref_dir), str(pred_dir), str(dj), write=False)
    sitk.WriteImage(img, str(ref_dir / "case_a.nii.gz"))
    rc = main(["evaluate", "-ref", str(ref_dir), "-pred", str(pred_dir), "-djfile", str(dj)])
    err = capsys.readouterr().err
    assert rc == 2 and "reference" in err and str(ref_dir / "case_a.nii.gz") in err and "negative" in err


def test_unreadable_prediction_is_a_one_line_error_naming_the_file(folders, capsys):
    tmp, ref_dir, pred_dir, dj, _ = folders
    junk = pred_dir / "case_b.nii.gz"
    junk.write_bytes(b"not an image " + np.random.default_rng(0).bytes(4000))
    with pytest.raises(ValueError, match=r"cannot read the prediction file .*pred/case_b\.nii\.gz"):
        evaluate_folders(str(ref_dir), str(pred_dir), str(dj), write=False)
    rc = main(["evaluate", "-ref", str(ref_dir), "-pred", str(pred_dir), "-djfile", str(dj)])
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and str(junk) in lines[0] and "Traceback" not in captured.err
    assert captured.out == "" and not (pred_dir / "evaluation.json").exists()


def test_prediction_labels_outside_the_dataset_warn_with_file_values_and_voxels(folders, capsys):
    tmp, ref_dir, pred_dir, dj, _ = folders
    ref, pred = case_a()
    pred[0, 0:2, 0:5] = 20  # 10 voxels of a label the dataset does not have (e.g. another label set)
    pred[11, 19, 21] = 7
    write_seg(pred_dir / "case_a.nii.gz", pred, (0.8, 0.8, 3.0))
    result = evaluate_folders(str(ref_dir), str(pred_dir), str(dj), write=False)
    err = capsys.readouterr().err
    path = str(pred_dir / "case_a.nii.gz")
    warning = next(ln for ln in err.splitlines() if path in ln)
    assert "warning" in warning and "7 (1 voxels)" in warning and "20 (10 voxels)" in warning
    assert "11 voxels counted as background" in warning
    assert result["unknown_label_values"] == {path: {7: 1, 20: 10}}
    # they do count as background (the warning is the only change): the FP count of no class moved
    clean = case_a()[1]
    assert result["metric_per_case"][0]["metrics"]["1"]["FP"] == int(((clean == 1) & (ref != 1)).sum())
    assert str(ref_dir) not in err  # the references are clean: no warning about them


def test_rescore_turns_an_old_result_into_the_current_one(folders):
    # An evaluation.json of the old rule (both empty = Dice 1, ASD/HD95 0, means over those) re-summarised from its
    # stored per-case values equals a fresh evaluation with the current rule.
    from nnunetv2_dca.evaluation.evaluate import json_ready, rescore_result

    tmp, ref_dir, pred_dir, dj, plans = folders
    current = json.loads(json.dumps(json_ready(evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(plans),
                                                                write=False))))
    old = json.loads(json.dumps(current))
    both = [(e, c) for e in old["metric_per_case"] for c, m in e["metrics"].items() if m["empty"] == "both"]
    assert both  # the fixture has a class absent from both sides of a case
    for e, c in both:
        e["metrics"][c].update({"Dice": 1.0, "ASD": 0.0, "HD95": 0.0})
    old["mean"] = old["foreground_mean"] = old["group_mean"] = "stale"
    rescored = json.loads(json.dumps(json_ready(rescore_result(old))))
    for key in ("mean", "foreground_mean", "group_mean", "metric_per_case", "classes_not_scored"):
        assert rescored[key] == current[key], key
    again = json.loads(json.dumps(json_ready(rescore_result(current))))  # idempotent on a current result
    assert again["foreground_mean"] == current["foreground_mean"] and again["group_mean"] == current["group_mean"]
