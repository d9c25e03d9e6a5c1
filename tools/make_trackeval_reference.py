"""Write the official evaluator's (TrackEval) per-sequence figures for MPNTrack on MOT17 train.

The reference our evaluator is tested against (tests/pipeline/test_evaluation_faithful.py); also
writes ``trackeval_mot15_motmetrics_tud.json``: TrackEval with ``BENCHMARK=MOT15`` on motmetrics'
own ``data/TUD-Campus`` and ``data/TUD-Stadtmitte`` (gt.txt vs test.txt; motmetrics is only used to
find those files).
It runs TrackEval's own pipeline end to end -- ``trackeval.Evaluator`` with the
``MotChallenge2DBox`` dataset, ``BENCHMARK=MOT17``, ``DO_PREPROC=True`` (the
MOTChallenge preprocessing), metrics HOTA, CLEAR, Identity -- on the unmodified
files in ``../shared/data/MOT17/{train,results/MPNTrack}``; nothing of this
project is used. Needs PyPI ``trackeval`` (1.3.0 runs on NumPy 2), e.g. in a
throwaway venv:

    python -m venv /tmp/te && /tmp/te/bin/pip install trackeval==1.3.0 && /tmp/te/bin/pip install --no-deps motmetrics==1.4.0
    /tmp/te/bin/python tools/make_trackeval_reference.py [--shared ../shared] [--out tests/data/trackeval_mot17_mpntrack.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

KEYS = {  # our key -> (TrackEval metric family, field, scale)
    "MOTA": ("CLEAR", "MOTA", 100.0), "IDF1": ("Identity", "IDF1", 100.0), "HOTA": ("HOTA", "HOTA", 100.0),
    "MOTP": ("CLEAR", "MOTP", 100.0), "IDSW": ("CLEAR", "IDSW", 1), "FP": ("CLEAR", "CLR_FP", 1),
    "FN": ("CLEAR", "CLR_FN", 1), "MT": ("CLEAR", "MT", 1), "ML": ("CLEAR", "ML", 1),
    "IDTP": ("Identity", "IDTP", 1), "IDFP": ("Identity", "IDFP", 1), "IDFN": ("Identity", "IDFN", 1),
}


def _value(res: dict, key: str) -> float:
    family, field, scale = KEYS[key]
    v = res[family][field]
    if key == "HOTA":
        v = float(sum(v) / len(v))  # per-alpha array -> mean, as TrackEval's summary
    return round(float(v) * scale, 4) if scale != 1 else int(v)


def run_trackeval(gt_folder: Path, trackers_folder: Path, tracker: str, benchmark: str = "MOT17",
                  seq_info: dict[str, int | None] | None = None) -> dict:
    """TrackEval's figures for ``trackers_folder/tracker/<seq>.txt`` against ``gt_folder/<seq>/gt/gt.txt``.

    seq_info: sequence -> number of frames (None: read from its seqinfo.ini); default every
    sequence folder with a seqinfo.ini.
    """
    import trackeval

    if seq_info is None:
        seq_info = {p.name: None for p in sorted(gt_folder.iterdir()) if (p / "seqinfo.ini").is_file()}
    with tempfile.TemporaryDirectory() as out:
        eval_cfg = trackeval.Evaluator.get_default_eval_config()
        eval_cfg.update({"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
                         "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
                         "PLOT_CURVES": False, "LOG_ON_ERROR": None})
        ds_cfg = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
        ds_cfg.update({"GT_FOLDER": str(gt_folder), "TRACKERS_FOLDER": str(trackers_folder),
                       "OUTPUT_FOLDER": out, "TRACKERS_TO_EVAL": [tracker], "BENCHMARK": benchmark,
                       "SPLIT_TO_EVAL": "train", "DO_PREPROC": True, "TRACKER_SUB_FOLDER": "",
                       "SKIP_SPLIT_FOL": True, "SEQ_INFO": seq_info, "PRINT_CONFIG": False})
        metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
                   trackeval.metrics.Identity({"PRINT_CONFIG": False})]
        results, _ = trackeval.Evaluator(eval_cfg).evaluate([trackeval.datasets.MotChallenge2DBox(ds_cfg)], metrics)
    per_seq = results["MotChallenge2DBox"][tracker]
    out_seq = {s: {k: _value(r["pedestrian"], k) for k in KEYS} for s, r in per_seq.items() if s != "COMBINED_SEQ"}
    combined = {k: _value(per_seq["COMBINED_SEQ"]["pedestrian"], k) for k in KEYS}
    return {"per_sequence": out_seq, "combined": combined}


def motmetrics_tud_reference() -> dict:
    """TrackEval (BENCHMARK=MOT15) on motmetrics' own data/TUD-{Campus,Stadtmitte} (gt.txt, test.txt)."""
    import importlib.util

    spec = importlib.util.find_spec("motmetrics")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("motmetrics is not installed in this Python (pip install motmetrics==1.4.0 --no-deps)")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    seqs = ("TUD-Campus", "TUD-Stadtmitte")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lengths = {}
        for seq in seqs:
            (root / "gt" / seq / "gt").mkdir(parents=True)
            (root / "trackers" / "motmetrics").mkdir(parents=True, exist_ok=True)
            gt_text = (data / seq / "gt.txt").read_text()
            (root / "gt" / seq / "gt" / "gt.txt").write_text(gt_text)
            (root / "trackers" / "motmetrics" / f"{seq}.txt").write_text((data / seq / "test.txt").read_text())
            lengths[seq] = max(int(float(line.split(",")[0])) for line in gt_text.splitlines() if line.strip())
        return run_trackeval(root / "gt", root / "trackers", "motmetrics", "MOT15", lengths)


def main() -> None:
    import importlib.metadata as md

    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=here.parent / "shared")
    ap.add_argument("--out", type=Path, default=here / "tests" / "data" / "trackeval_mot17_mpntrack.json")
    args = ap.parse_args()
    data = args.shared / "data" / "MOT17"
    ref = run_trackeval(data / "train", data / "results", "MPNTrack")
    doc = {
        "generator": "tools/make_trackeval_reference.py",
        "evaluator": f"trackeval {md.version('trackeval')} (MotChallenge2DBox, BENCHMARK=MOT17, DO_PREPROC=True)",
        "gt": "shared/data/MOT17/train", "results": "shared/data/MOT17/results/MPNTrack",
        "units": "MOTA/IDF1/HOTA/MOTP in percent; others counts", **ref,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    tud = motmetrics_tud_reference()
    tud_out = args.out.parent / "trackeval_mot15_motmetrics_tud.json"
    tud_doc = {**doc, "evaluator": doc["evaluator"].replace("MOT17", "MOT15"),
               "gt": "motmetrics/data/TUD-*/gt.txt", "results": "motmetrics/data/TUD-*/test.txt", **tud}
    tud_out.write_text(json.dumps(tud_doc, indent=1) + "\n")
    print(f"wrote {tud_out}: TUD-Campus MOTA {tud['per_sequence']['TUD-Campus']['MOTA']:.2f}")
    c = ref["combined"]
    print(f"wrote {args.out}: {len(ref['per_sequence'])} sequences; combined MOTA {c['MOTA']:.2f} IDF1 {c['IDF1']:.2f} "
          f"HOTA {c['HOTA']:.2f} IDSW {c['IDSW']} FP {c['FP']} FN {c['FN']}")


if __name__ == "__main__":
    main()
