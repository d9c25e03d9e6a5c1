"""Adaptation worker, guardrail, versions, hot swap, crop keeping and the adapt command.

The store is built from real PETS09-S2L1 frames and gt boxes (tests/pipeline/pets_store.py:
13 tracklets in two virtual cameras, 8 crops each); the models are the shipped default and
its fine-tuned copies. Training runs a handful of steps on CPU.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.adaptation.crops import CropKeeper
from pipeline.adaptation.settings import AdaptSettings
from pipeline.adaptation.worker import adapt_once, load_base_model, rollback, _judge_and_deploy
from pipeline.core.errors import ModelError
from pipeline.store import IdentityStore
from pipeline.core.types import TrackOutput

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pets_store import build_pets_store  # noqa: E402

FAST = dict(device="cpu", max_steps=4, min_tracklets_per_camera=2, budget_s=120)


@pytest.fixture(scope="module")
def pets_store(pets_dir: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("adapt") / "pets.sqlite"
    build_pets_store(pets_dir, path)
    return path


@pytest.fixture
def store(pets_store: Path, tmp_path: Path):
    torch.set_num_threads(1)
    dst = tmp_path / "store.sqlite"
    shutil.copy(pets_store, dst)
    with IdentityStore(dst) as s:
        yield s


def _versions(store) -> dict:
    return {v.version: v for v in store.model_versions()}


def test_round_trains_versions_deploys_and_reembeds(store):
    rep = adapt_once(store, AdaptSettings(min_gain=-1.0, **FAST))  # min_gain -1: any finite AUC deploys
    assert rep.tracklets == 13 and rep.cameras == {"left": 4, "right": 9}
    assert rep.holdout_tracklets >= 2 and rep.train_tracklets + rep.holdout_tracklets == 13
    assert rep.steps == 4 and len(rep.losses) == 4 and rep.stopped_by == "max_steps"
    assert len(rep.positives) >= 1 and all(p["negatives"] >= 1 for p in rep.positives)
    assert 0.0 <= rep.holdout_auc_base <= 1.0 and 0.0 <= rep.holdout_auc_candidate <= 1.0
    from reid_models.adaptation.weights import model_from_weights
    from reid_models.checkpoint import state_hash

    versions = _versions(store)
    assert rep.deployed and store.deployed_version() == rep.candidate_version != rep.base_version
    assert rep.candidate_version == state_hash(rep.candidate_state)  # version = content hash
    assert versions[rep.candidate_version].parent == rep.base_version
    assert versions[rep.candidate_version].metrics["holdout_auc"] == pytest.approx(rep.holdout_auc_candidate)
    stored = model_from_weights(store.model_weights(rep.candidate_version)).state_dict()
    assert all(torch.equal(stored[k], rep.candidate_state[k]) for k in stored)
    # the gallery is re-embedded for the new version, and the new embeddings differ from the base ones
    assert store.tracklets_missing_version(rep.candidate_version) == [] and rep.reembedded == 13
    assert rep.reembed_s > 0 and rep.reembed_store_s > 0  # timed, and in the version's metrics
    assert versions[rep.candidate_version].metrics["reembed_s"] == rep.reembed_s
    ids, new = store.aggregated_embeddings(rep.candidate_version)
    ids_b, old = store.aggregated_embeddings(rep.base_version)
    assert list(ids) == list(ids_b) and not np.allclose(new, old, atol=1e-6)
    # rollback deploys the parent; the base has no parent
    assert rollback(store) == (rep.candidate_version, rep.base_version)
    assert store.deployed_version() == rep.base_version
    with pytest.raises(ModelError, match="no parent"):
        rollback(store)


@pytest.mark.parametrize("positives", ["tracklets", "both"])
def test_round_on_tracklet_positives(store, positives: str):
    """``positives: tracklets`` trains on each tracklet's own crops against the tracklets seen with it:
    one (t, t) pair per training tracklet that has a co-occurring tracklet, no mined cross-camera pair;
    ``both`` adds the presumed pairs of the default round."""
    presumed = adapt_once(store, AdaptSettings(min_gain=2.0, **FAST))  # min_gain 2: never deployed
    rep = adapt_once(store, AdaptSettings(positives=positives, min_gain=2.0, **FAST))
    selfs = [p for p in rep.positives if p["kind"] == "tracklet"]
    mined = [p for p in rep.positives if p["kind"] == "presumed"]
    assert all(p["tracklet_a"] == p["tracklet_b"] and p["distance"] == 0 for p in selfs)
    assert len(selfs) == rep.train_tracklets and sum(p["negatives"] > 0 for p in selfs) >= 1
    assert all(p["tracklet_a"] != p["tracklet_b"] for p in mined)
    assert [(p["tracklet_a"], p["tracklet_b"]) for p in mined] == (
        [(p["tracklet_a"], p["tracklet_b"]) for p in presumed.positives] if positives == "both" else [])
    assert rep.steps == 4 and rep.candidate_version not in (None, presumed.candidate_version)
    assert not rep.deployed and store.deployed_version() == rep.base_version


def test_round_with_target_batchnorm_statistics(store):
    """``bn_stats: target``: the round starts from the base with BatchNorm statistics re-estimated on its
    training crops (AdaBN), so the candidate's running statistics are those (fine-tuning keeps BN frozen),
    while the guardrail still compares against the unchanged base."""
    from pipeline.adaptation.data import load_crop_sets, split_holdout
    from reid_models.adaptation.bn import reestimate_batchnorm
    from reid_models.adaptation.trainer import tensors_from_crops

    settings = AdaptSettings(bn_stats="target", min_gain=2.0, **FAST)
    rep = adapt_once(store, settings)
    version, base = load_base_model(store)
    assert version == rep.base_version and rep.bn_s > 0 and rep.steps == 4 and not rep.deployed
    sets = load_crop_sets(store)
    images = [tensors_from_crops(s.crops, base.input_size, base.pixel_mean, base.pixel_std) for s in sets]
    train, _ = split_holdout(sets, settings.holdout_fraction, settings.seed)
    expected = reestimate_batchnorm(base, [images[i] for i in train], seed=settings.seed).state_dict()
    stats = [k for k in expected if k.endswith("running_mean") or k.endswith("running_var")]
    assert stats and all(torch.allclose(rep.candidate_state[k], expected[k], atol=1e-6) for k in stats)
    assert not all(torch.allclose(base.state_dict()[k], expected[k]) for k in stats)


def test_guardrail_refuses_a_worse_candidate(store):
    """A candidate whose last layer is zeroed embeds every crop alike (AUC 0.5): refused, not stored."""
    from pipeline.adaptation.data import load_crop_sets, split_holdout
    from pipeline.adaptation.worker import AdaptReport
    from reid_models.adaptation.holdout import continuity_auc
    from reid_models.adaptation.trainer import embed_sets, tensors_from_crops
    from pipeline.adaptation.data import half_tracklets

    settings = AdaptSettings(**FAST)
    version, base = load_base_model(store)
    sets = load_crop_sets(store)
    images = [tensors_from_crops(s.crops, base.input_size, base.pixel_mean, base.pixel_std) for s in sets]
    _, hold = split_holdout(sets, settings.holdout_fraction, settings.seed)
    rep = AdaptReport(base_version=version, steps=1)
    rep.holdout_auc_base = continuity_auc(half_tracklets(sets, hold, embed_sets(base, images)))
    bad = {k: v.clone() for k, v in base.state_dict().items()}
    bad["features.18.0.weight"].zero_()  # the last conv: every crop embeds alike (any MobileNet default)
    _judge_and_deploy(store, rep, base, bad, sets, images, hold, settings, "cpu", 1)
    assert rep.holdout_auc_base > 0.9 and rep.holdout_auc_candidate == pytest.approx(0.5)
    assert not rep.deployed and "refused" in rep.reason
    assert store.deployed_version() == version
    row = _versions(store)[rep.candidate_version]
    assert not row.deployed and not row.has_blob and row.metrics["deployed"] is False
    assert rep.candidate_version not in store.embedding_versions()


def test_live_adaptation_hot_swaps_encoder_and_gallery(store):
    from pipeline.adaptation.live import LiveAdaptation
    from pipeline.matching.matcher import CrossCameraMatcher
    from pipeline.matching.config import MatcherConfig
    from pipeline.runner.identity import IdentityAssigner
    from reid_models.aggregation import build_aggregator
    from reid_models.encoder import AppearanceEncoder

    encoder = AppearanceEncoder.from_checkpoint(device="cpu")
    matcher = CrossCameraMatcher(MatcherConfig(), store.load_gallery())
    keeper = CropKeeper(AdaptSettings().crops_per_tracklet)
    assigner = IdentityAssigner(store, matcher, build_aggregator("mean"), store.begin_run("live"), encoder.version,
                                crops=keeper)
    live = LiveAdaptation(AdaptSettings(enabled=True, **FAST), store, encoder, matcher, assigner, keeper)
    live.start()  # registers the running encoder as the deployed version
    base = encoder.version
    assert store.deployed_version() == base and not live.poll(force=True)
    crop = store.crops(1)[0][1]
    before = encoder.embed_crops([crop])
    rep = adapt_once(store, AdaptSettings(min_gain=-1.0, **FAST))
    assert rep.base_version == base and rep.deployed
    assert live.poll(force=True)
    assert encoder.version == rep.candidate_version == assigner.model_version
    after = encoder.embed_crops([crop])
    assert not np.allclose(before, after, atol=1e-6)
    # prototypes of the in-memory gallery = mean of the members' new-version embeddings
    ident = matcher.identity(9)
    members = [t.embeddings[encoder.version] for t in store.tracklets(global_id=9, model_version=encoder.version)]
    mean = np.mean(members, axis=0)
    assert np.allclose(ident.prototype, mean / np.linalg.norm(mean), atol=1e-5)
    # the matcher's label-free threshold calibration is re-sampled after a swap (new distance scale)
    from pipeline.core.types import TrackletEmbedding

    t0 = max(g.last_seen for g in matcher.gallery)
    matcher.match([TrackletEmbedding("zz", 1, t0, t0 + 10, after[0])])
    matcher.match([TrackletEmbedding("zz", 2, t0, t0 + 10, -after[0])])  # same camera, same time
    assert matcher.calibration["negatives"] >= 1
    rollback(store)
    assert live.poll(force=True) and encoder.version == base
    assert np.allclose(encoder.embed_crops([crop]), before, atol=1e-6)
    assert matcher.calibration["negatives"] == 0


def test_camera_statistics_round_deploys_them_and_the_runner_swaps_them_in(store):
    """``bn_stats: camera``: the candidate carries one set of BatchNorm statistics per camera, in its version
    hash and stored weights; the re-embedded tracklets use their own camera's statistics; a runner's encoder
    that swaps to the version embeds each camera's crops with that camera's statistics."""
    from pipeline.adaptation.data import load_crop_sets
    from pipeline.adaptation.live import swap_to
    from reid_models.adaptation.bn import statistics_items, with_statistics
    from reid_models.adaptation.trainer import embed_sets, mean_vector, tensors_from_crops
    from reid_models.adaptation.weights import model_from_weights
    from reid_models.checkpoint import state_hash
    from reid_models.encoder import AppearanceEncoder

    rep = adapt_once(store, AdaptSettings(bn_stats="camera", min_gain=-1.0, **FAST))
    assert rep.deployed and sorted(rep.candidate_camera_bn) == ["left", "right"]
    assert rep.candidate_version == state_hash({**rep.candidate_state, **statistics_items(rep.candidate_camera_bn)})
    stored = model_from_weights(store.model_weights(rep.candidate_version))
    assert sorted(stored.camera_bn) == ["left", "right"]
    # a re-embedded tracklet = the mean of its crops embedded with its camera's statistics
    sets = load_crop_sets(store)
    s = next(x for x in sets if x.cam_id == "right")
    t = tensors_from_crops(s.crops, stored.input_size, stored.pixel_mean, stored.pixel_std)
    want = mean_vector(embed_sets(with_statistics(stored, stored.camera_bn["right"]), [t])[0])
    got = next(tr for tr in store.tracklets(model_version=rep.candidate_version) if tr.tracklet_id == s.tracklet_id)
    np.testing.assert_allclose(got.embeddings[rep.candidate_version], want, atol=1e-5)
    # the runner side: swap_to loads weights and statistics; crops of "right" use right's statistics
    encoder = AppearanceEncoder.from_checkpoint(device="cpu")
    swap_to(store, encoder, rep.candidate_version)
    assert encoder.version == rep.candidate_version and encoder.camera_ids == ["left", "right"]
    np.testing.assert_allclose(mean_vector(encoder.embed_crops(s.crops, cam_id="right")), want, atol=1e-5)


def test_readers_of_an_adapted_store_use_its_deployed_version(store, tmp_path: Path, capsys):
    """``query --image`` and ``serve``'s photo search embed the probe with the store's deployed version (with
    its per-camera statistics) unless a checkpoint is named: tracklets recorded after a hot swap carry only
    that version's embeddings."""
    import cv2

    from pipeline.cli import main
    from pipeline.commands.serve import encoder_factory
    from reid_models.encoder import DEFAULT_CHECKPOINT

    rep = adapt_once(store, AdaptSettings(bn_stats="camera", min_gain=-1.0, **FAST))
    assert rep.deployed and store.deployed_version() == rep.candidate_version
    probe = tmp_path / "probe.jpg"
    cv2.imwrite(str(probe), store.crops(1)[0][1])
    path = str(store.path)
    assert main(["query", "--store", path, "--image", str(probe), "--json", "--top", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_version"] == rep.candidate_version and out["tracklets"]
    enc = encoder_factory(None, "default", store.path)()
    assert enc.version == rep.candidate_version and enc.camera_ids == ["left", "right"]
    # a named checkpoint is used as given
    assert encoder_factory(None, str(DEFAULT_CHECKPOINT), store.path)().version == rep.base_version
    assert main(["query", "--store", path, "--image", str(probe), "--json", "--checkpoint",
                 str(DEFAULT_CHECKPOINT)]) == 0
    assert json.loads(capsys.readouterr().out)["model_version"] == rep.base_version


def test_crop_keeper_keeps_an_even_bounded_spread():
    image = np.arange(100 * 80 * 3, dtype=np.uint8).reshape(100, 80, 3)
    keeper = CropKeeper(max_crops=4, stale_frames=5)
    box = np.array([10.0, 20.0, 30.0, 40.0])
    for f in range(1, 11):
        keeper.observe("a", image, [TrackOutput("a", 7, f, box, 1.0)])
    frames, crops = keeper.peek("a", 7)
    assert frames == [1, 5, 9]  # 1..5 -> halve to 1,3,5 (stride 2) -> +7,9 -> halve to 1,5,9 (stride 4)
    assert all(c.shape == (40, 30, 3) and np.array_equal(c, image[20:60, 10:40]) for c in crops)
    keeper.observe("a", image, [TrackOutput("a", 8, 17, box, 1.0)])  # track 7 unseen for 7 > 5 frames
    assert keeper.take("a", 7) == ([], []) and len(keeper) == 1
    assert keeper.take("a", 8)[0] == [17] and len(keeper) == 0


@pytest.mark.parametrize("body, message", [
    ("adapt: {enabled: true, crops_per_tracklet: 1}", r"cams.yaml: adapt.crops_per_tracklet: Input should be greater"),
    ("adapt: {background: true}", r"adapt: Value error, background adaptation needs enabled: true"),
    ("adapt: {enabled: true, bogus: 1}", r"adapt.bogus: unknown key"),
    ("adapt: {enabled: true, bn_stats: cameras}", r"adapt.bn_stats: Input should be 'source', 'target' or 'camera'"),
    ("adapt: {enabled: true, mining_distance: jaccard}", r"adapt.mining_distance: Input should be 'cosine' or 'k_reciprocal'"),
    ("adapt: {enabled: true, k1: 0}", r"adapt.k1: Input should be greater than or equal to 1"),
    ("encoder: {backend: onnx}\nadapt: {enabled: true, bn_stats: camera}",
     r"adapt.bn_stats: camera needs encoder.backend: torch \(the onnx backend"),
])
def test_adapt_settings_are_validated_with_key_paths(tmp_path: Path, body: str, message: str):
    from pipeline.camconfig import load_cams_config
    from pipeline.core.errors import ConfigError

    cfg = tmp_path / "cams.yaml"
    cfg.write_text("cameras: [{id: a, source: '0'}]\n" + body + "\n")
    with pytest.raises(ConfigError, match=message):
        load_cams_config(cfg)


def test_background_adaptation_in_batch_mode_is_refused_in_one_line(tmp_path: Path, capsys):
    """A batch run keeps the store's write transaction open between checkpoints: a background worker could
    never write (it died on 'database is locked'), so the combination is refused, also via run --mode."""
    from pipeline.camconfig import load_cams_config
    from pipeline.cli import main
    from pipeline.core.errors import ConfigError

    cfg = tmp_path / "cams.yaml"
    cfg.write_text("mode: batch\ncameras: [{id: a, source: '0'}]\nadapt: {enabled: true, background: true}\n")
    with pytest.raises(ConfigError, match=r"adapt.background needs mode: live"):
        load_cams_config(cfg)
    cfg.write_text("mode: live\ncameras: [{id: a, source: '0'}]\nadapt: {enabled: true, background: true}\n")
    assert load_cams_config(cfg).mode == "live"
    assert main(["run", str(cfg), "--mode", "batch", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--mode batch: adapt.background needs mode: live" in err and "\n" not in err


def test_adapt_command_errors_are_one_line(tmp_path: Path, pets_store: Path, capsys):
    from pipeline.cli import main

    assert main(["adapt", "--store", str(tmp_path / "missing.sqlite")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("missing.sqlite: no such identity store") and "\n" not in err
    empty = tmp_path / "empty.sqlite"
    IdentityStore(empty).close()
    assert main(["adapt", "--store", str(empty)]) == 2
    assert "no stored crops" in capsys.readouterr().err
    one_cam = tmp_path / "one_cam.sqlite"
    shutil.copy(pets_store, one_cam)
    with IdentityStore(one_cam) as s:
        right = [t.tracklet_id for t in s.tracklets(cam_id="right", with_arrays=False)]
        with s.transaction() as c:
            c.execute(f"DELETE FROM crops WHERE tracklet_id IN ({','.join(map(str, right))})")
    assert main(["adapt", "--store", str(one_cam), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "adaptation needs >= 2 cameras with >= 3 tracklets with >= 2 crops each (have left: 4)" in err
    assert "\n" not in err
    thumbs = tmp_path / "thumbnails_only.sqlite"  # a run without adapt keeps one thumbnail per tracklet
    shutil.copy(pets_store, thumbs)
    with IdentityStore(thumbs) as s, s.transaction() as c:
        c.execute("DELETE FROM crops WHERE frame NOT IN (SELECT MIN(frame) FROM crops c2"
                  " WHERE c2.tracklet_id = crops.tracklet_id)")
    assert main(["adapt", "--store", str(thumbs), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "(have none); " in err and "tracklets have fewer than 2 crops (a run without adapt stores one thumbnail" in err
    assert "\n" not in err


def test_background_worker_process_deploys_and_runner_side_swaps(store):
    """adapt.background: a spawned, niced process trains on the store; poll() hot-swaps its version."""
    import time

    from pipeline.adaptation.live import LiveAdaptation
    from pipeline.matching.matcher import CrossCameraMatcher
    from pipeline.matching.config import MatcherConfig
    from pipeline.runner.identity import IdentityAssigner
    from reid_models.aggregation import build_aggregator
    from reid_models.encoder import AppearanceEncoder

    encoder = AppearanceEncoder.from_checkpoint(device="cpu")
    matcher = CrossCameraMatcher(MatcherConfig(), store.load_gallery())
    keeper = CropKeeper(AdaptSettings().crops_per_tracklet)
    assigner = IdentityAssigner(store, matcher, build_aggregator("mean"), store.begin_run("live"), encoder.version,
                                crops=keeper)
    settings = AdaptSettings(enabled=True, background=True, interval_s=0.2, poll_s=0.1, min_new_tracklets=1,
                             min_gain=-1.0, nice=0, **dict(FAST, max_steps=2))
    live = LiveAdaptation(settings, store, encoder, matcher, assigner, keeper)
    base = encoder.version
    live.start()
    try:
        deadline = time.monotonic() + 120  # a generous timeout, not a speed target
        while not live.poll() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        live.stop()
    assert encoder.version != base and encoder.version == store.deployed_version()
    assert _versions(store)[encoder.version].parent == base
    summary = live.summary()
    assert summary["background_rounds"] >= 1 and summary["swaps"][0]["from"] == base
    swap = summary["swaps"][0]  # the runner-side swap is timed: weights load + prototype refresh
    assert swap["load_s"] > 0 and swap["swap_s"] == pytest.approx(swap["load_s"] + swap["prototypes_s"], abs=2e-4)


def _crops_run(pets_dir: Path, shared: Path, tmp_path: Path, n_frames: int, run_key: str,
               partial_every_s: float | None) -> Path:
    """cams.yaml of a batch run with adapt.enabled (4 crops per tracklet) on a two-region PETS split of n_frames."""
    import yaml

    from pipeline.virtual_cameras import build_virtual_cameras

    split = tmp_path / "split"
    build_virtual_cameras(pets_dir, split, layout="two-regions", gap=0.1, frame_range=(1, n_frames), progress=False)
    cfg = tmp_path / "cams.yaml"
    cfg.write_text(yaml.safe_dump({
        "mode": "batch", "run_key": run_key,
        "cameras": [{"id": c, "source": str(split / c / "video.mp4")} for c in ("left", "right")],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "tracklets": {"min_length": 3, "partial_every_s": partial_every_s},
        "store": {"path": str(tmp_path / "ids.sqlite")},
        "outputs": {"dir": str(tmp_path / "out"), "video": False, "timeline_png": False},
        "adapt": {"enabled": True, "crops_per_tracklet": 4},
    }))
    return cfg


def test_runner_stores_crops_with_final_tracklets(pets_dir: Path, shared: Path, tmp_path: Path):
    from pipeline.cli import main

    cfg = _crops_run(pets_dir, shared, tmp_path, 14, "crops", 0.5)
    split = tmp_path / "split"
    assert main(["run", str(cfg), "--no-progress"]) == 0
    size = {c: _image_size(split / c / "seqinfo.ini") for c in ("left", "right")}
    with IdentityStore(tmp_path / "ids.sqlite") as s:
        tracklets = s.tracklets()
        counts = s.crop_counts()
        assert tracklets and set(counts) == {t.tracklet_id for t in tracklets}
        assert all(2 <= n <= 4 for n in counts.values())  # >= 3 frames each, at most 4 kept
        for t in tracklets:  # each crop is the track's box of that frame (floor / ceil), clipped to the image
            w_img, h_img = size[t.cam_id]
            expect = {}
            for f, box in zip(t.frames, t.boxes_tlwh):
                x1, y1 = max(math.floor(box[0]), 0), max(math.floor(box[1]), 0)
                expect[int(f)] = (min(math.ceil(box[1] + box[3]), h_img) - y1,
                                  min(math.ceil(box[0] + box[2]), w_img) - x1)
            for f, crop in s.crops(t.tracklet_id):
                assert crop.shape[:2] == expect[f]
        deployed = s.deployed_version()  # the running encoder is registered as the deployed version
        assert deployed is not None and deployed in s.embedding_versions()


def test_a_run_redone_after_max_frames_keeps_one_crop_sample_per_tracklet(pets_dir: Path, shared: Path, tmp_path: Path):
    """--max-frames ends tracks early (their crops stored); the full re-run ends the same tracklets later and
    samples other frames: the tracklet keeps the final sample only, never both (the s43 probe saw 7 of 4)."""
    from pipeline.cli import main

    cfg = _crops_run(pets_dir, shared, tmp_path, 16, "crops-again", None)
    assert main(["run", str(cfg), "--no-progress", "--max-frames", "6"]) == 0
    with IdentityStore(tmp_path / "ids.sqlite", mode="read") as s:
        early = {t.tracklet_id: s.crops(t.tracklet_id) for t in s.tracklets()}
    assert early and all(early.values())
    assert main(["run", str(cfg), "--no-progress"]) == 0
    with IdentityStore(tmp_path / "ids.sqlite", mode="read") as s:
        counts = s.crop_counts()
        assert counts and max(counts.values()) <= 4
        again = [tid for tid in early if tid in counts]
        assert again  # the early tracklets were extended, not duplicated
        assert any(max(f for f, _ in s.crops(tid)) > 6 for tid in again)  # their sample now spans the later frames


def _image_size(seqinfo: Path) -> tuple[int, int]:
    import configparser

    ini = configparser.ConfigParser()
    ini.read(seqinfo)
    return int(ini["Sequence"]["imWidth"]), int(ini["Sequence"]["imHeight"])
