"""``eval-reid --folder`` / ``embed`` on the inputs the s42 probe found mishandled (runs/s42/probe_reid/report.md),
built here from real CUHK03 val crops (copied, a few people) or from exactly stated hand-made names: one image per
person and camera (VIPeR / PRID2011 single_shot / GRID), probe/ + gallery/ roles, distractors, camera numbers in
names, Market-1501 roots, image types, hidden files, CUHK01 vs CAVIAR4REID names, list files, per-person layouts,
and file names that are not UTF-8."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.commands.eval_reid import folder_format, folder_test_items
from pipeline.core.errors import DataError
from pipeline.core.images import read_image
from reid_models.datasets.index import CropItem, load_camera_folders, load_cuhk03_folder, load_reid_folder
from reid_models.datasets.protocols import (
    choose_folder_protocol, cuhk03_single_shot_trials, folder_protocol_problem, market_query_indices,
)
from reid_models.evaluate import EvalConfig, embed_paths, video_retrieval


@pytest.fixture(scope="module")
def val_items(cuhk03_val: list[CropItem]) -> list[CropItem]:
    """CUHK03 detected val crops of the first 12 people (5 per camera), in CUHK03 naming."""
    return [it for it in cuhk03_val if it.pid < 12]


def _first(items: list[CropItem], pid: int, cam: int, k: int = 0) -> Path:
    return sorted((it for it in items if it.pid == pid and it.camid == cam), key=lambda it: it.frame)[k].path


def _viper(items: list[CropItem], root: Path, people: range, cams: tuple[str, str] = ("cam_a", "cam_b")) -> Path:
    """VIPeR layout: one image per person and camera, ``<cam>/<person 3 digits>_<angle>.jpg`` (person 0 included)."""
    for c, cam in enumerate(cams):
        (root / cam).mkdir(parents=True, exist_ok=True)
        for p in people:
            shutil.copy(_first(items, p, c), root / cam / f"{p:03d}_{45 * (c + 1)}.jpg")
    return root


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# --- 1. one image per person and camera: the protocol is chosen, never a silent 0.0 ------------------------------


def test_one_image_per_camera_picks_single_shot_and_says_so(val_items, tmp_path, capsys) -> None:
    viper = _viper(val_items, tmp_path / "viper", range(10))
    items = load_camera_folders(viper, "test")
    assert choose_folder_protocol(items, True) == ("single_shot", "2 cameras, one image per person and camera")
    # under the Market rule every crop is a query (20 = 10 people x 2 cameras) and the gallery is empty
    q, g = market_query_indices(items)
    assert len(q) == 20 and len(g) == 0
    assert "use --protocol-folder single_shot" in folder_protocol_problem(items, "market", True)
    out = tmp_path / "ev"
    assert main(["eval-reid", "--folder", str(viper), "--out", str(out), "--no-progress", "--trials", "2"]) == 0
    printed = capsys.readouterr().out
    assert "protocol: single_shot (2 cameras, one image per person and camera" in printed
    m = json.loads((out / "metrics.json").read_text())
    r = m["retrieval"]
    assert m["protocol_folder"] == "single_shot" and r["num_queries"] == 10 and r["num_gallery"] == 10
    assert r["rank1"] > 30  # 10 people: chance is 10 %


def test_market_rule_on_one_image_per_camera_is_a_one_line_error(val_items, tmp_path, capsys) -> None:
    viper = _viper(val_items, tmp_path / "viper", range(4))
    assert main(["eval-reid", "--folder", str(viper), "--protocol-folder", "market", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    err = _one_line_error(capsys)
    assert f"{viper}: 0 valid queries under the market protocol" in err and "use --protocol-folder single_shot" in err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_auto_keeps_the_market_rule_for_cuhk03_and_market_folders(val_items) -> None:
    """CUHK03 (5 images per camera) and Market folders keep the Market rule, so the documented figures stand."""
    assert choose_folder_protocol(val_items, False) == ("market", "up to 5 images per person and camera")
    six = [CropItem(Path(f"{p}_{c}.jpg"), p, c, "s", 0, "test") for p in (1, 2) for c in range(6)]
    assert choose_folder_protocol(six, True) == ("market", "6 cameras")


def test_single_shot_draws_are_unchanged_when_every_person_is_in_both_cameras(val_items) -> None:
    """The old draw (per trial: one camera-A image per person, then one camera-B image per person, from one
    generator) written out here: CUHK03's figures must not move."""
    by: dict[int, dict[int, list[int]]] = {}
    for i, it in enumerate(val_items):
        by.setdefault(it.pid, {}).setdefault(it.camid, []).append(i)
    rng = np.random.default_rng(0)
    old = []
    for _ in range(3):
        q = [by[p][0][int(rng.integers(len(by[p][0])))] for p in sorted(by)]
        g = [by[p][1][int(rng.integers(len(by[p][1])))] for p in sorted(by)]
        old.append((q, g))
    assert cuhk03_single_shot_trials(val_items, 3, 0) == old


# --- 3. probe/ query/ first; one-camera people and GRID's 0000 are gallery distractors -------------------------------


def _grid(root: Path) -> Path:
    """GRID names (``PPPP_<cam>_...jpeg``): probe/ people 1-4; gallery/ people 1-4, person 9 (gallery only) and
    three 0000 distractors."""
    for cam, people in (("probe", (1, 2, 3, 4)), ("gallery", (1, 2, 3, 4, 9, 0, 0, 0))):
        (root / cam).mkdir(parents=True)
        for k, p in enumerate(people):
            (root / cam / f"{p:04d}_{k}_25004_107_32_106_221.jpeg").write_bytes(b"x")
    return root


def test_probe_folder_gives_the_queries_and_one_camera_people_are_distractors(tmp_path) -> None:
    grid = _grid(tmp_path / "grid")
    items = load_camera_folders(grid, "test")
    assert {it.path.parent.name for it in items if it.camid == 0} == {"probe"}  # although "gallery" sorts first
    assert sorted(it.pid for it in items if it.camid == 1) == [0, 0, 0, 1, 2, 3, 4, 5]  # 0000 -> distractor id 0
    for q, g in cuhk03_single_shot_trials(items, 2, 0, distractors=True):
        assert [items[i].path.parent.name for i in q] == ["probe"] * 4 and [items[i].pid for i in q] == [1, 2, 3, 4]
        assert sorted(items[i].pid for i in g) == [0, 0, 0, 1, 2, 3, 4, 5]  # all 3 distractors, person 9 (pid 5)
    q, _ = market_query_indices(items, 0, distractors=True)
    assert 0 not in {items[i].pid for i in q}
    assert choose_folder_protocol(items, True)[0] == "single_shot"


def test_a_query_gallery_pair_is_read_as_two_cameras_queries_first(val_items, tmp_path) -> None:
    qg = _viper(val_items, tmp_path / "qg", range(5), cams=("query", "gallery"))
    assert folder_format(qg, "auto") == "cameras"
    items = load_camera_folders(qg)
    q, g = cuhk03_single_shot_trials(items, 1, 0)[0]
    assert {items[i].path.parent.name for i in q} == {"query"} and {items[i].path.parent.name for i in g} == {"gallery"}


# --- 4. single shot without a common person --------------------------------------------------------------------------


def test_single_shot_without_a_common_person_is_a_one_line_error(val_items, tmp_path, capsys) -> None:
    root = tmp_path / "disjoint"
    for cam, people in (("cam_a", range(1, 4)), ("cam_b", range(4, 7))):
        (root / cam).mkdir(parents=True)
        for p in people:
            shutil.copy(_first(val_items, p, 0), root / cam / f"{p:03d}_0.jpg")
    with pytest.raises(DataError, match="needs people seen by both cameras, found none"):
        cuhk03_single_shot_trials(load_camera_folders(root), 1)
    assert main(["eval-reid", "--folder", str(root), "--protocol-folder", "single_shot", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    assert f"{root}: no person is seen by two cameras (2 cameras, 6 people)" in _one_line_error(capsys)


# --- 5. the camera's number spelled in the names -----------------------------------------------------------------


def _names(root: Path, layout: dict[str, list[str]]) -> Path:
    for rel in (f"{cam}/{n}" for cam, names in layout.items() for n in names):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    return root


@pytest.mark.parametrize("layout", [
    {"camera1": ["cam1_0007_0.jpg", "cam1_0012_1.jpg"], "camera2": ["cam2_0007_2.jpg", "cam2_0012_3.jpg"]},
    {"1": ["c1_0007_0.jpg", "c1_0012_1.jpg"], "2": ["c2_0007_2.jpg", "c2_0012_3.jpg"]},
    {"cam_x": ["c5_0007_0.jpg", "c5_0012_1.jpg"], "cam_y": ["c6_0007_0.jpg", "c6_0012_1.jpg"]},
    {"cam1": ["cam1_person007/a_00.png", "cam1_person012/a_00.png"],
     "cam2": ["cam2_person007/a_00.png", "cam2_person012/a_00.png"]},
    {"cam1": ["c1_person007/a_00.png", "c1_person012/a_00.png"],
     "cam2": ["c2_person007/a_00.png", "c2_person012/a_00.png"]},
])
def test_the_camera_number_in_a_name_is_not_the_person(tmp_path, layout) -> None:
    items = load_camera_folders(_names(tmp_path / "set", layout))
    # persons 7 and 12 -> 1 and 2 in both cameras (before: the camera's number was everyone's identity)
    assert sorted((it.camid, it.pid) for it in items) == [(0, 1), (0, 2), (1, 1), (1, 2)]


def test_a_person_number_that_varies_stays_the_identity(tmp_path) -> None:
    viper = _names(tmp_path / "viper", {"cam_a": ["000_45.bmp", "001_90.bmp"], "cam_b": ["000_0.bmp", "001_180.bmp"]})
    assert sorted((it.camid, it.pid, it.path.name) for it in load_camera_folders(viper)) == [
        (0, 1, "000_45.bmp"), (0, 2, "001_90.bmp"), (1, 1, "000_0.bmp"), (1, 2, "001_180.bmp")]  # person 0 is a person
    one = _names(tmp_path / "one", {"cam_a": ["007_0.jpg", "007_1.jpg"], "cam_b": ["007_2.jpg", "007_3.jpg"]})
    assert {it.pid for it in load_camera_folders(one)} == {1}  # one person in both cameras: the same constant, kept


# --- 6. Market-1501 roots ----------------------------------------------------------------------------------------


def _market_root(items: list[CropItem], root: Path, empty_query: bool = False) -> Path:
    """query/ (camera A image of people 1-3), bounding_box_test/ (their camera B images and a 0000 distractor),
    bounding_box_train/ (people 8-9), Market names with c1 = camera A, c2 = camera B."""
    for sub in ("query", "bounding_box_test", "bounding_box_train"):
        (root / sub).mkdir(parents=True)
    for p in (1, 2, 3):
        if not empty_query:
            shutil.copy(_first(items, p, 0), root / "query" / f"{p:04d}_c1s1_{p:06d}_00.jpg")
        for k in range(2):
            shutil.copy(_first(items, p, 1, k), root / "bounding_box_test" / f"{p:04d}_c2s1_{p * 10 + k:06d}_00.jpg")
    shutil.copy(_first(items, 5, 1), root / "bounding_box_test" / "0000_c2s1_000999_00.jpg")
    for p in (8, 9):
        for c in (0, 1):
            shutil.copy(_first(items, p, c), root / "bounding_box_train" / f"{p:04d}_c{c + 1}s1_{p:06d}_00.jpg")
    return root


def test_market_root_with_an_empty_query_folder_is_a_one_line_error(val_items, tmp_path, capsys) -> None:
    root = _market_root(val_items, tmp_path / "root", empty_query=True)
    with pytest.raises(DataError, match="no images in query/"):
        folder_test_items(root, "market")
    assert main(["eval-reid", "--folder", str(root), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "bounding_box_train/ people are never test people" in _one_line_error(capsys)


def test_market_root_video_never_queries_a_distractor(val_items, tmp_path) -> None:
    root = _market_root(val_items, tmp_path / "root")
    items = folder_test_items(root, "market")
    assert sum(it.pid == 0 for it in items) == 1 and {it.split for it in items} == {"query", "gallery"}
    out = tmp_path / "ev"
    assert main(["eval-reid", "--folder", str(root), "--video", "on", "--out", str(out), "--no-progress"]) == 0
    v = json.loads((out / "metrics.json").read_text())["video"]["mean"]["video_to_video"]
    # the official split kept (s43): people 1-3's query/ sequences query the bounding_box_test/ ones only
    assert 0 not in v["per_query"]["pid"] and v["num_queries"] == 3 and sorted(v["per_query"]["pid"]) == [1, 2, 3]


def test_video_retrieval_distractor_sequences_are_gallery_only() -> None:
    """Hand-computed: person 1 in cameras 0 and 1 at 0 and 10 degrees, a distractor (id 0) in camera 1 at 5
    degrees. Without the flag the distractor queries too (and finds nothing of its own: skipped); with it, only
    person 1's two sequences query, and the distractor (nearer to both) ranks first: rank-1 0, mAP 50."""
    ang = np.radians([0.0, 10.0, 5.0])
    feats = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32)
    items = [CropItem(Path("a.jpg"), 1, 0, "s", 0, "gallery"), CropItem(Path("b.jpg"), 1, 1, "s", 0, "gallery"),
             CropItem(Path("c.jpg"), 0, 1, "t", 0, "gallery")]
    mean = lambda x: x.mean(0)  # noqa: E731
    with_flag = video_retrieval(items, feats, mean, distractors=True)["video_to_video"]
    assert with_flag["per_query"]["pid"] == [1, 1] and with_flag["rank1"] == 0.0 and with_flag["mAP"] == 50.0
    without = video_retrieval(items, feats, mean)["video_to_video"]
    assert without["num_queries"] == 2 and without["num_skipped"] == 1


# --- 7. image types and hidden files ----------------------------------------------------------------------------


def test_webp_and_tif_are_read_and_hidden_files_skipped(val_items, tmp_path) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    srcs = [it for it in val_items if it.pid < 2]
    for k, it in enumerate(srcs):
        img = cv2.imread(str(it.path))
        ext = (".webp", ".tif", ".tiff", ".jpg")[k % 4]
        params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []  # 101: lossless
        assert cv2.imwrite(str(folder / f"{it.pid:04d}_{it.frame:02d}{ext}"), img, params)
    (folder / "._0000_00.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS side file: not an image
    (folder / ".hidden_0000_01.jpg").write_bytes(b"x")
    items = load_cuhk03_folder(folder)
    assert len(items) == len(srcs) == 20 and not any(it.path.name.startswith(".") for it in items)
    assert folder_format(folder, "auto") == "cuhk03"
    for it in items:
        if it.path.suffix != ".jpg":  # lossless: the very pixels of the source crop
            src = next(s for s in srcs if (s.pid, s.frame) == (it.pid, it.frame))
            assert np.array_equal(read_image(it.path), cv2.imread(str(src.path)))
    feats = embed_paths(lambda crops: np.array([[c.mean(), c.std()] for c in crops]), [it.path for it in items],
                        EvalConfig(batch_size=7), progress=False)
    assert feats.shape == (20, 2)


# --- 8. 7-digit names ----------------------------------------------------------------------------------------------


def test_seven_digit_names_are_cuhk01_only_with_images_001_to_004(tmp_path, capsys) -> None:
    cuhk01 = _names(tmp_path, {"cuhk01": [f"{p:04d}{i:03d}.png" for p in (1, 2) for i in (1, 2, 3, 4)]}) / "cuhk01"
    assert folder_format(cuhk01, "auto") == "cuhk01"
    caviar = _names(tmp_path, {"caviar": [f"{p:04d}{i:03d}.jpg" for p in (1, 2) for i in range(1, 11)]}) / "caviar"
    with pytest.raises(DataError, match=r"caviar: 7-digit .* up to 010: not CUHK01.*--format cuhk01.*--format cameras"):
        folder_format(caviar, "auto")
    assert main(["eval-reid", "--folder", str(caviar), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys)


# --- 9. embed: list files, numeric options, --out a folder ------------------------------------------------------


def test_embed_list_with_a_bom_and_missing_file_errors_name_the_list_line(val_items, tmp_path, capsys) -> None:
    crops = [_first(val_items, p, 0) for p in (0, 1)]
    listing = tmp_path / "bom.txt"
    listing.write_text("\ufeff" + f"{crops[0]}\n# comment\n{crops[1]}\n", encoding="utf-8")
    assert main(["embed", "--list", str(listing), "--model", "imagenet", "--out", str(tmp_path / "e"),
                 "--no-progress"]) == 0
    assert (tmp_path / "e.files.txt").read_text().splitlines() == [str(p) for p in crops]
    capsys.readouterr()
    listing.write_text("\ufeff" + f"{crops[0]}\n\nnothere.jpg\n", encoding="utf-8")
    assert main(["embed", "--list", str(listing), "--out", str(tmp_path / "f.npy")]) == 2
    err = _one_line_error(capsys)
    assert f"{listing}:3: {tmp_path / 'nothere.jpg'}: no such image file" in err


@pytest.mark.parametrize("argv", [
    ["embed", "--folder", "x", "--out", "y", "--batch-size", "0"],
    ["eval-reid", "--folder", "x", "--batch-size", "-1"],
    ["eval-reid", "--folder", "x", "--trials", "0"],
    ["eval-reid", "--dataset", "x", "--segments", "0"],
    ["eval-reid", "--dataset", "x", "--chunk-len", "-3"],
])
def test_non_positive_counts_are_argparse_errors(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {argv[-2]}: expected a positive whole number, got {argv[-1]}" in last


def test_embed_out_an_existing_folder_writes_inside_it(val_items, tmp_path) -> None:
    folder = _viper(val_items, tmp_path / "viper", range(2))
    out = tmp_path / "features"
    out.mkdir()
    assert main(["embed", "--folder", str(folder), "--model", "imagenet", "--out", str(out), "--no-progress"]) == 0
    assert np.load(out / "emb.npy").shape == (4, 1280)
    assert len((out / "emb.files.txt").read_text().splitlines()) == 4
    assert not (tmp_path / "features.npy").exists()


# --- 10. per-person layouts ----------------------------------------------------------------------------------------


def test_per_person_layouts_are_refused_naming_what_to_point_at(tmp_path, capsys) -> None:
    msmt = _names(tmp_path / "msmt", {f"test/{p:04d}": [f"{p:04d}_{k:03d}_0{k + 1}_0303morning_{k:04d}_0.jpg"
                                                        for k in range(2)] for p in range(3)})
    _names(msmt, {f"train/{p:04d}": [f"{p:04d}_000_01_0303morning_0000_0.jpg"] for p in range(3)})
    with pytest.raises(DataError, match=r"msmt/test: holds 3 per-person sub-folders \(0000/, 0001/, \.\.\."):
        folder_format(msmt / "test", "auto")
    with pytest.raises(DataError, match=r"msmt: its sub-folders test/, train/ are a data set's splits"):
        load_reid_folder(msmt, "cameras")
    dukev = _names(tmp_path / "dukev", {f"train/{p:04d}/{t:05d}": [f"{p:04d}_C1_F{t:04d}_X3000{t}.jpg"]
                                        for p in range(3) for t in (1, 2)})
    with pytest.raises(DataError, match="train: holds 3 per-person sub-folders"):
        folder_format(dukev / "train", "auto")
    mars = _names(tmp_path / "mars", {f"{s}/0001": ["0001C1T0001F001.jpg"] for s in ("bbox_train", "bbox_test")})
    assert main(["eval-reid", "--folder", str(mars), "--out", str(tmp_path / "o")]) == 2
    assert "a MARS root (bbox_test/, bbox_train/): point at bbox_test/" in _one_line_error(capsys)


# --- 2. file names that are not UTF-8 ------------------------------------------------------------------------------


def test_a_file_name_that_is_not_utf8_is_read_not_a_crash(val_items, tmp_path) -> None:
    """``cv2.imread`` on such a name segfaults; the folder below would have killed eval-reid and embed."""
    folder = tmp_path / "latin1"
    _viper(val_items, folder, range(4))
    odd = os.fsencode(folder / "cam_b") + b"/003_\xe9t\xe9.jpg"  # Latin-1 bytes, as a Windows zip leaves them
    os.rename(os.fsencode(folder / "cam_b" / "003_90.jpg"), odd)
    path = Path(os.fsdecode(odd))
    assert np.array_equal(read_image(path), cv2.imread(str(_first(val_items, 3, 1))))
    out = tmp_path / "emb.npy"
    assert main(["embed", "--folder", str(folder), "--model", "imagenet", "--out", str(out), "--no-progress"]) == 0
    assert np.load(out).shape == (8, 1280)
    assert b"003_\xe9t\xe9.jpg" in (tmp_path / "emb.files.txt").read_bytes()  # the name's own bytes
    assert main(["eval-reid", "--folder", str(folder), "--checkpoint", "imagenet", "--out", str(tmp_path / "ev"),
                 "--no-progress", "--trials", "1"]) == 0
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["retrieval"]["num_queries"] == 4
