"""Per-sequence results and the combined report (table + JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.evaluation.clear_id import COUNT_KEYS, metrics_from_counts

#: columns of the printed table, in order
TABLE_KEYS = ("MOTA", "IDF1", "HOTA", "MOTP", "IDSW", "FP", "FN", "MT", "ML", "Rcll", "Prcn")
INT_KEYS = {"IDSW", "FP", "FN", "MT", "ML", "PT", "Frag", "TP", "GT_dets", "GT_ids", "IDTP", "IDFP", "IDFN"}


@dataclass
class SequenceResult:
    """One sequence: ``metrics`` (MOTA, IDF1, ... in percent; counts as ints) and the summable ``counts``."""

    name: str
    metrics: dict[str, float]
    counts: dict[str, float]
    hota_raw: dict | None = None  # TrackEval's per-alpha HOTA arrays, for combining (when TrackEval is installed)


@dataclass
class EvalReport:
    """per_sequence: name -> metrics; overall: TrackEval-style combination (counts summed, then metrics)."""

    benchmark: str
    per_sequence: dict[str, dict[str, float]]
    overall: dict[str, float]
    notes: list[str] = field(default_factory=list)
    clear: str = "motmetrics"  # which code counted CLEAR-MOT: motmetrics or trackeval

    def to_json(self) -> dict:
        evaluator = ("motmetrics 1.4.0 with TrackEval MOTChallenge preprocessing" if self.clear == "motmetrics" else
                     "TrackEval CLEAR + motmetrics 1.4.0 identity, with TrackEval MOTChallenge preprocessing")
        return {"benchmark": self.benchmark, "per_sequence": self.per_sequence, "overall": self.overall,
                "notes": self.notes, "clear": self.clear, "evaluator": evaluator}

    def table(self) -> str:
        """Fixed-width text table: one row per sequence plus OVERALL."""
        keys = [k for k in TABLE_KEYS if k in self.overall]
        width = max([len("OVERALL")] + [len(n) for n in self.per_sequence]) + 2
        lines = [f"{'sequence':<{width}}" + "".join(f"{'IDs' if k == 'IDSW' else k:>8}" for k in keys)]
        for name, m in list(self.per_sequence.items()) + [("OVERALL", self.overall)]:
            cells = "".join(f"{int(m[k]):>8d}" if k in INT_KEYS else f"{m[k]:>8.2f}" for k in keys)
            lines.append(f"{name:<{width}}{cells}")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def combine(results: list[SequenceResult], benchmark: str, notes: list[str] | None = None,
            clear: str = "motmetrics") -> EvalReport:
    """Sum the counts of all sequences and derive the overall metrics (and combined HOTA when present)."""
    total = {k: sum(r.counts[k] for r in results) for k in COUNT_KEYS}
    overall = metrics_from_counts(total)
    if results and all(r.hota_raw is not None for r in results):
        from pipeline.evaluation.hota import combine_hota

        overall.update(combine_hota([r.hota_raw for r in results]))
    return EvalReport(benchmark, {r.name: r.metrics for r in results}, overall, list(notes or []), clear)
