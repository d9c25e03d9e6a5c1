"""Per iteration: which frames are detected, which detections embedded, and the step of a frame not detected.

The runner's hooks for issue 16 (docs/speed.md): :class:`FramePlan` keeps one
:class:`~pipeline.runner.detect_schedule.CameraSchedule` and one
:class:`~pipeline.runner.embed_policy.CameraEmbedPolicy` per camera. With the defaults
(``schedule.detect_every: 1``, ``encoder.policy: every``) every frame is detected and the
detections of every ``encoder.every``-th frame are embedded, exactly as before.

Frames that are not detected are still decoded: the tracker's camera-motion compensation, the
video sink, the console's live tiles and the thumbnail/crop keeper use the image of every
processed frame. Frames the camera ``stride`` drops are never decoded (the source grabs them
without retrieving, :meth:`pipeline.sources.readers.VideoCaptureReader.skip`).
"""

from __future__ import annotations

from typing import Any

from pipeline.camconfig import EncoderSettings, ScheduleSettings
from pipeline.core.types import Detection, Frame, crop_tlwh
from pipeline.runner.components import CameraState
from pipeline.runner.detect_schedule import CameraSchedule
from pipeline.runner.embed_policy import CameraEmbedPolicy

PRUNE_EVERY = 256  # processed frames per camera between clean-ups of the embedding policy's track ids


class FramePlan:
    """The detection schedule and embedding policy of every camera of a run."""

    def __init__(self, schedule: ScheduleSettings, encoder: EncoderSettings) -> None:
        self.schedule_settings = schedule
        self.encoder_settings = encoder
        self.schedules: dict[str, CameraSchedule] = {}
        self.policies: dict[str, CameraEmbedPolicy] = {}

    def _of(self, cam_id: str, processed_fps: float | None = None) -> tuple[CameraSchedule, CameraEmbedPolicy]:
        """The camera's schedule and policy, made on its first frame; ``processed_fps``: its processed frames
        per second (source fps / camera stride), what ``schedule.max_gap_s`` is counted in."""
        if cam_id not in self.schedules:
            self.schedules[cam_id] = CameraSchedule(self.schedule_settings, processed_fps)
            self.policies[cam_id] = CameraEmbedPolicy(self.encoder_settings)
        return self.schedules[cam_id], self.policies[cam_id]

    def split(self, frames: list[Frame], cams: dict[str, CameraState]) -> tuple[list[Frame], list[Frame]]:
        """(frames to detect, frames to carry by prediction), each in the given order."""
        detect, carry = [], []
        for f in frames:
            (detect if self._of(f.cam_id, cams[f.cam_id].processed_fps)[0].due() else carry).append(f)
        return detect, carry

    def embed(self, encoder: Any, frames: list[Frame], det_lists: list[list[Detection]],
              cams: dict[str, CameraState]) -> None:
        """Embed the chosen detections of the detected ``frames`` in one encoder call (sets ``embedding``)."""
        per_camera = bool(getattr(encoder, "camera_ids", None))  # an adapted version with per-camera BN statistics
        crops: dict[str | None, list] = {}
        owners: dict[str | None, list[Detection]] = {}
        for frame, dets in zip(frames, det_lists):
            schedule, policy = self._of(frame.cam_id)
            st = cams[frame.cam_id]
            key = frame.cam_id if per_camera else None
            for i in policy.select(dets, st.tracker, st.frames - schedule.predicted_frames):
                crop = crop_tlwh(frame.image, dets[i].tlwh, min_size=2)
                if crop is not None:
                    crops.setdefault(key, []).append(crop)
                    owners.setdefault(key, []).append(dets[i])
        for key, batch in crops.items():  # one call for all cameras unless they have their own statistics
            for det, feat in zip(owners[key], encoder.embed_crops(batch, cam_id=key)):
                det.embedding = feat

    def detected(self, st: CameraState, frame: Frame) -> None:
        """After ``track_frame`` of a detected frame: the next stride and the refresh clock."""
        schedule, policy = self._of(frame.cam_id)
        policy.observe(st.last_outputs)
        policy.tick()
        schedule.detected(st.tracker, frame.image.shape[:2])
        self._prune(st, policy)

    def carried(self, frame: Frame) -> None:
        """After ``camera_stage.carry_frame`` of a frame that was not detected: count it, tick the refresh clock."""
        schedule, policy = self._of(frame.cam_id)
        schedule.predicted()
        policy.tick()

    def _prune(self, st: CameraState, policy: CameraEmbedPolicy) -> None:
        if policy.frame % PRUNE_EVERY == 0:
            alive = {t.track_id for t in st.tracker.tracks}
            policy.forget([tid for tid in policy.last_embedded if tid not in alive])

    def summary(self) -> dict:
        """Per camera: detected / predicted frames, adaptive reasons, detections offered / embedded."""
        return {cid: {**self.schedules[cid].summary(), "embedding": self.policies[cid].summary()}
                for cid in self.schedules}
