"""Operator input handling found by the s42 probe: source URIs, duplicate YAML keys, non-finite numbers,
topology cameras, detector weights paths, ``detect`` options and image folders with numbering gaps."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import yaml

from pipeline.camconfig import load_cams_config
from pipeline.cli import main
from pipeline.core.configio import load_yaml
from pipeline.core.errors import ConfigError, SourceError
from pipeline.core.images import read_image
from pipeline.core.paths import REPO_ROOT
from pipeline.sources import SourceOptions, classify_uri, open_source
from pipeline.sources.readers import ImageFolderReader

SECRET = "hunter2"


def _write(folder: Path, data: dict | str, name: str = "cams.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return p


def _config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_cams_config(path)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def _pets_frames(pets_dir: Path, folder: Path, numbers: list[int]) -> Path:
    """PETS09-S2L1 frames 1..len(numbers) copied to ``folder`` under the given file numbers."""
    folder.mkdir(parents=True)
    for k, n in enumerate(numbers, start=1):
        shutil.copy(pets_dir / "img1" / f"{k:06d}.jpg", folder / f"{n:06d}.jpg")
    return folder


# ------------------------------------------------------------------ 1. '://' is never a path; no credentials


@pytest.mark.parametrize("source", [
    f"rstp://admin:{SECRET}@10.0.0.5:554/stream1",       # scheme typo
    f"  rstp://admin:{SECRET}@10.0.0.5:554/stream1 ",    # and whitespace around it
    f"RSTP://admin:{SECRET}@10.0.0.5/s?token=abc",
])
def test_unknown_scheme_is_a_redacted_uri_error_not_a_path(tmp_path: Path, source: str) -> None:
    msg = _config_error(_write(tmp_path, {"cameras": [{"id": "a", "source": source}]}))
    assert msg.startswith(f"{tmp_path / 'cams.yaml'}: cameras.0.source: {source.strip()[:7]}***@10.0.0.5")
    assert "unsupported source scheme 'rstp'" in msg
    assert SECRET not in msg and "admin" not in msg and "abc" not in msg and "no such file" not in msg


@pytest.mark.parametrize("source", [f"1rtsp://admin:{SECRET}@h/x", f"://admin:{SECRET}@h/x",
                                    f"rtsp ://admin:{SECRET}@h/x", f"cams/rtsp://admin:{SECRET}@h/x"])
def test_text_before_scheme_separator_is_refused_without_echo(tmp_path: Path, source: str) -> None:
    msg = _config_error(_write(tmp_path, {"cameras": [{"id": "a", "source": source}]}))
    assert "cameras.0.source: a source with '://' is a URL and must start with its scheme" in msg
    assert SECRET not in msg and "admin" not in msg
    with pytest.raises(SourceError) as exc:
        classify_uri(source)
    assert SECRET not in str(exc.value)


def test_leading_space_before_rtsp_is_the_stream(tmp_path: Path) -> None:
    cfg = load_cams_config(_write(tmp_path, {"cameras": [
        {"id": "a", "source": f" rtsp://admin:{SECRET}@10.0.0.5:554/stream1"}]}))
    assert cfg.cameras[0].source == f"rtsp://admin:{SECRET}@10.0.0.5:554/stream1"
    assert classify_uri("\trtsp://h/x ") == ("stream", "rtsp://h/x")


def test_cli_scheme_typo_one_line_without_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path, {"cameras": [{"id": "a", "source": f" rstp://admin:{SECRET}@10.0.0.5:554/stream1"}],
                            "store": {"path": "st/ids.sqlite"}, "outputs": {"dir": "out"}})
    assert main(["run", str(cfg), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [f"reid-pipeline: error: {cfg}: cameras.0.source: rstp://***@10.0.0.5:554/stream1: unsupported"
                     " source scheme 'rstp' (valid: rtsp, rtsps, rtmp, http, https, file://, file path, image folder,"
                     " webcam index)"]
    assert SECRET not in out + err
    assert not (tmp_path / "st").exists() and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 2. file:// URLs


def test_file_url_with_percent_escapes_is_the_file(tmp_path: Path, shared: Path) -> None:
    video = tmp_path / "my clip é.avi"
    video.symlink_to(shared / "data" / "videos" / "PETS09-S2L1.avi")
    url = "file://" + quote(str(video))
    assert "%20" in url
    assert classify_uri(url) == ("file", video)
    assert classify_uri("file://localhost" + quote(str(video))) == ("file", video)
    cfg = load_cams_config(_write(tmp_path / "cfg", {"cameras": [{"id": "a", "source": url}]}))
    assert cfg.cameras[0].source == str(video)

    def first_frame(uri: str) -> np.ndarray:
        with open_source(SourceOptions("a", uri, max_frames=1)) as src:
            frame = None
            while frame is None and not src.finished:
                frame = src.read(timeout=0.5)
        assert frame is not None
        return frame.image

    np.testing.assert_array_equal(first_frame(url), first_frame(str(shared / "data" / "videos" / "PETS09-S2L1.avi")))


def test_file_url_folder_and_bad_file_urls(tmp_path: Path, pets_dir: Path) -> None:
    folder = _pets_frames(pets_dir, tmp_path / "frames 1", [1, 2, 3])
    assert classify_uri("file://" + quote(str(folder))) == ("folder", folder)
    with pytest.raises(SourceError, match="a file URL needs an absolute local path"):
        classify_uri(f"file://otherhost{folder}")
    msg = _config_error(_write(tmp_path, {"cameras": [{"id": "a", "source": "file://" + quote(str(tmp_path / "no"))}]}))
    assert msg == f"{tmp_path / 'cams.yaml'}: cameras.0.source: no such file or folder: {tmp_path / 'no'}"


# ------------------------------------------------------------------ 3. duplicate YAML keys


def test_duplicate_top_level_key_names_file_key_and_line(tmp_path: Path) -> None:
    text = ("cameras:\n  - {id: a, source: rtsp://h/x}\n"
            "store: {path: one.sqlite}\n"
            "outputs: {dir: out}\n"
            "store: {path: two.sqlite}\n")
    path = _write(tmp_path, text)
    assert _config_error(path) == f"{path}:5: duplicate key 'store' (first at line 3); remove one of them"


def test_duplicate_nested_key_is_refused_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = _write(tmp_path, "cameras:\n  - id: a\n    source: rtsp://h/x\n    stride: 2\n    stride: 3\n")
    assert _config_error(path) == f"{path}:5: duplicate key 'stride' (first at line 4); remove one of them"
    merged = _write(tmp_path, "base: &b {stride: 2, mode: live}\ncam:\n  <<: *b\n  stride: 3\n", "m.yaml")
    assert load_yaml(merged) == {"base": {"stride": 2, "mode": "live"}, "cam": {"stride": 3, "mode": "live"}}


def test_every_shipped_yaml_has_unique_keys() -> None:
    files = sorted((REPO_ROOT / "configs").rglob("*.yaml"))
    files += sorted((REPO_ROOT / "trackers" / "presets").glob("*.yaml"))
    assert len(files) >= 10
    for f in files:
        assert isinstance(load_yaml(f), dict), f


# ------------------------------------------------------------------ 4. nan / inf


@pytest.mark.parametrize(("camera_extra", "key"), [
    ("time_offset_s: nan", "cameras.0.time_offset_s"),
    ("time_offset_s: .nan", "cameras.0.time_offset_s"),
    ("fps: .inf", "cameras.0.fps"),
    ("give_up_after_s: .inf", "cameras.0.give_up_after_s"),
])
def test_non_finite_numbers_are_refused_naming_the_key(tmp_path: Path, camera_extra: str, key: str) -> None:
    path = _write(tmp_path, f"cameras:\n  - {{id: a, source: 'rtsp://h/x', {camera_extra}}}\n")
    assert _config_error(path) == f"{path}: {key}: Input should be a finite number"


def test_non_finite_in_nested_sections(tmp_path: Path) -> None:
    path = _write(tmp_path, "cameras: [{id: a, source: 'rtsp://h/x'}]\nmatching: {threshold: -.inf}\n")
    assert _config_error(path) == f"{path}: matching.threshold: Input should be a finite number"
    path = _write(tmp_path, "cameras: [{id: a, source: 'rtsp://h/x'}]\n"
                            "tracker: {kalman: {std_weight_position: .nan}}\n")
    assert _config_error(path) == (f"{path}: tracker: Value error, kalman.std_weight_position: Input should be a finite"
                                   " number")


# ------------------------------------------------------------------ 5. topology links


def test_topology_link_to_unknown_camera_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, {"cameras": [{"id": "a", "source": "rtsp://h/a"}, {"id": "b", "source": "rtsp://h/b"}],
                             "topology": {"links": [{"a": "a", "b": "b"}, {"a": "b", "b": "zz", "max_s": 10}]}})
    msg = _config_error(path)
    assert msg.endswith("topology.links.1 (b -> zz) names unknown camera 'zz' (cameras: a, b)")
    path = _write(tmp_path, {"cameras": [{"id": "a", "source": "rtsp://h/a"}, {"id": "b", "source": "rtsp://h/b"}],
                             "topology": {"links": [{"a": "a", "b": "b"}]}})
    assert [(lk.a, lk.b) for lk in load_cams_config(path).topology.links] == [("a", "b")]


# ------------------------------------------------------------------ 6. detector.weights


def test_relative_weights_resolve_against_the_config_folder_only(tmp_path: Path, weights: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "w").mkdir()
    shutil.copy(weights, tmp_path / "w" / "det.onnx")
    cams = [{"id": "a", "source": "rtsp://h/x"}]
    cfg_dir = tmp_path / "configs" / "site"
    good = _write(cfg_dir, {"cameras": cams, "detector": {"kind": "onnx", "weights": "../../w/det.onnx"}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_cams_config(good).detector.weights == str(tmp_path / "w" / "det.onnx")
    # a path that only exists relative to the working directory is not used
    monkeypatch.chdir(tmp_path / "configs")
    wrong = _write(cfg_dir, {"cameras": cams, "detector": {"kind": "onnx", "weights": "../w/det.onnx"}}, "wrong.yaml")
    assert (Path.cwd() / "../w/det.onnx").is_file()
    assert _config_error(wrong) == (
        f"{wrong}: detector.weights: no such file: {tmp_path / 'configs' / 'w' / 'det.onnx'} ('../w/det.onnx', "
        "relative to the config file's folder; a bare Ultralytics name such as yolov8n.pt is downloaded)")


def test_bare_names(tmp_path: Path, weights: Path) -> None:
    cams = [{"id": "a", "source": "rtsp://h/x"}]
    for name in ("yolov8n.pt", "yolo11n.pt", "yolov8n.yaml"):
        cfg = load_cams_config(_write(tmp_path, {"cameras": cams, "detector": {"weights": name}}))
        assert cfg.detector.weights == name  # left to Ultralytics
    assert load_cams_config(_write(tmp_path, {"cameras": cams})).detector.weights == "yolo11n.pt"
    shutil.copy(weights, tmp_path / "det.onnx")
    cfg = load_cams_config(_write(tmp_path, {"cameras": cams, "detector": {"kind": "onnx", "weights": "det.onnx"}}))
    assert cfg.detector.weights == str(tmp_path / "det.onnx")
    for kind, name in (("onnx", "nosuch.onnx"), ("ultralytics", "nosuch.onnx"), ("onnx", "yolov8n.pt")):
        msg = _config_error(_write(tmp_path, {"cameras": cams, "detector": {"kind": kind, "weights": name}}))
        assert f"detector.weights: no such file: {tmp_path / name}" in msg


def test_missing_weights_fail_before_the_demo_builds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, {"cameras": [{"id": "left", "source": "cams/left/video.mp4"}],
                             "detector": {"kind": "onnx", "weights": "../nosuch/yolov5n.onnx"},
                             "demo": {"out": "cams"}, "store": {"path": "st.sqlite"}, "outputs": {"dir": "out"}})
    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    resolved = tmp_path.parent / "nosuch" / "yolov5n.onnx"
    assert f"reid-pipeline: error: {path}: detector.weights: no such file: {resolved}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "cams").exists()


# ------------------------------------------------------------------ 7. detect options


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--imgsz", "0", "--imgsz: Input should be greater than or equal to 32, got 0"),
    ("--conf", "2", "--conf: Input should be less than or equal to 1, got 2.0"),
    ("--conf", "25", "--conf: Input should be less than or equal to 1, got 25.0"),
    ("--iou", "nan", "--iou: Input should be a finite number, got nan"),
    ("--batch", "0", "--batch: must be a positive whole number, got 0"),
])
def test_detect_out_of_range_option_is_one_line(tmp_path: Path, pets_dir: Path, weights: Path, option: str,
                                                value: str, message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "det.txt"
    rc = main(["detect", str(pets_dir), "--weights", str(weights), "--out", str(out), "--max-frames", "2",
               option, value])
    err = capsys.readouterr().err
    assert rc == 2
    assert [ln for ln in err.splitlines() if ln.strip()] == [f"reid-pipeline: error: {message}"]
    assert not out.exists()


# ------------------------------------------------------------------ 10. image folder numbering gaps


def test_image_folder_gap_warns_once_and_reads_in_order(tmp_path: Path, pets_dir: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    numbers = [1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 30, 31, 32, 33, 34, 35, 36]
    folder = _pets_frames(pets_dir, tmp_path / "imgs_gap", numbers)
    caplog.set_level(logging.WARNING, logger="pipeline.sources")
    with open_source(SourceOptions("a", str(folder), fps=7.0)) as src:
        frames = []
        while not src.finished or frames == []:
            f = src.read(timeout=0.5)
            if f is not None:
                frames.append(f)
            if len(frames) == len(numbers):
                break
    gap = [r.getMessage() for r in caplog.records if "image numbers jump" in r.getMessage()]
    assert gap == [f"{folder}: image numbers jump from 000005.jpg to 000010.jpg (2 gap(s) in all): frames are read in"
                   " order and numbered by position, so output frame 6 is 000010.jpg (not frame 10) and the missing"
                   " images' time is not skipped; rename the images 1..N or fill the gaps to keep file numbers"]
    assert [f.index for f in frames] == list(range(18))
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(18) / 7.0)
    np.testing.assert_array_equal(frames[5].image, read_image(folder / "000010.jpg"))


def test_image_folder_without_gaps_does_not_warn(pets_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pipeline.sources")
    reader = ImageFolderReader(pets_dir / "img1")
    reader.open()
    assert reader.frame_count == 795
    assert not [r for r in caplog.records if "jump" in r.getMessage()]


def test_image_folder_gap_warning_is_logged_once_per_folder(tmp_path: Path, pets_dir: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    folder = _pets_frames(pets_dir, tmp_path / "g", [1, 2, 4])
    caplog.set_level(logging.WARNING, logger="pipeline.sources")
    for _ in range(3):  # the runner opens a source more than once (probe, then read)
        reader = ImageFolderReader(folder)
        reader.open()
        assert [p.name for p in reader.files] == ["000001.jpg", "000002.jpg", "000004.jpg"]
    gap = [r.getMessage() for r in caplog.records if "image numbers jump" in r.getMessage()]
    assert len(gap) == 1 and "from 000002.jpg to 000004.jpg (1 gap(s) in all)" in gap[0]
    assert "output frame 3 is 000004.jpg (not frame 4)" in gap[0]
