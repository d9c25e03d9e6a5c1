"""probe_scale findings (2026-12-08): index keys checked at start, identities beyond max_gallery matched below
min_gallery, the Ray executor's config and connection errors in one line, a damaged store or detector weights
file in one line. No Ray cluster is started here (tests/pipeline/test_ray_stop.py does)."""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.core.errors import ConfigError, ModelError, ReidPipelineError
from pipeline.core.types import TrackletEmbedding
from pipeline.matching.config import MatcherConfig

sys.path.insert(0, str(Path(__file__).parent))
import paging_stream as ps  # noqa: E402


# ---------------------------------------------------------------- finding 3: index keys at start
def test_nlist_above_the_first_training_sample_is_refused_at_load():
    with pytest.raises(ValidationError, match=r"index\.nlist \(4096\) must be <= 256"):
        MatcherConfig.model_validate({"index": {"kind": "faiss", "min_gallery": 0, "nlist": 4096}})
    # defaults: first trained on min(65536, max(256, min(20000, 5000 + 1))) = 5001 prototypes
    with pytest.raises(ValidationError, match=r"index\.nlist \(8192\) must be <= 5001"):
        MatcherConfig.model_validate({"index": {"nlist": 8192}})
    assert MatcherConfig.model_validate({"index": {"nlist": 4096}}).index.nlist == 4096


def test_pq_m_must_divide_pca_dim_at_load():
    with pytest.raises(ValidationError, match=r"pq_m \(48\) must divide pca_dim \(256\)"):
        MatcherConfig.model_validate({"index": {"pca_dim": 256, "pq_m": 48}})


@pytest.fixture(scope="module")
def store_600(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """600 stored identities of 64-d unit prototypes (identity g = centres[g - 1]), as paging_stream writes them."""
    tmp = tmp_path_factory.mktemp("gal")
    centres = ps.unit_rows(600, 64, 7)
    ps.fill_store_and_index(tmp / "base.sqlite", tmp / "base.faiss", centres)
    return tmp / "base.sqlite", centres


def _matcher(store, **matching):
    from pipeline.matching.matcher import CrossCameraMatcher
    from pipeline.store.prototypes import PrototypeTable

    cfg = MatcherConfig.model_validate({"threshold": 0.35, "auto_threshold": None, "ttl_s": None,
                                        "revise": {"enabled": False}, **matching})
    gallery = store.load_gallery(limit=cfg.max_gallery, max_spans=cfg.max_spans)
    return CrossCameraMatcher(cfg, gallery, next_id=store.next_global_id(), pager=PrototypeTable(store, 1000))


@pytest.mark.parametrize("index, key", [({"pq_m": 7}, r"matching\.index\.pq_m \(7\) must divide the embedding dimension \(64\)"),
                                        ({"pca_dim": 64, "pq_m": 8}, r"matching\.index\.pca_dim \(64\) must be below"),
                                        ({"pca_dim": 48, "pq_m": 32}, r"pq_m \(32\) must divide pca_dim \(48\)")])
def test_index_dims_fail_when_the_matcher_starts_not_when_the_index_trains(store_600, tmp_path, index, key):
    pytest.importorskip("faiss")
    from pipeline.store import IdentityStore

    shutil.copy(store_600[0], tmp_path / "s.sqlite")
    with IdentityStore(tmp_path / "s.sqlite") as store, pytest.raises((ConfigError, ValidationError), match=key):
        _matcher(store, index={"kind": "faiss", "min_gallery": 20000, **index})  # the index would train much later


# ---------------------------------------------------------------- finding 4: beyond max_gallery, below min_gallery
def _returning(centres: np.ndarray, gids: list[int]) -> list[tuple[int, TrackletEmbedding]]:
    out = []
    for k, g in enumerate(gids):
        v = centres[g - 1] + 0.25 * ps.unit_rows(1, centres.shape[1], 5000 + k)[0]
        t = 5000.0 + 10 * k
        out.append((g, TrackletEmbedding(f"c{k % 4}", 100000 + k, t, t + 2.0, (v / np.linalg.norm(v)).astype(np.float32))))
    return out


def test_identities_beyond_max_gallery_are_matched_before_min_gallery(store_600, tmp_path):
    """600 stored identities, max_gallery 100, min_gallery at its default (20,000): the 500 oldest are only in the
    store. Each returning person gets their own id back (before: a new id for every one of them)."""
    pytest.importorskip("faiss")
    from pipeline.store import IdentityStore

    shutil.copy(store_600[0], tmp_path / "s.sqlite")
    with IdentityStore(tmp_path / "s.sqlite") as store:
        m = _matcher(store, max_gallery=100, index={"pq_m": 8})
        run = store.begin_run("q")
        got = []
        for g, it in _returning(store_600[1], [3, 50, 120, 250, 400, 480]):  # all older than the 100 newest
            r = m.match_detailed([it])[0]
            ps.record(store, run, m, [it], [r])
            got.append((g, r.global_id))
        assert m.index_active
        assert all(g == gid for g, gid in got), got
        assert len(m._gallery) <= 100 + 1


def test_exact_index_warns_about_identities_it_cannot_match(store_600, tmp_path, caplog):
    from pipeline.store import IdentityStore

    shutil.copy(store_600[0], tmp_path / "s.sqlite")
    with IdentityStore(tmp_path / "s.sqlite") as store, caplog.at_level("WARNING"):
        _matcher(store, max_gallery=100, index={"kind": "exact"})
    assert "500 stored identities are beyond matching.max_gallery (100) and will not be matched" in caplog.text


# ---------------------------------------------------------------- findings 5, 6, 10: executor address
def _executor(address: str):
    from pipeline.camconfig import ExecutorConfig

    return ExecutorConfig.model_validate({"kind": "ray", "address": address})


@pytest.mark.parametrize("address", ["ray://x:99999", "0.0.0.0:0", "127.0.0.1:70000"])
def test_address_port_out_of_range_is_refused(address):
    with pytest.raises(ValidationError, match="not in 1..65535"):
        _executor(address)


def test_ray_client_address_needs_ray_client_installed():
    """Refused before Ray is started or connected to (the run's first step), in one line."""
    import importlib.util

    from pipeline.distributed import executor

    if importlib.util.find_spec("grpc") is not None:
        pytest.skip("ray[client] (grpcio) is installed here")
    pytest.importorskip("ray")
    with pytest.raises(ReidPipelineError, match=r"executor.address: ray://127.0.0.1:10001: .*ray\[client\]"):
        executor.connect(_executor("ray://127.0.0.1:10001"), "reid-test")


def test_unreachable_address_fails_in_bounded_time():
    from pipeline.distributed import executor

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ReidPipelineError, match=rf"executor.address: 127.0.0.1:{port}: no Ray cluster answers there"):
        executor._wait_answers(f"127.0.0.1:{port}", timeout=1.5)


def test_connect_errors_name_executor_address(monkeypatch):
    from pipeline.distributed import executor

    err = executor._connect_error("auto", ConnectionError("Could not find any running Ray instance ... RAY_ADDRESS"))
    assert "executor.address: auto" in str(err) and "RAY_ADDRESS" not in str(err)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    err = executor._connect_error("127.0.0.1:6400", ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:6400"))
    assert "executor.address: 127.0.0.1:6400" in str(err) and "RAY_AUTH_TOKEN is not set" in str(err)


# ---------------------------------------------------------------- finding 8: a damaged store
def test_damaged_store_is_one_line_naming_it(store_600, tmp_path, capsys):
    from pipeline.cli import main

    bad = tmp_path / "bad.sqlite"
    shutil.copy(store_600[0], bad)
    data = bytearray(bad.read_bytes())
    rng = np.random.default_rng(0)
    data[12288:12288 + 8192] = rng.integers(0, 256, 8192, dtype=np.uint8).tobytes()  # pages past the header
    bad.write_bytes(bytes(data))
    assert main(["query", "--store", str(bad), "--list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"identity store {bad}: damaged SQLite file" in err[0], err


# ---------------------------------------------------------------- finding 9: damaged detector weights
def test_corrupt_detector_weights_are_one_line_naming_the_file(tmp_path):
    from pipeline.detectors.config import DetectorConfig
    from pipeline.detectors.models import resolve_model

    bad = tmp_path / "bad.onnx"
    bad.write_text("not an onnx model\n" * 10)
    for rect in (True, False):
        with pytest.raises(ModelError, match=rf"detector.weights: {bad}: not a readable ONNX model"):
            resolve_model(DetectorConfig(kind="onnx", weights=str(bad), rect=rect, model_cache=str(tmp_path)))


def test_index_dims_are_checked_when_the_run_builds_its_parts_on_an_empty_store(tmp_path, pets_dir):
    """A bad ``matching.index.pq_m`` fails as the run starts (one line), even with nothing stored yet."""
    import yaml

    from pipeline.camconfig import load_cams_config
    from pipeline.core.errors import ConfigError
    from pipeline.runner.components import build_components

    p = tmp_path / "cams.yaml"
    p.write_text(yaml.safe_dump({"cameras": [{"id": "a", "source": str(pets_dir / "img1")}],
                                 "store": {"path": str(tmp_path / "ids.sqlite")},
                                 "matching": {"index": {"kind": "faiss", "pq_m": 100}}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"matching.index.pq_m \(100\) must divide the embedding dimension"):
        build_components(load_cams_config(p))
