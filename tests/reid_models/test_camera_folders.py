"""``eval-reid --folder`` on a folder with one sub-folder per camera (the VIPeR / PRID2011 / GRID layout as
distributed), built here from real CUHK03 val crops: the same crops in CUHK03 naming and in the camera layout
must score the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.commands.eval_reid import folder_format
from pipeline.core.errors import DataError
from reid_models.datasets.index import load_camera_folders, load_cuhk03_folder
from reid_models.evaluate import EvalConfig, evaluate_items


@pytest.fixture(scope="module")
def cuhk_subset(shared: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(a CUHK03-named folder, the same crops as VIPeR-style cam_a/ cam_b/) for the first 25 val identities."""
    val = shared / "data" / "reid" / "CUHK03" / "detected" / "val"
    if not val.is_dir():
        pytest.skip(f"{val}: CUHK03 not present")
    items = load_cuhk03_folder(val, "test")
    keep = sorted({it.pid for it in items})[:25]
    root = tmp_path_factory.mktemp("layouts")
    flat, cams = root / "cuhk03", root / "viper"
    flat.mkdir()
    for it in items:
        if it.pid in keep:
            shutil.copy(it.path, flat / it.path.name)
            cam = cams / ("cam_a" if it.camid == 0 else "cam_b")
            cam.mkdir(parents=True, exist_ok=True)
            shutil.copy(it.path, cam / f"{it.pid:03d}_{it.frame:02d}.jpg")  # VIPeR style: <person>_<angle>.bmp
    return flat, cams


def test_camera_layout_loads_people_and_cameras(cuhk_subset) -> None:
    flat, cams = cuhk_subset
    a, b = load_cuhk03_folder(flat, "test"), load_camera_folders(cams, "test")
    assert folder_format(cams, "auto") == "cameras" and folder_format(flat, "auto") == "cuhk03"
    assert len(a) == len(b) and len({it.pid for it in b}) == 25
    assert sorted({it.pid for it in b}) == list(range(1, 26))  # renumbered 1..N in order of the name's number
    key = lambda it: (it.camid, it.path.read_bytes())  # noqa: E731
    rank = {p: k + 1 for k, p in enumerate(sorted({it.pid for it in a}))}
    assert sorted((it.camid, rank[it.pid], it.path.read_bytes()) for it in a) == sorted(
        (it.camid, it.pid, it.path.read_bytes()) for it in b)
    assert {it.seq for it in b} == {"cam_a", "cam_b"} and key(b[0])[0] == 0


def test_same_crops_score_the_same_in_both_layouts(cuhk_subset) -> None:
    flat, cams = cuhk_subset
    rng = np.random.default_rng(0)
    table: dict[bytes, np.ndarray] = {}

    def embed(crops, cam_id=None):  # a fixed random vector per distinct image: any embedding will do here
        out = []
        for c in crops:
            k = c.tobytes()
            if k not in table:
                table[k] = rng.normal(size=16)
            out.append(table[k])
        return np.asarray(out, np.float32)

    cfg = EvalConfig()
    m_flat = evaluate_items(load_cuhk03_folder(flat, "test"), embed, cfg, "market", progress=False)["retrieval"]
    m_cams = evaluate_items(load_camera_folders(cams, "test"), embed, cfg, "market", progress=False)["retrieval"]
    assert m_flat["num_queries"] == m_cams["num_queries"] == 50  # one query per person and camera
    assert m_flat["rank1"] == m_cams["rank1"] and m_flat["mAP"] == pytest.approx(m_cams["mAP"])


def test_eval_reid_folder_keeps_cuhk03_person_0000(cuhk_subset) -> None:
    """CUHK03 numbers its people from 0000: a person, not Market-1501's distractor id 0 (was dropped before)."""
    from pipeline.commands.eval_reid import folder_test_items

    flat, cams = cuhk_subset
    items = folder_test_items(flat, "cuhk03")
    assert min(it.pid for it in items) == 0 and len({it.pid for it in items}) == 25
    assert len(folder_test_items(cams, "cameras")) == len(items)


def test_eval_reid_cli_on_a_camera_layout(cuhk_subset, tmp_path) -> None:
    _, cams = cuhk_subset
    out = tmp_path / "ev"
    assert main(["eval-reid", "--folder", str(cams), "--checkpoint", "default", "--out", str(out),
                 "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["retrieval"]["num_queries"] == 50 and m["retrieval"]["rank1"] > 40  # 25 people: chance is 4 %
    assert (out / "cmc.png").is_file()


def test_camera_layout_errors_name_the_file_or_folder(tmp_path) -> None:
    one = tmp_path / "one" / "cam_a"
    one.mkdir(parents=True)
    (one / "001_0.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="at least two"):
        load_camera_folders(tmp_path / "one")
    two = tmp_path / "two"
    for cam in ("cam_a", "cam_b"):
        (two / cam).mkdir(parents=True)
        (two / cam / "001_0.jpg").write_bytes(b"x")
    (two / "cam_b" / "person.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="person.jpg.*no identity number"):
        load_camera_folders(two)


def test_embed_reads_a_camera_layout_sub_folder_by_sub_folder(cuhk_subset, tmp_path) -> None:
    flat, cams = cuhk_subset
    out = tmp_path / "emb.npy"
    assert main(["embed", "--folder", str(cams), "--model", "imagenet", "--out", str(out), "--no-progress"]) == 0
    files = (tmp_path / "emb.files.txt").read_text().splitlines()
    expect = sorted((cams / "cam_a").iterdir()) + sorted((cams / "cam_b").iterdir())
    assert files == [str(p) for p in expect]
    emb = np.load(out)
    assert emb.shape == (len(expect), 1280) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_cuhk01_naming_loads_both_cameras(shared: Path, tmp_path) -> None:
    """CUHK01 ``campus/`` names ``PPPPIII.png`` (images 001-002 camera A, 003-004 camera B), built from real CUHK03
    val crops: two of each camera's images per person."""
    from reid_models.datasets.index import load_cuhk01_folder

    val = shared / "data" / "reid" / "CUHK03" / "detected" / "val"
    if not val.is_dir():
        pytest.skip(f"{val}: CUHK03 not present")
    src = {}
    for it in load_cuhk03_folder(val, "test"):
        if it.pid < 10:
            src.setdefault((it.pid, it.camid), []).append(it)
    expect = set()
    for (pid, cam), items in src.items():
        for k, it in enumerate(sorted(items, key=lambda x: x.frame)[:2]):
            name = f"{pid + 1:04d}{cam * 2 + k + 1:03d}.png"
            shutil.copy(it.path, tmp_path / name)
            expect.add((pid + 1, cam, it.path.read_bytes()))
    assert folder_format(tmp_path, "auto") == "cuhk01"
    items = load_cuhk01_folder(tmp_path, "test")
    assert {(it.pid, it.camid, it.path.read_bytes()) for it in items} == expect and len(items) == len(expect)
    assert {it.frame for it in items if it.camid == 0} == {1, 2} and {it.frame for it in items if it.camid == 1} == {3, 4}
    (tmp_path / "0001_extra.png").write_bytes(b"x")
    with pytest.raises(DataError, match="0001_extra.png: file name is not CUHK01 style"):
        load_cuhk01_folder(tmp_path)
