"""build_identity_parts (the runner's and the Ray matcher's start): an LSTM aggregator trained on another frame
encoder's embeddings than the pipeline's is warned about, one trained on the same encoder is not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from pipeline.camconfig import CamsConfig
from pipeline.core.configio import validate
from pipeline.runner.components import build_identity_parts
from pipeline.store import IdentityStore
from reid_models.aggregation import LSTMNet, save_lstm


@pytest.mark.parametrize("pipeline_encoder, warned", [("enc-b", True), ("enc-a", False)])
def test_lstm_trained_on_another_encoder_is_warned_about(tmp_path: Path, caplog, pipeline_encoder, warned) -> None:
    ckpt = tmp_path / "lstm.pt"
    save_lstm(ckpt, LSTMNet(16), "enc-a", {})
    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "cams.example.yaml").read_text())
    data["aggregation"] = {"method": "lstm", "checkpoint": str(ckpt)}
    cfg = validate(CamsConfig, data, "test.yaml")
    with caplog.at_level(logging.WARNING, logger="pipeline.runner.components"), IdentityStore(tmp_path / "s.sqlite") as store:
        aggregator, _ = build_identity_parts(cfg, store, pipeline_encoder)
    assert aggregator.encoder_version == "enc-a"
    hits = [r.getMessage() for r in caplog.records if "trained on embeddings of encoder enc-a" in r.getMessage()]
    assert len(hits) == (1 if warned else 0)
    if warned:
        assert "the pipeline's encoder is enc-b" in hits[0]
