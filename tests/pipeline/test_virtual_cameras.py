"""Virtual cameras: layouts, gt re-expressed per region, and a real cut of PETS09-S2L1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import ConfigError
from pipeline.virtual_cameras import CameraCut, cut_boxes, plan_layout


def test_two_regions_grid_and_time_windows_layouts() -> None:
    left, right = plan_layout("two-regions", 768, 576, 1, 795, 7.0, gap=0.1)
    # width per camera: 768 * 0.45 = 345.6 -> 344 (even); gap strip 344..424 (80 px)
    assert (left.x0, left.x1, right.x0, right.x1) == (0, 344, 424, 768)
    assert (left.y0, left.y1, left.f0, left.f1) == (0, 576, 1, 795)
    grid = plan_layout("grid", 768, 576, 1, 795, 7.0, gap=0.1)
    # height per row: 576 * 0.45 = 259.2 -> 258
    assert [(c.cam_id, c.x0, c.y0, c.x1, c.y1) for c in grid] == [
        ("top_left", 0, 0, 344, 258), ("top_right", 424, 0, 768, 258),
        ("bottom_left", 0, 318, 344, 576), ("bottom_right", 424, 318, 768, 576)]
    w1, w2 = plan_layout("time-windows", 768, 576, 1, 795, 7.0, gap=0.1, n=2)
    # 795 * 0.9 / 2 = 357.75 -> 357 frames each; the 81 left over are the gap
    assert (w1.f0, w1.f1, w2.f0, w2.f1) == (1, 357, 439, 795)
    assert w1.time_offset_s == 0.0 and w2.time_offset_s == pytest.approx(438 / 7.0)
    with pytest.raises(ConfigError, match="unknown layout 'ring'"):
        plan_layout("ring", 768, 576, 1, 795, 7.0)


def test_cut_boxes_clips_and_keeps_mostly_visible() -> None:
    cut = CameraCut("right", 424, 0, 768, 576, 11, 20)
    frames = np.array([11, 11, 12, 25, 20])
    ids = np.array([1, 2, 3, 4, 5])
    tlwh = np.array([
        [400, 10, 40, 80],   # 16/40 of its width inside -> 0.4 < 0.5: dropped
        [410, 10, 40, 80],   # 26/40 = 0.65 inside: kept, clipped to x 424..450
        [500, 20, 30, 60],   # fully inside
        [500, 20, 30, 60],   # frame 25 outside the window [11, 20]
        [750, 550, 40, 40],  # 18 x 26 of 40 x 40 = 0.29: dropped
    ], dtype=float)
    lf, lid, box = cut_boxes(frames, ids, tlwh, cut, min_visible=0.5)
    assert lf.tolist() == [1, 2] and lid.tolist() == [2, 3]
    np.testing.assert_allclose(box, [[0, 10, 26, 80], [76, 20, 30, 60]])


def test_two_regions_from_pets(tmp_path: Path, pets_dir: Path) -> None:
    import cv2

    import yaml

    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path / "pets2"
    summary = build_virtual_cameras(pets_dir, out, "two-regions", gap=0.1, frame_range=(1, 20), progress=False)
    assert summary["frames"] == [1, 20] and sorted(summary["cameras"]) == ["left", "right"]
    for cam, width in (("left", 344), ("right", 344)):
        ini = (out / cam / "seqinfo.ini").read_text()
        assert "seqLength=20" in ini and f"imWidth={width}" in ini and "imHeight=576" in ini
        cap = cv2.VideoCapture(str(out / cam / "video.mp4"))
        n, first = 0, None
        while True:
            ok, img = cap.read()
            if not ok:
                break
            first = img if first is None else first
            n += 1
        cap.release()
        assert n == 20 and first.shape == (576, 344, 3)
        src = cv2.imread(str(pets_dir / "img1" / "000001.jpg"))
        x0 = 0 if cam == "left" else 424
        assert np.abs(first.astype(int) - src[:, x0:x0 + 344].astype(int)).mean() < 8  # same pixels, mp4-lossy
        rows = np.loadtxt(out / cam / "gt" / "gt.txt", delimiter=",").reshape(-1, 10)
        assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= 20
        assert (rows[:, 2] >= 0).all() and (rows[:, 2] + rows[:, 4] <= 344 + 1e-6).all()
    right = np.loadtxt(out / "right" / "gt" / "gt.txt", delimiter=",")
    left = np.loadtxt(out / "left" / "gt" / "gt.txt", delimiter=",")
    # PETS gt frame 1: id 9 at x=499 (right: 499 - 424 = 75), id 15 at x=258 (left, unchanged)
    r9 = right[(right[:, 0] == 1) & (right[:, 1] == 9)][0]
    np.testing.assert_allclose(r9[2:6], [75, 158, 31.03, 75.17], atol=1e-3)
    l15 = left[(left[:, 0] == 1) & (left[:, 1] == 15)][0]
    np.testing.assert_allclose(l15[2:6], [258, 219, 32.913, 88.702], atol=1e-3)
    assert not ((right[:, 0] == 1) & (right[:, 1] == 15)).any()
    ident = json.loads((out / "identities.json").read_text())
    assert sorted(map(int, ident["cameras"]["right"])) == sorted(set(right[:, 1].astype(int)))
    assert all(int(k) == v for k, v in ident["cameras"]["left"].items())
    cams = yaml.safe_load((out / "cams.yaml").read_text())["cameras"]
    assert [c["id"] for c in cams] == ["left", "right"]
    assert Path(cams[1]["source"]) == (out / "right" / "video.mp4").resolve()


def test_time_windows_as_image_folders(tmp_path: Path, pets_dir: Path) -> None:
    import yaml

    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path / "tw"
    build_virtual_cameras(pets_dir, out, "time-windows", gap=0.1, n=2, frame_range=(1, 30), fmt="images",
                          progress=False)
    # 30 frames: windows of floor(30 * 0.9 / 2) = 13 frames, gap 4: [1, 13] and [18, 30]
    assert len(list((out / "window1" / "img1").glob("*.jpg"))) == 13
    assert len(list((out / "window2" / "img1").glob("*.jpg"))) == 13
    gt2 = np.loadtxt(out / "window2" / "gt" / "gt.txt", delimiter=",")
    src = np.loadtxt(pets_dir / "gt" / "gt.txt", delimiter=",")
    # window2's local frame 1 is source frame 18, full frame: same boxes
    a = gt2[gt2[:, 0] == 1][:, 1:6]
    b = src[src[:, 0] == 18][:, 1:6]
    b = b[(b[:, 1] >= 0) & (b[:, 1] + b[:, 3] <= 768) & (b[:, 2] >= 0) & (b[:, 2] + b[:, 4] <= 576)]
    inside = {int(r[0]): r for r in b}  # boxes wholly inside the frame come through unchanged
    assert inside and all(np.allclose(a[a[:, 0] == i][0], r, atol=1e-3) for i, r in inside.items())
    cams = yaml.safe_load((out / "cams.yaml").read_text())["cameras"]
    assert "time_offset_s" not in cams[0] and cams[1]["time_offset_s"] == pytest.approx(17 / 7, abs=1e-6)

    # built again as videos into the same folder: the image frames of the first build go (a MOT folder with both
    # would be read from its stale img1/)
    build_virtual_cameras(pets_dir, out, "time-windows", gap=0.1, n=2, frame_range=(1, 30), progress=False)
    assert (out / "window1" / "video.mp4").is_file() and not (out / "window1" / "img1").exists()
    build_virtual_cameras(pets_dir, out, "time-windows", gap=0.1, n=2, frame_range=(1, 30), fmt="images",
                          progress=False)
    assert not (out / "window1" / "video.mp4").exists() and len(list((out / "window1" / "img1").glob("*.jpg"))) == 13


def test_regions_windows_and_overlap_layouts() -> None:
    from pipeline.virtual_cameras import overlapping_pairs

    cuts = plan_layout("regions-windows", 768, 576, 1, 795, 7.0, gap=0.1, n=2, time_gap=0.05, splits=(0.4,))
    # gap of round(795 * 0.05) = 40 frames starting at 1 + round(795 * 0.4) - 20 = 299: windows [1, 298], [339, 795]
    assert [(c.cam_id, c.x0, c.x1, c.on) for c in cuts] == [
        ("left1", 0, 344, (1, 298)), ("right1", 424, 768, (1, 298)),
        ("left2", 0, 344, (339, 795)), ("right2", 424, 768, (339, 795))]
    assert all((c.f0, c.f1, c.time_offset_s) == (1, 795, 0.0) for c in cuts)  # one common frame clock
    assert overlapping_pairs(cuts) == []  # left1/left2 share a region but never record at the same time
    cols = plan_layout("overlap", 768, 576, 1, 795, 7.0, gap=1 / 12, n=3, overlap=1 / 12)
    # 3 w - 64 + 64 = 768 -> w = 256; col1/col2 share x 192..256, col2/col3 are 64 px apart
    assert [(c.cam_id, c.x0, c.x1) for c in cols] == [("col1", 0, 256), ("col2", 192, 448), ("col3", 512, 768)]
    assert overlapping_pairs(cols) == [["col1", "col2"]]
    with pytest.raises(ConfigError, match="splits: need 1 increasing"):
        plan_layout("regions-windows", 768, 576, 1, 795, 7.0, splits=(0.4, 0.6))
    with pytest.raises(ConfigError, match="do not fit"):
        plan_layout("overlap", 768, 576, 1, 795, 7.0, gap=0.3, n=5, overlap=0.2)


def test_box_straddling_the_overlap_is_in_both_cameras() -> None:
    col1, col2 = CameraCut("col1", 0, 0, 256, 576, 1, 795), CameraCut("col2", 192, 0, 448, 576, 1, 795)
    frames, ids = np.array([5, 5]), np.array([3, 4])
    tlwh = np.array([[210, 100, 30, 80],    # x 210..240: inside both regions
                     [240, 100, 30, 80]], dtype=float)  # x 240..270: 16/30 in col1 (kept), all in col2
    lf1, id1, b1 = cut_boxes(frames, ids, tlwh, col1)
    lf2, id2, b2 = cut_boxes(frames, ids, tlwh, col2)
    assert id1.tolist() == [3, 4] and id2.tolist() == [3, 4] and lf1.tolist() == lf2.tolist() == [5, 5]
    np.testing.assert_allclose(b1, [[210, 100, 30, 80], [240, 100, 16, 80]])
    np.testing.assert_allclose(b2, [[18, 100, 30, 80], [48, 100, 30, 80]])


def test_person_crossing_the_blind_strip_disappears_then_reappears() -> None:
    left, right = plan_layout("two-regions", 768, 576, 1, 20, 7.0, gap=0.1)  # strip x 344..424
    frames = np.arange(1, 21)
    tlwh = np.array([[300 + 10 * (f - 1), 200, 20, 60] for f in frames], dtype=float)  # x0 = 300, 310, ... 490
    ids = np.full(20, 7)
    lf, lid, _ = cut_boxes(frames, ids, tlwh, left)
    rf, rid, rbox = cut_boxes(frames, ids, tlwh, right)
    # left keeps x0 + 10 <= 344 (>= half of the 20 px inside): x0 <= 334, frames 1..4;
    # right keeps x0 + 10 >= 424: x0 >= 414, frames 13..20; frames 5..12 are in the blind strip
    assert lf.tolist() == [1, 2, 3, 4] and rf.tolist() == list(range(13, 21))
    assert set(lid) == set(rid) == {7}  # the same global gt id on both sides of the gap
    np.testing.assert_allclose(rbox[0], [0, 200, 16, 60])  # frame 13: x 420..440 clipped to 424..440


def test_time_windows_renumber_frames_and_recording_windows_do_not() -> None:
    late = CameraCut("window2", 0, 0, 768, 576, 18, 30)
    paused = CameraCut("left2", 0, 0, 344, 576, 1, 30, on=(18, 30))
    frames, ids, tlwh = np.array([17, 18, 30]), np.array([1, 1, 1]), np.tile([[10.0, 10, 20, 40]], (3, 1))
    assert cut_boxes(frames, ids, tlwh, late)[0].tolist() == [1, 13]  # source 18 -> local 1
    assert cut_boxes(frames, ids, tlwh, paused)[0].tolist() == [18, 30]  # common clock, nothing before 18


def test_cut_detections_follow_the_gt_rule() -> None:
    from pipeline.virtual_cameras import cut_detections

    cut = CameraCut("right", 424, 0, 768, 576, 1, 795)
    frames = np.array([1, 1, 2])
    tlwh = np.array([[410, 10, 40, 80], [500, 20, 30, 60], [400, 10, 40, 80]], dtype=float)
    per = cut_detections(frames, tlwh, np.array([0.9, 0.8, 0.7]), cut)
    assert sorted(per) == [1]  # frame 2's box is only 16/40 inside
    boxes, scores = per[1]
    np.testing.assert_allclose(boxes, [[0, 10, 26, 80], [76, 20, 30, 60]])
    np.testing.assert_allclose(scores, [0.9, 0.8])


def test_recording_windows_from_pets(tmp_path: Path, pets_dir: Path) -> None:
    import cv2
    import yaml

    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path / "rw"
    s = build_virtual_cameras(pets_dir, out, "regions-windows", gap=0.1, n=2, time_gap=0.1, frame_range=(1, 30),
                              fmt="images", progress=False)
    # gap round(3) = 3 frames starting at 1 + 15 - 1 = 15: windows [1, 14] and [18, 30]
    assert s["cameras"]["left2"]["records"] == [18, 30] and s["overlapping_cameras"] == []
    images = sorted((out / "right2" / "img1").glob("*.jpg"))
    assert len(images) == 30  # every camera keeps the common frame clock
    assert cv2.imread(str(images[16])).max() == 0 and cv2.imread(str(images[17])).max() > 0  # off, then on
    gt2 = np.loadtxt(out / "right2" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    gt1 = np.loadtxt(out / "right1" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    assert gt2[:, 0].min() == 18 and gt2[:, 0].max() == 30 and gt1[:, 0].min() == 1 and gt1[:, 0].max() == 14
    assert 9 in gt1[:, 1] and 9 in gt2[:, 1]  # PETS id 9 walks on the right through the pause: a hand-over in time
    assert "matching" not in yaml.safe_load((out / "cams.yaml").read_text())
    ov = build_virtual_cameras(pets_dir, tmp_path / "ov", "overlap", gap=1 / 12, n=3, frame_range=(1, 5),
                               fmt="images", progress=False)
    assert ov["overlapping_cameras"] == [["col1", "col2"]]
    cams = yaml.safe_load((tmp_path / "ov" / "cams.yaml").read_text())
    assert cams["matching"]["overlapping_cameras"] == [["col1", "col2"]]
    ident = json.loads((tmp_path / "ov" / "identities.json").read_text())
    assert ident["overlapping_cameras"] == [["col1", "col2"]]


def test_cli_overlap_layout_writes_the_pair_and_a_png(tmp_path: Path, pets_dir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    from pipeline.cli import main

    out = tmp_path / "ov"
    assert main(["virtual-cameras", str(pets_dir), "--out", str(out), "--layout", "overlap", "--cams", "3",
                 "--gap", "0.0833334", "--frames", "1:3", "--format", "images", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["overlapping_cameras"] == [["col1", "col2"]]
    assert [summary["cameras"][c]["region_tlbr"][0] for c in ("col1", "col2", "col3")] == [0, 192, 512]
    png = cv2.imread(summary["png"])
    assert png.shape[1] == 768 and png.shape[0] > 576  # the frame plus the recording timeline
    assert main(["virtual-cameras", str(pets_dir), "--out", str(out), "--layout", "regions-windows",
                 "--splits", "0.4,0.6"]) == 2
    assert "splits: need 1 increasing fractions" in capsys.readouterr().err
