"""Linear assignment: one solver for every association pass (lap.lapjv)."""

from __future__ import annotations

import lap
import numpy as np


def min_cost_matching(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching with a cost limit.

    cost: (N, M) float, row = track, column = detection; entries may be ``inf``
    (forbidden pairs). A pair is only matched when its cost is <= ``max_cost``.

    Returns ``(matches, unmatched_rows, unmatched_cols)``: matches is (K, 2) int64
    [row, col] sorted by row; the unmatched arrays are sorted int64 indices.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    if n == 0 or m == 0:
        return (np.empty((0, 2), dtype=np.int64), np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64))
    # lapjv rejects non-finite entries; anything above the limit is equivalent to forbidden.
    limited = np.where(np.isfinite(cost) & (cost <= max_cost), cost, max_cost + 1.0)
    _, x, _ = lap.lapjv(limited, extend_cost=True, cost_limit=max_cost)
    rows = np.flatnonzero(x >= 0)
    cols = x[rows].astype(np.int64)
    keep = limited[rows, cols] <= max_cost
    rows, cols = rows[keep], cols[keep]
    matches = np.stack([rows, cols], axis=1).astype(np.int64) if len(rows) else np.empty((0, 2), dtype=np.int64)
    row_free = np.ones(n, dtype=bool)
    row_free[rows] = False
    col_free = np.ones(m, dtype=bool)
    col_free[cols] = False
    unmatched_rows = np.flatnonzero(row_free).astype(np.int64)
    unmatched_cols = np.flatnonzero(col_free).astype(np.int64)
    return matches, unmatched_rows, unmatched_cols
