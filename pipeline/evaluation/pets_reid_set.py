"""The PETS09-S2L1 re-id sets of the re-id benchmarks, cut by ``make-triplets``: all 19 identities as test
identities (tools/bench_reid.py, bench_console.py), and the 9 train / 10 test identity split of the PETS-trained
models (tools/bench_reid_curve.py, analyse_reid_pairs.py).

One definition, so every tool scores the same crops: a cached set made under an older crop-resize rule is
made again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

#: the benchmarks' operating point of the balanced-pair ROC (seed 000: TPR at FPR <= 0.10)
TARGET_FPR = 0.10
#: make-triplets arguments of the set: every 2nd frame, any visibility, every identity in the test split
PETS_TEST_ARGS = ["--stride", "2", "--min-vis", "0", "--split", "0,0,1", "--seed", "0"]
#: the identity split of the PETS-trained models (9 train / 10 test identities, seeded)
PETS_SPLIT_ARGS = ["--stride", "2", "--min-vis", "0", "--split", "0.5,0.0,0.5", "--seed", "0"]


def pets_sequence(shared: Path) -> Path:
    """The PETS09-S2L1 sequence folder under the shared data folder."""
    return shared / "data" / "MOT15" / "train" / "PETS09-S2L1"


def ensure_pets_set(path: Path, shared: Path, args: list[str] = PETS_TEST_ARGS) -> None:
    """Write the set cut with ``args`` (PETS_TEST_ARGS or PETS_SPLIT_ARGS) to ``path`` once; a cached one whose
    ``summary.json`` records an older crop-resize rule is made again. Raises SystemExit(2) when make-triplets
    fails (it printed why)."""
    from pipeline.cli import main
    from reid_models.datasets.mot_builder import CROP_RESIZE_RULE

    if (path / "index.csv").is_file():
        summary = path / "summary.json"
        made_with = json.loads(summary.read_text()).get("config", {}).get("crop_resize") if summary.is_file() else None
        if made_with == CROP_RESIZE_RULE:
            return
        print(f"{path}: made under an older crop-resize rule ({made_with}); making it again", flush=True)
        shutil.rmtree(path)
    if main(["make-triplets", str(pets_sequence(shared)), "--out", str(path), *args]) != 0:
        raise SystemExit(2)
