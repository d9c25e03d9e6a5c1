"""Which detections of a detected frame get an appearance embedding (issue 16: embed only when needed).

``encoder.policy`` (cams.yaml, :class:`pipeline.camconfig.EncoderSettings`):

* ``"every"`` (default, today's behaviour): all detections of every ``encoder.every``-th detected frame;
* ``"needed"``: a detection is embedded when

  - it matches no live track (IoU with every track's Kalman-predicted box below ``match_iou``):
    a new person, or one re-found after an occlusion, so every track starts with an embedding;
  - it touches another detection of the frame (IoU > 0): people close together, where identities
    are at risk and the tracklet should carry appearance from around the contact;
  - the track it matches has had no embedding for ``refresh_every`` processed frames (a track's
    appearance is refreshed as it walks; the tracklet aggregation gets a steady sample).

The embeddings go where they always went: the tracker (used there only on frames where every
detection has one) and, through :class:`~pipeline.core.types.TrackOutput.embedding`, the
TrackletBuilder's per-frame embeddings that the aggregator averages. :meth:`CameraEmbedPolicy.observe`
records which tracks got one (the refresh clock).
"""

from __future__ import annotations

import numpy as np

from pipeline.camconfig import EncoderSettings
from pipeline.core.types import Detection, TrackOutput, iou_matrix_tlbr, tlwh_to_tlbr
from trackers.track import TrackState
from trackers.tracker import Tracker


class CameraEmbedPolicy:
    """One camera's embedding policy: ``select`` before the encoder, ``observe`` after the tracker."""

    def __init__(self, settings: EncoderSettings) -> None:
        self.settings = settings
        self.detected = 0  # detected frames seen (``encoder.every`` counts these)
        self.frame = 0  # processed frames seen (the refresh clock)
        self.last_embedded: dict[int, int] = {}  # track id -> processed frame of its last embedding
        self.selected = 0
        self.offered = 0

    def tick(self) -> None:
        """One processed frame went by (detected or predicted)."""
        self.frame += 1

    def select(self, dets: list[Detection], tracker: Tracker, detected_before: int) -> list[int]:
        """Indices into ``dets`` (this camera's detections of a detected frame) to embed, ascending.

        ``detected_before``: detected frames of this camera before this one (``encoder.every`` counts them;
        the runner passes processed - predicted frames, which a resumed run restores)."""
        self.detected += 1
        self.offered += len(dets)
        s = self.settings
        if not dets:
            return []
        if s.policy == "every":
            chosen = list(range(len(dets))) if detected_before % s.every == 0 else []
            self.selected += len(chosen)
            return chosen
        det_tlbr = tlwh_to_tlbr(np.stack([np.asarray(d.tlwh, dtype=np.float64) for d in dets]))
        tracks = [t for t in tracker.tracks if t.state != TrackState.Deleted]
        need = np.zeros(len(dets), dtype=bool)
        if tracks:
            means, covs = tracker.kf.multi_predict(np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks]))
            trk_tlbr = tlwh_to_tlbr(tracker.kf.tlwh_from_mean(means))
            iou = iou_matrix_tlbr(det_tlbr, trk_tlbr)  # (M, N)
            best = iou.argmax(axis=1)
            best_iou = iou[np.arange(len(dets)), best]
            need |= best_iou < s.match_iou
            for i in np.flatnonzero(~need):
                t = tracks[best[i]]
                last = self.last_embedded.get(t.track_id)
                if t.state != TrackState.Confirmed or last is None or self.frame - last >= s.refresh_every:
                    need[i] = True
        else:
            need[:] = True
        if len(dets) > 1:
            dd = iou_matrix_tlbr(det_tlbr, det_tlbr)
            np.fill_diagonal(dd, 0.0)
            need |= (dd > 0.0).any(axis=1)
        chosen = np.flatnonzero(need).tolist()
        self.selected += len(chosen)
        return chosen

    def observe(self, outputs: list[TrackOutput]) -> None:
        """After the tracker: tracks whose output carries an embedding were refreshed at this frame."""
        for o in outputs:
            if o.embedding is not None:
                self.last_embedded[o.track_id] = self.frame

    def forget(self, track_ids: list[int]) -> None:
        """Tracks the tracker deleted (bounded bookkeeping)."""
        for tid in track_ids:
            self.last_embedded.pop(tid, None)

    def summary(self) -> dict:
        return {"policy": self.settings.policy, "detections": self.offered, "embedded": self.selected}
