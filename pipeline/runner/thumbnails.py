"""One small thumbnail per track, always (the console's gallery); the adaptation CropKeeper's interface.

The runner offers every frame's track boxes (:meth:`ThumbnailKeeper.observe`); per open track the keeper
keeps the crop of the best box seen so far, scaled to at most ``max_side`` pixels, and hands it over
when the track's final tracklet is stored (:meth:`ThumbnailKeeper.take`, same signature as
:meth:`pipeline.adaptation.crops.CropKeeper.take`), so the identity store's ``crops`` table holds a
thumbnail for every final tracklet even when ``adapt`` is off.

"Best" = the largest visible area: box area times the share of the box not covered by any other box of
the frame (a person behind another is a poor thumbnail) times the share inside the image (a person
cut by the frame edge is too). Only a box that beats the kept score is cut and scaled, so the cost
per frame is a few comparisons per track. Tracks not offered for ``stale_frames`` frames are forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.core.types import TrackOutput, crop_tlwh, tlwh_to_tlbr

MIN_SIDE_PX = 8


@dataclass
class _Best:
    score: float = -1.0
    frame: int = 0
    crop: np.ndarray | None = None
    last_frame: int = 0


def visible_scores(boxes_tlwh: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) visible area of each box: area x (1 - largest share covered by one other box) x share inside
    the image. boxes_tlwh: (N, 4) float."""
    boxes = np.asarray(boxes_tlwh, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros(0)
    tlbr = tlwh_to_tlbr(boxes)
    area = np.maximum(boxes[:, 2], 0) * np.maximum(boxes[:, 3], 0)
    x1 = np.maximum(tlbr[:, None, 0], tlbr[None, :, 0])
    y1 = np.maximum(tlbr[:, None, 1], tlbr[None, :, 1])
    x2 = np.minimum(tlbr[:, None, 2], tlbr[None, :, 2])
    y2 = np.minimum(tlbr[:, None, 3], tlbr[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    np.fill_diagonal(inter, 0.0)
    covered = (inter.max(axis=1) / np.maximum(area, 1e-9)) if len(boxes) > 1 else np.zeros(len(boxes))
    ix = np.clip(np.minimum(tlbr[:, 2], width) - np.maximum(tlbr[:, 0], 0), 0, None)
    iy = np.clip(np.minimum(tlbr[:, 3], height) - np.maximum(tlbr[:, 1], 0), 0, None)
    inside = ix * iy / np.maximum(area, 1e-9)
    return area * (1.0 - np.clip(covered, 0, 1)) * inside


def shrink(crop: np.ndarray, max_side: int) -> np.ndarray:
    """``crop`` scaled (INTER_AREA) so that its longer side is at most ``max_side``; a copy either way."""
    import cv2

    h, w = crop.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return crop.copy()
    return cv2.resize(crop, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class ThumbnailKeeper:
    """The best small crop of each open track, keyed by (camera, track id); see the module docstring."""

    def __init__(self, max_side: int = 128, stale_frames: int = 1000) -> None:
        if max_side < MIN_SIDE_PX:
            raise ValueError(f"max_side must be >= {MIN_SIDE_PX}")
        self.max_side = int(max_side)
        self.stale_frames = int(stale_frames)
        self._tracks: dict[tuple[str, int], _Best] = {}

    def observe(self, cam_id: str, image: np.ndarray, outputs: list[TrackOutput]) -> None:
        """Offer one frame's track boxes (BGR ``image`` (H, W, 3); ``TrackOutput.frame`` 1-based)."""
        if not outputs:
            return
        h, w = image.shape[:2]
        scores = visible_scores(np.stack([np.asarray(o.tlwh, np.float64) for o in outputs]), w, h)
        frame_no = 0
        for o, score in zip(outputs, scores):
            frame_no = max(frame_no, int(o.frame))
            best = self._tracks.setdefault((cam_id, int(o.track_id)), _Best())
            best.last_frame = int(o.frame)
            if score <= best.score:
                continue
            crop = crop_tlwh(image, o.tlwh, min_size=MIN_SIDE_PX)
            if crop is None:
                continue
            best.score, best.frame, best.crop = float(score), int(o.frame), shrink(crop, self.max_side)
        self._forget_stale(cam_id, frame_no)

    def take(self, cam_id: str, track_id: int) -> tuple[list[int], list[np.ndarray]]:
        """([frame], [BGR thumbnail]) of a finished track (empty lists when none); the track is forgotten."""
        best = self._tracks.pop((cam_id, int(track_id)), None)
        if best is None or best.crop is None:
            return [], []
        return [best.frame], [best.crop]

    def __len__(self) -> int:
        return len(self._tracks)

    def _forget_stale(self, cam_id: str, frame_no: int) -> None:
        stale = [k for k, b in self._tracks.items() if k[0] == cam_id and frame_no - b.last_frame > self.stale_frames]
        for key in stale:
            del self._tracks[key]
