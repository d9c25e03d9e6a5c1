"""The encoder forwards only power-of-two batch sizes (issue 16: RSS of a long live run).

Every new input shape costs native memory that stays (oneDNN's per-shape primitives and buffers): with the
crops per call taking any value in a live run, RSS grew by about 20 MiB per new batch size. These tests count
the batch shapes the network sees, on real Market-1501 crops with the shipped default model.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from reid_models.encoder import AppearanceEncoder, batch_spans


@pytest.fixture(scope="module")
def crops(shared: Path) -> list[np.ndarray]:
    folder = shared / "data" / "reid" / "Market-1501" / "bounding_box_train"
    paths = sorted(folder.glob("*.jpg"))[:40]
    return [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]


def test_batch_spans_cover_every_crop_once_in_power_of_two_runs():
    assert batch_spans(0, 64) == []
    assert batch_spans(1, 64) == [(0, 1)]
    assert batch_spans(13, 64) == [(0, 8), (8, 12), (12, 13)]
    assert batch_spans(63, 64) == [(0, 32), (32, 48), (48, 56), (56, 60), (60, 62), (62, 63)]
    assert batch_spans(150, 64) == [(0, 64), (64, 128), (128, 144), (144, 148), (148, 150)]
    assert batch_spans(13, 64, pow2=False) == [(0, 13)]  # the old rule: one forward of any size
    assert batch_spans(150, 50, pow2=False) == [(0, 50), (50, 100), (100, 150)]
    shapes = set()
    for n in range(1, 300):
        spans = batch_spans(n, 64)
        assert [s for s, _ in spans] == [0] + [e for _, e in spans[:-1]] and spans[-1][1] == n
        shapes.update(e - s for s, e in spans)
    assert shapes == {1, 2, 4, 8, 16, 32, 64}


def test_network_sees_few_batch_shapes_and_the_same_embeddings(crops):
    enc = AppearanceEncoder.from_checkpoint(None, device="cpu")
    assert enc.pow2_batches
    seen: list[int] = []
    hook = enc.model.register_forward_pre_hook(lambda _m, args: seen.append(int(args[0].shape[0])))
    try:
        got = {n: enc.embed_crops(crops[:n]) for n in range(1, len(crops) + 1)}
    finally:
        hook.remove()
    assert set(seen) == {1, 2, 4, 8, 16, 32}  # 40 different crop counts, 6 shapes (was 40)
    enc.pow2_batches = False
    for n in (7, 23, 40):  # one forward of all n crops gives the same embeddings
        np.testing.assert_allclose(got[n], enc.embed_crops(crops[:n]), atol=1e-5)
