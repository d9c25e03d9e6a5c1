"""Detection stride: which processed frames of one camera run the detector (issue 16).

The frames in between are carried by the camera's Kalman tracker
(:meth:`trackers.tracker.Tracker.predict_only`). ``schedule.detect_every`` (cams.yaml,
:class:`pipeline.camconfig.ScheduleSettings`) is 1 (every frame), a fixed k, or ``"adaptive"``:
after every detected frame the next stride is chosen from the tracker's state:

* ``1`` while any track is **new** (tentative: a new track dies at its first miss, and after k
  predicted frames a person has often moved out of the IoU gate of a track that has no velocity yet;
  or confirmed with fewer than ``NEW_TRACK_HITS`` detections), was **missed** in the last
  ``max_every`` frames (occlusion, leaving; tracks lost for longer do not count), or is **uncertain**
  (Kalman position std above ``uncertain_frac`` of its box height);
* ``busy_every`` while two confirmed tracks' boxes touch (**near**: identity switches happen there)
  or a track touches the image **border** (people enter and leave there);
* ``max_every`` otherwise (**stable**; also an empty scene).

``max_gap_s`` (optional) caps any stride to that many seconds of video at the camera's processed-frame
rate (source fps / ``cameras.N.stride``, the rate the tracker gets too): a person moves per frame in
proportion to 1/fps, so a stride that is harmless at 25 fps is not at 7.
The first frame of a camera is always detected. :attr:`CameraSchedule.reasons` counts the
decisions by reason (the run summary's ``schedule``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from pipeline.camconfig import ScheduleSettings
from pipeline.core.types import iou_matrix_tlbr, tlwh_to_tlbr
from trackers.track import TrackState
from trackers.tracker import Tracker

#: a confirmed track with fewer hits (detections) than this still counts as new
NEW_TRACK_HITS = 4


class CameraSchedule:
    """One camera's detection schedule: ``due()`` before a frame, ``detected()`` / ``predicted()`` after it."""

    def __init__(self, settings: ScheduleSettings, fps: float | None = None) -> None:
        """``fps``: the camera's PROCESSED frames per second (source fps / camera stride; None: unknown, no cap)."""
        self.settings = settings
        self.adaptive = settings.detect_every == "adaptive"
        # max_gap_s: no stride longer than this many seconds of video (in processed frames)
        self.cap = (max(1, int(settings.max_gap_s * fps + 1e-9)) if settings.max_gap_s is not None and fps
                    else None)
        self.every = 1 if self.adaptive else self._capped(int(settings.detect_every))
        self.since_detect: int | None = None  # processed frames since the last detected one; None: none yet
        self.reasons: Counter[str] = Counter()
        self.detected_frames = 0
        self.predicted_frames = 0

    def due(self) -> bool:
        """True when this camera's next frame is to be detected."""
        return self.since_detect is None or self.since_detect + 1 >= self.every

    def detected(self, tracker: Tracker, image_hw: tuple[int, int]) -> int:
        """Book-keep a detected frame (after ``tracker.update``); returns the stride until the next one."""
        self.since_detect = 0
        self.detected_frames += 1
        if self.adaptive:
            every, reason = adaptive_stride(tracker, image_hw, self.settings)
            self.every = self._capped(every)
            self.reasons[reason] += 1
        return self.every

    def _capped(self, every: int) -> int:
        return every if self.cap is None else min(every, self.cap)

    def predicted(self) -> None:
        """Book-keep a frame carried by prediction."""
        self.since_detect = (self.since_detect or 0) + 1
        self.predicted_frames += 1

    def summary(self) -> dict:
        return {"detected": self.detected_frames, "predicted": self.predicted_frames,
                "reasons": dict(self.reasons)}


def adaptive_stride(tracker: Tracker, image_hw: tuple[int, int], s: ScheduleSettings) -> tuple[int, str]:
    """(stride, reason) from the tracker's state right after a detected frame; see the module docstring.

    image_hw: (height, width) of the camera's frames in pixels."""
    live = [t for t in tracker.tracks if t.state != TrackState.Deleted]
    if any(t.state == TrackState.Tentative for t in live):
        return 1, "new"
    confirmed = [t for t in live if t.state == TrackState.Confirmed]
    if not confirmed:
        return s.max_every, "stable"
    if any(t.hits < NEW_TRACK_HITS for t in confirmed):
        return 1, "new"
    if any(0 < t.time_since_update <= s.max_every for t in confirmed):  # a long-lost track: nothing to gain
        return 1, "missed"
    confirmed = [t for t in confirmed if t.time_since_update == 0]  # the tracked ones (lost ones: see above)
    if not confirmed:
        return s.max_every, "stable"
    means = np.stack([t.mean for t in confirmed])
    tlwh = tracker.kf.tlwh_from_mean(means)  # (N, 4)
    pos_std = np.sqrt(np.array([max(t.cov[0, 0], t.cov[1, 1]) for t in confirmed]))
    if np.any(pos_std > s.uncertain_frac * np.maximum(tlwh[:, 3], 1.0)):
        return 1, "uncertain"
    tlbr = tlwh_to_tlbr(tlwh)
    if len(confirmed) > 1:
        iou = iou_matrix_tlbr(tlbr, tlbr)
        np.fill_diagonal(iou, 0.0)
        if np.any(iou > 0.0):
            return s.busy_every, "near"
    h, w = image_hw
    mx, my = s.border_frac * w, s.border_frac * h
    if np.any((tlbr[:, 0] < mx) | (tlbr[:, 1] < my) | (tlbr[:, 2] > w - mx) | (tlbr[:, 3] > h - my)):
        return s.busy_every, "border"
    return s.max_every, "stable"
