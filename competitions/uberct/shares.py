"""Each segment's share of a block's incidents, partly taken from the level filter.

The trees rank the hours well (the hour, the weather, the traffic), but a segment's own
level over the coming months is also what the Bayes level filter (competitions.uberct.level)
forecasts: its exact posterior of a fixed risk plus a drifting level, shrunk towards the
shapefile's attributes and the neighbours. The two forecasts of a segment's share of
the block's incidents are combined in log with the filter's weight (`weight`), and the
predicted rates rescaled until every segment holds its combined share while every hour
keeps the total the trees gave it: iterative proportional fitting on the two margins
(segment, hour). The trees' total is kept, so the count the rule flags moves only with
the segments' mix, and the ranking within a segment is the trees'.

Offline on the default runs of the full-scale synthetic seeds (expected ratio to the
oracle over 200 label redraws, the trees' shares -> weight 0.5 / 1): seed 0
0.912 -> 0.913 / 0.911, seed 1 0.900 -> 0.907 / 0.910. An equal weight, not tuned
further on three seeds.

Written by hand: over rows keyed by two margins it is a few bincounts an iteration; the
IPF packages work on dense tables.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from competitions.uberct import features as uber_features

ITERATIONS = 20  # the margins agree to ~1e-6 after a handful


def level_shares(p: np.ndarray, rows: uber_features.Rows, context: uber_features.Context, weight: float) -> np.ndarray:
    """Probabilities p of `rows` with each segment's share of the rows' incidents the
    trees' and the level filter's combined (the filter's with `weight`), every hour's
    total kept."""
    if len(p) == 0 or weight == 0:
        return p
    day = ((rows.hour.astype("datetime64[D]") - context.origin) / uber_features.DAY).astype(np.int64)
    level = np.empty(len(p))
    for as_of in np.unique(rows.as_of):
        chosen = rows.as_of == as_of
        level[chosen] = np.exp(context.row_levels(rows.segment[chosen], day[chosen], int(as_of)).astype(np.float64))
    rate = -np.log1p(-np.clip(p.astype(np.float64), 0, 1 - 1e-12))
    fitted = proportional_fit(rate, level, rows.segment, rows.hour, weight)
    return (-np.expm1(-fitted)).astype(p.dtype)


def proportional_fit(rate: np.ndarray, level: np.ndarray, segment: np.ndarray, hour: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """`rate` rescaled so that each segment's share of the total is its share of `rate`
    times its share of `level` to the power `weight` (renormalised; both shares summed
    over the same rows), and each hour keeps its total."""
    segment, hour = pd.factorize(segment)[0], pd.factorize(hour)[0]
    own, other = np.bincount(segment, rate), np.bincount(segment, level)
    share = np.exp((1 - weight) * np.log(own / own.sum()) + weight * np.log(other / other.sum()))
    target = share / share.sum() * rate.sum()
    hour_totals = np.bincount(hour, rate)
    rate = rate.copy()
    for _ in range(ITERATIONS):
        rate *= (target / np.maximum(np.bincount(segment, rate), 1e-300))[segment]
        rate *= (hour_totals / np.maximum(np.bincount(hour, rate), 1e-300))[hour]
    return rate
