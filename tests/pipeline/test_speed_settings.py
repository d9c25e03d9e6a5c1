"""Speed settings counted in the right units and bench_speed's inputs checked (probe_speed findings 4, 8, 11):
``schedule.max_gap_s`` in processed frames (source fps / camera stride), the 25 fps fallback said once per
camera, and tools/bench_speed.py's one-line refusals of arguments that mixed or lost rows."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.camconfig import CamsConfig, EncoderSettings, ScheduleSettings
from pipeline.core.configio import validate
from pipeline.core.errors import ConfigError
from pipeline.core.types import Frame
from pipeline.runner.components import CameraState, Components
from pipeline.runner.frame_plan import FramePlan


def _plan_every(max_gap_s: float, fps: float, stride: int) -> int:
    """The stride a fixed detect_every 3 gets under ``max_gap_s`` for a camera of ``fps`` source fps and ``stride``."""
    plan = FramePlan(ScheduleSettings(detect_every=3, max_gap_s=max_gap_s), EncoderSettings())
    cams = {"a": CameraState("a", None, None, None, fps=fps, stride=stride)}
    detect, carry = plan.split([Frame("a", 0, 0.0, np.zeros((4, 4, 3), np.uint8))], cams)
    assert len(detect) == 1 and not carry  # the first frame is always detected
    return plan.schedules["a"].every


def test_max_gap_counts_processed_frames_of_a_strided_camera():
    # 25 fps, stride 3: a processed frame every 0.12 s, so a 0.1 s cap allows no gap at all (was 2 frames, 0.24 s)
    assert _plan_every(0.1, 25.0, 3) == 1
    # 0.25 s x 25/3 processed fps = 2.08 -> 2 (was 6 source frames -> the asked 3, 0.36 s)
    assert _plan_every(0.25, 25.0, 3) == 2
    assert _plan_every(0.25, 25.0, 1) == 3  # stride 1: 6.25 frames allowed, 3 asked (unchanged)


def _cams_cfg(sources: list[tuple[str, str, dict]]) -> CamsConfig:
    return validate(CamsConfig, {"mode": "batch", "cameras": [{"id": cid, "source": src, **extra}
                                                              for cid, src, extra in sources]}, "<test>")


def test_open_cameras_gives_the_tracker_and_schedule_the_processed_rate(pets_dir: Path):
    cfg = _cams_cfg([("a", str(pets_dir / "img1"), {"fps": 25, "stride": 3})])
    cams = Components(None, None, None, None, None).open_cameras(cfg, progress=False, max_frames=1)
    try:
        st = cams["a"]
        assert (st.fps, st.stride) == (25.0, 3)
        assert st.processed_fps == pytest.approx(25 / 3)
    finally:
        for st in cams.values():
            st.close()


def test_unknown_frame_rate_falls_back_to_25_with_one_warning_per_camera(pets_dir: Path, tmp_path: Path, caplog):
    folder = tmp_path / "frames"  # two real frames, no seqinfo.ini: the rate is unknown
    folder.mkdir()
    for name in ("000001.jpg", "000002.jpg"):
        shutil.copy(pets_dir / "img1" / name, folder / name)
    cfg = _cams_cfg([("a", str(folder), {}), ("b", str(folder), {"fps": 10})])
    with caplog.at_level(logging.WARNING, logger="pipeline.runner.components"):
        cams = Components(None, None, None, None, None).open_cameras(cfg, progress=False, max_frames=1)
    for st in cams.values():
        st.close()
    assert (cams["a"].fps, cams["b"].fps) == (25.0, 10.0)
    warned = [r.getMessage() for r in caplog.records if "frame rate is unknown" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("camera a:") and "25 fps" in warned[0]


# ------------------------------------------------------------------ tools/bench_speed.py arguments

@pytest.fixture
def bench(tool_module):
    return tool_module("bench_speed")


def _usage_error(bench, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, needle", [
    (["--max-frames", "0"], "--max-frames: must be 1 or more, got 0"),
    (["--max-frames", "-3"], "--max-frames: must be 1 or more, got -3"),
    (["--threads", "0"], "--threads: must be 1 or more, got 0"),
    (["--redo", "default"], "--redo: only with --resume"),
])
def test_bench_speed_bad_numbers_and_redo_are_usage_errors(bench, tmp_path: Path, argv, needle, capsys):
    assert needle in _usage_error(bench, argv + ["--out", str(tmp_path)], capsys)


def test_bench_speed_split_must_exist_and_results_are_not_overwritten(bench, tmp_path: Path, capsys):
    line = _usage_error(bench, ["--out", str(tmp_path), "--split", str(tmp_path / "nonexist")], capsys)
    assert "--split: no such folder" in line
    (tmp_path / "results.json").write_text("{}")
    line = _usage_error(bench, ["--out", str(tmp_path)], capsys)
    assert "results.json exists" in line and "--force" in line and "--resume" in line
    assert bench.parse_args(["--out", str(tmp_path), "--force"]).force
    assert bench.parse_args(["--out", str(tmp_path), "--resume", "--redo", "default"]).resume


def test_bench_speed_resume_refuses_rows_of_another_frame_count_or_split(bench, tmp_path: Path):
    path = tmp_path / "results.json"
    stored = {"frames_per_cam": 3, "split": str(tmp_path / "cams_3"), "rows": {"default": {"fps": 1.0}}}
    with pytest.raises(ConfigError, match="with 3 frames per camera, this run has 6") as err:
        bench.resumable_rows(stored, 6, tmp_path / "cams_6", path)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="measured on the split"):
        bench.resumable_rows(stored, 3, tmp_path / "other" / "cams_3", path)
    assert bench.resumable_rows(stored, 3, tmp_path / "cams_3", path) == stored["rows"]
    older = json.loads(json.dumps(stored))
    del older["split"]  # a table of the earlier script: only its frame count is known
    assert bench.resumable_rows(older, 3, tmp_path / "cams_3", path) == stored["rows"]


def test_build_split_refuses_zero_frames(tool_module, tmp_path: Path):
    bench_pipeline = tool_module("bench_pipeline")
    with pytest.raises(ConfigError, match="--max-frames: must be a positive whole number, got 0"):
        bench_pipeline.build_split(tmp_path, 0, 0.1)
    assert not any(tmp_path.iterdir())  # nothing built (0 used to build the whole 795-frame split)


def test_encoder_settings_that_cannot_work_are_refused_and_threads_reach_onnxruntime(pets_dir, tmp_path,
                                                                                      monkeypatch):
    """s44 probe_speed 9: ``encoder.every`` with ``policy: needed`` was silently ignored (now one line at load),
    and ``encoder.threads`` never reached the onnx backend's onnxruntime session (one thread per core)."""
    import yaml

    from pipeline.camconfig import load_cams_config
    from pipeline.core.errors import ConfigError
    from pipeline.runner.components import build_encoder

    monkeypatch.setenv("REID_CACHE_DIR", str(tmp_path / "cache"))
    p = tmp_path / "cams.yaml"
    cams = [{"id": "a", "source": str(pets_dir / "img1")}]
    p.write_text(yaml.safe_dump({"cameras": cams, "encoder": {"policy": "needed", "every": 2}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="encoder.every: 2 has no effect with policy: needed") as e:
        load_cams_config(p)
    assert "\n" not in str(e.value)
    p.write_text(yaml.safe_dump({"cameras": cams, "encoder": {"backend": "onnx", "threads": 1}}), encoding="utf-8")
    enc = build_encoder(load_cams_config(p))
    assert enc._session.get_session_options().intra_op_num_threads == 1
