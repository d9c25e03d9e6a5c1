"""``--config auto`` on detection files whose scores are not probabilities: the tracker must not depend on a
detector's score units (MOT16/MOT17 DPM scores run about -1 to 3, MOT15 ACF about -1 to 140), and a file whose
scores carry no information (all equal) must keep every box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.mot import read_mot_file
from trackers.presets import NON_PROBABILITY_QUANTILE, choose_preset


def _sequence_with_scores(src: Path, dst: Path, name: str, rescale) -> Path:
    """A copy of MOT15 sequence ``src`` (seqinfo.ini, gt) whose ``det/<name>.txt`` is its ACF ``det/det.txt`` with
    column 7 (the score) replaced by ``rescale(score)``, written with ``repr`` so that it reads back exactly."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "det").mkdir(exist_ok=True)
    (dst / "seqinfo.ini").write_text((src / "seqinfo.ini").read_text())
    (dst / "gt").mkdir(exist_ok=True)
    (dst / "gt" / "gt.txt").write_text((src / "gt" / "gt.txt").read_text())
    out = []
    for line in (src / "det" / "det.txt").read_text().splitlines():
        cols = line.split(",")
        cols[6] = repr(rescale(float(cols[6])))
        out.append(",".join(cols))
    (dst / "det" / f"{name}.txt").write_text("\n".join(out) + "\n")
    return dst


@pytest.fixture(scope="module")
def campus(shared: Path) -> Path:
    return shared / "data" / "MOT15" / "train" / "TUD-Campus"


def test_choice_for_non_probability_scores_takes_its_scale_from_the_file():
    """Hand-made scores: the range is [0, the file's quantile], the same file in other units gives the same
    mapping in those units, and a constant file maps its one value to 1."""
    acf = np.array([-0.5, 10.0, 20.0, 30.0, 40.0, 50.0])
    top = float(np.quantile(acf, NON_PROBABILITY_QUANTILE))  # 0.8 -> 40.0 (index 4 of 0..5)
    assert top == 40.0
    choice = choose_preset(acf)
    assert choice.name == "acf" and choice.score_range == (0.0, 40.0)
    assert "mapped from [0, 40]" in choice.reason
    assert choose_preset(acf / 32).score_range == (0.0, 40.0 / 32)
    # all scores equal: no information, every box counts as confident (mapped to 1.0 whatever the value)
    for value in (-1.0, 0.5, 1.0, 7.0):
        constant = choose_preset([value] * 5)
        assert constant.name == "default" and constant.score_range == (value - 1.0, value)
    # hardly a positive score: the file's own span
    assert choose_preset([-3.0, -2.0, -1.5, -1.0, 0.5]).score_range == (-3.0, 0.5)
    # probabilities keep the preset's own range
    assert choose_preset([0.3, 0.8, 0.99]).score_range is None


def test_track_auto_does_not_depend_on_the_score_units(campus, tmp_path, capsys):
    """TUD-Campus's ACF detections with every score divided by 32 (DPM-like units, about 0 to 3.7; a power of two,
    so the division is exact in floating point) track to exactly the same boxes and ids under ``auto`` as the
    original scores; under the fixed ``acf`` preset (scores in [0, 100]) the rescaled file loses most boxes."""
    acf = _sequence_with_scores(campus, tmp_path / "acf" / "TUD-Campus", "det", lambda s: s)
    dpm = _sequence_with_scores(campus, tmp_path / "dpm" / "TUD-Campus", "det", lambda s: s / 32.0)
    for seq, out in ((acf, "out_acf"), (dpm, "out_dpm")):
        assert main(["track", str(seq), "--det", "det", "--out", str(tmp_path / out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("tracker preset acf") == 2, printed
    a = read_mot_file(tmp_path / "out_acf" / "TUD-Campus.txt", "result")
    b = read_mot_file(tmp_path / "out_dpm" / "TUD-Campus.txt", "result")
    assert len(a) > 150
    np.testing.assert_array_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.tlwh, b.tlwh)
    assert main(["track", str(dpm), "--det", "det", "--config", "acf", "--out", str(tmp_path / "fixed")]) == 0
    fixed = read_mot_file(tmp_path / "fixed" / "TUD-Campus.txt", "result")
    assert len(fixed) < len(a) / 4


def test_track_auto_keeps_every_box_when_scores_are_constant(campus, tmp_path, capsys):
    """A file whose every score is -1 ("no score", as some exporters write) tracks exactly as the same boxes all
    scored 1: nothing is dropped for a score it never had."""
    minus = _sequence_with_scores(campus, tmp_path / "m" / "TUD-Campus", "det", lambda s: -1.0)
    one = _sequence_with_scores(campus, tmp_path / "p" / "TUD-Campus", "det", lambda s: 1.0)
    for seq, out in ((minus, "out_m"), (one, "out_p")):
        assert main(["track", str(seq), "--det", "det", "--out", str(tmp_path / out)]) == 0
    assert "every score is -1" in capsys.readouterr().out
    a = read_mot_file(tmp_path / "out_m" / "TUD-Campus.txt", "result")
    b = read_mot_file(tmp_path / "out_p" / "TUD-Campus.txt", "result")
    assert len(a) > 150
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.tlwh, b.tlwh)
