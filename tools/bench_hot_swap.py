#!/usr/bin/env python
"""Time the runner-side hot swap (LiveAdaptation.poll: weights load + prototype refresh) on a store whose
deployed version has a parent (e.g. after `reid-pipeline adapt --store`): 3 x (to the parent and back).

    .venv/bin/python -m tools.bench_hot_swap STORE.sqlite
"""
import json
import sys

import torch
from pipeline.adaptation.crops import CropKeeper
from pipeline.adaptation.live import LiveAdaptation
from pipeline.adaptation.settings import AdaptSettings
from pipeline.matching.config import MatcherConfig
from pipeline.matching.matcher import CrossCameraMatcher
from pipeline.runner.identity import IdentityAssigner
from pipeline.store import IdentityStore
from reid_models.aggregation import build_aggregator
from reid_models.encoder import AppearanceEncoder

torch.set_num_threads(1)
out = []
with IdentityStore(sys.argv[1]) as store:
    enc = AppearanceEncoder.from_checkpoint(device="cpu")
    matcher = CrossCameraMatcher(MatcherConfig(), store.load_gallery())
    keeper = CropKeeper(4)
    assigner = IdentityAssigner(store, matcher, build_aggregator("mean"), store.begin_run("swap-timing"), enc.version, crops=keeper)
    live = LiveAdaptation(AdaptSettings(enabled=True), store, enc, matcher, assigner, keeper)
    for _ in range(3):
        dep = store.deployed_version()
        parent = {v.version: v.parent for v in store.model_versions()}[dep]
        assert live.poll(force=True)
        store.set_deployed(parent)  # and back: each poll is one real swap
        assert live.poll(force=True)
        store.set_deployed(dep)
    print(json.dumps({"gallery": len(matcher.gallery), "swaps": live.swaps}, indent=1))
