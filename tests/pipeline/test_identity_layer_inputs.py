"""The identity layer's inputs (runs/s43/probe_ident): model versions of the gallery, aliases kept true through
splits and re-clustering, eval-mc against gt of another length, read-only stores, adapt's --json/--checkpoint.

Hand-made stores (2-d unit vectors at chosen angles, as tests/pipeline/test_recluster.py) and hand-made
multi-camera gt folders (the layout ``virtual-cameras`` writes); the read-only cases use ``chattr +i``
(root only: permission bits do not stop root)."""

from __future__ import annotations

import json
import logging
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.cli import main as cli_main
from pipeline.core.types import Tracklet
from pipeline.store import IdentityStore

ROOT = Path(__file__).resolve().parents[2]


def _vec(deg: float) -> np.ndarray:
    r = math.radians(deg)
    return np.array([math.cos(r), math.sin(r)], dtype=np.float32)


def _tracklet(cam: str, track: int, start: int, end: int) -> Tracklet:
    frames = np.arange(start + 1, end + 2, dtype=np.int64)
    boxes = np.array([[10.0 + i, 10.0, 20.0, 50.0] for i in range(len(frames))])
    return Tracklet(cam, track, frames, (frames - 1).astype(np.float64), boxes, np.zeros((0, 2), np.float32))


def _add(store, run: int, cam: str, track: int, start: int, end: int, deg: float, gid: int, version: str) -> int:
    tr = _tracklet(cam, track, start, end)
    tid = store.add_tracklet(run, tr, _vec(deg), version)
    store.new_identity(_vec(deg), tr.start_time, cam, gid, version)
    store.update_identity(gid, _vec(deg), tr.end_time, cam)
    store.assign(tid, gid, None)
    return tid


# ------------------------------------------------------------------ 1. gallery of one model version
def _mixed_store(path: Path) -> None:
    """Identities 1, 2 of model version 'old', 3 of 'new', 4 with no recorded version (an old store)."""
    with IdentityStore(path) as store:
        run = store.begin_run("mixed")
        for gid, (cam, deg, ver) in enumerate([("a", 0.0, "old"), ("b", 90.0, "old"), ("a", 45.0, "new"),
                                               ("b", 180.0, "new")], start=1):
            _add(store, run, cam, gid, 10 * gid, 10 * gid + 5, deg, gid, ver)
        with store.transaction() as c:
            c.execute("UPDATE identities SET model_version = NULL WHERE global_id = 4")
        store.end_run(run, "complete")


def _cams_config(store_path: Path, adapt: bool = False):
    from pipeline.camconfig import CamsConfig
    from pipeline.core.configio import validate

    data = yaml.safe_load((ROOT / "configs" / "cams.example.yaml").read_text())
    data["store"] = {"path": str(store_path)}
    if adapt:
        data["adapt"] = {"enabled": True}
    return validate(CamsConfig, data, "test.yaml")


def test_gallery_and_pager_leave_out_identities_of_another_model_version(tmp_path: Path, caplog) -> None:
    from pipeline.runner.components import build_identity_parts
    from pipeline.store.prototypes import PrototypeTable

    path = tmp_path / "s.sqlite"
    _mixed_store(path)
    with IdentityStore(path) as store:
        assert {g.global_id for g in store.load_gallery()} == {1, 2, 3, 4}
        assert {g.global_id for g in store.load_gallery(model_version="new")} == {3, 4}
        pager = PrototypeTable(store, 100, model_version="new")
        assert pager.count() == 2
        assert [int(g) for ids, _ in pager.iter_prototypes() for g in ids] == [3, 4]
        assert pager.prototypes([1, 2, 3])[0].tolist() == [3]
        assert [g.global_id for g in pager.load([1, 3], 4)] == [3]
        assert pager.warm(4) == 2
        with caplog.at_level(logging.WARNING, logger="pipeline.runner.components"):
            _, matcher = build_identity_parts(_cams_config(path), store, "new")
        assert set(matcher._gallery) == {3, 4}
        assert matcher.next_id == 5  # new ids never collide with the left-out ones
        warned = [r.getMessage() for r in caplog.records if "left out of the matcher's gallery" in r.getMessage()]
        assert len(warned) == 1 and "2 of 4 identities" in warned[0] and "old (2)" in warned[0]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pipeline.runner.components"):
            _, matcher = build_identity_parts(_cams_config(path), store, "old")
        assert set(matcher._gallery) == {1, 2, 4}
        # an adapting run swaps the store's deployed version in at start: its gallery is of that version
        store.add_model_version("new", weights=b"not used here", deployed=True)
        _, matcher = build_identity_parts(_cams_config(path, adapt=True), store, "old")
        assert set(matcher._gallery) == {3, 4}


def test_a_fresh_store_of_one_version_loses_nothing_and_warns_nothing(tmp_path: Path, caplog) -> None:
    from pipeline.runner.components import build_identity_parts

    path = tmp_path / "s.sqlite"
    with IdentityStore(path) as store:
        run = store.begin_run("one")
        for gid in (1, 2, 3):
            _add(store, run, "a", gid, 10 * gid, 10 * gid + 5, 30.0 * gid, gid, "v")
        with caplog.at_level(logging.WARNING, logger="pipeline.runner.components"):
            _, matcher = build_identity_parts(_cams_config(path), store, "v")
        assert set(matcher._gallery) == {1, 2, 3}
        assert not [r for r in caplog.records if "left out" in r.getMessage()]


def test_hot_swap_tags_the_refreshed_prototypes_with_the_new_version(tmp_path: Path) -> None:
    from pipeline.adaptation.live import refresh_prototypes
    from pipeline.matching.config import MatcherConfig
    from pipeline.matching.matcher import CrossCameraMatcher
    from pipeline.store.prototypes import PrototypeTable

    path = tmp_path / "s.sqlite"
    with IdentityStore(path) as store:
        run = store.begin_run("swap")
        tids = [_add(store, run, "a", g, 10 * g, 10 * g + 5, 40.0 * g, g, "v1") for g in (1, 2)]
        for tid, deg in zip(tids, (100.0, 200.0)):  # the adaptation round re-embedded them with v2
            store.put_embedding(tid, "v2", _vec(deg))
        pager = PrototypeTable(store, 10, model_version="v1")
        matcher = CrossCameraMatcher(MatcherConfig(), store.load_gallery(model_version="v1"), next_id=3, pager=pager)
        refresh_prototypes(store, matcher, "v2")
        assert {r.global_id: r.model_version for r in store.identities()} == {1: "v2", 2: "v2"}
        assert pager.model_version == "v2" and pager.count() == 2
        assert {g.global_id for g in store.load_gallery(model_version="v2")} == {1, 2}


# ------------------------------------------------------------------ 2. aliases through splits
def _merged_store(path: Path) -> dict[str, int]:
    """Tracklets A (id 1), B (id 2), C (id 3) of one person-looking cluster, far apart in time; B and C were
    merged into 1 by the online revision (aliases 2 -> 1, 3 -> 1). Returns name -> tracklet id."""
    with IdentityStore(path) as store:
        run = store.begin_run("merged")
        ids = {n: _add(store, run, "a", k + 1, 20 * k, 20 * k + 5, deg, k + 1, "v")
               for k, (n, deg) in enumerate([("A", 0.0), ("B", 60.0), ("C", 120.0)])}
        for name, gid in (("B", 2), ("C", 3)):
            store.assign(ids[name], 1)
            store.record_change(run, "merge", 1, 1, gid, "a", 20.0 * (gid - 1), [ids[name]])
        with store.transaction() as c:
            c.execute("DELETE FROM identities WHERE global_id IN (2, 3)")
        store.end_run(run, "complete")
    return ids


def test_recluster_split_repoints_aliases_reuses_freed_ids_and_lists_moved_tracklets(tmp_path: Path) -> None:
    from pipeline.matching.config import MatcherConfig
    from pipeline.matching.recluster import recluster_run
    from pipeline.query import identity_report

    path = tmp_path / "s.sqlite"
    ids = _merged_store(path)
    with IdentityStore(path) as store:
        assert identity_report(store, 2)["global_id"] == 1  # before: 2 was absorbed into 1
        res = recluster_run(store, 1, MatcherConfig(threshold=0.01, auto_threshold=None))
        # every tracklet alone again: the absorbed ones take back the ids they appeared with
        assert res.labels == {ids["A"]: 1, ids["B"]: 2, ids["C"]: 3}
        assert store.db.query("SELECT COUNT(*) FROM identity_aliases")[0][0] == 0
        for gid, name in ((2, "B"), (3, "C")):
            rep = identity_report(store, gid)
            assert rep["global_id"] == gid and rep["resolved_from"] is None
            assert [t["tracklet_id"] for t in rep["tracklets"]] == [ids[name]]
        split = [c for c in store.identity_changes() if c["kind"] == "split"]
        assert len(split) == 1 and sorted(split[0]["tracklets"]) == sorted([ids["B"], ids["C"]])
        assert sorted(res.splits[0]["payload"]["tracklet_ids"]) == sorted([ids["B"], ids["C"]])


def test_recluster_split_to_a_fresh_id_repoints_the_alias(tmp_path: Path) -> None:
    """Id 2's row still exists (another run's identity), so B cannot take it back: the alias follows B."""
    from pipeline.matching.config import MatcherConfig
    from pipeline.matching.recluster import recluster_run
    from pipeline.query import identity_report

    path = tmp_path / "s.sqlite"
    ids = _merged_store(path)
    with IdentityStore(path) as store:
        other = store.begin_run("other")
        _add(store, other, "b", 9, 500, 505, 270.0, 2, "v")
        res = recluster_run(store, 1, MatcherConfig(threshold=0.01, auto_threshold=None))
        new_b = res.labels[ids["B"]]
        assert new_b not in (1, 2)
        rep = identity_report(store, 2)  # id 2 exists again (other run): no alias is followed
        assert rep["global_id"] == 2 and rep["resolved_from"] is None
        assert store.alias_of(2) is None  # dropped: the id holds tracklets again


def test_online_split_repoints_or_drops_aliases(tmp_path: Path) -> None:
    from pipeline.query import identity_report

    path = tmp_path / "s.sqlite"
    ids = _merged_store(path)
    with IdentityStore(path) as store:
        # B leaves identity 1 for a fresh id 7: the alias of 2 (which stood for B) follows it
        store.new_identity(_vec(60.0), 20.0, "a", 7, "v")
        store.assign(ids["B"], 7)
        store.record_change(1, "split", 1, 7, 1, "a", 20.0, [ids["B"]])
        assert store.alias_of(2)["current_id"] == 7 and store.alias_of(3)["current_id"] == 1
        assert identity_report(store, 2)["global_id"] == 7
        # C takes back its first id 3: that alias is dropped
        store.new_identity(_vec(120.0), 40.0, "a", 3, "v")
        store.assign(ids["C"], 3)
        store.record_change(1, "split", 1, 3, 1, "a", 40.0, [ids["C"]])
        assert store.alias_of(3) is None
        assert identity_report(store, 3)["tracklets"][0]["tracklet_id"] == ids["C"]


# ------------------------------------------------------------------ 3. eval-mc against gt of another length
def _gt(root: Path, length: int = 20) -> Path:
    """Two cameras, one person each (gt ids 1 -> global 1, 1 -> global 2), frames 1..length."""
    for cam in ("left", "right"):
        (root / cam / "gt").mkdir(parents=True)
        (root / cam / "seqinfo.ini").write_text(
            f"[Sequence]\nname={cam}\nimDir=img1\nframeRate=7\nseqLength={length}\nimWidth=300\nimHeight=300\n"
            "imExt=.jpg\n")
        rows = [f"{f},1,10,10,30,80,1,1,1\n" for f in range(1, length + 1)]
        (root / cam / "gt" / "gt.txt").write_text("".join(rows))
    (root / "identities.json").write_text(json.dumps({"cameras": {"left": {"1": 1}, "right": {"1": 2}}}))
    return root


def _results(root: Path, last: int) -> Path:
    root.mkdir(parents=True)
    for cam, gid in (("left", 1), ("right", 2)):
        (root / f"{cam}.txt").write_text("".join(f"{f},{gid},10,10,30,80,1,-1,-1,-1\n" for f in range(1, last + 1)))
    return root


def test_eval_mc_refuses_rows_past_seqlength_and_bad_cams(tmp_path: Path, capsys) -> None:
    gt = _gt(tmp_path / "gt")
    assert cli_main(["eval-mc", "--gt", str(gt), "--results", str(_results(tmp_path / "ok", 20)), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["global"]["IDF1"] == pytest.approx(100.0)
    longer = _results(tmp_path / "long", 30)
    for extra in ([], ["--cams", "left", "left"], ["--cams"]):
        assert cli_main(["eval-mc", "--gt", str(gt), "--results", str(longer if not extra else tmp_path / "ok"),
                         *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "Traceback" not in "".join(err)
    assert "beyond seqLength 20" in err[0] and "left.txt" in err[0]
    assert "left named more than once" in err[1]
    assert "no camera named" in err[2]


# ------------------------------------------------------------------ 4. query --box
def test_query_box_with_nan_is_one_line(tmp_path: Path, pets_dir: Path, capsys) -> None:
    path = tmp_path / "s.sqlite"
    _mixed_store(path)
    image = pets_dir / "img1" / "000001.jpg"
    assert cli_main(["query", "--store", str(path), "--image", str(image), "--box", "10,10,nan,100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--box 10,10,nan,100" in err[0] and "finite" in err[0]


# ------------------------------------------------------------------ 5. read-only stores
def _chattr(flag: str, *paths: Path) -> bool:
    try:
        return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.fixture
def immutable(tmp_path: Path):
    """chattr +i on paths (undone at teardown); skips where it cannot be set (not root, no chattr)."""
    done: list[Path] = []

    def make(*paths: Path) -> None:
        if not _chattr("+i", *paths):
            pytest.skip("chattr +i is not available here (needs root)")
        done.extend(paths)

    yield make
    if done:
        _chattr("-i", *done)


def test_read_only_folder_store_can_be_queried(tmp_path: Path, immutable, capsys) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    _mixed_store(folder / "s.sqlite")
    for extra in folder.glob("s.sqlite-*"):
        extra.unlink()
    immutable(folder)
    assert cli_main(["query", "--store", str(folder / "s.sqlite"), "--list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["identities"] == 4
    assert not list(folder.glob("s.sqlite-*"))  # nothing written beside it


def test_recluster_and_adapt_on_a_read_only_file_are_one_line(tmp_path: Path, immutable, capsys) -> None:
    path = tmp_path / "s.sqlite"
    _mixed_store(path)
    immutable(path)
    assert cli_main(["recluster", "--store", str(path), "--out", str(tmp_path / "o")]) == 2
    assert cli_main(["adapt", "--store", str(path), "--max-steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("s.sqlite: cannot write the identity store" in e for e in err)


# ------------------------------------------------------------------ 6. adapt --json / --checkpoint
def test_adapt_checks_json_path_and_checkpoint_before_the_round(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.sqlite"
    _mixed_store(path)
    with IdentityStore(path) as store:
        store.add_model_version("new", weights=b"x", deployed=True)
    assert cli_main(["adapt", "--store", str(path), "--max-steps", "1", "--json", str(tmp_path)]) == 2
    assert cli_main(["adapt", "--store", str(path), "--max-steps", "1", "--checkpoint", str(tmp_path / "no.pt")]) == 2
    assert cli_main(["adapt", "--store", str(path), "--max-steps", "1", "--checkpoint", "imagenet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert f"{tmp_path}: is a folder" in err[0]
    assert "no.pt: no such checkpoint" in err[1]
    assert "--checkpoint imagenet: ImageNet features are not a re-id model to adapt" in err[2]
    with IdentityStore(path, mode="read") as store:
        assert [v.version for v in store.model_versions()] == ["new"]


# ------------------------------------------------------------------ 7. lower
def test_recluster_out_to_a_fresh_folder_writes_events_jsonl(tmp_path: Path) -> None:
    from pipeline.matching.config import MatcherConfig
    from pipeline.matching.recluster import recluster_run

    path = tmp_path / "s.sqlite"
    ids = _merged_store(path)
    with IdentityStore(path) as store:
        recluster_run(store, 1, MatcherConfig(threshold=0.01, auto_threshold=None), out_dir=tmp_path / "new")
    rows = [json.loads(line) for line in (tmp_path / "new" / "events.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["split"]
    assert sorted(rows[0]["tracklet_ids"]) == sorted([ids["B"], ids["C"]])


def test_eval_mc_camera_without_results_has_undefined_precision(tmp_path: Path) -> None:
    from pipeline.evaluation.multicam import evaluate_multicam

    gt = _gt(tmp_path / "gt")
    res = _results(tmp_path / "res", 20)
    (res / "right.txt").write_text("")
    report = evaluate_multicam(gt, res)
    right, left = report.per_camera["right"], report.per_camera["left"]
    assert right["IDP"] is None and right["Prcn"] is None and right["MOTP"] is None
    assert right["IDF1"] == 0.0 and right["MOTA"] == 0.0
    assert left["IDP"] == pytest.approx(100.0)
    assert "-" in report.table().splitlines()[2]
