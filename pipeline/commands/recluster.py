"""``reid-pipeline recluster``: the final global re-clustering of one stored run (pipeline/matching/recluster.py).

    reid-pipeline recluster --store FILE [--run-key K] [--out OUTPUTS_DIR] [--threshold T] [--overlapping A,B ...] [--json]

``--overlapping A,B`` declares cameras A and B overlapping for this re-clustering, on top of the run's
``matching.overlapping_cameras``: a run made without an overlap it needed (the run and this command warn about a
camera pair whose tracklets seen at once look like the same people) is repaired without tracking it again.

Rewrites the run's global ids in the store (assignments, identities, ``merge``/``split`` events),
and, with an outputs folder (``--out``, else the run's stored ``outputs.dir`` when it exists and the store is
the one the run recorded: a copy or backup of a store never rewrites the original run's outputs),
``mot_global/<cam>.txt`` and ``events.jsonl``. Takes the store's writer lock, so it refuses a store
a run is writing. Running it again changes nothing. A run that did not end 'complete' (interrupted,
frame limit, failed, aborted) is re-clustered with one warning line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.core.errors import ConfigError, DataError

HELP = "re-cluster all tracklets of a finished run under space-time constraints; rewrite its global ids"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, required=True, help="identity store (SQLite) written by run")
    parser.add_argument("--run-key", default=None, help="the run to re-cluster (default: the latest run)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the run's outputs folder: mot_global/ rewritten, events.jsonl appended"
                             " (default: the run's outputs.dir when it exists and --store is the store the run"
                             " recorded; else the store only)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="average-linkage cosine-distance threshold (default: the run's recluster.threshold,"
                             " else calibrated from its cannot-link pairs, else matching.threshold)")
    parser.add_argument("--overlapping", action="append", default=[], metavar="CAM,CAM[,...]",
                        help="cameras whose views overlap, added to the run's matching.overlapping_cameras "
                             "(repeatable; e.g. a pair the run warned about)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _run_config(store, run_key: str | None) -> tuple[dict, dict]:
    """(run row, its stored config) of ``run_key`` or of the latest run."""
    runs = store.runs()
    if not runs:
        raise DataError(store.path, "the store has no run")
    if run_key is None:
        run = runs[-1]
    else:
        found = [r for r in runs if r["run_key"] == run_key]
        if not found:
            raise DataError(store.path, f"no run {run_key!r} (runs: {', '.join(r['run_key'] for r in runs)})")
        run = found[0]
    row = store.db.query("SELECT config_json FROM runs WHERE run_id = ?", (run["run_id"],))
    try:
        cfg = json.loads(row[0][0] or "{}") if row else {}
    except ValueError:
        cfg = {}
    return run, cfg if isinstance(cfg, dict) else {}


def _matcher_config(cfg: dict):
    """The run's MatcherConfig (its ``matching`` with the top-level ``topology`` folded in); defaults when absent."""
    from pydantic import ValidationError

    from pipeline.matching.config import MatcherConfig

    data = dict(cfg.get("matching") or {})
    if cfg.get("topology") is not None:
        data["topology"] = cfg["topology"]
    try:
        return MatcherConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"the run's stored matching config: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def _with_overlaps(config, groups: list[str], store, run_id: int):
    """``config`` with the ``--overlapping`` groups (comma-separated camera ids of this run) added; ConfigError
    (one line) for a group of fewer than two cameras or a camera the run does not have."""
    if not groups:
        return config
    cams = sorted({r[0] for r in store.db.query("SELECT DISTINCT cam_id FROM tracklets WHERE run_id = ?", (run_id,))})
    extra = []
    for g in groups:
        ids = [c.strip() for c in g.split(",") if c.strip()]
        if len(set(ids)) < 2:
            raise ConfigError(f"--overlapping {g!r}: name two or more cameras, comma-separated")
        unknown = [c for c in ids if c not in cams]
        if unknown:
            raise ConfigError(f"--overlapping {g!r}: camera {unknown[0]!r} is not in the run (cameras: {', '.join(cams)})")
        extra.append(ids)
    return config.model_copy(update={"overlapping_cameras": [*config.overlapping_cameras, *extra]})


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _default_out(cfg: dict, store: Path) -> Path | None:
    """The outputs folder written when ``--out`` is not given: the run's stored ``outputs.dir`` when it exists
    and ``store`` is the store the run recorded; None (the store only, one line saying why) when ``store`` is
    elsewhere (a copy or a backup), whose run's outputs belong to the original store."""
    stored = (cfg.get("outputs") or {}).get("dir")
    if not stored or not Path(stored).is_dir():
        return None
    recorded = (cfg.get("store") or {}).get("path")
    if recorded and not _same_file(Path(recorded), store):
        print(f"note: {store} is not the store its run recorded ({recorded}), so that run's outputs "
              f"({stored}) are left alone: pass --out DIR to write mot_global/ and events.jsonl", file=sys.stderr)
        return None
    return Path(stored)


def run(args: argparse.Namespace) -> int:
    from pipeline.matching.recluster import recluster_run
    from pipeline.store import IdentityStore

    if not args.store.is_file():
        raise DataError(args.store, "no such identity store")
    if args.threshold is not None and not 0.0 <= args.threshold <= 2.0:
        raise ConfigError(f"--threshold {args.threshold}: a cosine distance in [0, 2]")
    with IdentityStore(args.store) as store:
        run_row, cfg = _run_config(store, args.run_key)
        config = _with_overlaps(_matcher_config(cfg), args.overlapping, store, int(run_row["run_id"]))
        threshold = args.threshold
        if threshold is None:
            threshold = (cfg.get("recluster") or {}).get("threshold")
        if run_row.get("status") not in ("complete", None):
            print(f"warning: run {run_row['run_key']} ended {run_row['status']!r}, not 'complete': re-clustering"
                  " only the tracklets it stored", file=sys.stderr)
        out = args.out if args.out is not None else _default_out(cfg, args.store)
        res = recluster_run(store, int(run_row["run_id"]), config, threshold=threshold, out_dir=out)
    summary = {"run_key": run_row["run_key"], **res.summary()}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"run {run_row['run_key']}: {summary['tracklets']} tracklets, identities {summary['identities_before']}"
              f" -> {summary['identities_after']} ({summary['merges']} merges, {summary['splits']} splits,"
              f" {summary['changed_tracklets']} tracklets re-assigned) at threshold {summary['threshold']}"
              f" ({summary['threshold_source']}); mot_global: {', '.join(summary['mot_files']) or 'not written'}")
    for o in res.suspected_overlaps:
        print(f"warning: {o.message()}; {o.repair_hint(args.store, run_row['run_key'])}", file=sys.stderr)
    return 0
