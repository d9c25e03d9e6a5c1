"""Batch re-clustering (pipeline/matching/recluster.py, ``reid-pipeline recluster``).

Hand-computed case: six tracklets in cameras ``a`` and ``b`` with 2-d unit embeddings at chosen
angles (cosine distance 1 - cos(angle difference)), fixed threshold 0.03:

=====  ====  =======  =====  ======
name   cam   time s   angle  old id
=====  ====  =======  =====  ======
T1     a     0-10     0      1
T6     b     0-10     -3     6       overlaps T1 in another (non-overlapping) camera: cannot-link
T3     a     5-15     -8     1       overlaps T1 in the same camera: cannot-link (online wrongly put it in 1)
T4     b     12-18    90     4
T2     b     20-30    10     2
T5     a     40-50    92     5
=====  ====  =======  =====  ======

Distances under 0.03: T1-T6 0.0014 (cannot-link), T6-T3 0.0038 (cannot-link: overlap a/b),
T1-T3 0.0097 (cannot-link), T4-T5 0.0006, T1-T2 0.0152, T6-T2 0.0256 (T2-T3 0.049 is above).
Average linkage merges T4+T5 (0.0006), then T1+T2 (0.0152); {T1,T2} inherits T1's cannot-links
with T6 and T3. Clusters {T1,T2} -> id 1 (tie 1:1 between ids 1 and 2: the smaller), {T6} -> 6,
{T3} -> id 1 is taken -> a new id 7 (max + 1), {T4,T5} -> 4. Identities 2 and 5 are left empty
and deleted; merge events 1<-2 (at b, t 20) and 4<-5 (at a, t 40); split event 1 -> [1, 7].
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main as cli_main
from pipeline.core.types import Tracklet, TrackletEmbedding
from pipeline.matching.config import MatcherConfig, TopologyConfig
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.matching.recluster import agglomerate, cannot_link_matrix, cosine_distances, recluster_run
from pipeline.sinks.mot import format_mot_row
from pipeline.store import IdentityStore

VERSION = "v-test"
# name: (cam, start s, end s, angle deg, old global id)
CASE = {
    "T1": ("a", 0, 10, 0.0, 1),
    "T6": ("b", 0, 10, -3.0, 6),
    "T3": ("a", 5, 15, -8.0, 1),
    "T4": ("b", 12, 18, 90.0, 4),
    "T2": ("b", 20, 30, 10.0, 2),
    "T5": ("a", 40, 50, 92.0, 5),
}
FIXED = MatcherConfig(threshold=0.03, auto_threshold=None)


def _vec(deg: float) -> np.ndarray:
    r = math.radians(deg)
    return np.array([math.cos(r), math.sin(r)], dtype=np.float32)


def _boxes(n: int, x: float) -> np.ndarray:
    return np.array([[x + i, 10.0, 20.0, 50.0] for i in range(n)], dtype=np.float64)


def _build(path: Path, case: dict = CASE) -> dict[str, int]:
    """The hand-made store (1 fps: frame = time + 1); returns name -> tracklet_id."""
    ids = {}
    with IdentityStore(path) as store:
        run = store.begin_run("hand")
        for k, (name, (cam, s, e, deg, gid)) in enumerate(case.items()):
            frames = np.arange(s + 1, e + 2, dtype=np.int64)
            tr = Tracklet(cam, k + 1, frames, (frames - 1).astype(np.float64), _boxes(len(frames), 10.0 * k),
                          np.zeros((0, 2), np.float32))
            tid = store.add_tracklet(run, tr, _vec(deg), VERSION)
            store.new_identity(_vec(deg), tr.start_time, cam, gid, VERSION)
            store.update_identity(gid, _vec(deg), tr.end_time, cam)
            store.assign(tid, gid, None)
            ids[name] = tid
        store.end_run(run, "complete")
    return ids


def _snapshot(path: Path) -> tuple:
    with IdentityStore(path, mode="read") as s:
        assign = s.db.query("SELECT tracklet_id, global_id FROM assignments ORDER BY tracklet_id")
        idents = s.db.query("SELECT global_id, prototype, first_seen, last_seen, first_cam, last_cam, model_version"
                            " FROM identities ORDER BY global_id")
        events = s.db.query("SELECT kind, global_id, cam_id, t, payload_json FROM events ORDER BY event_id")
    return assign, idents, events


def test_pure_agglomeration_refuses_cannot_link_and_merges_the_close_pair():
    names = list(CASE)
    items = [TrackletEmbedding(c, i, s, e, _vec(d)) for i, (c, s, e, d, _) in enumerate(CASE.values())]
    dist = cosine_distances(np.stack([it.vector for it in items]))
    assert dist[names.index("T1"), names.index("T2")] == pytest.approx(1 - math.cos(math.radians(10)))
    cannot = cannot_link_matrix(items, CrossCameraMatcher(FIXED))
    pairs = {tuple(sorted((names[i], names[j]))) for i, j in zip(*np.nonzero(np.triu(cannot, 1)))}
    # same camera at once (T1-T3), cameras a/b at once (T1-T6, T3-T6, T3-T4: 12-15 s)
    assert pairs == {("T1", "T3"), ("T1", "T6"), ("T3", "T6"), ("T3", "T4")}
    clusters = [[names[i] for i in c] for c in agglomerate(dist, cannot, 0.03)]
    assert sorted(map(sorted, clusters)) == [["T1", "T2"], ["T3"], ["T4", "T5"], ["T6"]]
    # without the constraints, T1 and T6 (0.0014) and then T3 would join
    free = [[names[i] for i in c] for c in agglomerate(dist, np.zeros_like(cannot), 0.03)]
    assert ["T1", "T6", "T3", "T2"] in [sorted(c, key=names.index) for c in free]
    # overlapping views: a and b may see one person at once, so T1-T6 becomes linkable
    both = MatcherConfig(threshold=0.03, auto_threshold=None, overlapping_cameras=[["a", "b"]])
    assert not cannot_link_matrix(items, CrossCameraMatcher(both))[names.index("T1"), names.index("T6")]


def test_topology_forbids_a_handover_between_unlinked_cameras():
    names = list(CASE)
    items = [TrackletEmbedding(c, i, s, e, _vec(d)) for i, (c, s, e, d, _) in enumerate(CASE.values())]
    from pipeline.matching.recluster import handover_check

    matcher = CrossCameraMatcher(FIXED.model_copy(update={"topology": TopologyConfig(links=[])}))
    ok = handover_check(items, matcher)
    assert ok is not None and not ok([names.index("T1")], [names.index("T2")])  # a -> b not linked
    assert ok([names.index("T4")], [names.index("T2")])  # b -> b: a re-entry, allowed
    dist = cosine_distances(np.stack([it.vector for it in items]))
    clusters = agglomerate(dist, cannot_link_matrix(items, matcher), 0.03, ok)
    assert all(len({items[i].cam_id for i in c}) == 1 for c in clusters)


def test_recluster_rewrites_store_events_and_mot_global_and_is_idempotent(tmp_path: Path):
    store_path = tmp_path / "s.sqlite"
    ids = _build(store_path)
    out = tmp_path / "out"
    (out / "mot_global").mkdir(parents=True)
    (out / "mot_global" / "a.txt").write_text("stale\n")
    (out / "events.jsonl").write_text('{"kind": "appear"}\n')
    with IdentityStore(store_path) as store:
        res = recluster_run(store, 1, FIXED, out_dir=out)
    assert (res.threshold, res.threshold_source) == (0.03, "fixed")
    tid = {v: k for k, v in ids.items()}
    assert {tid[t]: g for t, g in res.labels.items()} == {"T1": 1, "T2": 1, "T6": 6, "T3": 7, "T4": 4, "T5": 4}
    assert res.removed == [2, 5] and res.changed == 3  # T2 2->1, T3 1->7, T5 5->4
    assign, idents, events = _snapshot(store_path)
    assert dict(assign) == res.labels
    rows = {r[0]: r for r in idents}
    assert sorted(rows) == [1, 4, 6, 7]
    from pipeline.store.records import from_blob

    expect = (_vec(0) + _vec(10)) / np.linalg.norm(_vec(0) + _vec(10))  # mean of the members, normalised
    assert np.allclose(from_blob(rows[1][1]), expect, atol=1e-6)
    assert rows[1][2:6] == (0.0, 30.0, "a", "b") and rows[4][2:6] == (12.0, 50.0, "b", "a")
    assert rows[7][2:6] == (5.0, 15.0, "a", "a") and rows[7][6] == VERSION
    merges = [(g, c, t, json.loads(p)) for k, g, c, t, p in events if k == "merge"]
    assert [(g, c, t, p["ids"]) for g, c, t, p in merges] == [(1, "b", 20.0, [1, 2]), (4, "a", 40.0, [4, 5])]
    splits = [(g, json.loads(p)["into"]) for k, g, c, t, p in events if k == "split"]
    assert splits == [(1, [1, 7])]
    lines = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert [(e["kind"], e["global_id"], e.get("ids")) for e in lines[1:]] == [
        ("merge", 1, [1, 2]), ("merge", 4, [4, 5]), ("split", 1, [1, 7])]
    # mot_global: every stored box under its new id, sorted by (frame, id)
    for cam in ("a", "b"):
        expect_rows = []
        for k, (name, (c, s, e, _, _)) in enumerate(CASE.items()):
            if c == cam:
                boxes = _boxes(e - s + 1, 10.0 * k)
                expect_rows += [(s + 1 + i, res.labels[ids[name]], boxes[i]) for i in range(e - s + 1)]
        expect_rows.sort(key=lambda r: (r[0], r[1]))
        text = "".join(format_mot_row(f, g, b, 1.0) for f, g, b in expect_rows)
        assert (out / "mot_global" / f"{cam}.txt").read_text() == text
    before = (_snapshot(store_path), {p.name: p.read_bytes() for p in (out / "mot_global").iterdir()},
              (out / "events.jsonl").read_bytes())
    # idempotent: a second run changes nothing, anywhere
    with IdentityStore(store_path) as store:
        again = recluster_run(store, 1, FIXED, out_dir=out)
    assert again.labels == res.labels and again.changed == 0 and not again.merges and not again.splits
    after = (_snapshot(store_path), {p.name: p.read_bytes() for p in (out / "mot_global").iterdir()},
             (out / "events.jsonl").read_bytes())
    assert after == before


def test_result_does_not_depend_on_insertion_order(tmp_path: Path):
    ids_a = _build(tmp_path / "a.sqlite")
    reordered = dict(reversed(list(CASE.items())))
    ids_b = _build(tmp_path / "b.sqlite", reordered)
    with IdentityStore(tmp_path / "a.sqlite") as s:
        ra = recluster_run(s, 1, FIXED)
    with IdentityStore(tmp_path / "b.sqlite") as s:
        rb = recluster_run(s, 1, FIXED)
    assert {n: ra.labels[t] for n, t in ids_a.items()} == {n: rb.labels[t] for n, t in ids_b.items()}


def test_calibrated_threshold_is_the_cannot_link_quantile(tmp_path: Path):
    _build(tmp_path / "s.sqlite")
    cfg = MatcherConfig(auto_threshold={"min_negatives": 4, "false_match_rate": 0.25})
    d = sorted(1 - math.cos(math.radians(x)) for x in (3, 8, 5, 98))  # T1-T6, T1-T3, T3-T6, T3-T4
    with IdentityStore(tmp_path / "s.sqlite") as s:
        res = recluster_run(s, 1, cfg)
    assert res.threshold_source == "calibrated" and res.cannot_link_pairs == 4
    assert res.threshold == pytest.approx(float(np.quantile(d, 0.25)))
    with IdentityStore(tmp_path / "s.sqlite") as s:  # too few pairs: the fixed threshold
        res = recluster_run(s, 1, MatcherConfig(threshold=0.02))
    assert (res.threshold, res.threshold_source) == (0.02, "fixed")


def test_calibrated_threshold_is_the_fixed_point_over_the_gallery_size(tmp_path: Path):
    """With reference_identities 2 the rate shrinks as the clusters grow in number: first for the 6
    tracklets (0.25 * 2/6), which merges only T4 + T5 (2 deg apart), then for those 5 clusters
    (0.25 * 2/5), which merges nothing more: the threshold of the result is the rate of its own size."""
    _build(tmp_path / "s.sqlite")
    d = sorted(1 - math.cos(math.radians(x)) for x in (3, 8, 5, 98))
    cfg = MatcherConfig(auto_threshold={"min_negatives": 4, "false_match_rate": 0.25, "reference_identities": 2})
    with IdentityStore(tmp_path / "s.sqlite") as s:
        res = recluster_run(s, 1, cfg)
    assert res.threshold_source == "calibrated" and len(set(res.labels.values())) == 5
    assert res.threshold == pytest.approx(float(np.quantile(d, 0.25 * 2 / 5)))
    assert res.threshold < float(np.quantile(d, 0.25))  # stricter than the unscaled rate
    with IdentityStore(tmp_path / "s.sqlite") as s:  # idempotent: the same fixed point, nothing moves
        again = recluster_run(s, 1, cfg)
    assert again.threshold == res.threshold and again.changed == 0


def test_cli_recluster_and_its_one_line_errors(tmp_path: Path, capsys):
    store_path = tmp_path / "s.sqlite"
    _build(store_path)
    assert cli_main(["recluster", "--store", str(store_path), "--out", str(tmp_path / "o"),
                     "--threshold", "0.03", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["identities_before"] == 5 and summary["identities_after"] == 4 and summary["merges"] == 2
    assert (tmp_path / "o" / "mot_global" / "a.txt").is_file()
    assert cli_main(["recluster", "--store", str(tmp_path / "none.sqlite")]) == 2
    assert cli_main(["recluster", "--store", str(store_path), "--run-key", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no such identity store" in err[0] and "no run 'nope'" in err[1]
    assert "Traceback" not in "".join(err)


# ------------------------------------------------------------------ a real store
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pets_store import build_pets_store  # noqa: E402


@pytest.fixture(scope="module")
def pets_embedded(pets_dir: Path, tmp_path_factory) -> tuple[Path, dict[int, int], str]:
    """The PETS gt store (13 tracklets, 2 virtual cameras) embedded with the shipped default model
    from its stored crops (mean of the crops' embeddings), global ids = one per tracklet."""
    import torch

    from reid_models.encoder import AppearanceEncoder

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("recluster") / "pets.sqlite"
    truth = build_pets_store(pets_dir, path)
    enc = AppearanceEncoder.from_checkpoint(None, device="cpu")
    with IdentityStore(path) as store:
        for tid in sorted(truth):  # one identity (100 + tracklet id) per tracklet: nothing linked yet
            crops = [img for _, img in store.crops(tid)]
            v = enc.embed_crops(crops).mean(axis=0)
            v = v / np.linalg.norm(v)
            store.put_embedding(tid, enc.version, v)
            t = store.tracklets(tracklet_ids=[tid], with_arrays=False)[0]
            store.new_identity(v, t.start_time, t.cam_id, 100 + tid, enc.version)
            store.assign(tid, 100 + tid)
        with store.transaction() as c:
            c.execute("DELETE FROM identities WHERE global_id < 100")
        assert store.integrity_check() == "ok"
    return path, truth, enc.version


def test_real_pets_store_constraints_hold_and_rerun_is_identical(pets_embedded, tmp_path: Path):
    src, truth, version = pets_embedded
    path = tmp_path / "s.sqlite"
    shutil.copy(src, path)
    with IdentityStore(path) as store:
        res = recluster_run(store, 1, MatcherConfig(), threshold=0.1, out_dir=tmp_path / "out")
        tracklets = store.tracklets(run_id=1, with_arrays=False)
    assert res.model_version == version and len(res.labels) == len(truth) == 13
    by_gid: dict[int, list] = {}
    for t in tracklets:
        by_gid.setdefault(t.global_id, []).append(t)
    matcher = CrossCameraMatcher(MatcherConfig())
    for members in by_gid.values():  # no cluster holds two tracklets that coexist
        for i, a in enumerate(members):
            it = TrackletEmbedding(a.cam_id, a.track_id, a.start_time, a.end_time, np.zeros(1))
            assert not any(matcher.coexists(it, b.cam_id, b.start_time, b.end_time) for b in members[i + 1:])
    # the merges it made on real appearance: report the pairwise precision against the gt ids
    pairs = [(a, b) for m in by_gid.values() for i, a in enumerate(m) for b in m[i + 1:]]
    assert res.merges and len(pairs) >= 1
    correct = sum(truth[a.tracklet_id] == truth[b.tracklet_id] for a, b in pairs)
    assert correct / len(pairs) >= 0.5, (correct, len(pairs))
    snap = _snapshot(path)
    mot = {p.name: p.read_bytes() for p in (tmp_path / "out" / "mot_global").iterdir()}
    with IdentityStore(path) as store:
        again = recluster_run(store, 1, MatcherConfig(), threshold=0.1, out_dir=tmp_path / "out")
    assert again.changed == 0 and _snapshot(path) == snap
    assert {p.name: p.read_bytes() for p in (tmp_path / "out" / "mot_global").iterdir()} == mot


# ------------------------------------------------------------------ the batch-run hook (recluster.enabled)
def test_batch_run_with_recluster_enabled_ends_with_reclustered_ids(pets_dir: Path, shared: Path, tmp_path: Path,
                                                                     capsys):
    """A real 14-frame batch run on a 2-camera split with ``recluster: {enabled: true, threshold: 0.3}``:
    the run's summary reports the re-clustering, mot_global matches the store's final assignments,
    no identity holds two coexisting tracklets, and ``reid-pipeline recluster`` afterwards changes nothing."""
    import yaml

    from pipeline.virtual_cameras import build_virtual_cameras

    split = tmp_path / "split"
    build_virtual_cameras(pets_dir, split, layout="two-regions", gap=0.1, frame_range=(1, 14), progress=False)
    out, db = tmp_path / "out", tmp_path / "ids.sqlite"
    data = {"mode": "batch", "run_key": "rc",
            "cameras": [{"id": c, "source": str(split / c / "video.mp4")} for c in ("left", "right")],
            "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
            "tracklets": {"min_length": 3, "partial_every_s": 0.5},
            "store": {"path": str(db)}, "outputs": {"dir": str(out)},
            "recluster": {"enabled": True, "threshold": 0.3}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    assert cli_main(["run", str(tmp_path / "c.yaml"), "--no-progress"]) == 0
    summary = json.loads((out / "stage_times.json").read_text())["recluster"]
    assert summary["threshold"] == 0.3 and summary["threshold_source"] == "given" and summary["tracklets"] > 0
    with IdentityStore(db, mode="read") as s:
        tracklets = s.tracklets()
    expect: dict[str, set] = {}
    matcher = CrossCameraMatcher(MatcherConfig())
    for t in tracklets:
        expect.setdefault(t.cam_id, set()).update((int(f), t.global_id) for f in t.frames)
        it = TrackletEmbedding(t.cam_id, t.track_id, t.start_time, t.end_time, np.zeros(1))
        assert not any(matcher.coexists(it, o.cam_id, o.start_time, o.end_time) for o in tracklets
                       if o.global_id == t.global_id and o.tracklet_id != t.tracklet_id)
    for cam, keys in expect.items():
        rows = [line.split(",") for line in (out / "mot_global" / f"{cam}.txt").read_text().splitlines()]
        assert {(int(r[0]), int(r[1])) for r in rows} == keys and len(rows) == len(keys)
    capsys.readouterr()
    assert cli_main(["recluster", "--store", str(db), "--json"]) == 0  # --out: the run's stored outputs.dir
    again = json.loads(capsys.readouterr().out)
    assert again["changed_tracklets"] == 0 and again["threshold"] == 0.3 and again["mot_files"]


def test_cli_recluster_overlapping_lifts_the_cannot_link_of_a_camera_pair(tmp_path: Path, capsys):
    """``--overlapping a,b``: T1/T6 and T6/T3 (cameras a and b at once) may link now; T1/T3 (camera a at once)
    still may not. Average linkage at 0.03: T4+T5 (0.0006), T1+T6 (0.0014), then {T1,T6}+T2 at the mean of
    0.0152 and 0.0256 = 0.0204; T3 stays alone (cannot-link with T1): 3 identities instead of 4."""
    store_path = tmp_path / "s.sqlite"
    _build(store_path)
    assert cli_main(["recluster", "--store", str(store_path), "--threshold", "0.03", "--overlapping", "a,b",
                     "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["identities_after"] == 3 and summary["suspected_overlaps"] == []
    with IdentityStore(store_path, mode="read") as s:
        by_tid = dict(s.db.query("SELECT tracklet_id, global_id FROM assignments"))
    ids = {name: by_tid[k + 1] for k, name in enumerate(CASE)}
    assert ids["T1"] == ids["T6"] == ids["T2"] != ids["T3"] and ids["T4"] == ids["T5"]
    assert cli_main(["recluster", "--store", str(store_path), "--overlapping", "a"]) == 2
    assert cli_main(["recluster", "--store", str(store_path), "--overlapping", "a,z"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["reid-pipeline: error: --overlapping 'a': name two or more cameras, comma-separated",
                   "reid-pipeline: error: --overlapping 'a,z': camera 'z' is not in the run (cameras: a, b)"]
