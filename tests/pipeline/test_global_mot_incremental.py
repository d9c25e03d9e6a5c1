"""The incremental live mot_global rewrite (pipeline/sinks/global_mot.py) writes exactly what a full rewrite from
the store writes, at every rewrite of a run with merges and splits, while what it keeps stays bounded."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from pipeline.core.types import Tracklet
from pipeline.matching.config import MatcherConfig, ReviseConfig
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.matching.recluster import write_global_mot
from pipeline.runner.identity import IdentityAssigner
from pipeline.sinks import MOTWriter
from pipeline.sinks.global_mot import GlobalMotFile, LiveTracklet
from pipeline.store import IdentityStore

CAMS = ("c1", "c2", "c3")


def vec(deg: float) -> np.ndarray:
    return np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))], dtype=np.float32)


class _Mean:
    def aggregate(self, emb: np.ndarray) -> np.ndarray:
        v = np.asarray(emb, np.float64).mean(axis=0)
        return v / np.linalg.norm(v)


def _box(track: int, f: int) -> np.ndarray:
    return np.array([f + 0.25 * track, 2.0 * track + 0.125, 30.0 + track, 60.0 + 0.5 * f])


def _tracklet(cam: str, track: int, f0: int, f1: int, deg: float) -> Tracklet:
    """Frames f0..f1 at 1 frame/s (t = frame - 1), one box per frame, every frame embedded."""
    frames = np.arange(f0, f1 + 1)
    boxes = np.stack([_box(track, int(f)) for f in frames])
    return Tracklet(cam, track, frames, (frames - 1).astype(np.float64), boxes, np.tile(vec(deg), (len(frames), 1)))


def _full(store: IdentityStore, run_id: int, open_tracks: set, out: Path) -> dict[str, str]:
    """What the previous code wrote: every final tracklet of the run reloaded and written from scratch."""
    ts = [t for t in store.tracklets(run_id=run_id)
          if (t.cam_id, int(t.track_id)) not in open_tracks and t.global_id is not None]
    paths = write_global_mot(ts, {t.tracklet_id: t.global_id for t in ts}, out)
    return {p.stem: p.read_text() for p in paths}


def _files(mot_dir: Path) -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted(mot_dir.glob("*.txt")) if p.stat().st_size}


def _stream(seed: int = 12, n_tracks: int = 60):
    """(cam, track, first frame, last frame, angle): people 50 deg apart, each track within +-13 deg of its
    person, so some tracks of different people link for a while and are split off or merged later."""
    rng = np.random.default_rng(seed)
    tracks = []
    for i in range(n_tracks):
        cam = CAMS[i % 3]
        f0 = int(rng.integers(1, 400))
        f1 = f0 + int(rng.integers(6, 60))
        person = int(rng.integers(0, 5))
        tracks.append((cam, i + 1, f0, f1, 50.0 * person + float(rng.uniform(-13, 13))))
    return tracks


def _run(tmp_path: Path, tracks, lie_about_bound: bool = False, rewrite_every: int = 7):
    out = tmp_path / "out"
    store = IdentityStore(tmp_path / "ids.sqlite")
    run_id = store.begin_run("r")
    mot = {c: MOTWriter(out / "mot_global" / f"{c}.txt") for c in CAMS}
    cfg = MatcherConfig(threshold=0.1, auto_threshold=None, revise=ReviseConfig(window_s=25.0))
    a = IdentityAssigner(store, CrossCameraMatcher(cfg), _Mean(), run_id, "v1", global_mot=mot)
    last = max(f1 for *_, f1, _ in tracks)
    compared, live_max = 0, 0
    for step in range(1, last + 2):
        partials = [_tracklet(c, k, f0, step, deg) for c, k, f0, f1, deg in tracks
                    if f0 < step < f1 and (step - f0) % 10 == 0]
        finals = [_tracklet(c, k, f0, f1, deg) for c, k, f0, f1, deg in tracks if f1 == step]
        a.process(partials, finals)
        for cam in CAMS:  # the runner's bound: every track whose final is still to come starts at or after it
            bound = min([f0 for c, _, f0, f1, _ in tracks if c == cam and f1 > step], default=step + 1)
            a.forget_written_before(cam, bound + (1000 if lie_about_bound and 198 <= step <= 201 else 0))
        if step % rewrite_every == 0:
            a.rewrite_global_mot(force=False)
            assert _files(out / "mot_global") == _full(store, run_id, a.open_tracks, tmp_path / f"ref{step}")
            compared += 1
            live_max = max(live_max, sum(len(f.live) for f in a._gmot.values()))
    a.rewrite_global_mot()  # the end of the run
    final = _files(out / "mot_global")
    assert final == _full(store, run_id, set(), tmp_path / "ref_end")
    for w in mot.values():
        w.close()
    store.close()
    return a, final, compared, live_max


def test_incremental_rewrite_equals_the_full_rewrite_at_every_rewrite(tmp_path: Path) -> None:
    tracks = _stream()
    a, final, compared, live_max = _run(tmp_path, tracks)
    assert a.stats.merges >= 2 and a.stats.splits >= 10  # the stream does revise identities (2 and 16 here)
    assert compared > 50 and a.stats.global_mot_rewrites > 30  # (none when nothing came since the last)
    assert a.stats.global_mot_reloads == 0  # the bounds held: nothing frozen was revised
    assert sum(len(t.splitlines()) for t in final.values()) > 1500
    # bounded: only the open horizon's tracklets are kept, never the run's 60
    assert 0 < live_max < 25
    assert all(f.frozen_bytes > 0 for f in a._gmot.values())
    assert a.announced == set() and a.open_tracks == set()  # every track ended: nothing kept per track


def test_a_final_reaching_frozen_rows_reloads_the_camera_from_the_store(tmp_path: Path) -> None:
    # around step 200 the runner claims that no open track starts before bound + 1000: a final that does is
    # found out and its camera reloaded, and the file is still exactly the full rewrite
    a, _, _, _ = _run(tmp_path, _stream(), lie_about_bound=True, rewrite_every=3)
    assert a.stats.global_mot_reloads >= 1


def _ns(tid: int, cam: str, track: int, start: float, frames, boxes):
    return SimpleNamespace(tracklet_id=tid, cam_id=cam, track_id=track, start_time=start,
                           frames=np.asarray(frames), boxes_tlwh=np.asarray(boxes, dtype=np.float64))


def test_relabel_and_freeze_by_hand(tmp_path: Path) -> None:
    # camera "a": tracklet 1 (track 7, frames 1-4, id 1), tracklet 2 (track 8, frames 3-6, id 2); frames 3-4 of
    # both. After freezing below frame 3 only tracklet 2 and the part of 1 from frame 3 matter.
    b1 = [[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3], [4, 4, 4, 4]]
    b2 = [[5, 5, 5, 5], [6, 6, 6, 6], [7, 7, 7, 7], [8, 8, 8, 8]]
    f = GlobalMotFile(tmp_path / "a.txt")
    assert f.add(LiveTracklet.from_arrays(1, "a", 7, 0.0, 3.0, [1, 2, 3, 4], b1, 1))
    assert f.add(LiveTracklet.from_arrays(2, "a", 8, 2.0, 5.0, [3, 4, 5, 6], b2, 2))
    assert f.rewrite(freeze_before=3) == 8
    text = (tmp_path / "a.txt").read_text()
    assert text.splitlines()[:3] == ["1,1,1.00,1.00,1.00,1.00,1.0000,-1,-1,-1", "2,1,2.00,2.00,2.00,2.00,1.0000,-1,-1,-1",
                                     "3,1,3.00,3.00,3.00,3.00,1.0000,-1,-1,-1"]
    assert f.frozen_frame == 3 and f.frozen_bytes == len("".join(x + "\n" for x in text.splitlines()[:2]))
    # a merge of track 8 into id 1: frames 3-4 now have two boxes of id 1, the earlier-starting tracklet's wins
    assert f.relabel(8, 1) == (1, False)
    assert f.rewrite(freeze_before=5) == 4
    ref = write_global_mot([_ns(1, "a", 7, 0.0, [1, 2, 3, 4], b1), _ns(2, "a", 8, 2.0, [3, 4, 5, 6], b2)],
                           {1: 1, 2: 1}, tmp_path / "ref")
    assert (tmp_path / "a.txt").read_bytes() == ref[0].read_bytes()
    assert set(f.live) == {2}  # tracklet 1 ends below frame 5: frozen and forgotten
    assert f.relabel(7, 3) == (0, False)  # gone from memory: the caller reloads (it is not an open track)
    assert f.relabel(8, 3) == (1, True)  # tracklet 2 starts below frame 5: its frozen rows would change
