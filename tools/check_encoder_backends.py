#!/usr/bin/env python
"""The re-id encoder's backends against torch on real PETS09-S2L1 person crops (docs/speed.md, "encoder").

Crops: the visible gt people (height > 40 px) of every ``--step``-th frame. Per backend (onnxruntime, OpenVINO fp32,
OpenVINO bf16): max |embedding - torch's|, the smallest cosine to torch's, and a retrieval figure: each crop's
nearest crop at least 20 frames away (cosine), rank-1 = the share of the same person; "same neighbour" = the share
of crops whose nearest neighbour is torch's::

    .venv/bin/python -m tools.check_encoder_backends [--step 10] [--checkpoint PATH]

``--checkpoint``: a trained checkpoint (e.g. a candidate before it is shipped) instead of the shipped default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=10, help="every n-th frame of the 795")
    ap.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint instead of the shipped default")
    args = ap.parse_args(argv)

    from pipeline.core.errors import ReidPipelineError
    from pipeline.core.paths import require_shared
    from pipeline.mot import MOTSequence
    from reid_models.encoder import AppearanceEncoder, crops_from_boxes

    seq = MOTSequence(require_shared() / "data" / "MOT15" / "train" / "PETS09-S2L1")
    gt = seq.gt()
    crops, ids, frames = [], [], []
    for f in range(1, 796, args.step):
        rows = gt.select((gt.frame == f) & (gt.conf > 0) & (gt.tlwh[:, 3] > 40))
        crops += crops_from_boxes(seq.frame_image(f), rows.tlwh)
        ids += list(rows.ids)
        frames += [f] * len(rows)
    id_arr, fr = np.array(ids), np.array(frames)

    def rank1(feats: np.ndarray) -> tuple[float, np.ndarray]:
        sim = feats @ feats.T
        sim[np.abs(fr[:, None] - fr[None, :]) < 20] = -np.inf
        nn = sim.argmax(axis=1)
        return float(np.mean(id_arr[nn] == id_arr)), nn

    try:
        ref = AppearanceEncoder.from_checkpoint(args.checkpoint, device="cpu").embed_crops(crops)
    except ReidPipelineError as exc:
        print(f"check_encoder_backends: error: {exc}", file=sys.stderr)
        return 2
    r0, nn0 = rank1(ref)
    print(f"{len(crops)} crops of {len(set(frames))} frames\n\n| backend | max abs diff to torch | min cosine | rank-1 % "
          f"| same neighbour as torch % |\n|---|---:|---:|---:|---:|\n| torch (reference) | 0 | 1 | {100 * r0:.2f} | 100 |")
    for name, kw in (("onnx (onnxruntime)", {"backend": "onnx"}), ("openvino fp32", {"backend": "openvino"}),
                     ("openvino bf16", {"backend": "openvino", "precision": "bf16"})):
        enc = AppearanceEncoder.from_checkpoint(args.checkpoint, device="cpu", **kw)
        feats = enc.embed_crops(crops)
        r, nn = rank1(feats)
        print(f"| {name} | {np.abs(feats - ref).max():.2e} | {np.min(np.sum(feats * ref, axis=1)):.4f} | "
              f"{100 * r:.2f} | {100 * np.mean(nn == nn0):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
