"""``track`` / ``benchmark mot`` on inputs users give: copied sequence folders, stray score rows, boxes in another
format, detections past seqLength, a misspelt ``--seqs`` name."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.mot import read_mot_file
from trackers.presets import choose_preset


@pytest.fixture(scope="module")
def mot15(shared: Path) -> Path:
    return shared / "data" / "MOT15" / "train"


def _copy(src: Path, dst: Path, det_lines=None) -> Path:
    """``src``'s seqinfo.ini, gt and det/frcnn.txt (or ``det_lines``) under ``dst``."""
    (dst / "det").mkdir(parents=True)
    shutil.copy(src / "seqinfo.ini", dst / "seqinfo.ini")
    shutil.copytree(src / "gt", dst / "gt")
    lines = det_lines if det_lines is not None else (src / "det" / "frcnn.txt").read_text().splitlines()
    (dst / "det" / "frcnn.txt").write_text("\n".join(lines) + "\n")
    return dst


def test_a_copied_sequence_is_named_after_its_folder(mot15, tmp_path, capsys):
    """A copy of TUD-Campus in a folder of another name (seqinfo still says TUD-Campus) writes <folder>.txt, which
    is what ``eval`` looks up, and ``benchmark mot`` scores original and copy side by side."""
    root = tmp_path / "root"
    _copy(mot15 / "TUD-Campus", root / "TUD-Campus")
    _copy(mot15 / "TUD-Campus", root / "my-campus")
    assert main(["track", str(root / "my-campus"), "--det", "frcnn", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "my-campus.txt").is_file() and not (tmp_path / "out" / "TUD-Campus.txt").exists()
    js = tmp_path / "bm.json"
    assert main(["benchmark", "mot", "--root", str(root), "--det", "frcnn", "--benchmark", "MOT15",
                 "--out", str(tmp_path / "bm"), "--json", str(js)]) == 0
    import json

    per = json.loads(js.read_text())["per_sequence"]
    assert set(per) == {"TUD-Campus", "my-campus"}
    assert per["TUD-Campus"]["MOTA"] == per["my-campus"]["MOTA"]


def test_two_folders_of_one_name_are_refused_before_any_work(mot15, tmp_path, capsys):
    a = _copy(mot15 / "TUD-Campus", tmp_path / "a" / "TUD-Campus")
    b = _copy(mot15 / "TUD-Campus", tmp_path / "b" / "TUD-Campus")
    rc = main(["track", str(a), str(b), "--det", "frcnn", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "two sequence folders named 'TUD-Campus'" in err
    assert not (tmp_path / "out").exists()


def test_benchmark_refuses_an_unknown_seqs_name(mot15, tmp_path, capsys):
    rc = main(["benchmark", "mot", "--root", str(mot15), "--det", "frcnn", "--seqs", "TUD-Campus", "TUD-Campsu",
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "--seqs TUD-Campsu: no such sequence with det/frcnn.txt" in err


def test_a_stray_out_of_range_score_does_not_switch_the_preset(mot15, tmp_path, caplog):
    """Every MOT15 frcnn file plus one row scored -1 stays FRCNN-like (``default``) and tracks exactly as before:
    the stray row is clipped to 0, under every threshold."""
    seq = mot15 / "TUD-Campus"
    lines = (seq / "det" / "frcnn.txt").read_text().splitlines()
    stray = lines + ["5,-1,10,10,20,40,-1,-1,-1,-1"]
    s = np.array([float(ln.split(",")[6]) for ln in stray])
    assert np.mean((s < 0) | (s > 1)) > 0  # the row is there
    assert choose_preset(s).name == "default"
    _copy(seq, tmp_path / "a" / "TUD-Campus")
    _copy(seq, tmp_path / "b" / "TUD-Campus", stray)
    for d in ("a", "b"):
        assert main(["track", str(tmp_path / d / "TUD-Campus"), "--det", "frcnn", "--out", str(tmp_path / f"o{d}")]) == 0
    a = read_mot_file(tmp_path / "oa" / "TUD-Campus.txt", "result")
    b = read_mot_file(tmp_path / "ob" / "TUD-Campus.txt", "result")
    np.testing.assert_array_equal(a.tlwh, b.tlwh)
    np.testing.assert_array_equal(a.ids, b.ids)


def test_warnings_for_boxes_in_another_format_and_rows_past_seq_length(mot15, tmp_path, caplog):
    """Normalised boxes, x1,y1,x2,y2 boxes and detections after seqLength each give one warning naming the file;
    the real file gives none."""
    seq = mot15 / "TUD-Campus"  # 640x480, 71 frames
    rows = [ln.split(",") for ln in (seq / "det" / "frcnn.txt").read_text().splitlines()]
    norm = [",".join([r[0], r[1], repr(float(r[2]) / 640), repr(float(r[3]) / 480), repr(float(r[4]) / 640),
                      repr(float(r[5]) / 480), *r[6:]]) for r in rows]
    tlbr = [",".join([r[0], r[1], r[2], r[3], repr(float(r[2]) + float(r[4])), repr(float(r[3]) + float(r[5])), *r[6:]])
            for r in rows]
    late = [",".join(r) for r in rows] + ["80,-1,100,100,30,80,0.99,-1,-1,-1"]
    cases = {"real": None, "norm": norm, "tlbr": tlbr, "late": late}
    for name, lines in cases.items():
        d = _copy(seq, tmp_path / name / "TUD-Campus", lines)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pipeline.mot.tracking"):
            assert main(["track", str(d), "--det", "frcnn", "--out", str(tmp_path / f"o_{name}")]) == 0
        warned = [r.getMessage() for r in caplog.records if r.name == "pipeline.mot.tracking"]
        if name == "real":
            assert warned == []
            continue
        assert len(warned) == 1 and str(d / "det" / "frcnn.txt") in warned[0] or "det/frcnn.txt" in warned[0], warned
        expect = {"norm": "look normalised", "tlbr": "reach past the 640x480 image",
                  "late": "1 detection(s) in frames after seqLength 71 (up to frame 80)"}[name]
        assert expect in warned[0]


def test_benchmark_says_its_rules_and_counts_clear_with_trackeval_on_request(mot15, tmp_path, capsys):
    """``benchmark mot`` prints the rules it applies (from the root's path: MOT15) and, with ``--clear trackeval``,
    records that TrackEval counted CLEAR; IDF1 (one global assignment) is the same either way."""
    import json

    out = {}
    for clear in ("motmetrics", "trackeval"):
        js = tmp_path / f"{clear}.json"
        assert main(["benchmark", "mot", "--root", str(mot15), "--det", "frcnn", "--seqs", "TUD-Campus", "--clear",
                     clear, "--out", str(tmp_path / clear), "--json", str(js)]) == 0
        out[clear] = json.loads(js.read_text())
    printed = capsys.readouterr().out
    assert "rules: MOT15 (from the gt-root path" in printed
    assert out["trackeval"]["clear"] == "trackeval" and out["motmetrics"]["clear"] == "motmetrics"
    assert out["trackeval"]["overall"]["IDF1"] == out["motmetrics"]["overall"]["IDF1"]
