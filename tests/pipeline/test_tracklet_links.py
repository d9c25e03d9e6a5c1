"""pipeline.evaluation.tracklet_links: the scores of the Market tracklet benchmark on hand-computed cases,
and Market tracklets (grouping, timing, matcher settings) on real files of ../shared/data/reid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.core.types import TrackletEmbedding
from pipeline.evaluation.tracklet_links import (
    link_tracklets, market_matcher_config, market_time_spans, no_link_ids, pairwise_link_scores,
    retrieval_rank1, tracklet_idf1,
)
from pipeline.matching.config import MatcherConfig
from reid_models.datasets.index import load_market_folder
from reid_models.datasets.protocols import folder_tracklets

# true / predicted id and crops per tracklet. Crops per (true, predicted): A-1 3, B-1 3, B-2 1, C-3 1 (8).
# Mapping 1->A, 2->B, 3->C matches 3 + 1 + 1 = 5 crops; 1->B leaves A and 2 unmatched (3 + 1 = 4).
TRUE = ["A", "A", "B", "B", "C"]
PRED = [1, 1, 1, 2, 3]
CROPS = [2, 1, 3, 1, 1]


def test_idf1_is_the_best_one_to_one_mapping_over_crops():
    m = tracklet_idf1(TRUE, PRED, CROPS)
    assert (m["IDTP"], m["IDFP"], m["IDFN"]) == (5.0, 3.0, 3.0)
    assert m["IDF1"] == pytest.approx(62.5) and m["IDP"] == pytest.approx(62.5) and m["IDR"] == pytest.approx(62.5)
    # unweighted: A-1 2, B-1 1, B-2 1, C-3 1 -> 1->A, 2->B, 3->C = 4 of 5
    assert tracklet_idf1(TRUE, PRED)["IDF1"] == pytest.approx(80.0)
    assert tracklet_idf1(TRUE, no_link_ids(5), CROPS)["IDF1"] == pytest.approx(100.0 * (2 + 3 + 1) / 8)
    assert tracklet_idf1(TRUE, [7] * 5, CROPS)["IDF1"] == pytest.approx(100.0 * 4 / 8)  # B's 4 crops


def test_idf1_equals_motmetrics_with_one_crop_per_frame():
    mm = pytest.importorskip("motmetrics")
    acc = mm.MOTAccumulator(auto_id=True)
    for t, p, n in zip(TRUE, PRED, CROPS):
        for _ in range(n):  # numeric object ids (motmetrics' frames are pandas tables)
            acc.update([ord(t)], [100 + p], [[0.0]])
    ref = mm.metrics.create().compute(acc, metrics=["idf1", "idtp", "idfp", "idfn"])
    ours = tracklet_idf1(TRUE, PRED, CROPS)
    assert ours["IDF1"] == pytest.approx(100.0 * float(ref["idf1"].iloc[0]))
    assert (ours["IDTP"], ours["IDFP"], ours["IDFN"]) == tuple(float(ref[k].iloc[0]) for k in ("idtp", "idfp", "idfn"))


def test_pairwise_link_scores_count_unordered_pairs():
    true = ["A", "A", "A", "B", "B"]  # true pairs: 3 (A) + 1 (B) = 4
    s = pairwise_link_scores(true, [1, 1, 2, 2, 2])  # predicted pairs: 1 + 3 = 4; both: A-A (0,1), B-B (3,4)
    assert (s["tp"], s["pred_pairs"], s["true_pairs"]) == (2, 4, 4)
    assert s["precision"] == pytest.approx(50.0) and s["recall"] == pytest.approx(50.0) and s["f1"] == pytest.approx(50.0)
    merged = pairwise_link_scores(true, [9] * 5)  # all 10 pairs predicted, the 4 true ones among them
    assert merged["precision"] == pytest.approx(40.0) and merged["recall"] == pytest.approx(100.0)
    assert merged["f1"] == pytest.approx(2 * 40.0 * 100.0 / 140.0)
    none = pairwise_link_scores(true, no_link_ids(5))
    assert none["precision"] is None and none["recall"] == 0.0 and none["f1"] == 0.0


def test_rank1_searches_other_cameras_only():
    vecs = np.array([[1.0, 0.0], [0.9, 0.1], [1.0, 0.05], [0.0, 1.0]])
    pids, cams = [1, 1, 2, 2], ["c1", "c2", "c2", "c3"]
    # q0 (c1): nearest of c2/c3 is row 2 (pid 2): miss; q1 (c2): row 0: hit;
    # q2 (c2): row 0 (pid 1): miss; q3 (c3): row 1 (cos 0.11 > 0.05): miss
    assert retrieval_rank1(vecs, pids, cams) == (pytest.approx(25.0), 4)
    # without another camera of its identity a query is skipped
    assert retrieval_rank1(vecs[:3], pids[:3], cams[:3]) == (pytest.approx(50.0), 2)


@pytest.fixture
def market_files(shared: Path, tmp_path: Path) -> Path:
    src = shared / "data" / "reid" / "Market-1501" / "bounding_box_train"
    names = ["0002_c1s1_000451_03.jpg", "0002_c1s1_000551_01.jpg", "0002_c1s1_000776_01.jpg",
             "0002_c1s1_069056_02.jpg", "0002_c1s2_000841_01.jpg", "0002_c2s1_000301_01.jpg",
             "0002_c2s1_000351_01.jpg"]
    missing = [n for n in names if not (src / n).is_file()]
    if missing:
        pytest.fail(f"{src}: Market-1501 files missing ({', '.join(missing)}); see ../shared/data/README.md")
    for n in names:
        (tmp_path / n).symlink_to(src / n)
    return tmp_path


def test_market_tracklets_group_by_identity_camera_sequence_and_time_by_frame(market_files: Path):
    tracklets = folder_tracklets(load_market_folder(market_files))
    assert [(t["pid"], t["camid"], t["seq"], t["frames"]) for t in tracklets] == [
        (2, 1, "c1s1", [451, 551, 776, 69056]), (2, 1, "c1s2", [841]), (2, 2, "c2s1", [301, 351])]
    assert [p.name for p in tracklets[0]["paths"]][:2] == ["0002_c1s1_000451_03.jpg", "0002_c1s1_000551_01.jpg"]
    assert market_time_spans(tracklets) == [("c1s1", 451 / 25, 69056 / 25), ("c1s2", 841 / 25, 841 / 25),
                                            ("c2s1", 301 / 25, 351 / 25)]


def test_market_matcher_compares_times_within_one_sequence_only():
    cfg = market_matcher_config(["c1s1", "c2s1"], MatcherConfig(auto_threshold=None, threshold=0.3))
    assert cfg.overlapping_cameras == [["c1s1", "c2s1"]] and cfg.ttl_s is None
    v = np.array([1.0, 0.0], dtype=np.float32)
    items = [TrackletEmbedding("c1s1", 0, 10.0, 20.0, v), TrackletEmbedding("c2s1", 1, 12.0, 22.0, v),
             TrackletEmbedding("c1s1", 2, 15.0, 25.0, v)]
    # c2s1 overlaps c1s1 on clocks that are not synchronised: linked; the second c1s1 tracklet is seen
    # at the same time as the first in the same sequence: another person, a new identity
    gids, cal = link_tracklets(items, cfg)
    assert gids == [1, 1, 2] and cal["threshold"] == 0.3
    # with the default (cameras not overlapping), the same times forbid the cross-sequence link
    assert link_tracklets(items, MatcherConfig(auto_threshold=None, threshold=0.3))[0] == [1, 2, 3]
