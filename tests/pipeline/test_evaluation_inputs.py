"""Evaluation inputs the official evaluator (TrackEval) accepts or rejects, the benchmark guess, picklable
errors, and TrackEval's own CLEAR counting (``clear="trackeval"``).

tests/data/fragmented_mot17-09-dpm.txt: our tracker's output (``benchmark mot``, auto config) on a synthetic
MOT17-09-DPM detection file (MOT17 gt pedestrians, 5 % dropped, 3 % jitter, 10 % false positives, DPM-like
scores; runs/s42/probe_mot/gen.py); its tracks have many gaps. Scored against the shared MOT17-09-DPM gt, the
official TrackEval 1.3.0 gives IDSW 56, FP 6, FN 1684; motmetrics 1.4.0 counts IDSW 46, FP 15, FN 1693.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.core.errors import ConfigError, DataError, ModelError, ReidPipelineError, SourceError
from pipeline.evaluation import evaluate, evaluate_dirs, evaluate_sequence
from pipeline.evaluation.dirs import benchmark_in_path, choose_benchmark, guess_benchmark
from pipeline.evaluation.hota import available as trackeval_available
from pipeline.mot import read_mot_file
from pipeline.mot.boxes import duplicate_id_row
from pipeline.mot.seqinfo import read_seqinfo

DATA = Path(__file__).resolve().parents[1] / "data"
SEQINFO = "[Sequence]\nname=S1\nimDir=img1\nframeRate=10\nseqLength=3\nimWidth=640\nimHeight=480\nimExt=.jpg\n"
# MOT17 gt: pedestrian 1 in frames 1-3, a class-6 (non_mot_vehicle) object 2 in frames 1-2
GT = "1,1,0,0,100,100,1,1,1\n2,1,0,0,100,100,1,1,1\n3,1,0,0,100,100,1,1,1\n1,2,200,0,100,100,1,6,1\n2,2,200,0,100,100,1,6,1\n"
# tracker 10 follows pedestrian 1, tracker 11 sits on object 2 (an FP unless MOT20 removes it as a distractor match)
RES = "1,10,0,0,100,100,1,-1,-1,-1\n2,10,0,0,100,100,1,-1,-1,-1\n3,10,0,0,100,100,1,-1,-1,-1\n" \
      "1,11,200,0,100,100,1,-1,-1,-1\n2,11,200,0,100,100,1,-1,-1,-1\n"

needs_trackeval = pytest.mark.skipif(not trackeval_available(), reason="trackeval is not installed")


def _gt_root(root: Path, gt: str = GT, seqinfo: str = SEQINFO) -> Path:
    seq = root / "S1"
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text(seqinfo)
    (seq / "gt" / "gt.txt").write_text(gt)
    return root


def _results(root: Path, res: str = RES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "S1.txt").write_text(res)
    return root


# ---- 1. the benchmark guessed from the gt-root path -------------------------------------------------------------

def test_guess_benchmark_from_path_as_given_then_resolved(tmp_path: Path) -> None:
    neutral = _gt_root(tmp_path / "data" / "train")
    link20 = tmp_path / "MOT20"
    link20.symlink_to(neutral)  # a symlink named MOT20 to a neutral folder: the name as given counts
    assert guess_benchmark(link20) == "MOT20"
    assert benchmark_in_path(link20) == ("MOT20", str(link20))
    real15 = tmp_path / "MOT15-copy" / "train"
    real15.mkdir(parents=True)
    link = tmp_path / "data" / "neutral"
    link.symlink_to(real15)  # a neutral link to a MOT15 folder: the resolved path decides
    assert guess_benchmark(link) == "MOT15"
    assert guess_benchmark(neutral) == "MOT17"  # nothing on the path: MOT17
    assert guess_benchmark(tmp_path / "mot16" / "train") == "MOT16"  # case-insensitive, as benchmark mot
    bench, why = choose_benchmark(link20, None)
    assert (bench, why) == ("MOT20", f"rules: MOT20 (from the gt-root path {link20}; --benchmark to change)")
    bench, why = choose_benchmark(link20, "mot17")
    assert bench == "MOT17" and why == f"rules: MOT17 (--benchmark MOT17; note: the gt-root path {link20} names MOT20)"
    assert choose_benchmark(neutral, None)[1].startswith("rules: MOT17 (default: the gt-root path ")


def test_eval_cli_uses_mot20_rules_under_a_mot20_path(tmp_path: Path, capsys) -> None:
    """Under MOT20 rules tracker 11 (matched to class 6) is removed: FP 0, MOTA 100; MOT17 keeps it: FP 2."""
    root = tmp_path / "MOT20" / "train"
    _gt_root(root)
    res = _results(tmp_path / "res")
    out = tmp_path / "r.json"
    assert main(["eval", "--gt-root", str(root), "--results", str(res), "--no-hota", "--json", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"rules: MOT20 (from the gt-root path {root}; --benchmark to change)"
    report = json.loads(out.read_text())
    assert report["benchmark"] == "MOT20" and report["overall"]["FP"] == 0 and report["overall"]["MOTA"] == 100.0
    assert main(["eval", "--gt-root", str(root), "--results", str(res), "--no-hota", "--json", str(out),
                 "--benchmark", "MOT17"]) == 0
    assert "note: the gt-root path" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["benchmark"] == "MOT17" and report["overall"]["FP"] == 2  # (3 - 2 - 0) / 3
    assert abs(report["overall"]["MOTA"] - 100.0 / 3) < 1e-9


# ---- 2. project errors survive pickling and worker processes ------------------------------------------------------

ERRORS = [
    ReidPipelineError("base message"), ConfigError("tracker.iou: must be > 0"),
    DataError("/x/gt.txt", "short row", 7), DataError(Path("/x/seqinfo.ini"), "missing key 'seqLength'"),
    SourceError("rtsp://cam: cannot open"), ModelError("weights missing"),
]


def _same(a: Exception, b: Exception) -> None:
    assert type(a) is type(b) and str(a) == str(b) and a.args == b.args and a.__dict__ == b.__dict__


@pytest.mark.parametrize("err", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_round_trip_through_pickle(err: ReidPipelineError) -> None:
    back = pickle.loads(pickle.dumps(err))
    _same(back, err)
    if isinstance(err, DataError):
        assert (back.path, back.line) == (err.path, err.line)


def _raise(index: int) -> None:
    raise ERRORS[index]


def test_errors_come_back_from_a_worker_process() -> None:
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        for i, err in enumerate(ERRORS):
            with pytest.raises(type(err)) as got:
                pool.submit(_raise, i).result()
            _same(got.value, err)


def test_data_error_in_an_evaluation_worker_keeps_the_pool(tmp_path: Path, caplog) -> None:
    """A duplicate id found inside a worker arrives as the DataError, without the 'worker processes failed' retry."""
    (tmp_path / "gt.txt").write_text(GT)
    (tmp_path / "bad.txt").write_text(RES + "3,10,5,5,100,100,1,-1,-1,-1\n")
    (tmp_path / "ok.txt").write_text(RES)
    gt = read_mot_file(tmp_path / "gt.txt", "gt")
    pairs = [("A", gt, read_mot_file(tmp_path / "ok.txt", "result")),
             ("B", gt, read_mot_file(tmp_path / "bad.txt", "result"))]
    with caplog.at_level(logging.WARNING), pytest.raises(DataError) as err:
        evaluate(pairs, "MOT17", workers=2, hota=False)
    assert str(err.value) == "B: frame 3: tracker id 10 appears more than once (the official evaluator rejects this)"
    assert not [r for r in caplog.records if "worker processes failed" in r.getMessage()]


# ---- 3. trailing comma, byte-order mark, lower-case seqinfo keys --------------------------------------------------

def test_trailing_comma_and_bom_are_accepted(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text(RES)
    ref = read_mot_file(plain, "result")
    variants = {
        "comma.txt": RES.replace("\n", ",\n").encode(),
        "bom.txt": b"\xef\xbb\xbf" + RES.encode(),
        "bom_comma_crlf.txt": b"\xef\xbb\xbf" + RES.replace("\n", ",\r\n").encode(),
    }
    for name, raw in variants.items():
        (tmp_path / name).write_bytes(raw)
        got = read_mot_file(tmp_path / name, "result")
        for key in ("frame", "ids", "tlwh", "conf", "cls", "vis"):
            assert np.array_equal(getattr(got, key), getattr(ref, key)), (name, key)
    (tmp_path / "gt_comma.txt").write_text(GT.replace("\n", ",\n"))
    gt = read_mot_file(tmp_path / "gt_comma.txt", "gt")
    assert gt.cls.tolist() == [1, 1, 1, 6, 6] and gt.vis.tolist() == [1.0] * 5  # still read as 9 columns
    (tmp_path / "two.txt").write_text("1,1,0,0,10,10,1,-1,-1,-1,,\n")  # only one empty field is dropped
    with pytest.raises(DataError, match=r"two\.txt:1: not a number in"):
        read_mot_file(tmp_path / "two.txt", "result")


def test_seqinfo_with_bom_and_lower_case_keys(tmp_path: Path) -> None:
    lower = SEQINFO.lower().replace("name=s1", "name=S1").replace("[sequence]", "[Sequence]")  # section as TrackEval
    (tmp_path / "seqinfo.ini").write_bytes(b"\xef\xbb\xbf" + lower.encode())
    info = read_seqinfo(tmp_path)
    assert (info.name, info.frame_rate, info.seq_length, info.im_width, info.im_height, info.im_dir, info.im_ext) == \
        ("S1", 10.0, 3, 640, 480, "img1", ".jpg")
    (tmp_path / "seqinfo.ini").write_text(SEQINFO.replace("seqLength=3\n", ""))
    with pytest.raises(DataError, match=r"seqinfo\.ini: missing key 'seqLength' in \[Sequence\]"):
        read_seqinfo(tmp_path)


# ---- 4. duplicate ids: negative ids, gt duplicates ------------------------------------------------------------------

def test_negative_ids_are_not_false_duplicates(tmp_path: Path) -> None:
    """The old key frame*(max_id+2)+id+1 made (1, 1) and (2, -2) both 5 when max_id is 1."""
    assert duplicate_id_row(np.array([1, 2]), np.array([1, -2])) is None
    assert duplicate_id_row(np.array([1, 2, 1, 2, 2]), np.array([5, -3, 5, -3, -3])) == 2  # first repeat, file order
    res = RES.replace(",10,", ",1,").replace("2,11,", "2,-2,").replace("1,11,", "1,-2,")
    gt = read_mot_file(_gt_root(tmp_path / "g") / "S1" / "gt" / "gt.txt", "gt")
    (tmp_path / "r.txt").write_text(res)
    tr = read_mot_file(tmp_path / "r.txt", "result")
    m = evaluate_sequence(gt, tr, "MOT17", hota=False).metrics
    assert (m["IDSW"], m["FP"], m["FN"]) == (0, 2, 0)
    (tmp_path / "r.txt").write_text(res + "2,-2,300,300,10,10,1,-1,-1,-1\n")
    with pytest.raises(DataError, match="frame 2: tracker id -2 appears more than once"):
        evaluate_sequence(gt, read_mot_file(tmp_path / "r.txt", "result"), "MOT17", "S1", hota=False)


def test_duplicate_gt_ids_are_an_error_naming_the_file(tmp_path: Path) -> None:
    root = _gt_root(tmp_path / "gt", GT + "2,1,50,50,100,100,0,1,1\n")  # a second (frame 2, id 1) row, even zero-marked
    res = _results(tmp_path / "res")
    gt_path = root / "S1" / "gt" / "gt.txt"
    with pytest.raises(DataError) as err:
        evaluate_dirs(root, res, "MOT17", hota=False)
    assert str(err.value) == f"{gt_path}: frame 2: gt id 1 appears more than once (the official evaluator rejects this)"
    with pytest.raises(DataError, match="S1: frame 2: gt id 1 appears more than once"):
        evaluate_sequence(read_mot_file(gt_path, "gt"), read_mot_file(res / "S1.txt", "result"), "MOT17", "S1")


# ---- 5. rows beyond seqLength ------------------------------------------------------------------------------------------

def test_rows_beyond_seq_length_are_an_error_for_gt_and_results(tmp_path: Path) -> None:
    root = _gt_root(tmp_path / "gt", GT.replace("3,1,", "4,1,") + "5,1,0,0,100,100,1,1,1\n")  # seqLength 3
    res = _results(tmp_path / "res")
    with pytest.raises(DataError) as err:
        evaluate_dirs(root, res, "MOT17", hota=False)
    assert str(err.value) == (f"{root / 'S1' / 'gt' / 'gt.txt'}:3: frame 4 is beyond seqLength 3 of the sequence "
                              "(2 rows are; the official evaluator rejects them)")
    root2 = _gt_root(tmp_path / "gt2")
    _results(tmp_path / "res", RES + "\n4,10,0,0,100,100,1,-1,-1,-1\n")
    with pytest.raises(DataError) as err:
        evaluate_dirs(root2, res, "MOT17", hota=False)
    assert str(err.value).startswith(f"{res / 'S1.txt'}:7: frame 4 is beyond seqLength 3 of the sequence (1 rows")
    _results(tmp_path / "res")
    assert evaluate_dirs(root2, res, "MOT17", hota=False).overall["FP"] == 2  # frame 3 = seqLength is fine


# ---- 6. CLEAR counted by TrackEval's CLEAR class ------------------------------------------------------------------------

# gt 1 in frames 1-3 at (0,0,100,100). Frame 1: tracker a (id 1) on it. Frame 2: only c (id 3) far away, so gt 1
# is missed. Frame 3: a shifted 25 px (IoU 7500/12500 = 0.6) and b (id 2) shifted 5 px (IoU 9500/10500 = 0.905).
# motmetrics continues gt 1's last match (a, two frames back): no switch, b is the FP. TrackEval continues only a
# match of the previous frame, so it takes the better box b: one IDSW, a is the FP.
GAP_GT = "1,1,0,0,100,100,1,1,1\n2,1,0,0,100,100,1,1,1\n3,1,0,0,100,100,1,1,1\n"
GAP_RES = "1,1,0,0,100,100,1,-1,-1,-1\n2,3,500,0,100,100,1,-1,-1,-1\n3,1,0,25,100,100,1,-1,-1,-1\n" \
          "3,2,0,5,100,100,1,-1,-1,-1\n"


@needs_trackeval
def test_trackeval_clear_continues_only_previous_frame_matches(tmp_path: Path) -> None:
    (tmp_path / "gt.txt").write_text(GAP_GT)
    (tmp_path / "res.txt").write_text(GAP_RES)
    gt, res = read_mot_file(tmp_path / "gt.txt", "gt"), read_mot_file(tmp_path / "res.txt", "result")
    mm = evaluate_sequence(gt, res, "MOT17", hota=False).metrics
    te = evaluate_sequence(gt, res, "MOT17", hota=False, clear="trackeval").metrics
    assert (mm["TP"], mm["FP"], mm["FN"], mm["IDSW"], mm["MOTA"]) == (2, 2, 1, 0, 0.0)
    assert (te["TP"], te["FP"], te["FN"], te["IDSW"]) == (2, 2, 1, 1)
    assert abs(te["MOTA"] - 100.0 * (2 - 2 - 1) / 3) < 1e-9
    assert abs(mm["MOTP"] - 100.0 * (1 + 0.6) / 2) < 1e-9 and abs(te["MOTP"] - 100.0 * (1 + 9500 / 10500) / 2) < 1e-9
    for key in ("IDF1", "IDTP", "IDFP", "IDFN"):  # identity metrics do not depend on the CLEAR code
        assert te[key] == mm[key]
    with pytest.raises(ConfigError, match="clear: unknown 'official'"):
        evaluate_sequence(gt, res, "MOT17", hota=False, clear="official")


def _trackeval_official(gt_seq: Path, res_file: Path, work: Path) -> dict:
    """TrackEval 1.3.0's own MotChallenge2DBox pipeline (its loading + preprocessing + CLEAR) on one sequence."""
    import trackeval

    seq = gt_seq.name
    gt_dir = work / "gt" / "MOT17-train"
    gt_dir.mkdir(parents=True)
    (gt_dir / seq).symlink_to(gt_seq)
    (work / "gt" / "seqmaps").mkdir()
    (work / "gt" / "seqmaps" / "MOT17-train.txt").write_text(f"name\n{seq}\n")
    tr = work / "tr" / "MOT17-train" / "T" / "data"
    tr.mkdir(parents=True)
    (tr / f"{seq}.txt").symlink_to(res_file)
    quiet = {"PRINT_CONFIG": False}
    ev = trackeval.Evaluator({**trackeval.Evaluator.get_default_eval_config(), **quiet, "USE_PARALLEL": False,
                              "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
                              "PRINT_RESULTS": False, "TIME_PROGRESS": False})
    ds = trackeval.datasets.MotChallenge2DBox({**trackeval.datasets.MotChallenge2DBox.get_default_dataset_config(),
                                               **quiet, "GT_FOLDER": str(work / "gt"), "TRACKERS_FOLDER": str(work / "tr"),
                                               "BENCHMARK": "MOT17", "SPLIT_TO_EVAL": "train", "TRACKERS_TO_EVAL": ["T"]})
    res, _ = ev.evaluate([ds], [trackeval.metrics.CLEAR(quiet)])
    return res["MotChallenge2DBox"]["T"][seq]["pedestrian"]["CLEAR"]


@needs_trackeval
def test_trackeval_clear_reproduces_official_idsw_on_a_fragmented_tracker(shared: Path, tmp_path: Path) -> None:
    seq = shared / "data" / "MOT17" / "train" / "MOT17-09-DPM"
    res_file = DATA / "fragmented_mot17-09-dpm.txt"
    official = _trackeval_official(seq, res_file, tmp_path / "te")
    off = (int(official["IDSW"]), int(official["CLR_FP"]), int(official["CLR_FN"]))
    assert off == (56, 6, 1684)  # the probe's TrackEval figures
    results = tmp_path / "res"
    results.mkdir()
    (results / "MOT17-09-DPM.txt").symlink_to(res_file)
    mm = evaluate_dirs(seq.parent, results, "MOT17", ["MOT17-09-DPM"], workers=1, hota=False).overall
    te = evaluate_dirs(seq.parent, results, "MOT17", ["MOT17-09-DPM"], workers=1, hota=False, clear="trackeval").overall
    assert (te["IDSW"], te["FP"], te["FN"]) == off
    assert abs(te["MOTA"] - 100 * float(official["MOTA"])) < 1e-9 and te["MT"] == official["MT"]
    assert (mm["IDSW"], mm["FP"], mm["FN"]) == (46, 15, 1693)  # motmetrics' continuation rule: 10 switches fewer
    assert te["IDF1"] == mm["IDF1"]


@needs_trackeval
def test_trackeval_clear_matches_the_mpntrack_reference_exactly(shared: Path) -> None:
    data = shared / "data" / "MOT17"
    report = evaluate_dirs(data / "train", data / "results" / "MPNTrack", "MOT17", hota=False, clear="trackeval")
    ref = json.loads((DATA / "trackeval_mot17_mpntrack.json").read_text())
    assert sorted(report.per_sequence) == sorted(ref["per_sequence"]) and report.clear == "trackeval"
    for seq, r in ref["per_sequence"].items():
        m = report.per_sequence[seq]
        for key in ("IDSW", "FP", "FN", "MT", "ML"):
            assert m[key] == r[key], (seq, key, m[key], r[key])
        for key in ("MOTA", "MOTP"):  # the reference is rounded to 4 decimals
            assert abs(m[key] - r[key]) < 1e-4 + 1e-9, (seq, key, m[key], r[key])
    for key in ("IDSW", "FP", "FN", "MT", "ML"):
        assert report.overall[key] == ref["combined"][key], key
    assert report.to_json()["clear"] == "trackeval"
