"""Issue 16: the detection schedule, the embedding policy and decode skipping, on hand-built states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.camconfig import CamsConfig, EncoderSettings, ScheduleSettings
from pipeline.core.configio import validate
from pipeline.core.errors import ConfigError
from pipeline.core.types import Detection
from pipeline.runner.detect_schedule import CameraSchedule, adaptive_stride
from pipeline.runner.embed_policy import CameraEmbedPolicy
from pipeline.sources.camera import CameraSource
from pipeline.sources.options import SourceOptions
from pipeline.sources.readers import VideoCaptureReader
from trackers.config import TrackerConfig
from trackers.tracker import Tracker

HW = (576, 768)  # image (height, width)
ADAPTIVE = ScheduleSettings(detect_every="adaptive", max_every=3, busy_every=2, border_frac=0.04)


def _det(x: float, y: float = 200.0, w: float = 40.0, h: float = 80.0) -> Detection:
    return Detection(np.array([x, y, w, h]), 0.9)


def _tracker(frames: list[list[Detection]]) -> Tracker:
    cfg = TrackerConfig.model_validate({
        "detection": {"high_thresh": 0.5, "low_thresh": 0.1, "new_track_thresh": 0.6},
        "lifecycle": {"n_init": 2, "max_age": 30, "max_age_reference_fps": None}})
    trk = Tracker(cfg, cam_id="c", frame_rate=10)
    trk.update([])  # no first-frame confirmation
    for dets in frames:
        trk.update(dets)
    return trk


def _still(*xs: float, n: int = 5, y: float = 200.0) -> list[list[Detection]]:
    return [[_det(x, y) for x in xs] for _ in range(n)]


# ------------------------------------------------------------------ schedule
def test_fixed_stride_detects_every_kth_frame():
    sch = CameraSchedule(ScheduleSettings(detect_every=3))
    trk = _tracker([])
    pattern = []
    for _ in range(7):
        due = sch.due()
        pattern.append(due)
        sch.detected(trk, HW) if due else sch.predicted()
    assert pattern == [True, False, False, True, False, False, True]
    assert sch.summary()["detected"] == 3 and sch.summary()["predicted"] == 4


def test_adaptive_stable_scene_detects_least_often():
    assert adaptive_stride(_tracker(_still(200, 500)), HW, ADAPTIVE) == (3, "stable")
    assert adaptive_stride(_tracker([]), HW, ADAPTIVE) == (3, "stable")  # nobody there


def test_adaptive_new_track_detects_every_frame():
    trk = _tracker(_still(200, 500) + [[_det(200), _det(500), _det(350, 400)]])  # a third person appears
    assert adaptive_stride(trk, HW, ADAPTIVE) == (1, "new")  # tentative
    trk = _tracker(_still(200, n=2))  # confirmed at its second hit, but only 2 < 4 detections old
    assert adaptive_stride(trk, HW, ADAPTIVE) == (1, "new")


def test_adaptive_missed_track_detects_every_frame():
    trk = _tracker(_still(200, 500) + [[_det(200)]])  # the right one is not detected
    assert adaptive_stride(trk, HW, ADAPTIVE) == (1, "missed")


def test_adaptive_touching_tracks_and_border():
    assert adaptive_stride(_tracker(_still(200, 230)), HW, ADAPTIVE) == (2, "near")  # boxes overlap by 10 px
    assert adaptive_stride(_tracker(_still(200, 241)), HW, ADAPTIVE) == (3, "stable")  # 1 px apart
    # border margin 0.04 * 768 = 30.7 px: a box from x=20 touches it, one from x=40 does not
    assert adaptive_stride(_tracker(_still(20)), HW, ADAPTIVE) == (2, "border")
    assert adaptive_stride(_tracker(_still(40)), HW, ADAPTIVE) == (3, "stable")
    assert adaptive_stride(_tracker(_still(400, y=HW[0] - 90)), HW, ADAPTIVE) == (2, "border")  # bottom at 566


def test_adaptive_uncertain_track_detects_every_frame():
    trk = _tracker(_still(200, 500))
    trk.tracks[0].cov[0, 0] = (0.2 * 80) ** 2  # position std 16 px > 0.15 * height 80 = 12 px
    assert adaptive_stride(trk, HW, ADAPTIVE) == (1, "uncertain")


def test_schedule_config_errors_are_one_line():
    base = {"cameras": [{"id": "a", "source": "x.mp4"}]}
    for schedule, needle in (({"detect_every": 0}, "schedule.detect_every"),
                             ({"detect_every": "often"}, "schedule.detect_every"),
                             ({"detect_every": "adaptive", "busy_every": 4}, "busy_every (4) must be <= max_every")):
        with pytest.raises(ConfigError) as e:
            validate(CamsConfig, {**base, "schedule": schedule}, "cams.yaml")
        assert str(e.value).startswith("cams.yaml: ") and needle in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"^cams.yaml: encoder.policy: "):
        validate(CamsConfig, {**base, "encoder": {"policy": "sometimes"}}, "cams.yaml")


# ------------------------------------------------------------------ embedding policy
def test_every_policy_embeds_all_detections_of_every_nth_detected_frame():
    pol = CameraEmbedPolicy(EncoderSettings(every=2))
    trk = _tracker([])
    dets = [_det(100), _det(300)]
    assert pol.select(dets, trk, 0) == [0, 1]
    assert pol.select(dets, trk, 1) == []
    assert pol.select(dets, trk, 2) == [0, 1]


def _embedded_outputs(trk: Tracker, dets: list[Detection]):
    for d in dets:
        d.embedding = np.ones(4, np.float32)
    return trk.update(dets)


def test_needed_policy_new_near_and_refresh():
    pol = CameraEmbedPolicy(EncoderSettings(policy="needed", refresh_every=3, match_iou=0.3))
    trk = _tracker(_still(100, 400))  # two confirmed tracks (ids 1, 2)
    # no embedding recorded yet: both need one (refresh of a never-embedded track)
    assert pol.select([_det(100), _det(400)], trk, 0) == [0, 1]
    pol.observe(_embedded_outputs(trk, [_det(100), _det(400)]))
    pol.tick()
    # next frame: both match a track embedded 1 frame ago -> nothing; a detection far from every track
    # (a new person) and the two overlapping ones (x 600 and 620, IoU 20*80 / (2*3200-1600) = 1/3) -> embedded
    dets = [_det(100), _det(400), _det(600, 50), _det(620, 50)]
    assert pol.select(dets, trk, 1) == [2, 3]
    trk.update([_det(100), _det(400)])
    pol.tick()
    pol.tick()  # two more frames (one of them carried by prediction): 3 frames since the embedding
    assert pol.select([_det(100), _det(400)], trk, 3) == [0, 1]


def test_needed_policy_touching_detections_of_tracked_people_are_embedded():
    pol = CameraEmbedPolicy(EncoderSettings(policy="needed", refresh_every=100))
    trk = _tracker(_still(100, 130))  # two confirmed tracks whose boxes overlap
    pol.observe(_embedded_outputs(trk, [_det(100), _det(130)]))
    pol.tick()
    assert pol.select([_det(100), _det(130), _det(500)], trk, 1) == [0, 1, 2]  # 500: no track there
    assert pol.select([_det(100)], trk, 2) == []  # alone, tracked, fresh: not needed


# ------------------------------------------------------------------ decode
def test_camera_stride_grabs_without_decoding(shared: Path):
    video = shared / "data" / "videos" / "PETS09-S2L1.avi"
    opts = SourceOptions("v", str(video), max_frames=30, stride=3)
    reader = VideoCaptureReader(video, "v", is_file=True)
    reader.open()
    src = CameraSource(opts, "file", lambda: VideoCaptureReader(video, "v", is_file=True), reader=reader)
    frames = []
    with src:
        while not src.finished:
            f = src.read(timeout=0.5)
            if f is not None:
                frames.append(f)
    assert [f.index for f in frames] == list(range(0, 30, 3))
    assert (reader.decoded, reader.grabbed_only) == (10, 20)  # 2 of every 3 frames never decoded


def test_max_gap_caps_the_stride_by_frame_rate():
    cap = ScheduleSettings(detect_every=3, max_gap_s=0.2)
    assert CameraSchedule(cap, fps=7.0).every == 1  # 0.2 s at 7 fps = 1.4 frames -> 1
    assert CameraSchedule(cap, fps=14.0).every == 2  # 2.8 -> 2
    assert CameraSchedule(cap, fps=25.0).every == 3  # 5 frames allowed, 3 asked
    assert CameraSchedule(cap, fps=None).every == 3  # unknown rate: no cap
    sch = CameraSchedule(ScheduleSettings(detect_every="adaptive", max_gap_s=0.2), fps=10.0)
    assert sch.detected(_tracker(_still(200, 500)), HW) == 2  # stable would be 3; 0.2 s at 10 fps = 2
