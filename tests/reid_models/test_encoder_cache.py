"""The encoder's ONNX cache (per-user, private, checked before use, bounded) and the onnx backend's settings
(``threads``, ``device``, fixed-batch graphs, metadata that disagrees with the graph): the s44 speed probe's
findings 2, 9 and 11, on a tiny real network and real PETS09-S2L1 person crops."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.errors import ConfigError, ModelError
from reid_models import export as export_mod
from reid_models.checkpoint import file_hash, save_checkpoint
from reid_models.encoder import AppearanceEncoder, crops_from_boxes
from reid_models.factory import build_model


def _net(seed: int):
    torch.manual_seed(seed)
    return build_model("cnn3_siamese", input_size=(64, 32), widths=(4, 8, 8), embedding_dim=16).eval()


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    save_checkpoint(path, _net(0), {}, {}, epoch=1)
    return path


@pytest.fixture(scope="module")
def pets_crops(pets_dir: Path) -> list[np.ndarray]:
    """The gt people of PETS09-S2L1 frames 1, 200 and 400 (real BGR crops)."""
    import cv2

    gt = np.loadtxt(pets_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)
    return [c for f in (1, 200, 400)
            for c in crops_from_boxes(cv2.imread(str(pets_dir / "img1" / f"{f:06d}.jpg")), gt[gt[:, 0] == f, 2:6])]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh cache root for the test (REID_CACHE_DIR); the ONNX files go to its ``onnx/``."""
    root = tmp_path / "cache"
    monkeypatch.setenv("REID_CACHE_DIR", str(root))
    return root


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("REID_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert export_mod.cache_root() == tmp_path / "home" / ".cache" / "reid-pipeline"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert export_mod.cache_root() == tmp_path / "home" / ".cache" / "reid-pipeline"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert export_mod.cache_root() == tmp_path / "xdg" / "reid-pipeline"
    monkeypatch.setenv("REID_CACHE_DIR", str(tmp_path / "mine"))
    assert export_mod.cache_root() == tmp_path / "mine"


def test_the_export_is_cached_privately_and_reused(cache, small_ckpt, pets_crops):
    enc = AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu")
    key = file_hash(small_ckpt)
    path = cache / "onnx" / f"cnn3_siamese-{key}.onnx"
    assert path.is_file() and _mode(cache) == 0o700 and _mode(cache / "onnx") == 0o700 and _mode(path) == 0o600
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["key"] == key and record["sha256"] == export_mod.file_sha256(path)
    inode = os.stat(path).st_ino
    again = AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu")
    assert os.stat(path).st_ino == inode  # reused, not exported again
    ref = AppearanceEncoder.from_checkpoint(small_ckpt, device="cpu").embed_crops(pets_crops)
    np.testing.assert_allclose(again.embed_crops(pets_crops), ref, atol=1e-5)
    np.testing.assert_allclose(enc.embed_crops(pets_crops), ref, atol=1e-5)
    assert sorted(p.name for p in (cache / "onnx").iterdir()) == [path.with_suffix(".json").name, path.name]


def test_a_planted_model_at_the_cache_name_is_not_used(cache, small_ckpt, pets_crops):
    """The probe copied another model to the default's cache name and the encoder ran it silently under the
    default's version. Now the file does not match its record and is exported again from the weights."""
    AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu")
    path = cache / "onnx" / f"cnn3_siamese-{file_hash(small_ckpt)}.onnx"
    other = export_mod.export_onnx(_net(1), cache / "other.onnx")
    path.write_bytes(other.read_bytes())
    enc = AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu")
    ref = AppearanceEncoder.from_checkpoint(small_ckpt, device="cpu").embed_crops(pets_crops)
    np.testing.assert_allclose(enc.embed_crops(pets_crops), ref, atol=1e-5)
    assert path.read_bytes() != other.read_bytes()


def test_group_writable_or_linked_cache_files_are_not_trusted(cache, small_ckpt, tmp_path):
    AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu")
    path = cache / "onnx" / f"cnn3_siamese-{file_hash(small_ckpt)}.onnx"
    os.chmod(path, 0o666)
    AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu")
    assert _mode(path) == 0o600  # replaced by a fresh private export
    victim = tmp_path / "victim.onnx"
    victim.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(victim)
    AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu")
    assert not path.is_symlink() and path.is_file()


def test_untrusted_cache_folders_are_refused_in_one_line(cache, small_ckpt):
    (cache / "onnx").mkdir(parents=True, mode=0o700)
    os.chmod(cache, 0o700)
    os.chmod(cache / "onnx", 0o777)
    with pytest.raises(ModelError) as err:
        AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu")
    assert str(err.value).startswith(f"{cache / 'onnx'}: the encoder's ONNX cache folder is writable by group or "
                                     "others (mode 777): not used") and "\n" not in str(err.value)
    os.chmod(cache / "onnx", 0o700)
    if os.getuid() == 0:  # only root can hand a folder to another user
        os.chown(cache, 12345, -1)
        with pytest.raises(ModelError, match="owned by uid 12345, not by you"):
            AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu")


def test_the_temporary_file_is_never_a_planted_link(cache, small_ckpt, tmp_path):
    """The old exporter wrote ``<name>.onnx.<pid>.tmp``: a link planted at that name was written through."""
    folder = cache / "onnx"
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(cache, 0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    name = f"cnn3_siamese-{file_hash(small_ckpt)}.onnx"
    (folder / f"{name}.{os.getpid()}.tmp").symlink_to(victim)
    AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu")
    assert victim.read_text() == "keep me\n" and (folder / name).is_file()


def test_the_cache_keeps_the_most_recent_files(cache, tmp_path):
    """Eleven cached models with known use times: the newest eight stay (with their records), and a crashed
    export's temporary file older than a day goes; the one just written is never removed."""
    folder = export_mod.private_folder(export_mod.private_folder(cache) / "onnx")
    now = int(time.time()) - 3600
    for i in range(11):
        for suffix in (".onnx", ".json"):
            p = folder / f"m-{i:02d}{suffix}"
            p.write_text(str(i))
            os.utime(p, (now + i, now + i))
    old_tmp = folder / ".m-99.onnx.abc.tmp"
    old_tmp.write_text("")
    os.utime(old_tmp, (now - 2 * 86400, now - 2 * 86400))
    removed = export_mod.prune_cache(folder, keep=8, protect=folder / "m-00.onnx")
    left = sorted(p.name for p in folder.iterdir() if p.suffix == ".onnx")
    assert left == ["m-00.onnx"] + [f"m-{i:02d}.onnx" for i in range(4, 11)]
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".json") == [n[:-5] + ".json" for n in left]
    assert old_tmp in removed and not old_tmp.exists()


def test_hot_swapped_versions_stay_bounded(cache, small_ckpt):
    """Each openvino hot swap exports one file; the cache keeps CACHE_KEEP of them."""
    pytest.importorskip("openvino")
    enc = AppearanceEncoder.from_checkpoint(small_ckpt, backend="openvino", threads=1)
    state = enc.state_dict()
    for i in range(export_mod.CACHE_KEEP + 2):
        state["fc.bias"] += 0.01
        enc.load_state(state)
    assert len(list((cache / "onnx").glob("*.onnx"))) == export_mod.CACHE_KEEP


# -- encoder settings on the onnx backend ----------------------------------------------------------------------
def test_onnx_backend_runs_the_configured_threads(cache, small_ckpt):
    enc = AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu", threads=1)
    assert enc._session.get_session_options().intra_op_num_threads == 1
    default = AppearanceEncoder.from_checkpoint(small_ckpt, backend="onnx", device="cpu")
    assert default._session.get_session_options().intra_op_num_threads == 0  # onnxruntime's one per core


def test_onnx_backend_devices(cache, small_ckpt, tmp_path, caplog):
    import onnxruntime as ort

    onnx_file = export_mod.export_onnx(_net(0), tmp_path / "m.onnx", version="v1")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        for ckpt, backend in ((small_ckpt, "onnx"), (onnx_file, "onnx"), (onnx_file, "torch")):
            with pytest.raises(ConfigError) as err:
                AppearanceEncoder.from_checkpoint(ckpt, backend=backend, device="cuda")
            assert "has no CUDAExecutionProvider" in str(err.value) and "\n" not in str(err.value)
    for ckpt, backend in ((small_ckpt, "torch"), (onnx_file, "torch"), (onnx_file, "onnx")):
        with pytest.raises(ConfigError, match="device 'banana': not a torch device"):
            AppearanceEncoder.from_checkpoint(ckpt, backend=backend, device="banana")
    with caplog.at_level(logging.INFO, logger="reid_models.encoder"):
        enc = AppearanceEncoder.from_checkpoint(onnx_file, device="cpu")
    notes = [r.getMessage() for r in caplog.records if "is an ONNX file" in r.getMessage()]
    assert len(notes) == 1 and "runs on onnxruntime (backend onnx), not torch" in notes[0]
    assert enc.backend == "onnx" and enc.device == "cpu"


def _fixed_export(model, path: Path, batch: int, meta_hw: tuple[int, int] | None = None) -> Path:
    """A fixed-batch ONNX export with the project's metadata (``meta_hw``: metadata input size to claim)."""
    import onnx

    h, w = model.input_size
    torch.onnx.export(model, (torch.zeros(batch, 3, h, w),), str(path), input_names=["images"],
                      output_names=["embeddings"], opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    mh, mw = meta_hw or (h, w)
    meta = {"model_name": model.model_name, "input_h": str(mh), "input_w": str(mw),
            "embedding_dim": str(model.embedding_dim), "version": "fixed",
            "pixel_mean": ",".join(map(str, model.pixel_mean)), "pixel_std": ",".join(map(str, model.pixel_std))}
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize("batch", [1, 4])
def test_a_fixed_batch_onnx_encoder_runs_in_chunks(small_ckpt, pets_crops, tmp_path, batch):
    """A batch-1 export failed with onnxruntime's InvalidArgument on any call with several crops."""
    assert len(pets_crops) >= 5
    fixed = _fixed_export(_net(0), tmp_path / f"b{batch}.onnx", batch)
    enc = AppearanceEncoder.from_checkpoint(fixed, backend="onnx", device="cpu", batch_size=64)
    ref = AppearanceEncoder.from_checkpoint(small_ckpt, device="cpu").embed_crops(pets_crops)
    np.testing.assert_allclose(enc.embed_crops(pets_crops), ref, atol=1e-5)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_metadata_that_disagrees_with_the_graph_is_refused_at_load(tmp_path, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    bad = _fixed_export(_net(0), tmp_path / "meta.onnx", 2, meta_hw=(128, 64))
    with pytest.raises(ModelError) as err:
        AppearanceEncoder.from_checkpoint(bad, backend=backend)
    assert str(err.value) == (f"{bad}: its reid-pipeline metadata says input 128x64 but the graph's input is 64x32: "
                              "re-export it with reid-pipeline export")
