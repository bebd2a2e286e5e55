"""``nnunetv2-dca evaluate`` on small NIfTI folders: outputs, spacing from the files, protocol B, ignore label,
class groups from plans, and the errors (missing predictions, shape/spacing mismatch, regions)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunetv2_dca.cli import main
from nnunetv2_dca.evaluation.evaluate import evaluate_folders
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
    plans = write_json(tmp_path / "plans.json", {"plans_name": "nnUNetPlansDCA",
                                                 "dca": {"class_groups": [[1], [2], [3]],
                                                         "group_names": ["head", "medium", "tail"]}})
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

    # adrenal: missed in case_a (Dice 0, distances undefined = null), absent from both in case_b (1 / 0 / 0)
    a3 = first["metrics"]["3"]
    assert (a3["Dice"], a3["ASD"], a3["HD95"], a3["empty"]) == (0.0, None, None, "prediction")
    b3 = result["metric_per_case"][1]["metrics"]["3"]
    assert (b3["Dice"], b3["ASD"], b3["HD95"], b3["empty"]) == (1.0, 0.0, 0.0, "both")
    assert result["mean"]["3"]["Dice"] == pytest.approx(0.5)
    assert result["mean"]["3"]["ASD"] == 0.0 and result["mean"]["3"]["n_undefined"] == 1
    assert result["group_mean"]["tail"]["Dice"] == pytest.approx(0.5)
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
    assert (m["1"]["Dice"], m["1"]["ASD"], m["2"]["Dice"], m["2"]["empty"]) == (1.0, 0.0, 1.0, "both")
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
    bad_plans = write_json(tmp / "bad_plans.json", {"dca": {"class_groups": [[1], [2, 7]]}})
    with pytest.raises(ValueError, match=r"\[7\]"):
        evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(bad_plans), write=False)
    stock = write_json(tmp / "stock_plans.json", {"plans_name": "nnUNetPlans"})
    result = evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(stock), write=False)
    assert result["group_mean"] is None and "no 'dca' section" in capsys.readouterr().err
    no_names = write_json(tmp / "no_names.json", {"dca": {"class_groups": [[1], [2, 3]]}})
    result = evaluate_folders(str(ref_dir), str(pred_dir), str(dj), str(no_names), write=False)
    assert list(result["group_mean"]) == ["head", "tail"]
    assert not math.isnan(result["group_mean"]["tail"]["Dice"])
