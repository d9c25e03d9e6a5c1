"""Keep a bounded, evenly spread set of crops per open track (for the store, for adaptation).

The runner offers every confirmed track box of every frame; a track keeps at
most ``max_crops`` crops spread over its whole life: once full, every second
kept crop is dropped and only every ``2 * stride``-th offered box is cut from
then on (the decimation :class:`pipeline.tracklets.TrackletBuilder` uses for
embeddings). Memory is bounded by ``max_crops`` small copies per open track;
tracks not offered for ``stale_frames`` frames are forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.core.types import TrackOutput, crop_tlwh

MIN_CROP_PX = 8  # smaller boxes give no crop worth training on


@dataclass
class _Kept:
    frames: list[int] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    stride: int = 1
    offered: int = 0
    last_frame: int = 0


class CropKeeper:
    """Crops of open tracks, keyed by (camera, track id); see the module docstring."""

    def __init__(self, max_crops: int = 16, stale_frames: int = 1000) -> None:
        if max_crops < 2:
            raise ValueError("max_crops must be >= 2")
        self.max_crops = int(max_crops)
        self.stale_frames = int(stale_frames)
        self._tracks: dict[tuple[str, int], _Kept] = {}

    def observe(self, cam_id: str, image: np.ndarray, outputs: list[TrackOutput]) -> None:
        """Offer one frame's track boxes (``TrackOutput.frame`` is the 1-based frame number)."""
        frame_no = 0
        for o in outputs:
            frame_no = max(frame_no, int(o.frame))
            kept = self._tracks.setdefault((cam_id, int(o.track_id)), _Kept())
            kept.last_frame = int(o.frame)
            take = kept.offered % kept.stride == 0
            kept.offered += 1
            if not take:
                continue
            crop = crop_tlwh(image, o.tlwh, min_size=MIN_CROP_PX)
            crop = None if crop is None else crop.copy()  # kept past the frame
            if crop is None:
                continue
            kept.frames.append(int(o.frame))
            kept.crops.append(crop)
            if len(kept.crops) > self.max_crops:
                kept.frames, kept.crops = kept.frames[::2], kept.crops[::2]
                kept.stride *= 2
        if outputs:
            self._forget_stale(cam_id, frame_no)

    def take(self, cam_id: str, track_id: int) -> tuple[list[int], list[np.ndarray]]:
        """(frames, BGR crops) of a finished track; the track is forgotten."""
        kept = self._tracks.pop((cam_id, int(track_id)), None)
        return ([], []) if kept is None else (kept.frames, kept.crops)

    def peek(self, cam_id: str, track_id: int) -> tuple[list[int], list[np.ndarray]]:
        kept = self._tracks.get((cam_id, int(track_id)))
        return ([], []) if kept is None else (list(kept.frames), list(kept.crops))

    def __len__(self) -> int:
        return len(self._tracks)

    def _forget_stale(self, cam_id: str, frame_no: int) -> None:
        stale = [key for key, k in self._tracks.items()
                 if key[0] == cam_id and frame_no - k.last_frame > self.stale_frames]
        for key in stale:
            del self._tracks[key]
