"""Each segment's share of a block's incidents, taken from the level filter.

The trees rank the hours well (the hour, the weather, the traffic), but a segment's own
level over the coming months is what the Bayes level filter (competitions.uberct.level)
forecasts best: its exact posterior of a fixed risk plus a drifting level, shrunk
towards the shapefile's attributes and the neighbours, beats what trees rebuild from
noisy rate features. So the predicted rates are rescaled until, in each calendar month,
every segment holds the filter's share of that month's incidents while every hour keeps
the total the trees gave it: iterative proportional fitting on the two margins (segment
x month, hour). The trees' total is kept, so the count the rule flags moves only with
the segments' mix, and the ranking within a segment is the trees'.

On the full-scale synthetic seed 1 (bench/uberct_ceiling.py's label redraws) this moved
the default run's expected ratio to the oracle from 0.900 to 0.910 offline, against the
best ceiling estimator's 0.920.

Written by hand: over rows keyed by two margins it is a few bincounts an iteration; the
IPF packages work on dense tables.
"""
from __future__ import annotations

import numpy as np

from competitions.uberct import features as uber_features

ITERATIONS = 20  # the margins agree to ~1e-6 after a handful


def level_shares(p: np.ndarray, rows: uber_features.Rows, context: uber_features.Context) -> np.ndarray:
    """Probabilities p of `rows` with each segment's share of every month's incidents put
    to the level filter's forecast, every hour's total kept."""
    if len(p) == 0:
        return p
    day = ((rows.hour.astype("datetime64[D]") - context.origin) / uber_features.DAY).astype(np.int64)
    level = np.empty(len(p))
    for as_of in np.unique(rows.as_of):
        chosen = rows.as_of == as_of
        level[chosen] = np.exp(context.row_levels(rows.segment[chosen], day[chosen], int(as_of)).astype(np.float64))
    rate = -np.log1p(-np.clip(p.astype(np.float64), 0, 1 - 1e-12))
    fitted = proportional_fit(rate, level, rows.segment, context.month_of_day(day), rows.hour)
    return (-np.expm1(-fitted)).astype(p.dtype)


def proportional_fit(rate: np.ndarray, level: np.ndarray, segment: np.ndarray, month: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """`rate` rescaled so that each segment's share of each month's total is its share of
    `level` summed over the same rows, and each hour (any key nested in the months) keeps
    its total."""
    _, cell = np.unique(segment.astype(np.int64) * (int(month.max()) + 1) + month, return_inverse=True)
    _, hour = np.unique(hour, return_inverse=True)
    _, month = np.unique(month, return_inverse=True)
    cell_month = np.zeros(cell.max() + 1, dtype=np.int64)
    cell_month[cell] = month
    # The level's share of its month for each (segment, month) cell, times the rate's total of that month.
    level_cells = np.bincount(cell, level)
    target = level_cells / np.bincount(cell_month, level_cells)[cell_month] * np.bincount(month, rate)[cell_month]
    hour_totals = np.bincount(hour, rate)
    rate = rate.copy()
    for _ in range(ITERATIONS):
        rate *= (target / np.maximum(np.bincount(cell, rate), 1e-300))[cell]
        rate *= (hour_totals / np.maximum(np.bincount(hour, rate), 1e-300))[hour]
    return rate
