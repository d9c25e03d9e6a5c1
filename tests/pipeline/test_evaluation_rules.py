"""Hand-computed checks of the official MOTChallenge preprocessing, input errors and the eval CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.core.errors import DataError
from pipeline.evaluation import evaluate_sequence
from pipeline.mot import read_mot_file

# frame 1: pedestrian A (id 1), static person (class 7, id 2), zero-marked pedestrian (id 3), all 100x100 boxes
GT_MOT17 = """\
1,1,0,0,100,100,1,1,1
1,2,200,0,100,100,1,7,1
1,3,400,0,100,100,0,1,1
2,1,0,0,100,100,1,1,1
2,2,200,0,100,100,1,7,1
"""
# tracker: on A (frame 1+2), on the static person (IoU 1 in frame 1, IoU 0.4 in frame 2: (60*100)/(100*100+100*100-6000)
# = 6000/14000 = 0.43 < 0.5, stays an FP), on the zero-marked pedestrian (not removed: only distractor matches are)
RES = """\
1,10,0,0,100,100,1,-1,-1,-1
1,11,200,0,100,100,1,-1,-1,-1
1,12,400,0,100,100,1,-1,-1,-1
2,10,0,0,100,100,1,-1,-1,-1
2,11,240,0,100,100,1,-1,-1,-1
"""


def _files(tmp_path: Path, gt: str, res: str):
    (tmp_path / "gt.txt").write_text(gt)
    (tmp_path / "res.txt").write_text(res)
    return read_mot_file(tmp_path / "gt.txt", "gt"), read_mot_file(tmp_path / "res.txt", "result")


def test_mot17_distractors_and_zero_marked(tmp_path: Path) -> None:
    gt, res = _files(tmp_path, GT_MOT17, RES)
    m = evaluate_sequence(gt, res, "MOT17", "toy", hota=False).metrics
    # kept gt: A in frames 1, 2 -> 2 dets; tracker: 10 matches A twice; 11 removed in frame 1 (static person),
    # FP in frame 2 (IoU 0.43); 12 is an FP in frame 1 (zero-marked gt is dropped, the box is not)
    assert (m["GT_dets"], m["TP"], m["FN"], m["FP"], m["IDSW"]) == (2, 2, 0, 2, 0)
    assert m["MOTA"] == pytest.approx(100 * (1 - 2 / 2))
    assert m["Prcn"] == pytest.approx(50.0) and m["IDF1"] == pytest.approx(100 * 2 * 2 / (4 + 2))


def test_mot15_rules_keep_all_tracker_boxes(tmp_path: Path) -> None:
    gt15 = "\n".join(",".join(r.split(",")[:7]) + ",-1,-1,-1" for r in GT_MOT17.splitlines()) + "\n"
    gt, res = _files(tmp_path, gt15, RES)
    assert (gt.cls == -1).all()
    m = evaluate_sequence(gt, res, "MOT15", "toy", hota=False).metrics
    # gt without classes: id 2 is a person to track (4 dets kept: A x2, id 2 x2; id 3 is zero-marked)
    # frame 1: 10-A, 11-id2 match, 12 FP; frame 2: 10-A match, 11 vs id2 IoU 0.43 -> FP + FN
    assert (m["GT_dets"], m["TP"], m["FN"], m["FP"]) == (4, 3, 1, 2)
    with pytest.raises(DataError, match="no class column"):
        evaluate_sequence(gt, res, "MOT17", "toy")


def test_mot20_also_drops_non_mot_vehicle(tmp_path: Path) -> None:
    gt, res = _files(tmp_path, GT_MOT17.replace(",1,7,1", ",1,6,1"), RES)
    assert evaluate_sequence(gt, res, "MOT17", hota=False).metrics["FP"] == 3  # class 6 is no distractor in MOT17
    assert evaluate_sequence(gt, res, "MOT20", hota=False).metrics["FP"] == 2


def test_duplicate_tracker_id_in_a_frame(tmp_path: Path) -> None:
    gt, res = _files(tmp_path, GT_MOT17, RES + "2,10,5,5,100,100,1,-1,-1,-1\n")
    with pytest.raises(DataError, match="frame 2: tracker id 10 appears more than once"):
        evaluate_sequence(gt, res, "MOT17", "toy")


def test_eval_cli_table_and_json(shared: Path, tmp_path: Path, capsys) -> None:
    data = shared / "data" / "MOT17"
    out = tmp_path / "report.json"
    rc = main(["eval", "--gt-root", str(data / "train"), "--results", str(data / "results" / "MPNTrack"),
               "--benchmark", "mot17", "--seqs", "MOT17-09-FRCNN", "MOT17-02-FRCNN", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "MOT17-09-FRCNN" in text and "OVERALL" in text and "IDF1" in text
    report = json.loads(out.read_text())
    ref = json.loads((Path(__file__).resolve().parents[1] / "data" / "trackeval_mot17_mpntrack.json").read_text())
    m = report["per_sequence"]["MOT17-02-FRCNN"]
    assert abs(m["MOTA"] - ref["per_sequence"]["MOT17-02-FRCNN"]["MOTA"]) < 0.1
    o = report["overall"]
    assert o["FN"] == sum(report["per_sequence"][s]["FN"] for s in ("MOT17-09-FRCNN", "MOT17-02-FRCNN"))
    assert report["benchmark"] == "MOT17"


def test_eval_cli_errors_are_one_line(shared: Path, tmp_path: Path, capsys) -> None:
    seq = tmp_path / "gt" / "S1"
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=S1\nframeRate=10\nseqLength=2\nimWidth=640\nimHeight=480\n")
    (seq / "gt" / "gt.txt").write_text(GT_MOT17)
    res_dir = tmp_path / "res"
    res_dir.mkdir()
    (res_dir / "S1.txt").write_text(RES + "2,13,1,1,5,oops,1,-1,-1,-1\n")
    assert main(["eval", "--gt-root", str(tmp_path / "gt"), "--results", str(res_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"reid-pipeline: error: {res_dir / 'S1.txt'}:6: column 6: not a number: 'oops'"
    (res_dir / "S1.txt").write_text(RES + "3,13,1,1,5,5,1,-1,-1,-1\n")
    assert main(["eval", "--gt-root", str(tmp_path / "gt"), "--results", str(res_dir)]) == 2
    assert "beyond seqLength 2" in capsys.readouterr().err
    mot15 = shared / "data" / "MOT15" / "train"
    assert main(["eval", "--gt-root", str(mot15), "--results", str(res_dir), "--seqs", "TUD-Campus"]) == 2
    assert "missing result file" in capsys.readouterr().err


def test_only_false_positives_give_negative_mota(tmp_path: Path) -> None:
    """TrackEval's MOTA = (TP - FP - IDSW) / max(1, TP + FN): 5 boxes and no gt -> -500 %."""
    gt, res = _files(tmp_path, "", RES)
    m = evaluate_sequence(gt, res, "MOT17", hota=False).metrics
    assert (m["FP"], m["GT_dets"], m["MOTA"]) == (5, 0, -500.0)
