"""The tracker: Kalman prediction + ByteTrack-style two-pass Hungarian association.

Per frame (``Tracker.update``):

1. predict every track (batched Kalman; optional camera-motion compensation);
2. first pass: confirmed tracks (tracked and lost) vs high-score detections, cost =
   IoU distance (x score), fused with cosine appearance distance when embeddings exist
   (``appearance.fusion``) and/or with pairs vetoed whose appearance is too far (``veto_thresh`` /
   ``veto_quantile`` of the negative distances, ``trackers.detections.NegativeDistances``),
   optional Mahalanobis gate and OC-SORT momentum;
3. second pass: tracks still tracked last frame vs low-score detections, IoU only;
4. tentative tracks vs the remaining high detections; unmatched tentative tracks die;
5. new tracks from unmatched confident detections; confirmed tracks missed for more
   than ``max_age`` frames are deleted.

Re-found tracks are re-updated along a virtual trajectory (OC-SORT ORU). Output:
confirmed tracks updated in this frame (plus, optionally, coasting ones).

``Tracker.predict_only`` is the step of a frame that was not detected (detection stride,
pipeline/runner/detect_schedule.py): every track moves by its Kalman velocity, nothing is
matched, missed or deleted, and the confirmed tracks that were output at the last detected
frame are output again at their predicted boxes. ``update`` counts such frames, so "tracked
last frame" (second pass, lost-track velocity) means "matched at the last detected frame".
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.core.types import Detection, TrackOutput, tlwh_to_tlbr
from trackers import costs
from trackers.assignment import min_cost_matching
from trackers.cmc import SparseFlowCMC, apply_affine
from trackers.config import TrackerConfig
from trackers.detections import DetectionBatch, NegativeDistances, ScoreFloor
from trackers.kalman import CHI2INV95, KalmanBoxFilter
from trackers.track import Track, TrackState

_EMPTY_MATCHES = np.empty((0, 2), dtype=np.int64)
#: after this many detections, warn once when fewer than START_SHARE_WARNING of them could start a track
START_CHECK_AFTER = 300
#: PETS09 yolov5n under the frcnn preset: 0 % (MOTA 12 instead of 80); the lowest share of a matching preset on
#: the MOT15 train detection files is 10 % (ETH-Sunnyday ACF under acf)
START_SHARE_WARNING = 0.05

log = logging.getLogger(__name__)


class Tracker:
    """One camera's multi-object tracker; ids are counted per instance from 1 and never reused."""

    _skipped = 0  # class defaults: trackers pickled in older resume checkpoints have no such attributes
    _high_thresh = 1.0
    _start_checked = False
    negatives = None

    def __init__(self, config: TrackerConfig, cam_id: str = "0", frame_rate: float = 30.0) -> None:
        self.config = config
        self.cam_id = cam_id
        self.frame_rate = float(frame_rate)
        k = config.kalman
        self.kf = KalmanBoxFilter(k.representation, k.std_weight_position, k.std_weight_velocity)
        life = config.lifecycle
        ref = life.max_age_reference_fps
        self.max_age = life.max_age if ref is None else max(1, int(round(life.max_age * self.frame_rate / ref)))
        self.tracks: list[Track] = []
        self.frame_id = 0
        self._next_id = 1
        self._removed: list[int] = []
        self._pred_tlbr = np.zeros((0, 4))
        self._skipped = 0  # predict-only frames since the last update (detection stride)
        self.score_floor = ScoreFloor(config.detection)
        ap = config.appearance
        self.negatives = (NegativeDistances(ap.negative_quantile, ap.negative_min_pairs)
                          if ap.thresh_from_negatives or ap.veto_quantile is not None else None)
        self._cmc = SparseFlowCMC(config.cmc.downscale, config.cmc.max_corners) if config.cmc.method != "none" else None

    # --- public API ------------------------------------------------------------------
    def update(self, detections: list[Detection], image: np.ndarray | None = None) -> list[TrackOutput]:
        """Process one frame; returns confirmed tracks updated in it (tlwh boxes)."""
        self.frame_id += 1
        cfg = self.config
        dets = DetectionBatch.from_detections(detections, cfg.detection, cfg.appearance.enabled)
        if dets.embeddings is not None and cfg.appearance.occlusion_iou < 1.0:
            dets.occluded = costs.occluded_detections(dets.tlbr, cfg.appearance.occlusion_iou)
        self._predict(image)
        self.score_floor.observe(dets.scores)
        thr = self.score_floor.thresholds()
        self._high_thresh = thr.high
        if self.negatives is not None and dets.embeddings is not None:
            ok = dets.has_appearance() & (dets.scores >= thr.high)
            self.negatives.observe(dets.embeddings[ok], dets.tlbr[ok])
        high = dets.select(dets.scores >= thr.high)
        low = dets.select((dets.scores >= thr.low) & (dets.scores < thr.high))
        confirmed = [i for i, t in enumerate(self.tracks) if t.state == TrackState.Confirmed]
        tentative = [i for i, t in enumerate(self.tracks) if t.state == TrackState.Tentative]
        matched: dict[int, int] = {}  # id(track) -> row in the caller's detection list

        # 1) confirmed (tracked + lost) vs high
        m1, um_t1, um_h = self._first_pass(confirmed, high)
        self._apply(confirmed, high, m1, matched)
        # 2) still-tracked leftovers (matched at the last detected frame) vs low, IoU only
        recent = 1 + self._skipped
        left = [confirmed[i] for i in um_t1 if self.tracks[confirmed[i]].time_since_update == recent]
        if left and len(low):
            cost2 = costs.iou_cost(self._pred_tlbr[left], low.tlbr)
            m2, _, _ = min_cost_matching(cost2, cfg.association.second_match_thresh)
            self._apply(left, low, m2, matched)
        # 3) tentative vs remaining high
        rest = high.select(um_h) if len(um_h) < len(high) else high
        um_h3 = np.arange(len(rest))
        if tentative and len(rest):
            cost3 = costs.iou_cost(self._pred_tlbr[tentative], rest.tlbr)
            if cfg.association.fuse_score:
                cost3 = costs.fuse_score(cost3, rest.scores)
            m3, _, um_h3 = min_cost_matching(cost3, cfg.association.unconfirmed_match_thresh)
            self._apply(tentative, rest, m3, matched)

        for t in self.tracks:
            if t.time_since_update > 0:
                t.mark_missed()
        self._start_tracks(rest.select(um_h3), matched, thr.new_track)
        if not self._start_checked and self.score_floor.n_seen >= START_CHECK_AFTER:
            self._check_start_share()
        self._remove_duplicates()
        outputs = self._outputs(detections, matched)
        self._drop_deleted()
        self._skipped = 0
        return outputs

    def _check_start_share(self) -> None:
        """Once: warn when hardly any detection could start a track, i.e. the config's thresholds belong to another
        detector family (a preset tuned for frcnn scores on YOLO detections starts almost no track)."""
        self._start_checked = True
        share = self.score_floor.start_share()
        if share < START_SHARE_WARNING:
            log.warning("camera %s: only %.1f%% of the first %d detections score >= detection.new_track_thresh %g, so "
                        "hardly any track can start: the tracker config is for another detector (presets: yolo for "
                        "YOLO, default for frcnn-like scores, acf for MOT15 ACF)", self.cam_id, 100 * share,
                        self.score_floor.n_seen, self.config.detection.new_track_thresh)

    def predict_only(self, image: np.ndarray | None = None) -> list[TrackOutput]:
        """A frame without detections to match (not detected, not an empty detection): Kalman predict only.

        Ids, states, hits and embeddings are unchanged; no track is missed or deleted (the next
        ``update`` does that with the frames counted). Returns the confirmed tracks that were output at
        the last detected frame, at their predicted tlwh boxes, without embeddings."""
        self.frame_id += 1
        self._predict(image)
        self._skipped += 1
        out: list[TrackOutput] = []
        coast = self.config.lifecycle.output_coasting_frames
        for t in self.tracks:
            if t.state == TrackState.Confirmed and t.time_since_update - self._skipped <= coast:
                out.append(TrackOutput(self.cam_id, t.track_id, self.frame_id, self.kf.tlwh_from_mean(t.mean),
                                       t.score, None))
        return out

    def pop_removed(self) -> list[int]:
        """Ids of tracks deleted since the last call (only tracks that were ever confirmed, i.e. output)."""
        out, self._removed = self._removed, []
        return out

    def active_track_ids(self) -> list[int]:
        """Ids of the confirmed tracks currently alive (tracked or coasting), ascending."""
        return sorted(t.track_id for t in self.tracks if t.state == TrackState.Confirmed)

    # --- steps -------------------------------------------------------------------------
    def _predict(self, image: np.ndarray | None) -> None:
        """Batched predict of every track; caches the (N, 4) predicted tlbr boxes (row = self.tracks)."""
        if not self.tracks:
            if self._cmc is not None and image is not None:
                self._cmc.estimate(image)
            self._pred_tlbr = np.zeros((0, 4))
            return
        means = np.stack([t.mean for t in self.tracks])
        covs = np.stack([t.cov for t in self.tracks])
        lost = np.array([t.time_since_update > self._skipped for t in self.tracks])  # not matched last detection
        if lost.any():  # ByteTrack: a lost track does not keep growing/shrinking
            means[lost, 7] = 0.0
            if self.kf.representation == "xywh":
                means[lost, 6] = 0.0
        means, covs = self.kf.multi_predict(means, covs)
        if self._cmc is not None and image is not None:
            means, covs = apply_affine(means, covs, self._cmc.estimate(image), self.kf.representation)
        for i, t in enumerate(self.tracks):
            t.mean, t.cov = means[i], covs[i]
            t.age += 1
            t.time_since_update += 1
        self._pred_tlbr = tlwh_to_tlbr(self.kf.tlwh_from_mean(means))

    def _tlbr(self, tracks: list[Track]) -> np.ndarray:
        if not tracks:
            return np.zeros((0, 4))
        return tlwh_to_tlbr(self.kf.tlwh_from_mean(np.stack([t.mean for t in tracks])))

    def _first_pass(self, idx: list[int], dets: DetectionBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fused cost of tracks ``idx`` (confirmed) vs high detections -> min_cost_matching result."""
        a, ap = self.config.association, self.config.appearance
        n, m = len(idx), len(dets)
        if n == 0 or m == 0:
            return _EMPTY_MATCHES, np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64)
        tracks = [self.tracks[i] for i in idx]
        iou_d = costs.iou_cost(self._pred_tlbr[idx], dets.tlbr)
        cost = costs.fuse_score(iou_d, dets.scores) if a.fuse_score else iou_d
        if dets.embeddings is not None and any(t.feature is not None for t in tracks):
            emb_d = self._appearance_cost(tracks, dets.embeddings)
            evidence = np.array([t.feature is not None for t in tracks])[:, None] & dets.has_appearance()[None, :]
            neg = self.negatives  # None in trackers pickled before it existed: the configured thresholds then
            app_thresh = (neg.threshold(ap.appearance_thresh) if ap.thresh_from_negatives and neg is not None
                          else ap.appearance_thresh)
            fused = costs.fuse_motion_appearance(cost, np.where(evidence, emb_d, 1.0), ap.proximity_thresh,
                                                 app_thresh, ap.fusion, ap.weight, proximity_cost=iou_d)
            if ap.fuse_lost_only:  # tracked tracks keep their motion cost; lost ones (missed last time) get fused
                lost = np.array([t.time_since_update > 1 + self._skipped for t in tracks])
                fused = np.where(lost[:, None], fused, cost)
            cost = fused
            veto = ap.veto_thresh
            if ap.veto_quantile is not None and neg is not None:
                veto = neg.threshold(ap.veto_thresh, ap.veto_quantile)
            if veto < 2.0:
                cost = costs.appearance_veto(cost, emb_d, veto, evidence)
        if a.mahalanobis_gate:
            means = np.stack([t.mean for t in tracks])
            covs = np.stack([t.cov for t in tracks])
            gd = self.kf.multi_gating_distance(means, covs, self.kf.measurement_from_tlwh(dets.tlwh))
            cost = costs.gate_mahalanobis(cost, gd, CHI2INV95[4])
        if a.ocm_weight > 0:
            cost = self._add_momentum(cost, tracks, dets)
        return min_cost_matching(cost, a.first_match_thresh)

    def _appearance_cost(self, tracks: list[Track], emb: np.ndarray) -> np.ndarray:
        """(N, M) cosine distance; tracks without appearance get 1 (no evidence)."""
        ap = self.config.appearance
        out = np.ones((len(tracks), len(emb)))
        has = [i for i, t in enumerate(tracks) if t.feature is not None]
        if ap.mode == "ema":
            out[has] = costs.cosine_cost(np.stack([tracks[i].feature for i in has]), emb)
        else:
            out[has] = costs.gallery_cosine_cost([np.stack(tracks[i].gallery) for i in has], emb)
        return out

    def _add_momentum(self, cost: np.ndarray, tracks: list[Track], dets: DetectionBatch) -> np.ndarray:
        """OC-SORT OCM: lower the cost of pairs moving along the track's observed direction."""
        a = self.config.association
        last = np.stack([t.last_measurement[:2] for t in tracks])
        prev = [t.observation_before(t.last_frame, a.ocm_delta_t) for t in tracks]
        valid = np.array([p is not None for p in prev])
        prev_xy = np.stack([p[:2] if p is not None else last[i] for i, p in enumerate(prev)])
        det_xy = dets.tlwh[:, :2] + dets.tlwh[:, 2:] / 2.0
        bonus = costs.direction_consistency(prev_xy, last, det_xy, valid) * dets.scores[None, :]
        out = cost - a.ocm_weight * bonus
        out[cost > a.first_match_thresh] = np.inf  # momentum never admits an otherwise rejected pair
        return out

    def _apply(self, idx: list[int], dets: DetectionBatch, matches: np.ndarray, matched: dict[int, int]) -> None:
        """Kalman-update matched tracks (rows of ``matches`` index ``idx``), batched, with ORU
        for tracks re-found after a gap."""
        if len(matches) == 0:
            return
        sel = [self.tracks[idx[r]] for r in matches[:, 0]]
        z = self.kf.measurement_from_tlwh(dets.tlwh[matches[:, 1]])
        if self.config.association.oru:
            for k, t in enumerate(sel):
                if self.frame_id - t.last_frame > 1:
                    t.mean, t.cov = self._replay(t, z[k])
        means, covs = self.kf.multi_update(np.stack([t.mean for t in sel]), np.stack([t.cov for t in sel]), z)
        ap = self.config.appearance
        for k, (t, c) in enumerate(zip(sel, matches[:, 1])):
            t.record_hit(means[k], covs[k], z[k], self.frame_id, float(dets.scores[c]))
            t.last_det_tlwh = dets.tlwh[c]
            row = int(dets.index[c])
            matched[id(t)] = row
            if (dets.embeddings is not None and dets.scores[c] >= ap.min_score_for_update
                    and (dets.occluded is None or not dets.occluded[c])):
                alpha = (costs.dynamic_ema_alpha(ap.ema_alpha, float(dets.scores[c]), self._high_thresh)
                         if ap.dynamic_ema else ap.ema_alpha)
                t.add_embedding(dets.embeddings[c], alpha)

    def _replay(self, t: Track, z_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ORU: from the state at the last observation, predict/update along the straight line
        of virtual observations to ``z_new``; returns the state predicted for this frame."""
        mean, cov = t.saved_state
        gap = self.frame_id - t.last_frame
        z0 = t.last_measurement
        for i in range(1, gap):
            mean, cov = self.kf.predict(mean, cov)
            mean, cov = self.kf.update(mean, cov, z0 + (z_new - z0) * (i / gap))
        return self.kf.predict(mean, cov)

    def _start_tracks(self, dets: DetectionBatch, matched: dict[int, int], new_track_thresh: float) -> None:
        cfg = self.config
        first = self.frame_id == 1 and cfg.lifecycle.confirm_on_first_frame
        for c in np.flatnonzero(dets.scores >= new_track_thresh):
            z = self.kf.measurement_from_tlwh(dets.tlwh[c])
            mean, cov = self.kf.initiate(z)
            occluded = dets.occluded is not None and dets.occluded[c]
            emb = None if dets.embeddings is None or occluded else dets.embeddings[c]
            t = Track(self._next_id, mean, cov, z, self.frame_id, float(dets.scores[c]), cfg.lifecycle.n_init,
                      self.max_age, emb, cfg.appearance.budget, confirmed=first or cfg.lifecycle.n_init <= 1)
            t.last_det_tlwh = dets.tlwh[c]
            matched[id(t)] = int(dets.index[c])
            self._next_id += 1
            self.tracks.append(t)

    def _remove_duplicates(self) -> None:
        """ByteTrack: a tracked and a lost confirmed track overlapping > remove_duplicates_iou -> drop the younger."""
        thr = self.config.association.remove_duplicates_iou
        if thr >= 1.0:
            return
        tracked = [t for t in self.tracks if t.is_confirmed() and t.time_since_update == 0]
        lost = [t for t in self.tracks if t.is_confirmed() and t.time_since_update > 0]
        if not tracked or not lost:
            return
        iou_d = costs.iou_cost(self._tlbr(tracked), self._tlbr(lost))
        for p, q in zip(*np.nonzero(iou_d < 1.0 - thr)):
            a, b = tracked[p], lost[q]
            if self.frame_id - a.start_frame > self.frame_id - b.start_frame:
                b.state = TrackState.Deleted
            else:
                a.state = TrackState.Deleted

    def _outputs(self, detections: list[Detection], matched: dict[int, int]) -> list[TrackOutput]:
        life = self.config.lifecycle
        out: list[TrackOutput] = []
        for t in self.tracks:
            if t.state != TrackState.Confirmed or t.time_since_update > life.output_coasting_frames:
                continue
            updated = t.time_since_update == 0
            if updated and life.output_box == "detection" and t.last_det_tlwh is not None:
                tlwh = np.asarray(t.last_det_tlwh, dtype=np.float64).copy()
            else:
                tlwh = self.kf.tlwh_from_mean(t.mean)
            emb = detections[matched[id(t)]].embedding if updated and id(t) in matched else None
            out.append(TrackOutput(self.cam_id, t.track_id, self.frame_id, tlwh, t.score, emb))
        return out

    def _drop_deleted(self) -> None:
        keep: list[Track] = []
        for t in self.tracks:
            if t.state == TrackState.Deleted:
                if t.ever_confirmed:
                    self._removed.append(t.track_id)
            else:
                keep.append(t)
        self.tracks = keep
