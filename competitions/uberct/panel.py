"""The panel's features and the prediction over every segment-hour, in chunks of rows
on a Dask cluster when one is in use (common.parallel), else in one piece here.

Every feature of a row is a function of that row and the context alone, so chunks
computed apart and put back in order are the same frame, and the same submission
bytes. On the cluster the client holds only the row indices (16 bytes a row) and, for
prediction, one probability a row: the feature frame of the whole grid never exists.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from common import parallel
from competitions.uberct import features as uber_features

CHUNK_ROWS = 250_000  # ~50 MB of features a task


def take(rows: uber_features.Rows, part: slice) -> uber_features.Rows:
    return uber_features.Rows(rows.segment[part], rows.hour[part], rows.as_of[part], None if rows.label is None else rows.label[part])


def _chunks(rows: uber_features.Rows, size: int):
    return (take(rows, part) for part in parallel.split(len(rows), size))


def _features_of(rows: uber_features.Rows, context: uber_features.Context) -> pd.DataFrame:
    return context.features(rows)


def _probabilities_of(rows: uber_features.Rows, context: uber_features.Context, model) -> np.ndarray:
    return model.probabilities(context.features(rows))


def _filtered_levels(context: uber_features.Context, rows: uber_features.Rows) -> None:
    """The level filter of each history day the rows use, run here once: the context
    then reaches the workers with it cached, rather than every chunk filtering again."""
    for as_of in np.unique(rows.as_of):
        context.level_offsets(int(as_of))


def features(context: uber_features.Context, rows: uber_features.Rows, chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """context.features(rows), built on the cluster in chunks when one is in use."""
    if not parallel.active():
        return context.features(rows)
    _filtered_levels(context, rows)
    return pd.concat(list(parallel.map_chunks(_features_of, _chunks(rows, chunk_rows), context=context)), ignore_index=True)


def probabilities(model, context: uber_features.Context, rows: uber_features.Rows, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """model.probabilities of every row's features; on a cluster each task builds the
    features of its chunk, predicts and returns only the probabilities."""
    if not parallel.active():
        return model.probabilities(context.features(rows))
    _filtered_levels(context, rows)
    parts = parallel.split(len(rows), chunk_rows)
    result = None  # filled in place: one float a row, no list of parts to concatenate
    for part, p in zip(parts, parallel.map_chunks(_probabilities_of, (take(rows, part) for part in parts),
                                                  context=context, model=model)):
        result = np.empty(len(rows), dtype=p.dtype) if result is None else result
        result[part] = p
    return result
