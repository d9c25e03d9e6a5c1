"""Checkpoints, ONNX export parity on real PETS crops, the AppearanceEncoder and the aggregators."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from pipeline.core.errors import ConfigError, ModelError
from reid_models import encoder as encoder_mod
from reid_models.aggregation import LSTMNet, MeanAggregator, build_aggregator, load_lstm, save_lstm
from reid_models.factory import build_model
from reid_models.checkpoint import (
    file_hash, load_checkpoint, model_from_blob, pooled_trunk_blob, read_checkpoint, save_checkpoint, slim_checkpoint,
)
from reid_models.encoder import AppearanceEncoder, crops_from_boxes


@pytest.fixture(scope="module")
def pets_frame(pets_dir):
    import cv2

    image = cv2.imread(str(pets_dir / "img1" / "000001.jpg"))
    gt = np.loadtxt(pets_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)
    return image, gt[gt[:, 0] == 1, 2:6]


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("cnn3_siamese", input_size=(64, 32), widths=(4, 8, 8), embedding_dim=16).eval()
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    save_checkpoint(path, model, {"note": "test"}, {"val_rank1": 50.0}, epoch=3)
    return path, model


def test_checkpoint_roundtrip_and_hash(small_ckpt, tmp_path):
    path, model = small_ckpt
    loaded, meta = load_checkpoint(path)
    assert meta["epoch"] == 3 and meta["metrics"] == {"val_rank1": 50.0} and meta["config"] == {"note": "test"}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert meta["hash"] == file_hash(path) and len(meta["hash"]) == 12
    slim = slim_checkpoint(path, tmp_path / "slim.pt", half=True)
    half_model, _ = load_checkpoint(slim)
    assert torch.allclose(half_model.fc.weight, model.fc.weight, atol=1e-3)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")


def test_pooled_trunk_of_a_mobilenet_fc_checkpoint_embeds_its_pooled_features(small_ckpt, tmp_path):
    torch.manual_seed(0)
    fc = build_model("mobilenetv2_fc", pretrained=None, input_size=(64, 32)).eval()
    save_checkpoint(tmp_path / "fc.pt", fc, {"note": "fc"}, {}, epoch=1)
    blob = pooled_trunk_blob(read_checkpoint(tmp_path / "fc.pt"))
    pooled = model_from_blob(blob).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.allclose(pooled(x), fc.features(x).mean(dim=(2, 3)), atol=1e-6)
    assert blob["model_name"] == "mobilenetv2_pool" and pooled.input_size == (64, 32) and blob["epoch"] == 1
    assert not any(k.startswith("fc") for k in blob["state_dict"])
    with pytest.raises(ModelError, match="small.pt: pooled-trunk export needs a mobilenetv2_fc"):
        pooled_trunk_blob(read_checkpoint(small_ckpt[0]), "small.pt")


def test_crops_are_clipped_to_the_image():
    image = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    boxes = np.array([[-5, -5, 10, 10], [15, 5, 10, 10], [30, 30, 5, 5]])  # tlwh
    crops = crops_from_boxes(image, boxes)
    assert [c.shape[:2] for c in crops] == [(5, 5), (5, 5), (1, 1)]
    assert np.array_equal(crops[0], image[0:5, 0:5]) and np.array_equal(crops[1], image[5:10, 15:20])


def test_encoder_embeds_boxes_normalised(small_ckpt, pets_frame):
    path, _ = small_ckpt
    image, boxes = pets_frame
    enc = AppearanceEncoder.from_checkpoint(path, device="cpu", batch_size=2)
    feats = enc.embed_boxes(image, boxes)
    assert feats.shape == (len(boxes), 16) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([enc.embed_boxes(image, b[None]) for b in boxes])
    np.testing.assert_allclose(feats, one_by_one, atol=1e-5)  # batching does not change results
    assert enc.version == file_hash(path) and enc.embed_crops([]).shape == (0, 16)


def test_onnx_export_parity_on_real_crops(small_ckpt, pets_frame, tmp_path):
    from reid_models.encoder import preprocess_crops
    from reid_models.export import export_onnx, onnx_metadata, parity

    path, model = small_ckpt
    image, boxes = pets_frame
    batch = preprocess_crops(crops_from_boxes(image, boxes), model.input_size)
    onnx_path = export_onnx(model, tmp_path / "m.onnx", version="v1")
    res = parity(model, onnx_path, batch)
    assert res["batch"] == len(boxes) and res["max_abs_diff"] < 1e-4
    assert onnx_metadata(onnx_path)["embedding_dim"] == "16"
    via_file = AppearanceEncoder.from_checkpoint(onnx_path, backend="onnx")
    via_torch = AppearanceEncoder.from_checkpoint(path, device="cpu")
    np.testing.assert_allclose(via_file.embed_boxes(image, boxes), via_torch.embed_boxes(image, boxes), atol=1e-4)
    assert via_file.version == "v1"


def test_load_state_hot_swaps_weights_and_version(small_ckpt, pets_frame):
    path, model = small_ckpt
    image, boxes = pets_frame
    enc = AppearanceEncoder.from_checkpoint(path, device="cpu")
    before, v0 = enc.embed_boxes(image, boxes), enc.version
    new_state = {k: v.clone() for k, v in model.state_dict().items()}
    new_state["fc.bias"] += 1.0
    results = []
    worker = threading.Thread(target=lambda: results.append(enc.embed_boxes(image, boxes)))
    worker.start()
    enc.load_state(new_state)
    worker.join()
    after = enc.embed_boxes(image, boxes)
    assert enc.version != v0 and not np.allclose(before, after)
    assert np.allclose(results[0], before, atol=1e-6) or np.allclose(results[0], after, atol=1e-6)
    with pytest.raises(ModelError, match="do not fit"):
        enc.load_state({"fc.weight": torch.zeros(1)})


def test_missing_default_checkpoint_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(encoder_mod, "DEFAULT_CHECKPOINT", tmp_path / "default.pt")
    with pytest.raises(ModelError, match="shipped default model is missing"):
        encoder_mod.AppearanceEncoder.from_checkpoint(None)


def test_mean_aggregator_hand_computed():
    seq = np.array([[3.0, 4.0], [0.0, 2.0]])  # normalised rows (0.6, 0.8), (0, 1); mean (0.3, 0.9)
    np.testing.assert_allclose(MeanAggregator().aggregate(seq), np.array([0.3, 0.9]) / np.hypot(0.3, 0.9), atol=1e-6)


def test_lstm_packing_matches_sequences_run_alone(tmp_path):
    torch.manual_seed(0)
    net = LSTMNet(3, 5).eval()
    seqs = [torch.randn(4, 3), torch.randn(2, 3), torch.randn(1, 3)]
    with torch.no_grad():
        batch = net.forward_list(seqs)
        for i, s in enumerate(seqs):
            out, _ = net.lstm(s[None])
            assert torch.allclose(batch[i], out[0].mean(0), atol=1e-6)  # temporal mean over the true length
    save_lstm(tmp_path / "a.pt", net, "enc-v", {"x": 1})
    loaded, blob = load_lstm(tmp_path / "a.pt")
    assert blob["encoder_version"] == "enc-v" and loaded.hidden_dim == 5
    agg = build_aggregator("lstm", tmp_path / "a.pt")
    v = agg.aggregate(seqs[0].numpy())
    assert v.shape == (5,) and abs(np.linalg.norm(v) - 1) < 1e-6
    with pytest.raises(ModelError, match="needs a checkpoint"):
        build_aggregator("lstm")
    with pytest.raises(ConfigError, match="valid: lstm, mean"):
        build_aggregator("max")


def test_residual_lstm_starts_as_mean_pooling():
    torch.manual_seed(0)
    net = LSTMNet(3, residual=True).eval()
    seqs = [torch.randn(4, 3), torch.randn(2, 3)]
    with torch.no_grad():
        out = net.forward_list(seqs)
    assert torch.allclose(out[0], seqs[0].mean(0), atol=1e-6) and torch.allclose(out[1], seqs[1].mean(0), atol=1e-6)
    with pytest.raises(ConfigError, match="hidden_dim equal"):
        LSTMNet(3, 4, residual=True)


def test_attention_lstm_starts_as_mean_pooling_and_weights_frames_in_context(tmp_path):
    """pooling: attention: at initialisation exactly the mean of the frames (zero scorer); with a scorer that reads
    one LSTM output unit, hand-set, the weights are the softmax of that unit over each sequence's own frames, the
    result is that weighted mean of the frames, and padding never takes weight. It survives save / load."""
    torch.manual_seed(0)
    net = LSTMNet(3, 4, pooling="attention").eval()
    assert net.out_dim == 3 and net.hidden_dim == 4
    seqs = [torch.randn(4, 3), torch.randn(2, 3), torch.randn(1, 3)]
    with torch.no_grad():
        out = net.forward_list(seqs)
        for i, s in enumerate(seqs):
            assert torch.allclose(out[i], s.mean(0), atol=1e-6)
        net.scorer.weight.copy_(torch.tensor([[2.0, 0.0, 0.0, 0.0]]))
        out = net.forward_list(seqs)
        for i, s in enumerate(seqs):
            h, _ = net.lstm(s[None])
            w = torch.softmax(2.0 * h[0, :, 0], dim=0)
            assert torch.allclose(out[i], (w[:, None] * s).sum(0), atol=1e-6)
            assert torch.allclose(net.frame_weights(s), w, atol=1e-6)
    save_lstm(tmp_path / "att.pt", net, "enc-v", {})
    loaded, blob = load_lstm(tmp_path / "att.pt")
    assert blob["pooling"] == "attention" and loaded.out_dim == 3
    agg = build_aggregator("lstm", tmp_path / "att.pt")
    assert agg.dim == 3
    v = agg.aggregate(seqs[0].numpy())
    rows = torch.nn.functional.normalize(seqs[0], dim=1)
    with torch.no_grad():
        expect = torch.nn.functional.normalize(net.forward_list([rows])[0], dim=0).numpy()
    np.testing.assert_allclose(v, expect, atol=1e-6)
    with pytest.raises(ConfigError, match="exclude each other"):
        LSTMNet(3, residual=True, pooling="attention")
    with pytest.raises(ConfigError, match="unknown pooling"):
        LSTMNet(3, pooling="max")


def test_contaminate_replaces_the_tail_with_another_identity():
    """The simulated identity switch: a chosen sequence keeps its first T - m frames and ends with the first m frames
    of a sequence of another identity; sequences under 3 frames and share 0 stay as they are."""
    from reid_models.aggregator_training import contaminate

    a = torch.arange(9, dtype=torch.float32).reshape(9, 1)          # identity 1, 9 frames
    b = 100 + torch.arange(4, dtype=torch.float32).reshape(4, 1)    # identity 2
    c = 200 + torch.arange(2, dtype=torch.float32).reshape(2, 1)    # identity 1 again, too short to change
    rng = np.random.default_rng(0)
    out, replaced = contaminate([a, b, c], [1, 2, 1], 1.0, rng)
    m = replaced[0]
    assert 1 <= m <= 3 and replaced[2] == 0
    assert torch.equal(out[0][:9 - m], a[:9 - m]) and torch.equal(out[0][9 - m:], b[:m])
    assert replaced[1] == 1 and out[1][3, 0].item() in (0.0, 200.0)  # b's donor has identity 1: a or c
    assert torch.equal(out[2], c)
    same, none = contaminate([a, b, c], [1, 2, 1], 0.0, np.random.default_rng(0))
    assert none == [0, 0, 0] and all(torch.equal(x, y) for x, y in zip(same, [a, b, c]))


def test_contaminate_anywhere_and_the_bidirectional_scorer():
    """``where="anywhere"``: the intruding block sits at a random place, the frames around it unchanged and in order;
    a bidirectional attention LSTM starts as mean pooling too and needs attention pooling."""
    from reid_models.aggregator_training import contaminate

    a = torch.arange(9, dtype=torch.float32).reshape(9, 1)
    b = 100 + torch.arange(9, dtype=torch.float32).reshape(9, 1)
    starts = set()
    for seed in range(20):
        out, replaced = contaminate([a, b], [1, 2], 1.0, np.random.default_rng(seed), where="anywhere")
        x, m = out[0][:, 0], replaced[0]
        intruders = torch.nonzero(x >= 100).flatten()
        assert len(intruders) == m and 1 <= m <= 3
        start = int(intruders[0])
        assert torch.equal(intruders, torch.arange(start, start + m))
        assert torch.equal(x[start:start + m], b[:m, 0])
        assert torch.equal(torch.cat([x[:start], x[start + m:]]), torch.cat([a[:start, 0], a[start + m:, 0]]))
        starts.add(start)
    assert len(starts) > 2  # not always the tail
    torch.manual_seed(0)
    net = LSTMNet(3, 4, pooling="attention", bidirectional=True).eval()
    assert net.scorer.in_features == 8
    seqs = [torch.randn(5, 3), torch.randn(2, 3)]
    with torch.no_grad():
        out = net.forward_list(seqs)
    assert torch.allclose(out[0], seqs[0].mean(0), atol=1e-6) and torch.allclose(out[1], seqs[1].mean(0), atol=1e-6)
    with pytest.raises(ConfigError, match="bidirectional needs pooling: attention"):
        LSTMNet(3, bidirectional=True)
