"""Cross-camera global IDF1 on hand-made 2-camera data (exact, hand-computed figures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.core.errors import DataError

# two people, 4 frames in each camera; boxes far apart so matching is unambiguous
_BOX = {("camA", 1): (10, 10, 20, 40), ("camA", 2): (100, 10, 20, 40),
        ("camB", 7): (50, 50, 20, 40), ("camB", 8): (200, 50, 20, 40)}


def _write(path: Path, rows: list[tuple[int, int, tuple]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{f},{i},{b[0]},{b[1]},{b[2]},{b[3]},1,-1,-1,-1\n" for f, i, b in rows))


def _gt(root: Path) -> Path:
    for cam, ids in (("camA", (1, 2)), ("camB", (7, 8))):
        _write(root / cam / "gt" / "gt.txt", [(f, i, _BOX[(cam, i)]) for f in range(1, 5) for i in ids])
        (root / cam / "seqinfo.ini").write_text(
            f"[Sequence]\nname={cam}\nimDir=img1\nframeRate=10\nseqLength=4\nimWidth=640\nimHeight=480\nimExt=.jpg\n")
    (root / "identities.json").write_text(json.dumps({"cameras": {"camA": {"1": 1, "2": 2}, "camB": {"7": 1, "8": 2}}}))
    return root


def _results(root: Path, camb_ids: dict[int, int]) -> Path:
    """camA: gt 1 -> 11, gt 2 -> 12; camB: local gt id -> camb_ids[...]."""
    _write(root / "camA.txt", [(f, 10 + i, _BOX[("camA", i)]) for f in range(1, 5) for i in (1, 2)])
    _write(root / "camB.txt", [(f, camb_ids[i], _BOX[("camB", i)]) for f in range(1, 5) for i in (7, 8)])
    return root


@pytest.mark.parametrize(
    ("camb_ids", "global_idf1"),
    [
        ({7: 11, 8: 12}, 100.0),  # both people keep their global id across cameras
        # person 1 gets a fresh id in camB: IDTP = 4 (gt1<->11) + 8 (gt2<->12) = 12 of 16 -> 2*12/32
        ({7: 13, 8: 12}, 75.0),
        # ids swapped across cameras: best mapping keeps 8 of 16 -> 2*8/32
        ({7: 12, 8: 11}, 50.0),
    ],
)
def test_global_idf1_counts_cross_camera_identity(tmp_path: Path, camb_ids: dict[int, int], global_idf1: float) -> None:
    from pipeline.evaluation.multicam import evaluate_multicam

    rep = evaluate_multicam(_gt(tmp_path / "gt"), _results(tmp_path / "res", camb_ids))
    for cam in ("camA", "camB"):  # each camera alone is perfect whatever the ids
        assert rep.per_camera[cam]["MOTA"] == pytest.approx(100.0)
        assert rep.per_camera[cam]["IDF1"] == pytest.approx(100.0)
    assert rep.global_["IDF1"] == pytest.approx(global_idf1)


def test_cli_json_and_bad_identity_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    gt = _gt(tmp_path / "gt")
    res = _results(tmp_path / "res", {7: 13, 8: 12})
    assert main(["eval-mc", "--gt", str(gt), "--results", str(res), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["global"]["IDF1"] == pytest.approx(75.0) and sorted(data["per_camera"]) == ["camA", "camB"]
    (gt / "identities.json").write_text(json.dumps({"cameras": {"camA": {"1": 1, "2": 2}, "camB": {"7": 1}}}))
    from pipeline.evaluation.multicam import evaluate_multicam

    with pytest.raises(DataError, match="gt id 8 has no global id"):
        evaluate_multicam(gt, res)
    (gt / "identities.json").unlink()
    assert main(["eval-mc", "--gt", str(gt), "--results", str(res)]) == 2
    assert "identities.json: missing" in capsys.readouterr().err


def test_handover_stats_on_the_source_clock(tmp_path: Path) -> None:
    """Person 1: camA frames 1-4, unseen 5-6, camB 7-8 (a blind hand-over); person 2: camA 1-2 and 4
    (re-appears in the same camera); person 3: camB 7 only. camB is a time window starting at source
    frame 5, so its local frames 3-4 are source frames 7-8."""
    from pipeline.evaluation.multicam import handover_stats

    root = tmp_path / "gt"
    _write(root / "camA" / "gt" / "gt.txt", [(f, 1, _BOX[("camA", 1)]) for f in range(1, 5)]
           + [(f, 2, _BOX[("camA", 2)]) for f in (1, 2, 4)])
    _write(root / "camB" / "gt" / "gt.txt", [(f, 7, _BOX[("camB", 7)]) for f in (3, 4)] + [(3, 8, _BOX[("camB", 8)])])
    (root / "identities.json").write_text(json.dumps({
        "cameras": {"camA": {"1": 1, "2": 2}, "camB": {"7": 1, "8": 3}},
        "cuts": {"camA": {"f0": 1}, "camB": {"f0": 5}}}))
    assert handover_stats(root) == {"ids": 3, "ids_multi_camera": 1, "reappear_events": 2, "reappear_ids": 2,
                                    "reappear_other_camera": 1}


def test_perfect_linking_labels_vote_by_box_overlap(tmp_path: Path) -> None:
    """camA's tracklet 1 covers gt 1 for 3 frames and gt 2 for 1 frame -> global 1; camB's tracklet 2
    sits on gt 8 (global 2); tracklet 3 overlaps nothing (IoU <= 0.5) and keeps 100000 + its id."""
    from types import SimpleNamespace

    from pipeline.evaluation.multicam import perfect_linking_labels

    root = _gt(tmp_path / "gt")
    t1 = SimpleNamespace(tracklet_id=1, cam_id="camA", frames=[1, 2, 3, 4],
                         boxes_tlwh=[_BOX[("camA", 1)]] * 3 + [_BOX[("camA", 2)]])
    t2 = SimpleNamespace(tracklet_id=2, cam_id="camB", frames=[1, 2], boxes_tlwh=[_BOX[("camB", 8)]] * 2)
    t3 = SimpleNamespace(tracklet_id=3, cam_id="camB", frames=[1], boxes_tlwh=[(60, 50, 20, 40)])  # IoU 400/1200
    assert perfect_linking_labels([t1, t2, t3], root) == {1: 1, 2: 2, 3: 100003}


def test_results_folder_that_cannot_be_the_runs_output_is_an_error(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main
    from pipeline.evaluation.multicam import evaluate_multicam

    gt = _gt(tmp_path / "gt")
    res = _results(tmp_path / "res", {7: 13, 8: 12})
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "other"
    _write(other / "left.txt", [(1, 1, (0, 0, 10, 10))])
    (other / "right.csv").write_text("")
    cases = {
        tmp_path / "nosuch": "no such results folder (expected one with camA.txt, camB.txt, e.g. a run's"
                             " outputs/mot_global)",
        res / "camA.txt": "not a folder: --results is the folder that holds camA.txt, camB.txt",
        empty: "no result file for any gt camera (expected camA.txt, camB.txt; it is empty)",
        other: "no result file for any gt camera (expected camA.txt, camB.txt; it holds left.txt, right.csv)",
    }
    for folder, why in cases.items():
        with pytest.raises(DataError) as exc:
            evaluate_multicam(gt, folder)
        assert str(exc.value) == f"{folder}: {why}"
        assert main(["eval-mc", "--gt", str(gt), "--results", str(folder)]) == 2
        assert capsys.readouterr().err.strip() == f"reid-pipeline: error: {folder}: {why}"
    # one camera's file missing: still scored, that camera as empty results, with a note
    (res / "camB.txt").unlink()
    rep = evaluate_multicam(gt, res)
    assert rep.notes == [f"{res / 'camB.txt'}: missing, camera scored as empty results"]
    assert rep.per_camera["camA"]["IDF1"] == pytest.approx(100.0) and rep.per_camera["camB"]["IDF1"] == 0.0
