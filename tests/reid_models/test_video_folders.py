"""Video re-id layouts (one numbered sub-folder per person in each camera folder: PRID2011 ``multi_shot/``,
iLIDS-VID ``sequences/``) and the video-to-video / image-to-video protocol, on real CUHK03 val crops laid out
that way, and on hand-computed embeddings."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.commands.eval_reid import folder_format
from pipeline.core.errors import DataError
from reid_models.aggregation import MeanAggregator
from reid_models.datasets.index import CropItem, has_sequences, load_camera_folders, load_cuhk03_folder
from reid_models.datasets.protocols import identities_in_several_cameras, thin_sequences
from reid_models.evaluate import EvalConfig, evaluate_items, video_retrieval


@pytest.fixture(scope="module")
def video_layouts(shared: Path, tmp_path_factory) -> dict[str, Path]:
    """The first 20 CUHK03 val people (5 images per camera) as a CUHK03 folder, as PRID2011 multi_shot
    (``cam_a/person_0001/0001.png``) and as iLIDS-VID sequences (``cam1/person001/cam1_person001_00000.png``)."""
    val = shared / "data" / "reid" / "CUHK03" / "detected" / "val"
    if not val.is_dir():
        pytest.skip(f"{val}: CUHK03 not present")
    items = [it for it in load_cuhk03_folder(val, "test") if it.pid < 20]
    root = tmp_path_factory.mktemp("video")
    out = {"cuhk03": root / "cuhk03", "prid": root / "prid_2011" / "multi_shot", "ilids": root / "ilids" / "sequences"}
    out["cuhk03"].mkdir()
    for it in items:
        shutil.copy(it.path, out["cuhk03"] / it.path.name)
        d = out["prid"] / ("cam_a", "cam_b")[it.camid] / f"person_{it.pid + 1:04d}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(it.path, d / f"{it.frame % 5 + 1:04d}.jpg")
        cam = f"cam{it.camid + 1}"
        d = out["ilids"] / cam / f"person{it.pid + 1:03d}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(it.path, d / f"{cam}_person{it.pid + 1:03d}_{it.frame % 5:05d}.jpg")
    single = root / "prid_2011" / "single_shot"  # PRID2011 ships both layouts side by side
    for cam in ("cam_a", "cam_b"):
        (single / cam).mkdir(parents=True)
        shutil.copy(items[0].path, single / cam / "person_0001.jpg")
    return out


def test_person_sub_folders_load_as_sequences(video_layouts) -> None:
    ref = load_cuhk03_folder(video_layouts["cuhk03"], "test")
    for name in ("prid", "ilids"):
        items = load_camera_folders(video_layouts[name], "test")
        assert folder_format(video_layouts[name], "auto") == "cameras" and has_sequences(video_layouts[name])
        assert len(items) == len(ref) > 190 and sorted({it.pid for it in items}) == list(range(1, 21))
        # the same image under the same person and camera as in the CUHK03 naming
        assert sorted((it.pid, it.camid, it.path.read_bytes()) for it in items) == sorted(
            (it.pid + 1, it.camid, it.path.read_bytes()) for it in ref)
        first = items[0]
        assert first.seq == f"{first.path.parent.parent.name}/{first.path.parent.name}" and first.frame == 0
    ilids = load_camera_folders(video_layouts["ilids"])
    assert {it.seq for it in ilids if it.pid == 3} == {"cam1/person003", "cam2/person003"}
    assert not has_sequences(video_layouts["prid"].parent / "single_shot")


def test_a_file_named_after_its_camera_takes_the_person_number_not_the_camera_number(tmp_path) -> None:
    """iLIDS-VID's images are cam1_person001.png in cam1/: the first number of the name is the camera's."""
    for cam in ("cam1", "cam2"):
        (tmp_path / cam).mkdir()
        for person in (7, 12):
            (tmp_path / cam / f"{cam}_person{person:03d}.png").write_bytes(b"x")
    items = load_camera_folders(tmp_path)
    assert [(it.pid, it.camid, it.path.name) for it in items] == [
        (1, 0, "cam1_person007.png"), (2, 0, "cam1_person012.png"),
        (1, 1, "cam2_person007.png"), (2, 1, "cam2_person012.png")]


def test_wrong_level_of_a_video_set_is_a_one_line_error(video_layouts, tmp_path) -> None:
    root = video_layouts["prid"].parent  # prid_2011/ holding single_shot/ and multi_shot/
    with pytest.raises(DataError, match=r"prid_2011: holds more than one per-camera layout \(multi_shot/, single_shot/\)"):
        load_camera_folders(root)
    # one camera's person folders pointed at instead of the cameras: 60 numbered sub-folders of images
    many = tmp_path / "many"
    for k in range(60):
        (many / f"person_{k:04d}").mkdir(parents=True)
        shutil.copy(next(iter((video_layouts["prid"] / "cam_a" / "person_0001").iterdir())), many / f"person_{k:04d}" / "0001.jpg")
    with pytest.raises(DataError, match="many: has 60 camera sub-folders .*point at the folder above"):
        load_camera_folders(many)


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_video_retrieval_hand_computed() -> None:
    """Two people, two cameras, one sequence each; unit embeddings at the given angles (Euclidean distance grows
    with the angle). Sequences: person 1 camera 0 at 0 deg (twice); person 1 camera 1 at 36.87 -+ 30 deg (mean
    36.87, middle frame 66.87); person 2 camera 0 at 90; person 2 camera 1 at 53.13.

    video-to-video, query -> cross-camera gallery by angle: p1c0 (0) -> p1c1 36.87 first: hit. p1c1 (36.87) ->
    p2c1 16.26 before p1c0 36.87: rank 2. p2c0 (90) -> p2c1 36.87 first: hit. p2c1 (53.13) -> p1c1 16.26
    before p2c0 36.87: rank 2. rank-1 2/4 = 50 %, mAP (1 + 1/2 + 1 + 1/2) / 4 = 75 %.
    image-to-video differs for p1c1 only, its middle frame at 66.87: p2c1 13.74, p2c0 23.13, p1c0 66.87:
    rank 3. rank-1 50 %, mAP (1 + 1/3 + 1 + 1/2) / 4 = 70.83 %."""
    frames = [(1, 0, 0.0), (1, 0, 0.0), (1, 1, 36.87 - 30), (1, 1, 36.87 + 30), (2, 0, 90.0), (2, 1, 53.13)]
    items = [CropItem(Path(f"/x/{k}.jpg"), pid, cam, f"c{cam}/p{pid}", k, "test") for k, (pid, cam, _) in enumerate(frames)]
    feats = np.array([_unit(a) for *_, a in frames], np.float32)
    res = video_retrieval(items, feats, MeanAggregator().aggregate)
    v2v, i2v = res["video_to_video"], res["image_to_video"]
    assert res["num_sequences"] == 4 and v2v["num_queries"] == i2v["num_queries"] == 4
    assert v2v["per_query"]["first_hit"] == [0, 1, 0, 1]
    assert v2v["rank1"] == pytest.approx(50.0) and v2v["mAP"] == pytest.approx(75.0)
    assert i2v["per_query"]["first_hit"] == [0, 2, 0, 1]
    assert i2v["rank1"] == pytest.approx(50.0) and i2v["mAP"] == pytest.approx((1 + 1 / 3 + 1 + 1 / 2) / 4 * 100)
    # a person only one camera saw is no query but stays in the gallery as a distractor at 45 deg: p1c1 (36.87) now
    # meets it (8.13) first -> rank 3; p2c1 (53.13) meets it (8.13) first -> rank 3; p1c0 and p2c0 are unchanged
    items.append(CropItem(Path("/x/9.jpg"), 3, 0, "c0/p3", 0, "test"))
    res = video_retrieval(items, np.vstack([feats, [_unit(45.0)]]), MeanAggregator().aggregate)["video_to_video"]
    assert res["num_queries"] == 4 and res["num_skipped"] == 1 and res["per_query"]["first_hit"] == [0, 2, 0, 2]


def test_video_halves_protocol_hand_computed() -> None:
    """McLaughlin et al.'s two-camera protocol with every common person chosen (fraction 1, one trial): camera 0
    queries camera 1. Camera 1 sequences: p1 36.87 deg, p2 53.13, p3 80; camera 0: p1 0, p2 90, p3 frames 10 and
    70 (mean 40, middle frame 70); p4, seen by camera 1 only at 45 deg, is no test person and not in the gallery.
    video-to-video: p1 (0) -> p1 first: hit; p2 (90) -> p3 10 before p2 36.87: rank 2; p3 (40) -> p1 3.13, p2
    13.13, p3 40: rank 3 -> rank-1 1/3, mAP (1 + 1/2 + 1/3) / 3. image-to-video: p3's probe at 70 -> p3 10 first:
    hit -> rank-1 2/3, mAP (1 + 1/2 + 1) / 3."""
    from reid_models.evaluate import video_halves_retrieval

    frames = [(1, 0, 0.0), (2, 0, 90.0), (3, 0, 10.0), (3, 0, 70.0), (1, 1, 36.87), (2, 1, 53.13), (3, 1, 80.0),
              (4, 1, 45.0)]
    items = [CropItem(Path(f"/x/{k}.jpg"), pid, cam, f"c{cam}/p{pid}", k, "test") for k, (pid, cam, _) in enumerate(frames)]
    feats = np.array([_unit(a) for *_, a in frames], np.float32)
    res = video_halves_retrieval(items, feats, MeanAggregator().aggregate, trials=1, fraction=1.0)
    assert res["people_in_both"] == res["test_people"] == 3
    v2v, i2v = res["video_to_video"], res["image_to_video"]
    assert v2v["num_queries"] == 3 and v2v["rank1"] == pytest.approx(100 / 3)
    assert v2v["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3 * 100)
    assert i2v["rank1"] == pytest.approx(200 / 3) and i2v["mAP"] == pytest.approx((1 + 1 / 2 + 1) / 3 * 100)
    half = video_halves_retrieval(items, feats, MeanAggregator().aggregate, trials=4)  # round(1.5) = 2 people a trial
    assert half["test_people"] == 2 and half["video_to_video"]["num_queries"] == 2 and half["trials"] == 4
    with pytest.raises(DataError, match="exactly two cameras"):
        video_halves_retrieval(items + [CropItem(Path("/x/9.jpg"), 1, 2, "c2/p1", 0, "test")],
                               np.vstack([feats, [_unit(0.0)]]), MeanAggregator().aggregate)


def test_thin_sequences_and_common_ids_are_exact() -> None:
    items = [CropItem(Path(f"/x/{k}.jpg"), 1, 0, "s", k, "test") for k in range(10)]
    items += [CropItem(Path("/y/0.jpg"), 2, 0, "s", 0, "test"), CropItem(Path("/z/0.jpg"), 1, 1, "t", 0, "test")]
    thin = thin_sequences(items, 4)
    assert [it.frame for it in thin if it.pid == 1 and it.camid == 0] == [0, 3, 6, 9]  # round(linspace(0, 9, 4))
    assert len(thin) == 6 and thin_sequences(items, 0) == items
    assert [it.pid for it in identities_in_several_cameras(items)] == [1] * 11


def test_eval_reid_scores_sequences_video_to_video_and_image_to_video(video_layouts, tmp_path) -> None:
    out = tmp_path / "ev"
    assert main(["eval-reid", "--folder", str(video_layouts["prid"]), "--checkpoint", "default", "--out", str(out),
                 "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["format"] == "cameras" and m["retrieval"]["num_queries"] == 40  # images: one per person and camera
    assert (out / "cmc.png").is_file() and not (out / "roc.png").exists()  # no pairs in a folder: no ROC
    video = m["video"]["mean"]
    per_seq = [len(list(d.iterdir())) for d in sorted(video_layouts["prid"].glob("cam_*/person_*"))]
    assert video["num_sequences"] == len(per_seq) == 40 and video["frames_per_sequence"] == {
        "min": min(per_seq), "median": float(np.median(per_seq)), "max": 5}
    for key in ("video_to_video", "image_to_video"):  # 20 people: chance is 5 %
        assert video[key]["num_queries"] == 40 and video[key]["rank1"] > 50
    # no sequences in a flat layout unless asked for; --max-frames 2 keeps 2 of every 5 frames
    out2 = tmp_path / "ev2"
    assert main(["eval-reid", "--folder", str(video_layouts["cuhk03"]), "--video", "on", "--max-frames", "2",
                 "--checkpoint", "default", "--out", str(out2), "--no-progress"]) == 0
    m2 = json.loads((out2 / "metrics.json").read_text())
    out3 = tmp_path / "ev3"  # the literature's halves protocol: 10 of the 20 people a trial, camera A queries B
    assert main(["eval-reid", "--folder", str(video_layouts["ilids"]), "--video-protocol", "halves", "--trials", "3",
                 "--checkpoint", "default", "--out", str(out3), "--no-progress"]) == 0
    m3 = json.loads((out3 / "metrics.json").read_text())["video"]["mean"]
    assert m3["test_people"] == 10 and m3["trials"] == 3 and m3["image_to_video"]["num_queries"] == 10
    assert m2["num_test_crops"] == sum(min(n, 2) for n in per_seq) and m2["video"]["mean"]["frames_per_sequence"]["max"] == 2


def test_embed_reads_sequence_folders_camera_by_camera_person_by_person(video_layouts, tmp_path) -> None:
    out = tmp_path / "emb.npy"
    assert main(["embed", "--folder", str(video_layouts["ilids"]), "--model", "imagenet", "--out", str(out),
                 "--no-progress"]) == 0
    files = [Path(p) for p in (tmp_path / "emb.files.txt").read_text().splitlines()]
    n = len(list(video_layouts["cuhk03"].iterdir()))
    assert len(files) == n and np.load(out).shape == (n, 1280)
    n1 = len(list(video_layouts["ilids"].glob("cam1/*/*")))
    assert [f.parent.parent.name for f in files] == ["cam1"] * n1 + ["cam2"] * (n - n1)
    assert files[:6] == sorted((video_layouts["ilids"] / "cam1" / "person001").iterdir()) + [
        sorted((video_layouts["ilids"] / "cam1" / "person002").iterdir())[0]]


def test_mars_style_tracklet_folders(shared: Path, tmp_path) -> None:
    """MARS bbox_test/ layout, built from real Market-1501 crops: <pid>/<pid>C<cam>T<tracklet>F<frame>.jpg, with a
    distractor person 0000 and a junk folder 00-1 that are no test identities."""
    from reid_models.datasets.index import load_market_folder, load_mars_folder

    market = shared / "data" / "reid" / "Market-1501" / "bounding_box_train"
    if not market.is_dir():
        pytest.skip(f"{market}: Market-1501 not present")
    src = [it for it in load_market_folder(market) if it.pid in (2, 7, 10, 11, 12)]
    root = tmp_path / "bbox_test"
    tracklet: dict[tuple, int] = {}
    count: dict[int, int] = {}
    for it in src:  # one tracklet per (person, camera, recording), frames numbered 1, 2, ... in it
        t = tracklet.setdefault((it.pid, it.camid, it.seq), len(tracklet) + 1)
        count[t] = count.get(t, 0) + 1
        d = root / f"{it.pid:04d}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(it.path, d / f"{it.pid:04d}C{it.camid}T{t:04d}F{count[t]:03d}.jpg")
    for junk in ("0000", "00-1"):
        (root / junk).mkdir()
        shutil.copy(src[0].path, root / junk / f"{junk}C1T9999F001.jpg")
    items = load_mars_folder(root, "test")
    assert folder_format(root, "auto") == "mars" and len(items) == len(src)
    assert sorted((it.pid, it.camid, it.path.read_bytes()) for it in items) == sorted(
        (it.pid, it.camid, it.path.read_bytes()) for it in src)
    assert {it.seq for it in items} == {f"c{c}t{t:04d}" for (_, c, _), t in tracklet.items()}
    out = tmp_path / "ev"
    assert main(["eval-reid", "--folder", str(root), "--checkpoint", "default", "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["format"] == "mars" and m["video"]["mean"]["num_sequences"] == len(tracklet)
    (root / "0002" / "notes.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="notes.jpg: file name is not MARS style"):
        load_mars_folder(root)
