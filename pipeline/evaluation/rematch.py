"""Offline re-matching of finished tracklets with a fresh cross-camera matcher, scored by global IDF1
(used by tools/bench_pipeline.py and tools/bench_adapt.py)."""

from __future__ import annotations

from pathlib import Path


def rematch_global_idf1(items: list, frames_boxes: list, config, cams_dir: Path, res_dir: Path) -> float:
    """Global IDF1 of an offline re-matching: ``items`` (TrackletEmbedding, in the order they would
    finish online) fed one at a time to a fresh CrossCameraMatcher(``config``); ``frames_boxes[i]``
    = (frames (N,), boxes_tlwh (N, 4)) of item i. One box per (camera, frame, global id)."""
    from pipeline.evaluation.multicam import evaluate_multicam
    from pipeline.matching.matcher import CrossCameraMatcher
    from pipeline.sinks import MOTWriter

    matcher = CrossCameraMatcher(config)
    writers = {c: MOTWriter(res_dir / f"{c}.txt") for c in sorted({it.cam_id for it in items})}
    seen: dict[tuple[str, int], set[int]] = {}
    gids = [matcher.match([it])[0] for it in items]
    # with revision (matching.revise) an id may change after it was returned: score the final ones
    gids = [matcher.track_global_id(it.cam_id, it.track_id) or g for it, g in zip(items, gids)]
    for it, (frames, boxes), gid in zip(items, frames_boxes, gids):
        taken = seen.setdefault((it.cam_id, gid), set())
        rows = [(int(f), gid, b, 1.0) for f, b in zip(frames, boxes) if int(f) not in taken]
        taken.update(r[0] for r in rows)
        writers[it.cam_id].write_rows(rows)
    for w in writers.values():
        w.close()
    return round(evaluate_multicam(cams_dir, res_dir).global_.get("IDF1", 0.0), 2)
