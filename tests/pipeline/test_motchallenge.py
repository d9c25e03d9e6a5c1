"""MOTChallenge data layer on the real MOT15/MOT17 files and on hand-made malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.mot import (
    MOTSequence, detections_by_frame, find_sequences, read_mot_file, read_seqinfo, write_mot_results,
)
from pipeline.core.types import TrackOutput


def _nonblank_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_seqinfo_pets(pets_dir: Path) -> None:
    info = read_seqinfo(pets_dir)
    assert (info.name, info.frame_rate, info.seq_length) == ("PETS09-S2L1", 7.0, 795)
    assert (info.im_width, info.im_height, info.im_dir, info.im_ext) == (768, 576, "img1", ".jpg")


def test_mot15_gt_has_no_class_or_visibility(pets_dir: Path) -> None:
    gt = MOTSequence(pets_dir).gt()
    lines = _nonblank_lines(pets_dir / "gt" / "gt.txt")
    assert len(gt) == len(lines)
    assert (gt.cls == -1).all() and (gt.vis == -1).all()
    # first row: 1,9,499,158,31.03,75.17,1,-4.1554,-7.3591,0
    assert (gt.frame[0], gt.ids[0]) == (1, 9)
    np.testing.assert_allclose(gt.tlwh[0], [499, 158, 31.03, 75.17])
    assert gt.tlwh.shape == (len(lines), 4) and gt.frame.dtype == np.int64


def test_mot17_gt_class_visibility_and_ignore_rows(mot17_train: Path) -> None:
    gt = MOTSequence(mot17_train / "MOT17-02-FRCNN").gt()
    # first row: 1,1,912,484,97,109,0,7,1 -> a conf-0 (ignored) static person (class 7)
    assert (gt.frame[0], gt.ids[0], gt.conf[0], gt.cls[0], gt.vis[0]) == (1, 1, 0.0, 7, 1.0)
    lines = _nonblank_lines(mot17_train / "MOT17-02-FRCNN" / "gt" / "gt.txt")
    n_ped = sum(1 for line in lines if line.split(",")[7] == "1" and line.split(",")[6] != "0")
    assert int(((gt.cls == 1) & (gt.conf != 0)).sum()) == n_ped
    assert ((gt.vis >= 0) & (gt.vis <= 1)).all()
    sub = gt.select(gt.cls == 1)
    assert len(sub) == int((gt.cls == 1).sum()) and (sub.cls == 1).all()


def test_det_names_and_find_sequences(shared: Path) -> None:
    root = shared / "data" / "MOT15" / "train"
    seqs = find_sequences(root)
    assert [s.name for s in seqs] == sorted(p.name for p in root.iterdir() if (p / "seqinfo.ini").is_file())
    assert len(seqs) == 7
    with_det = find_sequences(root, det="det")
    assert len(with_det) == 5 and all("det" in s.det_names() for s in with_det)
    pets = MOTSequence(root / "PETS09-S2L1")
    assert pets.det_names() == ["det", "frcnn"]
    dets = pets.det("frcnn")
    assert (dets.ids == -1).all() and len(dets) == len(_nonblank_lines(root / "PETS09-S2L1" / "det" / "frcnn.txt"))
    with pytest.raises(DataError, match="available"):
        pets.det("yolo")


def test_frames_from_images_and_video_agree(pets_dir: Path, shared: Path) -> None:
    images = MOTSequence(pets_dir)
    video = MOTSequence(pets_dir, video=shared / "data" / "videos" / "PETS09-S2L1.avi")
    assert images.has_frames() and video.has_frames()
    a = images.frame_image(40)
    assert a.shape == (576, 768, 3) and a.dtype == np.uint8
    b = video.frame_image(40)
    other = video.frame_image(30)  # seeking backwards reopens the video
    same = np.abs(a.astype(int) - b).mean()
    assert same < np.abs(a.astype(int) - other).mean() / 2
    frames = [f for f, _ in video.iter_frames(790)]
    assert frames == [790, 791, 792, 793, 794, 795]
    with pytest.raises(DataError):
        images.frame_image(796)


def test_sequence_without_frames(mot17_train: Path) -> None:
    seq = MOTSequence(mot17_train / "MOT17-04-FRCNN")
    assert not seq.has_frames()
    with pytest.raises(DataError, match="no frames"):
        seq.frame_image(1)


def test_write_and_read_results(tmp_path: Path) -> None:
    outs = [
        TrackOutput("0", 7, 2, np.array([10.0, 20.0, 30.5, 40.25]), 0.9),
        TrackOutput("0", 3, 1, np.array([1.0, 2.0, 3.0, 4.0]), 0.5),
        TrackOutput("0", 2, 2, np.array([5.0, 6.0, 7.0, 8.0]), 1.0),
    ]
    path = tmp_path / "out" / "seq.txt"
    write_mot_results(path, outs)
    assert path.read_text().splitlines()[0] == "1,3,1.00,2.00,3.00,4.00,0.5000,-1,-1,-1"
    res = read_mot_file(path, "result")
    assert res.frame.tolist() == [1, 2, 2] and res.ids.tolist() == [3, 2, 7]
    np.testing.assert_allclose(res.tlwh[2], [10.0, 20.0, 30.5, 40.25])
    assert (res.cls == -1).all()
    by_frame = detections_by_frame(res, min_conf=0.6)
    assert sorted(by_frame) == [2] and [d.score for d in by_frame[2]] == [1.0, 0.9]


def _write(tmp_path: Path, text: str, name: str = "f.txt") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("1,1,1,1,5,5,1,-1,-1,-1\n2,1,1,1,5\n", 2, "short row"),
        ("1,1,1,1,5,5,1,-1,-1,-1\n\n2,1,abc,1,5,5,1,-1,-1,-1\n", 3, "not a number"),
        ("1,1,1,1,5,5,1,-1,-1,-1\n2,1,1,1,-5,5,1,-1,-1,-1\n", 2, "negative width"),
        ("1,1,1,1,5,-5,1,-1,-1,-1\n", 1, "negative height"),
        ("1.5,1,1,1,5,5,1,-1,-1,-1\n", 1, "frame is not an integer"),
        ("1,1,1,1,5,5,1,-1,-1,-1\n2,1,1,1,5,5,1,-1,-1\n", 2, "fields"),
        ("1,1,1,1,nan,5,1,-1,-1,-1\n", 1, "finite"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, text: str, line: int, needle: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DataError) as err:
        read_mot_file(path, "result")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}:{line}: ") and needle in msg


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing gt file"):
        read_mot_file(tmp_path / "nope.txt", "gt")
    assert len(read_mot_file(_write(tmp_path, "\n"), "result")) == 0


def test_missing_seqinfo_and_bad_keys(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        MOTSequence(tmp_path)
    assert str(err.value) == f"{tmp_path / 'seqinfo.ini'}: missing seqinfo.ini (not a MOTChallenge sequence folder)"
    good = "[Sequence]\nname=x\nimDir=img1\nframeRate=25\nseqLength=10\nimWidth=64\nimHeight=48\nimExt=.jpg\n"
    _write(tmp_path, good.replace("seqLength=10\n", ""), "seqinfo.ini")
    with pytest.raises(DataError, match=r"seqinfo.ini: missing key 'seqLength'"):
        read_seqinfo(tmp_path)
    _write(tmp_path, good.replace("imWidth=64", "imWidth=wide"), "seqinfo.ini")
    with pytest.raises(DataError, match=r"seqinfo.ini: key 'imWidth': expected an integer, got 'wide'"):
        read_seqinfo(tmp_path)
    _write(tmp_path, "name=x\n", "seqinfo.ini")
    with pytest.raises(DataError) as err:
        read_seqinfo(tmp_path)
    assert "\n" not in str(err.value) and "seqinfo.ini" in str(err.value)
    _write(tmp_path, good, "seqinfo.ini")
    assert read_seqinfo(tmp_path).seq_length == 10


def test_video_found_in_sequence_folder(tmp_path: Path, pets_dir: Path, shared: Path) -> None:
    """A folder with seqinfo.ini and a video file but no img1/ (as virtual-cameras writes) reads the video."""
    (tmp_path / "seqinfo.ini").write_text((pets_dir / "seqinfo.ini").read_text())
    (tmp_path / "video.avi").symlink_to(shared / "data" / "videos" / "PETS09-S2L1.avi")
    seq = MOTSequence(tmp_path)
    assert seq.has_frames() and seq.video == tmp_path / "video.avi"
    assert seq.frame_image(1).shape == (576, 768, 3)
    assert seq.det_names() == []
